"""Why a change is planned: manifest edits and server-side edits told apart by the digests in the
marks (against the in-memory fake server)."""

from __future__ import annotations

from letta_apply import apply_plan, plan_for
from letta_apply.core.changes import CONFIGURATION, DRIFT, MANIFEST, MEMORY
from letta_apply.render.markdown import plan_markdown
from letta_apply.render.text import drift_text, plan_text
from tests.fakes import FakeLetta
from tests.helpers import desired

SEED = """\
version: 1
stack: why
blocks:
  organization:
    description: Shared facts.
    value: Nothing yet.
  notes:
    value: none
agents:
  worker:
    description: Does the work.
    model: letta/letta-free
    memory_blocks: [{label: persona, value: I am a worker, description: Who I am.}]
    blocks: [organization]
"""


def converged() -> tuple[FakeLetta, dict[str, str]]:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    plan = plan_for(client, desired(SEED))
    assert not plan.has_changes and not plan.drift
    return fake, dict(plan.ids)


def test_a_hand_edit_is_drift_and_a_manifest_edit_is_not() -> None:
    fake, ids = converged()
    fake.blocks[ids["block.organization"]]["description"] = "edited by hand"
    plan = plan_for(fake.client(), desired(SEED))
    (change,) = plan.changes
    assert change.why == (DRIFT,)
    assert [(d.field, d.why) for d in change.diffs] == [("description", DRIFT)]
    assert [(d.address, d.field, d.kind) for d in plan.drift] == [
        ("block.organization", "description", CONFIGURATION)
    ]
    assert "(changed on the server)" in plan_text(plan, "u")
    assert "changed on the server" in plan_markdown(plan, "u")

    edited = desired(SEED.replace("Shared facts.", "Shared facts, v2."))
    fake2, _ = converged()
    plan = plan_for(fake2.client(), edited)
    (change,) = plan.changes
    assert change.why == (MANIFEST,)
    assert plan.drift == ()


def test_digests_follow_each_apply() -> None:
    fake, ids = converged()
    client = fake.client()
    edited = desired(SEED.replace("Does the work.", "Does more work."))
    apply_plan(client, plan_for(client, edited))
    assert plan_for(client, edited).changes == ()
    # Now a hand edit back to the old text is drift against the new manifest.
    fake.agents[ids["agent.worker"]]["description"] = "Does the work."
    plan = plan_for(client, edited)
    assert [c.why for c in plan.changes] == [(DRIFT,)]


def test_owned_block_hand_edit_is_drift() -> None:
    fake, _ = converged()
    persona = next(b for b in fake.blocks.values() if b["label"] == "persona")
    persona["description"] = "hand"
    plan = plan_for(fake.client(), desired(SEED))
    (change,) = plan.changes
    assert change.address == "agent.worker.memory_blocks.persona"
    assert change.why == (DRIFT,)


def test_hand_attachments_and_detachments_are_drift() -> None:
    fake, ids = converged()
    worker = fake.agents[ids["agent.worker"]]
    worker["block_ids"].append(ids["block.notes"])
    worker["block_ids"].remove(ids["block.organization"])
    plan = plan_for(fake.client(), desired(SEED))
    assert sorted((c.action, c.target, c.why) for c in plan.changes) == [
        ("attach", "block.organization", (DRIFT,)),
        ("detach", "block.notes", (DRIFT,)),
    ]
    text = drift_text(plan, "u")
    assert "block.notes was attached on the server; apply detaches it" in text
    assert "block.organization was detached on the server; apply attaches it again" in text


def test_manifest_attachment_changes_are_not_drift() -> None:
    fake, _ = converged()
    edited = desired(SEED.replace("blocks: [organization]", "blocks: [organization, notes]"))
    plan = plan_for(fake.client(), edited)
    assert [(c.action, c.target, c.why) for c in plan.changes] == [
        ("attach", "block.notes", (MANIFEST,))
    ]
    assert plan.drift == ()


def test_memory_drift_is_its_own_kind() -> None:
    fake, ids = converged()
    fake.blocks[ids["block.organization"]]["value"] = "Organization: Letta"
    plan = plan_for(fake.client(), desired(SEED))
    assert plan.changes == ()
    assert [(d.kind, d.restored) for d in plan.drift] == [(MEMORY, False)]
    text = drift_text(plan, "u")
    assert "Memory written by agents" in text and "Configuration changed" not in text
