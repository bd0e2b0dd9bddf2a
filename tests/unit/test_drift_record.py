"""`drift` sees what was changed on the server outside the manifest, resources deleted there
included: the stack's record of what it holds (kept in its serial record) tells a resource
deleted by hand from one the manifest just added. The record follows every run's outcome
(creates, deletes, forgets, moves, refusals, destroy, a run killed midway) and costs a plan no
request. A block the stack does not manage, attached by hand, is drift too, told truthfully.
Through the fake server."""

from __future__ import annotations

import base64
import json
import re
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.core.model import MARK_KEY
from letta_apply.server.serial import (
    LOCK_KEY,
    RECORD_KEY,
    STACK_LABEL,
    decode_record,
    encode_record,
    stack_record,
)
from tests.fakes import FakeLetta
from tests.helpers import SEED, Cli, Result, write
from tests.unit.test_lock_lease import dead_pid
from tests.unit.test_removed import ADDRESSES, EVERYTHING
from tests.unit.test_removed import write as write_every_kind

HELPER = "  helper:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"


def run(cli: Cli, *argv: str, code: int = 0) -> Result:
    r = cli(*argv)
    assert r.code == code, r.out + r.err
    return r


def apply(cli: Cli, path: Path, *extra: str, code: int = 0) -> Result:
    return run(cli, "apply", "-f", str(path), "--auto-approve", "-v", *extra, code=code)


def counts(r: Result) -> tuple[int, int]:
    """The command's own reads and writes, as -v prints them (the lock's apart)."""
    found = re.search(r"requests: (\d+) reads, (\d+) writes", r.err)
    assert found, r.err
    return int(found[1]), int(found[2])


def recorded(fake: FakeLetta, stack: str = "unit") -> frozenset[str] | None:
    return stack_record(list(fake.blocks.values()), stack)


def agent_id(fake: FakeLetta, name: str) -> str:
    return next(i for i, a in fake.agents.items() if a["name"] == name)


def deleted(doc: dict[str, Any]) -> list[str]:
    return [d["address"] for d in doc["drift"] if d["kind"] == "deleted"]


# -- a resource deleted by hand ------------------------------------------------------------------


def test_an_agent_deleted_by_hand_is_drift_and_apply_makes_it_again(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    assert recorded(cli.fake) == {"block.organization", "agent.supervisor", "agent.worker"}
    del cli.fake.agents[agent_id(cli.fake, "worker")]

    r = run(cli, "drift", "-f", str(path), code=2)
    assert "Deleted on the server, outside the manifest:" in r.out
    assert (
        "  + agent.worker was deleted on the server (letta-apply had made it); apply makes it "
        "again" in r.out
    )
    assert "Drift: 1 deleted resource, 0 agent-written values, 0 configuration changes." in r.out
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert doc["has_drift"] is True and doc["drift"] == [
        {"action": "restored", "address": "agent.worker", "declared": "present", "field": "",
         "kind": "deleted", "live": "deleted"}
    ]  # fmt: skip
    assert doc["summary"] == {"memory_drift": 0, "configuration_drift": 0, "deleted_drift": 1}
    plan = run(cli, "plan", "-f", str(path)).out
    assert "  + agent.worker: create (deleted on the server; made again)" in plan
    assert "1 deleted on the server, made again." in plan
    (change,) = json.loads(run(cli, "plan", "-f", str(path), "--format", "json").out)["changes"]
    assert (change["address"], change["why"]) == ("agent.worker", ["drift"])

    apply(cli, path)
    assert {a["name"] for a in cli.fake.agents.values()} == {"supervisor", "worker"}
    r = run(cli, "drift", "-f", str(path))
    assert "No drift" in r.out


def test_a_saved_plan_carries_the_drift_and_records_what_it_made(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    del cli.fake.agents[agent_id(cli.fake, "worker")]
    saved = tmp_path / "plan.json"
    run(cli, "plan", "-f", str(path), "--out", str(saved))
    doc = json.loads(saved.read_text())
    assert deleted(doc) == ["agent.worker"] and doc["summary"]["deleted_drift"] == 1
    run(cli, "apply", str(saved), "--auto-approve")
    assert recorded(cli.fake) == {"block.organization", "agent.supervisor", "agent.worker"}
    assert "No drift" in run(cli, "drift", "-f", str(path)).out


def test_an_agent_added_to_the_manifest_and_not_applied_is_not_drift(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    write(tmp_path, SEED + HELPER)
    r = run(cli, "drift", "-f", str(path))
    assert "No drift" in r.out
    doc = json.loads(run(cli, "plan", "-f", str(path), "--format", "json").out)
    (change,) = doc["changes"]
    assert (change["address"], change["why"]) == ("agent.helper", ["new"])
    assert doc["drift"] == []


def test_every_kind_deleted_by_hand_is_drift(tmp_path: Path, cli: Cli) -> None:
    path = write_every_kind(tmp_path, EVERYTHING.replace("    prevent_destroy: true\n", ""))
    apply(cli, path)
    assert recorded(cli.fake, "s") == {*ADDRESSES, "block.kept"}
    f = cli.fake
    for held in (f.agents, f.tools, f.identities, f.groups, f.mcp_servers, f.folders, f.archives):
        held.clear()
    (org,) = [i for i, b in f.blocks.items() if b["value"] == "shared"]
    del f.blocks[org]

    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert sorted(deleted(doc)) == sorted(ADDRESSES)
    apply(cli, path)
    assert "No drift" in run(cli, "drift", "-f", str(path)).out
    assert recorded(cli.fake, "s") == {*ADDRESSES, "block.kept"}


def test_a_moved_resource_is_recorded_where_it_moved(tmp_path: Path, cli: Cli) -> None:
    head = "version: 1\nstack: unit\nblocks:\n"
    path = write(tmp_path, head + "  a: {value: x}\n  c: {value: z}\n")
    apply(cli, path)
    write(tmp_path, head + "  b: {value: x}\n  d: {value: z}\nmoved:\n"
          "  - {from: block.a, to: block.b}\n  - {from: block.c, to: block.d}\n")  # fmt: skip
    # block.c is deleted by hand before its move is applied: block.d is what was lost.
    (c,) = [i for i, b in cli.fake.blocks.items() if b["value"] == "z"]
    del cli.fake.blocks[c]
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert deleted(doc) == ["block.d"]
    apply(cli, path)
    assert recorded(cli.fake) == {"block.b", "block.d"}
    (b,) = [i for i, x in cli.fake.blocks.items() if x["value"] == "x"]
    del cli.fake.blocks[b]
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert deleted(doc) == ["block.b"]


def test_what_letta_apply_deleted_or_let_go_of_is_new_when_declared_again(
    tmp_path: Path, cli: Cli
) -> None:
    head = "version: 1\nstack: unit\nblocks:\n  a: {value: x}\n  b: {value: y}\n"
    path = write(tmp_path, head)
    apply(cli, path)
    write(tmp_path, "version: 1\nstack: unit\nblocks:\n  c: {value: z}\n"
          "removed:\n  - from: block.b\n")  # fmt: skip
    apply(cli, path)  # block.a deleted, block.b let go of (kept, unmarked)
    assert recorded(cli.fake) == {"block.c"}
    write(tmp_path, head + "  c: {value: z}\n")
    assert "No drift" in run(cli, "drift", "-f", str(path)).out


def test_a_refused_create_is_not_recorded(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    cli.fake.agents["agent-by-hand"] = {
        "id": "agent-by-hand", "name": "helper", "tags": [], "metadata": {}, "block_ids": [],
        "tool_ids": [], "identity_ids": [], "_seq": -1,
    }  # fmt: skip
    write(tmp_path, SEED + HELPER)
    apply(cli, path, code=1)  # agent.helper clashes with the agent made by hand: refused
    assert recorded(cli.fake) == {"block.organization", "agent.supervisor", "agent.worker"}


def test_destroy_leaves_no_record_and_a_later_apply_starts_afresh(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    before = len(cli.fake.calls)
    run(cli, "destroy", "-f", str(path), "--auto-approve")
    calls = cli.fake.calls[before:]
    # The record is written without what destroy deletes before the first delete.
    first_delete = next(n for n, (m, p) in enumerate(calls) if m == "DELETE")
    assert any(m == "PATCH" and p.startswith("/v1/blocks/") for m, p in calls[:first_delete])
    assert not any(b["label"] == STACK_LABEL for b in cli.fake.blocks.values())
    assert recorded(cli.fake) is None


def test_a_lockless_apply_records_too(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path, "--lock=false")
    del cli.fake.agents[agent_id(cli.fake, "supervisor")]
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert deleted(doc) == ["agent.supervisor"]
    apply(cli, path, "--lock=false")
    assert recorded(cli.fake) == {"block.organization", "agent.supervisor", "agent.worker"}


def test_a_lockless_run_keeps_what_a_run_beside_it_recorded(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    write(tmp_path, SEED + HELPER)
    fake = cli.fake
    (serial,) = [b for b in fake.blocks.values() if b["label"] == STACK_LABEL]

    def other_run(request: httpx.Request) -> None:
        # While this run creates agent.helper, another run of the stack deletes agent.worker
        # and records so.
        if request.method == "POST" and request.url.path == "/v1/agents/":
            del fake.agents[agent_id(fake, "worker")]
            serial["metadata"][LOCK_KEY] = {
                "stack": "unit", "serial": "other",
                RECORD_KEY: encode_record(["block.organization", "agent.supervisor"]),
            }  # fmt: skip

    fake.after.append(other_run)  # type: ignore[arg-type]
    apply(cli, path, "--lock=false")
    assert recorded(fake) == {"block.organization", "agent.supervisor", "agent.helper"}
    assert "No drift" in run(cli, "drift", "-f", str(path)).out


# -- crashes -------------------------------------------------------------------------------------


def kill_after(fake: FakeLetta, method: str, path: str) -> None:
    """From the request `method path` on, the server hears nothing more: as if the run were
    killed (SIGKILL) right after the server acted on it."""
    dead = []

    def after(request: httpx.Request) -> None:
        if request.method == method and request.url.path.startswith(path):
            dead.append(True)

    def before(request: httpx.Request) -> httpx.Response | None:
        return httpx.Response(400, json={"detail": "killed"}) if dead else None

    fake.after.append(after)  # type: ignore[arg-type]
    fake.before.append(before)


def test_a_run_killed_after_deleting_leaves_no_false_deleted_on_the_server(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    write(tmp_path, SEED.split("  worker:")[0])
    kill_after(cli.fake, "DELETE", "/v1/agents/")
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert "could not release the lock" in r.err  # nor write the serial and the record
    assert {a["name"] for a in cli.fake.agents.values()} == {"supervisor"}
    cli.fake.before.clear()
    cli.fake.after.clear()
    # The worker comes back to the manifest: letta-apply deleted it, nobody else did.
    write(tmp_path, SEED)
    assert "No drift" in run(cli, "drift", "-f", str(path)).out
    assert "agent.worker" not in (recorded(cli.fake) or ())


def test_a_run_killed_after_creating_is_recorded_by_the_next_apply(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    write(tmp_path, SEED + HELPER)
    kill_after(cli.fake, "POST", "/v1/agents/")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 1
    cli.fake.before.clear()
    cli.fake.after.clear()
    (lock,) = [b for b in cli.fake.blocks.values() if b["label"] == "letta-apply-lock"]
    lock["metadata"][LOCK_KEY]["pid"] = dead_pid()  # the killed run's process is gone
    assert "agent.helper" not in (recorded(cli.fake) or ())
    # Nothing to do but take the lock over (a new serial, its record deleted), plan again
    # and write the record: then nothing.
    r = apply(cli, path)
    assert "took over the lock" in r.err and "No changes." in r.out
    assert counts(r)[1] == 3
    assert "agent.helper" in (recorded(cli.fake) or ())
    assert counts(apply(cli, path))[1] == 0


def test_a_stack_applied_by_an_older_release_gets_its_record_from_the_next_apply(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    (serial,) = [b for b in cli.fake.blocks.values() if b["label"] == STACK_LABEL]
    del serial["metadata"][LOCK_KEY][RECORD_KEY]  # as an older release left it
    r = run(cli, "drift", "-f", str(path))
    assert "the stack has no record yet of what letta-apply made" in r.out
    r = apply(cli, path)
    assert counts(r)[1] == 1
    assert counts(apply(cli, path))[1] == 0
    del cli.fake.agents[agent_id(cli.fake, "worker")]
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert deleted(doc) == ["agent.worker"]


# -- what it costs -------------------------------------------------------------------------------


def test_the_record_costs_a_plan_no_request(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    with_record = counts(run(cli, "plan", "-f", str(path), "-v"))
    (serial,) = [b for b in cli.fake.blocks.values() if b["label"] == STACK_LABEL]
    del serial["metadata"][LOCK_KEY][RECORD_KEY]
    assert counts(run(cli, "plan", "-f", str(path), "-v")) == with_record


def lock_counts(r: Result) -> tuple[int, int]:
    """The stack lock's reads and writes, as -v prints them."""
    found = re.search(r"stack lock: (\d+) reads, (\d+) writes", r.err)
    assert found, r.err
    return int(found[1]), int(found[2])


def test_only_a_run_that_takes_a_recorded_resource_away_writes_the_record_first(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    write(tmp_path, SEED + HELPER)
    r = apply(cli, path)
    # The agent; the lock: its record made and deleted, the serial (the record with it).
    assert counts(r)[1] == 1 and lock_counts(r)[1] == 3
    write(tmp_path, SEED)
    before = len(cli.fake.calls)
    r = apply(cli, path)
    assert counts(r)[1] == 1 and lock_counts(r)[1] == 4  # and the record, written first
    calls = [(m, p) for m, p in cli.fake.calls[before:] if m != "GET"]
    serial = next(i for i, b in cli.fake.blocks.items() if b["label"] == STACK_LABEL)
    ahead = calls.index(("PATCH", f"/v1/blocks/{serial}"))
    delete = next(n for n, (m, p) in enumerate(calls) if m == "DELETE" and "/agents/" in p)
    assert ahead < delete


def test_a_fleets_record_is_small_and_reads_back() -> None:
    fleet = [f"agent.worker[{i}]" for i in range(10_000)] + ['block.notes["eu.west"]']
    text = encode_record(fleet)
    assert len(text) < 60_000, len(text)
    assert decode_record(text) == set(fleet)


@pytest.mark.parametrize(
    "text",
    [
        None,
        "not base64!",
        base64.b64encode(b"not zlib").decode(),
        base64.b64encode(zlib.compress(b'{"a": 1}')).decode(),
        base64.b64encode(zlib.compress(b"0" * (65 << 20))).decode(),  # unpacks past the limit
    ],
)
def test_what_is_not_a_record_is_none(text: Any) -> None:
    assert decode_record(text) is None


# -- a block attached by hand ---------------------------------------------------------------------


def attach_foreign_block(fake: FakeLetta, agent: str) -> str:
    """A block of another stack, attached by hand to one of the stack's agents."""
    bid = "block-0e1d2c3b-4a59-4867-8756-a4b3c2d1e0f9"
    fake.blocks[bid] = {
        "id": bid, "label": "notes", "value": "theirs", "limit": 100000,
        "tags": ["letta-apply:team"], "_seq": 10_000,
        "metadata": {MARK_KEY: {"stack": "team", "address": "block.notes"}},
    }  # fmt: skip
    fake.agents[agent_id(fake, agent)]["block_ids"].append(bid)
    return bid


def test_a_block_attached_by_hand_is_drift_left_alone_unless_asked(
    tmp_path: Path, cli: Cli
) -> None:
    path = write(tmp_path, SEED)
    apply(cli, path)
    bid = attach_foreign_block(cli.fake, "worker")

    r = run(cli, "drift", "-f", str(path), code=2)
    assert "Configuration changed on the server, outside the manifest:" in r.out
    assert (
        f"  ! agent.worker: block 'notes' ({bid}, not managed by this stack) was attached on "
        "the server; left alone (apply --detach-unmanaged-blocks detaches it)" in r.out
    )
    assert "apply detaches it" not in r.out
    doc = json.loads(run(cli, "drift", "-f", str(path), "--format", "json", code=2).out)
    assert doc["drift"] == [
        {"action": "kept", "address": "agent.worker", "declared": "detached",
         "field": f"blocks[{bid}]", "kind": "configuration", "label": "notes", "live": "attached"}
    ]  # fmt: skip
    plan = run(cli, "plan", "-f", str(path)).out
    assert "No changes. 1 change made on the server left alone." in plan

    asked = run(cli, "drift", "-f", str(path), "--detach-unmanaged-blocks", code=2).out
    assert (
        f"  ~ agent.worker: block 'notes' ({bid}, not managed by this stack) was attached on "
        "the server; apply detaches it (--detach-unmanaged-blocks)" in asked
    )
    argv = ("drift", "-f", str(path), "--detach-unmanaged-blocks", "--format", "json")
    doc = json.loads(run(cli, *argv, code=2).out)
    assert [d["action"] for d in doc["drift"]] == ["restored"]

    apply(cli, path)  # left alone
    assert bid in cli.fake.agents[agent_id(cli.fake, "worker")]["block_ids"]
    apply(cli, path, "--detach-unmanaged-blocks")
    assert bid not in cli.fake.agents[agent_id(cli.fake, "worker")]["block_ids"]
    assert bid in cli.fake.blocks
    assert "No drift" in run(cli, "drift", "-f", str(path)).out
