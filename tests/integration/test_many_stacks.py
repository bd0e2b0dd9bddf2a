"""Many tenant stacks from one process against the real server: planned and applied in one call
with one read of the server, converged after, one bad stack (a manifest that does not load, a
name another agent holds) isolated, and what no stack owns never touched."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply import LettaClient, Stacks
from letta_apply.kinds.agent import kind as agent_kind
from letta_apply.kinds.block import kind as block_kind
from letta_apply.read import shared
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_records import lock_listing, lock_tag
from letta_apply.server.serial import bump_serial, forget_serial, serial_tag
from letta_apply.server.together import Together
from tests.integration.conftest import Run, stack_resources


def tenant(stack: str, *, changed: bool = False) -> str:
    edit = " (changed)" if changed else ""
    return (
        f"version: 1\nstack: {stack}\n"
        f"blocks:\n  org:\n    value: Facts of {stack}.\n    description: Org{edit}.\n"
        "agents:\n  helper:\n"
        f"    name: {stack}-helper\n"
        "    model: letta/letta-free\n    embedding: letta/letta-free\n"
        "    memory_blocks:\n      - {label: persona, value: I help.}\n"
        "    blocks: [org]\n"
    )


def public(resource: dict[str, Any]) -> dict[str, Any]:
    """What a resource is, without what the server bumps on its own when read; an agent's tools
    by id: their definitions are server-wide, and other work on the server may rewrite them
    meanwhile (Letta upserts its base tools from some listings of tools, an agent-file import
    upserts tools by name). Once in a full run, a base tool's description changed here."""
    out = {k: v for k, v in resource.items() if k not in ("updated_at", "last_run_completion")}
    if isinstance(out.get("tools"), list):
        out["tools"] = sorted(t["id"] for t in out["tools"])
    return out


@pytest.mark.parametrize("tagged_at_once", [16, 2], ids=["by-tags", "whole-listings"])
def test_many_stacks_in_one_call(
    server: str,
    api: httpx.Client,
    run: Run,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tagged_at_once: int,
) -> None:
    # Up to TAGGED_AT_ONCE stacks, blocks and agents are listed by the stacks' tags; past it,
    # each collection is listed whole once (by the command, while the manifests load) and split
    # by tag: both are run here on 5 stacks.
    for module in (block_kind, agent_kind, shared):
        monkeypatch.setattr(module, "TAGGED_AT_ONCE", tagged_at_once)
    names = [f"t{uuid.uuid4().hex[:10]}" for _ in range(5)]
    folder = tmp_path / "tenants"
    folder.mkdir()
    for i, name in enumerate(names):
        (folder / f"{i}.yaml").write_text(tenant(name), encoding="utf-8")
    (folder / "9-bad.yaml").write_text("version: 1\nstack: bad\nagents: {a: {modle: x}}\n")
    # Not any stack's: an agent holding the name of the last tenant's agent, and a block
    # labelled as the tenants' blocks are.
    theirs = api.post("/v1/agents/", json={
        "name": f"{names[4]}-helper", "model": "letta/letta-free",
        "embedding": "letta/letta-free", "memory_blocks": [], "tags": ["by-hand"],
    }).json()  # fmt: skip
    block = api.post("/v1/blocks/", json={"label": "org", "value": "Not ours."}).json()
    seen = {
        "agent": public(api.get(f"/v1/agents/{theirs['id']}").json()),
        "block": public(api.get(f"/v1/blocks/{block['id']}").json()),
    }
    try:
        with LettaClient(server) as client:
            result = Stacks.from_folder(folder).apply(client)
        by = {r.origin.rsplit("/", 1)[-1]: r for r in result.runs}
        for i in range(4):  # planned and applied in one call
            assert by[f"{i}.yaml"].ok, by[f"{i}.yaml"].why
            blocks, agents = stack_resources(api, names[i])
            assert [a["name"] for a in agents] == [f"{names[i]}-helper"]
            assert [b["label"] for b in blocks if b["label"] == "org"] == ["org"]
        assert not by["4.yaml"].ok
        assert any("LA626" in w for w in by["4.yaml"].why), by["4.yaml"].why
        assert stack_resources(api, names[4])[1] == []
        assert "unknown key 'modle'" in by["9-bad.yaml"].error
        # Converged: the re-plan of every stack is empty, read once for all of them (as one
        # stack's plan reads: each kind's listing once).
        refused = (folder / "4.yaml").read_text(encoding="utf-8")  # its block was made
        (folder / "4.yaml").unlink()
        (folder / "9-bad.yaml").unlink()
        planned = run("plan", "--stacks", str(folder), "--format", "json")
        assert planned.code == 0, planned.err
        doc = json.loads(planned.out)
        assert [e["status"] for e in doc["stacks"]] == ["no changes"] * 4
        alone = run("plan", "-f", str(folder / "0.yaml"))
        assert alone.code == 0
        if tagged_at_once > 4:
            assert planned.reads == alone.reads
        # A change to every tenant, then destroy: each stack's own, and nothing else.
        for i in range(4):
            (folder / f"{i}.yaml").write_text(tenant(names[i], changed=True), encoding="utf-8")
        changed = run("apply", "--stacks", str(folder), "--auto-approve")
        assert changed.code == 0, changed.out + changed.err
        assert "4 stacks: 4 applied, 0 without changes, 0 failed." in changed.out
        (folder / "4.yaml").write_text(refused, encoding="utf-8")
        gone = run("destroy", "--stacks", str(folder), "--auto-approve")
        assert gone.code == 0, gone.out + gone.err
        assert "5 stacks: 5 destroyed" in gone.out
        for name in names:
            assert stack_resources(api, name) == ([], [])
        assert public(api.get(f"/v1/agents/{theirs['id']}").json()) == seen["agent"]
        assert public(api.get(f"/v1/blocks/{block['id']}").json()) == seen["block"]
    finally:
        api.delete(f"/v1/agents/{theirs['id']}")
        api.delete(f"/v1/blocks/{block['id']}")


def test_the_locks_of_stacks_taken_at_once_are_listed_in_one_request(server: str) -> None:
    # Listings by tag asked for at the same moment from several threads are sent as one
    # (server.together): Letta gives the blocks carrying any of the tags asked for, and each
    # ask is given those carrying its own.
    names = [f"t{uuid.uuid4().hex[:10]}" for _ in range(4)]
    with LettaClient(server) as client:
        locks = [StackLock(client, name, "apply", settle=0) for name in names]
        for lock in locks:
            lock.acquire()
        try:
            bump_serial(client, names[0])  # the first stack has a serial record too
            together: Together[dict[str, str]] = Together(
                lambda tags, params: client.list_blocks(*tags, label=params.get("label"))
            )
            before = client.reads
            found = together.batch([[lock_tag(n), serial_tag(n)] for n in names[:3]], {})
            assert client.reads - before == 2  # a page and the empty page that ends it
            assert together.shared == 1
            for name, listing in zip(names, found, strict=False):
                alone = lock_listing(client, name)
                assert sorted(b["id"] for b in listing) == sorted(b["id"] for b in alone)
            assert [len(listing) for listing in found] == [2, 1, 1]
            fourth = locks[3].held
            assert fourth is not None
            assert fourth.id not in {b["id"] for listing in found for b in listing}
            # From threads at once: each stack gets its own records, however they are sent.
            with ThreadPoolExecutor(8) as pool:
                at_once = list(pool.map(lambda n: lock_listing(client, n), names * 4))
            for name, listing in zip(names * 4, at_once, strict=True):
                assert sorted(b["id"] for b in listing) == sorted(
                    b["id"] for b in lock_listing(client, name)
                )
        finally:
            for lock in locks:
                lock.release()
            forget_serial(client, names[0])
        assert all(lock_listing(client, name) == [] for name in names)
