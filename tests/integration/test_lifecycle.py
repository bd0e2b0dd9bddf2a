"""Lifecycle against a real Letta: prune, destroy, protection, renames, replacement, adoption and
export. Every never-touch rule has a test here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from .conftest import SEED, Run, stack_resources


def _ids(api: httpx.Client, stack: str) -> dict[str, str]:
    blocks, agents = stack_resources(api, stack)
    out = {a["metadata"]["letta_apply"]["address"]: a["id"] for a in agents}
    for b in blocks:
        mark = (b.get("metadata") or {}).get("letta_apply")
        if mark:
            out[mark["address"]] = b["id"]
    return out


def _exists(api: httpx.Client, kind: str, rid: str) -> bool:
    r = api.get(f"/v1/{kind}/{rid}")
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def _agent(api: httpx.Client, rid: str) -> dict[str, Any]:
    r = api.get(f"/v1/agents/{rid}", params={"include": ["agent.blocks", "agent.tags"]})
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


@pytest.fixture
def outsiders(api: httpx.Client, stack: str) -> Iterator[dict[str, str]]:
    """Agents named like ours that letta-apply must never touch: one unmarked, one of another
    stack; and a block of nobody's attached by hand."""
    made: dict[str, str] = {}
    other = f"{stack}-other"
    for key, extra in [
        ("unmarked", {}),
        (
            "other_stack",
            {
                "tags": [f"letta-apply:{other}"],
                "metadata": {"letta_apply": {"stack": other, "address": "agent.worker"}},
            },
        ),
    ]:
        r = api.post(
            "/v1/agents/",
            json={
                "name": f"{stack}-worker",
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "memory_blocks": [{"label": "persona", "value": f"I am the {key} worker"}],
                **extra,
            },
        )
        assert r.status_code == 200, r.text
        made[key] = r.json()["id"]
    yield made
    for rid in made.values():
        api.delete(f"/v1/agents/{rid}")


def test_prune_deletes_the_removed_agent_and_its_own_blocks_only(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    worker = _agent(api, ids["agent.worker"])
    worker_persona = next(b["id"] for b in worker["blocks"] if b["label"] == "persona")
    supervisor = _agent(api, ids["agent.supervisor"])

    without_worker = SEED[: SEED.index("  worker:\n")]
    path = manifest(without_worker)
    plan = run("plan", "-f", path)
    assert f"  - agent.worker ({ids['agent.worker']}): delete" in plan.out
    assert f"  - agent.worker.memory_blocks.persona ({worker_persona}): delete" in plan.out
    assert "1 to delete" not in plan.out and "2 to delete" in plan.out

    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 2
    assert not _exists(api, "agents", ids["agent.worker"])
    assert not _exists(api, "blocks", worker_persona)  # Letta alone would leave it behind
    # Nothing else: the supervisor, its blocks and the shared block are as they were.
    assert _agent(api, ids["agent.supervisor"])["blocks"] == supervisor["blocks"]
    assert _exists(api, "blocks", ids["block.organization"])
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_outsiders_survive_prune_and_destroy(
    run: Run,
    manifest: Callable[[str], str],
    api: httpx.Client,
    stack: str,
    outsiders: dict[str, str],
) -> None:
    # Adopting is explicit: an unmarked agent with the worker's name is a clash, not ours.
    path = manifest(SEED.replace("name: {stack}-worker", "name: {stack}-our-worker"))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    before = {k: _agent(api, rid) for k, rid in outsiders.items()}

    pruned = manifest(SEED[: SEED.index("  worker:\n")])
    assert run("apply", "-f", pruned, "--auto-approve").code == 0
    destroyed = run("destroy", "-f", pruned, "--auto-approve")
    assert destroyed.code == 0, destroyed.err
    assert stack_resources(api, stack) == ([], [])
    for key, rid in outsiders.items():
        after = _agent(api, rid)
        assert (after["name"], after["blocks"], after["tags"], after["metadata"]) == (
            before[key]["name"], before[key]["blocks"], before[key]["tags"],
            before[key]["metadata"],
        )  # fmt: skip


def test_destroy_deletes_everything_the_stack_owns(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    personas = [
        b["id"]
        for a in ("agent.worker", "agent.supervisor")
        for b in _agent(api, ids[a])["blocks"]
        if b["label"] == "persona"
    ]
    plan = run("plan", "-f", path, "--destroy", "--detailed-exitcode")
    assert plan.code == 2
    assert "Plan: 0 to create, 0 to update, 0 to attach, 0 to detach, 5 to delete." in plan.out
    destroyed = run("destroy", "-f", path, "--auto-approve")
    assert destroyed.code == 0, destroyed.err
    assert destroyed.writes == 5
    for rid in [ids["agent.worker"], ids["agent.supervisor"]]:
        assert not _exists(api, "agents", rid)
    for rid in [ids["block.organization"], *personas]:
        assert not _exists(api, "blocks", rid)
    again = run("destroy", "-f", path, "--auto-approve")
    assert again.code == 0 and again.writes == 0


def test_prevent_destroy_stops_destroy_and_prune_with_zero_writes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    protected = SEED.replace(
        "    value: Nothing here yet, we should update this over time.\n",
        "    value: Nothing here yet, we should update this over time.\n"
        "    prevent_destroy: true\n",
    )
    path = manifest(protected)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)

    destroyed = run("destroy", "-f", path, "--auto-approve")
    assert destroyed.code == 1
    assert "x block.organization: prevent_destroy is set" in destroyed.out
    assert "nothing was applied" in destroyed.err
    assert destroyed.writes == 0
    assert len(_ids(api, stack)) == 3

    # Removing the block from the manifest does not remove its protection: it is in its marks.
    gone = protected.replace("blocks:\n  organization:", "blocks:\n  other:").replace(
        "blocks: [organization]", "blocks: [other]"
    )
    pruned = run("apply", "-f", manifest(gone), "--auto-approve")
    assert pruned.code == 1
    assert "prevent_destroy" in pruned.out
    assert pruned.writes == 0
    assert _exists(api, "blocks", ids["block.organization"])

    # Lifting it in the manifest is an update; then destroy may proceed.
    lifted = manifest(SEED)
    r = run("apply", "-f", lifted, "--auto-approve")
    assert r.code == 0 and "prevent_destroy: true -> false" in r.out
    assert run("destroy", "-f", lifted, "--auto-approve").code == 0
    assert stack_resources(api, stack) == ([], [])


def test_block_used_by_a_foreign_agent_is_not_deleted(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    foreign = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-foreign",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "block_ids": [ids["block.organization"]],
        },
    ).json()
    try:
        destroyed = run("destroy", "-f", manifest(SEED), "--auto-approve")
        assert destroyed.code == 1
        assert (
            f"x block.organization: not deleted: still attached to agents this stack does not "
            f"manage: {stack}-foreign ({foreign['id']})"
        ) in destroyed.out
        assert _exists(api, "blocks", ids["block.organization"])
        assert [b["id"] for b in _agent(api, foreign["id"])["blocks"]] == [
            ids["block.organization"]
        ]
        # Everything else of the stack is gone.
        assert not _exists(api, "agents", ids["agent.worker"])
    finally:
        api.delete(f"/v1/agents/{foreign['id']}")


def test_moved_keeps_the_agent(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    renamed = (
        SEED.replace("  worker:\n", "  analyst:\n")
        + "moved:\n  - {from: agent.worker, to: agent.analyst}\n"
    )
    path = manifest(renamed)
    plan = run("plan", "-f", path)
    assert f"~ agent.analyst ({ids['agent.worker']}): update" in plan.out
    assert "address: agent.worker -> agent.analyst" in plan.out
    assert "delete" not in plan.out.split("Plan:")[0]
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    assert applied.writes == 1
    after = _ids(api, stack)
    assert after["agent.analyst"] == ids["agent.worker"]
    assert "agent.worker" not in after
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_removed_lets_go_of_an_agent_and_a_shared_block_without_deleting_them(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    assert run("apply", "-f", manifest(SEED), "--auto-approve").code == 0
    ids = _ids(api, stack)
    worker = _agent(api, ids["agent.worker"])
    persona = next(b["id"] for b in worker["blocks"] if b["label"] == "persona")
    # The worker and the organization block are handed over: no longer declared, not deleted.
    kept = SEED[: SEED.index("  worker:\n")].replace(" [organization]", " []")
    kept = kept.replace("blocks:\n  organization:", "blocks:\n  notes:")
    path = manifest(kept + "removed:\n  - {from: agent.worker}\n  - {from: block.organization}\n")
    plan = run("plan", "-f", path)
    assert f"agent.worker ({ids['agent.worker']}): forget" in plan.out, plan.out
    assert f"block.organization ({ids['block.organization']}): forget" in plan.out
    assert "0 to delete" in plan.out, plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    # Still on the server, through Letta's own API: without the stack's tag and mark.
    tag = f"letta-apply:{stack}"
    after = _agent(api, ids["agent.worker"])
    assert tag not in (after.get("tags") or [])
    assert "letta_apply" not in (after.get("metadata") or {})
    for bid in (persona, ids["block.organization"]):
        block = api.get(f"/v1/blocks/{bid}").json()
        assert tag not in (block.get("tags") or []), block
        assert "letta_apply" not in (block.get("metadata") or {}), block
    assert run("apply", "-f", path, "--auto-approve").writes == 0
    assert run("destroy", "-f", path, "--auto-approve").code == 0
    assert _exists(api, "agents", ids["agent.worker"])
    assert _exists(api, "blocks", ids["block.organization"])
    assert not _exists(api, "agents", ids["agent.supervisor"])
    api.delete(f"/v1/agents/{ids['agent.worker']}")
    for bid in (persona, ids["block.organization"]):
        api.delete(f"/v1/blocks/{bid}")


def test_ignore_changes_leaves_fields_alone(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    text = SEED.replace(
        "    name: {stack}-worker\n",
        "    name: {stack}-worker\n    description: Does the work.\n"
        "    ignore_changes: [description]\n",
    )
    path = manifest(text)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    assert _agent(api, ids["agent.worker"])["description"] == "Does the work."  # set at creation
    api.patch(f"/v1/agents/{ids['agent.worker']}", json={"description": "edited by hand"})
    plan = run("plan", "-f", path, "--detailed-exitcode")
    assert plan.code == 0, plan.out
    assert _agent(api, ids["agent.worker"])["description"] == "edited by hand"


def test_replacement_is_create_first(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    base = SEED.replace(
        "    name: {stack}-worker\n", "    name: {stack}-worker\n    include_base_tools: true\n"
    )
    assert run("apply", "-f", manifest(base), "--auto-approve").code == 0
    ids = _ids(api, stack)
    old = _agent(api, ids["agent.worker"])
    old_persona = next(b["id"] for b in old["blocks"] if b["label"] == "persona")

    path = manifest(base.replace("include_base_tools: true", "include_base_tools: false"))
    plan = run("plan", "-f", path)
    assert f"-/+ agent.worker ({ids['agent.worker']}): replace" in plan.out
    assert "include_base_tools: true -> false  (forces replacement)" in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert applied.code == 0, applied.err
    new_id = _ids(api, stack)["agent.worker"]
    assert new_id != ids["agent.worker"]
    assert not _exists(api, "agents", ids["agent.worker"])
    assert not _exists(api, "blocks", old_persona)
    new = _agent(api, new_id)
    assert {b["label"] for b in new["blocks"]} == {"persona", "organization"}
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_unmanaged_blocks_on_our_agents_are_reported_and_detached_only_on_request(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(SEED)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    ids = _ids(api, stack)
    hand = api.post("/v1/blocks/", json={"label": "scratch", "value": "mine"}).json()
    try:
        api.patch(f"/v1/agents/{ids['agent.worker']}/core-memory/blocks/attach/{hand['id']}")
        plan = run("plan", "-f", path, "--detailed-exitcode")
        assert plan.code == 0
        assert (
            f"! agent.worker: block 'scratch' ({hand['id']}, not managed by this stack) was "
            "attached on the server; left alone (apply --detach-unmanaged-blocks detaches it)"
        ) in plan.out
        detached = run("apply", "-f", path, "--auto-approve", "--detach-unmanaged-blocks")
        assert detached.code == 0 and detached.writes == 1
        labels = {b["label"] for b in _agent(api, ids["agent.worker"])["blocks"]}
        assert "scratch" not in labels
        assert _exists(api, "blocks", hand["id"])  # detached, never deleted
    finally:
        api.delete(f"/v1/blocks/{hand['id']}")


def test_export_then_adopt_round_trips(
    run: Run, api: httpx.Client, stack: str, tmp_path: Path
) -> None:
    # A supervisor/worker setup built by hand, as in Letta's own example; its text says `${`,
    # which the exported manifest must keep as text, never read as a reference.
    shared = api.post(
        "/v1/blocks/",
        json={
            "label": "organization",
            "description": "Shared information between all agents within the organization.",
            "value": "Nothing here yet, we should update ${env.HOME} over time.",
        },
    ).json()
    made = []
    for role in ("supervisor", "worker"):
        r = api.post(
            "/v1/agents/",
            json={
                "name": f"{stack}-{role}",
                "model": "letta/letta-free",
                "embedding": "letta/letta-free",
                "memory_blocks": [{"label": "persona", "value": f"I am a {role} ${{each.key}}"}],
                "block_ids": [shared["id"]],
                "tags": [f"export-{stack}"],
            },
        ).json()
        made.append(r["id"])
    out = tmp_path / "exported.yaml"
    r = run("export", "--stack", stack, "--tag", f"export-{stack}", "-o", str(out))
    assert r.code == 0, r.err
    doc = yaml.safe_load(out.read_text())
    assert doc["blocks"] == {
        "organization": {
            "value": "Nothing here yet, we should update $${env.HOME} over time.",
            "description": "Shared information between all agents within the organization.",
        }
    }
    worker_key = f"{stack}-worker"  # keys come from names; the name then needs no line
    assert "name" not in doc["agents"][worker_key]
    assert doc["agents"][worker_key]["memory_blocks"] == [
        {"label": "persona", "value": "I am a worker $${each.key}"}
    ]
    assert doc["agents"][worker_key]["blocks"] == ["organization"]
    assert "system" not in doc["agents"][worker_key]  # server defaults stay out

    plan = run("plan", "-f", str(out))
    # The shared block, both agents and their own blocks are adopted; nothing else changes.
    assert (
        "Plan: 0 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete, 5 to import."
        in plan.out
    )
    assert f"= agent.{worker_key} ({made[1]}): import" in plan.out
    adopted = run("apply", "-f", str(out), "--auto-approve")
    assert adopted.code == 0, adopted.err
    again = run("plan", "-f", str(out), "--detailed-exitcode")
    assert again.code == 0, again.out
    assert "No changes. The server matches the manifest." in again.out
    ids = _ids(api, stack)
    assert sorted(ids[f"agent.{k}"] for k in doc["agents"]) == sorted(made)
    assert ids["block.organization"] == shared["id"]
    # Adopted means managed: destroy now removes them, own blocks included.
    assert run("destroy", "-f", str(out), "--auto-approve").code == 0
    assert not _exists(api, "blocks", shared["id"])
    assert all(not _exists(api, "agents", rid) for rid in made)
