"""An agent with `enable_sleeptime: true`: Letta makes a sleep-time agent and a group beside it
(tests/fakes/sleeptime.py). A destroy, a prune or a replacement takes them and the block Letta made
for the sleep-time agent, never stops at the blocks they share with the agent, survives being
killed after any write, and never deletes what Letta did not make (kinds.agent.sleeptime)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.fakes import FakeLetta
from tests.helpers import Cli, Result, write
from tests.unit.test_lock_lease import dead_pid

STACK = """\
version: 1
stack: unit
blocks:
  organization: {value: Acme}
agents:
  thinker:
    model: letta/letta-free
    embedding: letta/letta-free
    enable_sleeptime: true
    memory_blocks:
      - {label: persona, value: I think}
      - {label: human, value: A user}
    blocks: [organization]
  plain:
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I do not sleep}]
    blocks: [organization]
"""


def run(cli: Cli, *argv: str, code: int = 0) -> Result:
    r = cli(*argv)
    assert r.code == code, r.out + r.err
    return r


def apply(cli: Cli, path: Path) -> Result:
    return run(cli, "apply", "-f", str(path), "--auto-approve", "-v")


def named(fake: FakeLetta, name: str) -> dict[str, Any]:
    (found,) = [a for a in fake.agents.values() if a["name"] == name]
    return found


def sleeptime_group(fake: FakeLetta) -> dict[str, Any]:
    (found,) = [g for g in fake.groups.values() if g["manager_type"] == "sleeptime"]
    return found


def persona_block(fake: FakeLetta) -> str:
    sleeper = named(fake, "thinker-sleeptime")
    (found,) = [i for i in sleeper["block_ids"] if fake.blocks[i]["label"] == "memory_persona"]
    return found


def hand_made_block(fake: FakeLetta, on: str) -> str:
    """A block made by hand and attached by hand to agent `on` alone."""
    with fake.client() as c:
        made = c.request("POST", "/v1/blocks/", json={"label": "notes", "value": "mine"})
        c.request("PATCH", f"/v1/agents/{on}/core-memory/blocks/attach/{made['id']}")
    return str(made["id"])


def made(tmp_path: Path, cli: Cli, text: str = STACK) -> Path:
    path = write(tmp_path, text)
    apply(cli, path)
    sleeper = named(cli.fake, "thinker-sleeptime")
    thinker = named(cli.fake, "thinker")
    assert sleeptime_group(cli.fake)["manager_agent_id"] == thinker["id"]
    assert set(thinker["block_ids"]) < set(sleeper["block_ids"])  # it shares all of them
    return path


def test_destroy_takes_what_letta_made_and_leaves_what_it_did_not(tmp_path: Path, cli: Cli) -> None:
    path = made(tmp_path, cli)
    mine = hand_made_block(cli.fake, named(cli.fake, "thinker-sleeptime")["id"])
    persona = persona_block(cli.fake)
    r = run(cli, "destroy", "-f", str(path), "--auto-approve")
    assert "not deleted" not in r.out + r.err
    assert "Letta deletes its sleep-time agent thinker-sleeptime" in r.out
    assert f"memory_persona ({persona}), is deleted first" in r.out
    assert cli.fake.agents == {} and cli.fake.groups == {}
    assert list(cli.fake.blocks) == [mine]  # made by hand: left as it was
    assert "Nothing to destroy" in run(cli, "plan", "--destroy", "-f", str(path)).out


def test_a_saved_destroy_plan_deletes_the_same(tmp_path: Path, cli: Cli) -> None:
    path = made(tmp_path, cli)
    saved = tmp_path / "plan.json"
    run(cli, "plan", "--destroy", "-f", str(path), "--out", str(saved))
    (change,) = [c for c in json.loads(saved.read_text())["changes"]
                 if c["address"] == "agent.thinker"]  # fmt: skip
    assert change["body"] == {"sleeptime_blocks": [persona_block(cli.fake)]}
    run(cli, "apply", str(saved), "-f", str(path), "--auto-approve")
    assert cli.fake.agents == {} and cli.fake.groups == {} and cli.fake.memory == {}


def kill_after_write(fake: FakeLetta, n: int) -> list[str]:
    """From the `n`th write on, the server hears nothing more: as if the run were killed
    (SIGKILL) right after the server acted on it. Returns the writes it acted on."""
    done: list[str] = []

    def after(request: httpx.Request) -> None:
        if request.method != "GET" and request.url.path != "/v1/passages/search":
            done.append(f"{request.method} {request.url.path}")

    def before(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(400, json={"detail": "killed"}) if len(done) >= n else None

    fake.after.append(after)  # type: ignore[arg-type]
    fake.before.append(before)
    return done


def test_a_destroy_killed_after_any_write_is_finished_by_the_next(tmp_path: Path) -> None:
    n, between = 0, False
    while True:
        n += 1
        cli = Cli()
        path = made(tmp_path, cli)
        persona = persona_block(cli.fake)
        done = kill_after_write(cli.fake, n)
        first = cli("destroy", "-f", str(path), "--auto-approve", "--parallelism", "1")
        cli.fake.before.clear()
        cli.fake.after.clear()
        if first.code == 0:  # it made fewer writes than n: every boundary was tried
            break
        # Killed between the block Letta made for the sleep-time agent and the agent.
        between = between or done[-1] == f"DELETE /v1/blocks/{persona}"
        for b in cli.fake.blocks.values():  # the killed run's process is gone
            lock = (b.get("metadata") or {}).get("letta_apply_lock")
            if isinstance(lock, dict) and "pid" in lock:
                lock["pid"] = dead_pid()
        again = cli("destroy", "-f", str(path), "--auto-approve")
        left = [*cli.fake.agents, *cli.fake.groups, *cli.fake.blocks]
        assert again.code == 0 and not left, f"killed after {done[-1]}: {again.err} {left}"
    assert between and n > 8


def test_a_memory_block_no_longer_declared_is_deleted_from_a_sleeptime_agent(
    tmp_path: Path, cli: Cli
) -> None:
    path = made(tmp_path, cli)
    human = next(i for i in named(cli.fake, "thinker")["block_ids"]
                 if cli.fake.blocks[i]["label"] == "human")  # fmt: skip
    write(tmp_path, STACK.replace("      - {label: human, value: A user}\n", ""))
    r = apply(cli, path)
    assert "not deleted" not in r.out + r.err
    assert human not in cli.fake.blocks
    assert "thinker-sleeptime" in {a["name"] for a in cli.fake.agents.values()}


def test_a_shared_block_no_longer_declared_is_deleted_from_a_sleeptime_agent(
    tmp_path: Path, cli: Cli
) -> None:
    path = made(tmp_path, cli)
    org = next(i for i, b in cli.fake.blocks.items() if b["label"] == "organization")
    write(tmp_path, STACK.replace("  organization: {value: Acme}\n", "  other: {value: x}\n")
          .replace("    blocks: [organization]\n", ""))  # fmt: skip
    r = apply(cli, path)
    assert "not deleted" not in r.out + r.err
    assert org not in cli.fake.blocks


def test_replacing_a_sleeptime_agent_leaves_nothing_of_the_old_one(
    tmp_path: Path, cli: Cli
) -> None:
    path = made(tmp_path, cli, STACK.replace("    enable_sleeptime: true\n",
                                             "    enable_sleeptime: true\n"
                                             "    include_base_tools: true\n"))  # fmt: skip
    old, old_persona = named(cli.fake, "thinker")["id"], persona_block(cli.fake)
    write(tmp_path, STACK.replace("    enable_sleeptime: true\n",
                                  "    enable_sleeptime: true\n"
                                  "    include_base_tools: false\n"))  # fmt: skip
    r = apply(cli, path)
    assert "-/+ agent.thinker" in r.out or "replace" in r.out, r.out
    assert "Letta deletes the replaced agent's sleep-time agent" in r.out
    assert old not in cli.fake.agents and old_persona not in cli.fake.blocks
    assert named(cli.fake, "thinker")["id"] != old
    assert sleeptime_group(cli.fake)["manager_agent_id"] == named(cli.fake, "thinker")["id"]
    assert len([b for b in cli.fake.blocks.values() if b["label"] == "memory_persona"]) == 1
    assert "No changes" in apply(cli, path).out


def test_an_agent_letta_would_delete_along_is_never_deleted(tmp_path: Path, cli: Cli) -> None:
    """An agent put by hand in the sleep-time group: Letta would delete it with the stack's
    agent, so that agent is not deleted."""
    path = made(tmp_path, cli)
    with cli.fake.client() as c:
        theirs = c.request("POST", "/v1/agents/", json={"name": "theirs"})["id"]
    sleeptime_group(cli.fake)["agent_ids"].append(theirs)
    r = run(cli, "destroy", "-f", str(path), "--auto-approve", code=1)
    assert f"theirs ({theirs}) is not one Letta made for it (an agent of type" in r.out
    assert "[LA639]" in r.out
    assert theirs in cli.fake.agents and named(cli.fake, "thinker")
    assert "plain" not in {a["name"] for a in cli.fake.agents.values()}


def test_sleeptime_turned_off_still_goes_with_the_agent(tmp_path: Path, cli: Cli) -> None:
    """`enable_sleeptime: false` leaves Letta's sleep-time agent in place (as Letta does), and
    destroy still takes it."""
    path = made(tmp_path, cli)
    write(tmp_path, STACK.replace("enable_sleeptime: true", "enable_sleeptime: false"))
    apply(cli, path)
    assert named(cli.fake, "thinker-sleeptime") and "No changes" in apply(cli, path).out
    run(cli, "destroy", "-f", str(path), "--auto-approve")
    assert cli.fake.agents == {} and cli.fake.groups == {} and cli.fake.blocks == {}


def test_a_sleeptime_group_the_manifest_declares_is_the_stacks_own(
    tmp_path: Path, cli: Cli
) -> None:
    """Its agents are the stack's, planned at their own addresses: never refused as agents
    Letta did not make."""
    path = write(tmp_path, STACK.replace("    enable_sleeptime: true\n", "") + (
        "groups:\n"
        "  sleep: {manager_type: sleeptime, manager_agent: thinker, agents: [plain]}\n"
    ))  # fmt: skip
    apply(cli, path)
    assert sleeptime_group(cli.fake)["agent_ids"] == [named(cli.fake, "plain")["id"]]
    r = run(cli, "destroy", "-f", str(path), "--auto-approve")
    assert "not deleted" not in r.out and "sleep-time agent" not in r.out
    assert cli.fake.agents == {} and cli.fake.groups == {} and cli.fake.memory == {}


def test_letta_s_block_another_agent_uses_too_is_kept(tmp_path: Path, cli: Cli) -> None:
    path = made(tmp_path, cli)
    persona = persona_block(cli.fake)
    with cli.fake.client() as c:
        theirs = c.request("POST", "/v1/agents/", json={"name": "theirs"})["id"]
        c.request("PATCH", f"/v1/agents/{theirs}/core-memory/blocks/attach/{persona}")
    r = run(cli, "destroy", "-f", str(path), "--auto-approve")
    assert f"memory_persona ({persona}) is kept: other agents use it too" in r.out
    assert list(cli.fake.agents) == [theirs] and cli.fake.agents[theirs]["block_ids"] == [persona]
