"""What a stack leaves behind is still the stack's. A destroy stopped midway leaves agents the
next one finds, never blocks no agent holds (an agent's own blocks go right before it); an own
block carrying the stack's mark whose agent is gone (deleted by hand, say) is deleted by the
next destroy and pruned by the next apply; those kept on purpose are named."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from letta_apply.core.changes import DELETE
from letta_apply.core.model import stack_tag
from letta_apply.server.lock_records import lock_tag
from letta_apply.server.serial import serial_tag
from tests.fakes import FakeLetta
from tests.helpers import Cli, write

FLEET = """\
version: 1
stack: unit
agents:
  w:
    count: {n}
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{{label: persona, value: "I am worker ${{count.index}}"}}]
"""
EDITED = "I am worker ${count.index}, edited"  # written by an update: the block gets its mark


def marked(fake: FakeLetta) -> list[str]:
    """Ids of the blocks carrying any of the stack's tags (its own, its lock's, its serial's)."""
    tags = {stack_tag("unit"), lock_tag("unit"), serial_tag("unit")}
    return [i for i, b in fake.blocks.items() if tags & set(b.get("tags") or ())]


def agent_ids(fake: FakeLetta) -> list[str]:
    return sorted(fake.agents)


def delete_by_hand(fake: FakeLetta, path: str) -> None:
    with fake.client() as c:
        c.request("DELETE", path)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_destroy_stopped_midway_is_finished_by_the_next(
    tmp_path: Path, cli: Cli, signum: int, code: int
) -> None:
    path = str(write(tmp_path, FLEET.format(n=8)))
    assert cli("apply", "-f", path, "--auto-approve").code == 0
    assert len(marked(cli.fake)) == 8 + 1  # the personas, and the stack's serial
    deleted: list[str] = []

    def interrupt_after_the_second(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE" and request.url.path.startswith(("/v1/agents/", "/v1/b")):
            deleted.append(request.url.path)
            if len(deleted) == 2:
                os.kill(os.getpid(), signum)  # as a user's Ctrl-C or a CI runner's TERM
                time.sleep(0.3)  # a request in flight; the handler runs meanwhile
        return None

    cli.fake.before.append(interrupt_after_the_second)
    r = cli("destroy", "-f", path, "--auto-approve", "--parallelism", "1")
    assert r.code == code, r.err
    assert "Destroy interrupted: 2 change(s) done, 14 not attempted. Run destroy again" in r.err
    assert "apply again" not in r.err.lower()  # apply would make the stack again
    # Every agent is still there for the next run to find, whatever was deleted.
    assert len(cli.fake.agents) == 8
    cli.fake.before.clear()

    again = cli("destroy", "-f", path, "--auto-approve")
    assert again.code == 0, again.err
    assert cli.fake.agents == {} and marked(cli.fake) == []
    assert "Nothing to destroy" in cli("destroy", "-f", path, "--auto-approve").out


def marked_fleet(tmp_path: Path, cli: Cli, n: int, text: str = FLEET) -> Path:
    """A fleet applied, then its personas edited in the manifest and applied: the update gives
    each persona the stack's mark for its address."""
    path = write(tmp_path, text.format(n=n))
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    path.write_text(path.read_text().replace("I am worker ${count.index}", EDITED))
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    assert all(b["metadata"] for b in cli.fake.blocks.values() if b["label"] == "persona")
    return path


def test_an_agent_deleted_by_hand_leaves_its_blocks_to_the_next_apply(
    tmp_path: Path, cli: Cli
) -> None:
    path = str(marked_fleet(tmp_path, cli, 3))
    (gone,) = [a for a in cli.fake.agents.values() if a["name"] == "w-1"]
    (persona,) = gone["block_ids"]
    delete_by_hand(cli.fake, f"/v1/agents/{gone['id']}")

    plan = cli("plan", "-f", path)
    assert f"  - agent.w[1].memory_blocks.persona ({persona}): delete" in plan.out
    assert f"agent.w[1].memory_blocks.persona ({persona}): its agent is gone; the block is " \
        "deleted" in plan.out  # fmt: skip
    changes = json.loads(cli("plan", "-f", path, "--format", "json").out)["changes"]
    assert [(c["address"], c["actions"], c["remote_id"]) for c in changes] == [
        ("agent.w[1]", ["create"], None),
        ("agent.w[1].memory_blocks.persona", [DELETE], persona),
    ]
    assert cli("apply", "-f", path, "--auto-approve").code == 0
    assert persona not in cli.fake.blocks and len(cli.fake.agents) == 3
    assert "No changes." in cli("plan", "-f", path).out

    # Every agent deleted by hand: destroy still finds their marked blocks.
    for aid in agent_ids(cli.fake):
        delete_by_hand(cli.fake, f"/v1/agents/{aid}")
    r = cli("destroy", "-f", path, "--auto-approve")
    assert r.code == 0 and "Destroy complete: 2 resource(s) deleted." in r.out, r.out
    # The persona w[1] was made again with is unmarked: nothing tells it from a block tagged by
    # hand once its agent is gone, and it is left alone.
    (left,) = marked(cli.fake)
    assert not cli.fake.blocks[left]["metadata"]


def test_a_leftover_another_agent_uses_is_kept_and_named(tmp_path: Path, cli: Cli) -> None:
    path = str(marked_fleet(tmp_path, cli, 2))
    (gone,) = [a for a in cli.fake.agents.values() if a["name"] == "w-0"]
    (persona,) = gone["block_ids"]
    with cli.fake.client() as c:
        hand = c.request("POST", "/v1/agents/", json={"name": "hand", "model": "letta/letta-free"})
        c.request("DELETE", f"/v1/agents/{gone['id']}")
        c.request("PATCH", f"/v1/agents/{hand['id']}/core-memory/blocks/attach/{persona}")
    r = cli("destroy", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    assert (
        f"agent.w[0].memory_blocks.persona ({persona}): its agent is gone; kept: attached to "
        f"hand ({hand['id']}), not this stack's"
    ) in r.out
    assert marked(cli.fake) == [persona]  # only the block another agent uses


def test_both_sides_of_a_replacement_keep_their_blocks(tmp_path: Path, cli: Cli) -> None:
    """Create-first: while the old and the new agent both exist, each one's blocks are its own;
    once the old agent is gone, the blocks it left are leftovers, and only those."""
    text = FLEET.replace("    model:", "    include_base_tools: false\n    model:")
    path = marked_fleet(tmp_path, cli, 1, text)
    (old,) = cli.fake.agents.values()
    (old_persona,) = old["block_ids"]
    path.write_text(
        path.read_text().replace("include_base_tools: false", "include_base_tools: true")
    )

    def stopped(request: httpx.Request) -> httpx.Response | None:
        if request.method == "DELETE" and "/v1/agents/" + old["id"] in str(request.url):
            return httpx.Response(500, json={"detail": "stopped here"})
        if request.method == "DELETE" and old_persona in str(request.url):
            return httpx.Response(500, json={"detail": "stopped here"})
        return None

    cli.fake.before.append(stopped)
    assert cli("apply", "-f", str(path), "--auto-approve").code == 1
    cli.fake.before.clear()
    (new,) = [a for a in cli.fake.agents.values() if a["id"] != old["id"]]
    (new_persona,) = new["block_ids"]
    assert "its agent is gone" not in cli("plan", "-f", str(path)).out  # both live

    delete_by_hand(cli.fake, f"/v1/agents/{old['id']}")
    changes = json.loads(cli("plan", "-f", str(path), "--format", "json").out)["changes"]
    assert [(c["address"], c["actions"], c["remote_id"]) for c in changes] == [
        ("agent.w[0].memory_blocks.persona", [DELETE], old_persona)
    ]
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    assert old_persona not in cli.fake.blocks and new_persona in cli.fake.blocks
    assert "No changes." in cli("plan", "-f", str(path)).out
