"""Specific facts about the golden plan cases in `tests/plans/`, beyond their rendered text: what
each change would send, what is drift, what is refused, and properties every plan must have."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from letta_apply.core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    FORGET,
    IMPORT,
    REPLACE,
    UPDATE,
    Change,
    Drift,
    Plan,
)
from letta_apply.core.model import MARK_KEY, Live
from letta_apply.kinds import KINDS, apply_order, flag_of
from letta_apply.plan.planner import make_plan
from letta_apply.render.text import drift_lines, plan_text
from tests.plan_cases import BASE_URL, CASES, load_case, plan_case

STACK = "acme-support"


def marks(stack: str, address: str) -> dict[str, Any]:
    """The mark letta-apply writes, without its digests."""
    return {MARK_KEY: {"stack": stack, "address": address}}


TAG = "letta-apply:acme-support"

ORG = "block-af3a1bb3-12bf-4430-855d-0f513e3a27c4"
HANDOFF = "block-249215fe-d826-41cf-b936-8c2c7490760a"
SUPERVISOR = "agent-0834c2d6-0725-4c59-8225-7b3b78dd161a"
WORKER = "agent-87eba76e-7f31-4453-8045-ba922e7770fb"
SUPERVISOR_PERSONA = "block-cad93a61-9ba2-49b6-8a66-3c3a9bf30709"
WORKER_PERSONA = "block-b8a082a3-f5ab-4013-9064-8271c3ec3a38"
BASE_TOOLS = [
    "tool-13bd9c99-2373-4bbd-9022-e6c5da5c8c6c",  # memory_insert
    "tool-05f30857-0f0c-4294-868c-49053d616399",  # memory_replace
    "tool-a0220446-4698-4615-907d-13cd2b043784",  # conversation_search
]
LOOKUP_TICKET = "tool-114a6908-6fef-41b6-8010-180b3e368690"
SEND_EMAIL = "tool-26d8a787-f636-4022-b95d-b63ee0f572d2"

ORG_VALUE = "Nothing here yet, we should update this over time."
ORG_WRITTEN = (
    "Organization: Acme Corp. Support hours are 9:00-17:00 CET; refunds need a supervisor."
)


def change(plan: Plan, address: str, action: str, block: str | None = None) -> Change:
    found = [
        c for c in plan.changes if c.address == address and c.action == action and c.target == block
    ]
    assert len(found) == 1, f"{action} {address} {block or ''}: {plan.changes}"
    return without_digests(found[0])


def without_digests(c: Change) -> Change:
    """`c` with the `applied` digests left out of its marks (tests of their own cover them), and,
    for an update, without the metadata that only refreshes the marks."""
    md = c.body.get("metadata")
    if not isinstance(md, dict) or MARK_KEY not in md:
        return c
    mark = {k: v for k, v in md[MARK_KEY].items() if k != "applied"}
    body = {**c.body, "metadata": {**md, MARK_KEY: mark}}
    if c.action == UPDATE and body["metadata"] == marks(STACK, c.address):
        del body["metadata"]
    return replace(c, body=body)


def addresses(plan: Plan) -> set[str]:
    return {c.address for c in plan.changes}


def diffs(c: Change) -> list[tuple[str, object, object]]:
    return [(d.field, d.before, d.after) for d in c.diffs]


# -- properties of every case ------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_plan_is_deterministic(case: str) -> None:
    desired, live = load_case(case)
    assert make_plan(desired, live) == make_plan(desired, live)


@pytest.mark.parametrize("case", [c for c in CASES if c != "duplicate_agent_address"])
def test_plan_does_not_depend_on_listing_order(case: str) -> None:
    # Listing order decides nothing, except which of two agents with one address is used.
    desired, live = load_case(case)
    rng = random.Random(case)
    blocks = list(live.of("block").blocks.items())
    agents = list(live.of("agent").agents)
    rng.shuffle(blocks)
    rng.shuffle(agents)
    states = {
        **live.states,
        "block": replace(live.of("block"), blocks=dict(blocks)),
        "agent": replace(live.of("agent"), agents=tuple(agents)),
    }
    shuffled = replace(live, states=states)
    assert make_plan(desired, shuffled) == make_plan(desired, live)


# The kinds that depend on no other: made first, deleted last.
INDEPENDENT = sorted(k.name for k in KINDS if not k.depends_on)


@pytest.mark.parametrize("case", CASES)
def test_changes_are_ordered_by_the_kinds_dependencies(case: str) -> None:
    # Creates and updates level by level (identities and tools, then shared blocks, then agents
    # and their own blocks), then detaches (freeing labels), then attaches, then deletes:
    # an agent's own blocks right before the agents, shared blocks after them, then tools
    # and identities.
    plan = plan_case(case)
    orders = [apply_order(c) for c in plan.changes]
    assert orders == sorted(orders)
    for c in plan.changes:
        if flag_of(c) is not None:  # a kind's flag: before everything, or after everything
            assert apply_order(c) == ((0, -1) if c.action == CREATE else (3, 7))
        elif c.action in (DELETE, FORGET):  # a forget goes with the deletes, in their order
            want = {"group": 0, "folder": 0, "archive": 0, "agent": 2, "block": 4, "tool": 6}
            want.update(dict.fromkeys(INDEPENDENT, 6))  # tools, identities, MCP servers...
            nested = c.kind == "block" and c.address.startswith("agent.")
            assert apply_order(c) == (3, 1 if nested else want[c.kind])
        elif c.action == DETACH:
            assert apply_order(c) == (1, 0)
        elif c.action == ATTACH:
            assert apply_order(c) == (2, 0)
        elif c.address.startswith(tuple(f"{k}." for k in INDEPENDENT)):
            assert apply_order(c) == (0, 0)
        elif c.address.startswith("block."):
            assert apply_order(c) == (0, 1)
        elif c.address.startswith(("group.", "folder.", "archive.")):
            assert apply_order(c) == (0, 3)
        else:
            assert c.address.startswith("agent.") and apply_order(c) == (0, 2)


@pytest.mark.parametrize("case", CASES)
def test_nothing_without_this_stacks_marks_is_touched(case: str) -> None:
    desired, live = load_case(case)
    ours = {
        *(a.id for a in live.of("agent").agents if a.mark.get("stack") == STACK and TAG in a.tags),
        *(b.id for b in live.of("block").blocks.values() if b.id in live.of("block").tagged),
        *(t.id for t in live.of("tool").custom if t.mark.get("stack") == STACK and TAG in t.tags),
        # Identities carry no tags: their mark, a property, says alone.
        *(i.id for i in live.of("identity").identities if i.mark.get("stack") == STACK),
        # Groups carry neither: a mark block of the stack names them.
        *(g.id for g in live.of("group").live() if g.mark.get("stack") == STACK),
        # MCP servers and providers likewise.
        *(s.id for s in live.of("mcp_server").live() if s.mark.get("stack") == STACK),
        *(p.id for p in live.of("provider").live() if p.mark.get("stack") == STACK),
        # Folders carry no tags: their mark, in metadata, says alone.
        *(f.id for f in live.of("folder").folders if f.mark.get("stack") == STACK),
        # Archives carry no marks of their own: a mark block of the stack names them.
        *(a.id for a in live.of("archive").live(STACK).values()),
    }
    plan = make_plan(desired, live)
    for c in plan.changes:
        # What `imports:` names is not the stack's until the import writes its marks.
        assert c.remote_id is None or c.remote_id in ours or c.action == IMPORT, c
    imported = {c.remote_id for c in plan.changes if c.action == IMPORT}
    assert set(plan.ids.values()) <= ours | imported


@pytest.mark.parametrize("case", CASES)
def test_refused_resources_have_no_changes(case: str) -> None:
    plan = plan_case(case)
    for p in plan.problems:
        for c in plan.changes:
            assert c.address != p.address and c.target != p.address, (p, c)


@pytest.mark.parametrize("case", CASES)
def test_summary_counts_match_changes(case: str) -> None:
    plan = plan_case(case)
    actions = (CREATE, UPDATE, ATTACH, DETACH, DELETE, IMPORT, REPLACE, FORGET)
    assert sum(plan.count(a) for a in actions) == len(plan.changes)
    assert plan.has_changes == bool(plan.changes)
    last = plan_text(plan, BASE_URL).splitlines()[-1]
    if plan.has_changes:
        assert last.startswith(
            f"Plan: {plan.count(CREATE)} to create, {plan.count(UPDATE)} to update, "
            f"{plan.count(ATTACH)} to attach, {plan.count(DETACH)} to detach, "
            f"{plan.count(DELETE)} to delete"
        )
    else:
        assert last.startswith("No changes.")


def test_converged_state_plans_zero_changes() -> None:
    plan = plan_case("converged")
    assert not plan.has_changes
    assert (plan.changes, plan.drift, plan.problems, plan.notes) == ((), (), (), ())
    assert plan.ids == {
        "agent.supervisor": SUPERVISOR,
        "agent.supervisor.memory_blocks.persona": SUPERVISOR_PERSONA,
        "agent.worker": WORKER,
        "agent.worker.memory_blocks.persona": WORKER_PERSONA,
        "block.organization": ORG,
    }
    assert plan_text(plan, BASE_URL).endswith("No changes. The server matches the manifest.")


# -- one case each -----------------------------------------------------------------------------


def test_empty_server_creates_everything_with_marks() -> None:
    plan = plan_case("empty_server")
    assert plan.count(CREATE) == 4 and len(plan.changes) == 4
    assert [c.address for c in plan.changes] == [
        "block.handoff",
        "block.organization",
        "agent.supervisor",
        "agent.worker",
    ]
    assert plan.ids == {}

    handoff = change(plan, "block.handoff", CREATE)
    assert handoff.body == {
        "label": "handoff",
        "value": "",
        "description": "Work the worker hands back to the supervisor.",
        "limit": 20000,
        "metadata": marks(STACK, "block.handoff"),
        "tags": ["handoff", TAG],
    }
    org = change(plan, "block.organization", CREATE)
    assert org.body["metadata"] == marks(STACK, "block.organization")
    assert org.body["tags"] == [TAG]

    supervisor = change(plan, "agent.supervisor", CREATE)
    assert supervisor.body == {
        "name": "supervisor",
        "description": "Routes tickets to workers and reviews their output.",
        "model": "anthropic/claude-3-5-sonnet-20241022",
        "embedding": "openai/text-embedding-3-small",
        "tags": [TAG, "team:support"],
        "metadata": {"owner": "support-platform", **marks(STACK, "agent.supervisor")},
        "memory_blocks": [
            {"label": "persona", "value": "I am a supervisor", "tags": [TAG]},
            {
                "label": "human",
                "value": "The customer.",
                "description": "What I know about the customer.",
                "tags": [TAG],
            },
        ],
        "block_ids": [{"$ref": "block.organization"}, {"$ref": "block.handoff"}],
    }
    worker = change(plan, "agent.worker", CREATE)
    assert worker.body["tags"] == [TAG]
    assert worker.body["metadata"] == marks(STACK, "agent.worker")
    assert "system" not in worker.body and "tool_ids" not in worker.body


def test_agent_written_shared_value_is_drift_not_change() -> None:
    plan = plan_case("shared_value_written_by_agent")
    assert not plan.has_changes
    assert plan.drift == (
        Drift("block.organization", "value", ORG_VALUE, ORG_WRITTEN, "memory", False),
    )


def test_enforced_value_is_written_back() -> None:
    plan = plan_case("shared_value_enforced")
    c = change(plan, "block.organization", UPDATE)
    assert c.remote_id == ORG
    assert c.body == {"value": ORG_VALUE}
    assert diffs(c) == [("value", ORG_WRITTEN, ORG_VALUE)]
    assert c.why == ("memory",)
    assert plan.drift == (
        Drift("block.organization", "value", ORG_VALUE, ORG_WRITTEN, "memory", True),
    )
    assert "agent-written" not in plan_text(plan, BASE_URL)


def test_agent_written_own_block_value_is_drift() -> None:
    plan = plan_case("owned_value_written_by_agent")
    assert not plan.has_changes
    [d] = plan.drift
    assert (d.address, d.field, d.restored) == (
        "agent.worker.memory_blocks.persona",
        "value",
        False,
    )
    assert d.live.startswith("I am a worker. I specialise")


def test_block_configuration_is_enforced() -> None:
    plan = plan_case("block_config_changed")
    assert plan.count(UPDATE) == 2 and len(plan.changes) == 2
    org = change(plan, "block.organization", UPDATE)
    assert org.body == {
        "description": "Facts about Acme Corp that every support agent needs.",
        "limit": 20000,
        "read_only": True,
    }
    assert diffs(org) == [
        (
            "description",
            "Shared information between all agents within the organization.",
            "Facts about Acme Corp that every support agent needs.",
        ),
        ("limit", 100000, 20000),
        ("read_only", False, True),
    ]
    persona = change(plan, "agent.supervisor.memory_blocks.persona", UPDATE)
    assert persona.remote_id == SUPERVISOR_PERSONA
    assert persona.body == {"description": "Who I am.", "limit": 5000}
    assert plan.drift == ()


def test_long_values_render_as_unified_diffs() -> None:
    plan = plan_case("long_value_diff")
    org = change(plan, "block.organization", UPDATE)
    assert set(org.body) == {"value"}
    assert org.body["value"].endswith("Known issue: none.")
    assert [(d.address, d.restored) for d in plan.drift] == [
        ("agent.worker.memory_blocks.persona", False),
        ("block.organization", True),
    ]
    text = plan_text(plan, BASE_URL)
    assert text.count("@@ -4,4 +4,4 @@") == 2
    assert "+I always confirm the ticket number before closing a ticket." in text


def test_shared_block_added_to_agents_blocks_is_attached() -> None:
    plan = plan_case("shared_block_attached")
    assert [(c.action, c.address, c.target) for c in plan.changes] == [
        (CREATE, "block.escalations", None),
        (ATTACH, "agent.supervisor", "block.escalations"),
        (ATTACH, "agent.worker", "block.handoff"),
    ]
    assert change(plan, "agent.supervisor", ATTACH, "block.escalations").remote_id == SUPERVISOR
    assert change(plan, "agent.worker", ATTACH, "block.handoff").remote_id == WORKER
    assert plan.ids["block.handoff"] == HANDOFF


def test_shared_block_removed_from_agents_blocks_is_detached() -> None:
    plan = plan_case("shared_block_detached")
    assert len(plan.changes) == 1
    c = change(plan, "agent.worker", DETACH, "block.organization")
    assert c.remote_id == WORKER
    assert plan.ids["block.organization"] == ORG


def test_shared_block_attached_by_hand_is_detached() -> None:
    plan = plan_case("shared_block_attached_by_hand")
    assert len(plan.changes) == 1
    assert change(plan, "agent.worker", DETACH, "block.handoff").remote_id == WORKER


def test_unmarked_agent_with_a_declared_name_is_refused() -> None:
    plan = plan_case("agent_name_clash")
    [p] = plan.problems
    assert p.address == "agent.reviewer"
    assert "agent-66f27a20-f3fe-4eda-9826-e910c4185c76" in p.message
    assert addresses(plan) == {"agent.triage"}
    assert change(plan, "agent.triage", CREATE).body["block_ids"] == [
        {"$ref": "block.organization"}
    ]


def test_unmarked_block_with_a_declared_label_is_not_ours() -> None:
    plan = plan_case("unmarked_block_same_label")
    assert plan.count(CREATE) == 3 and len(plan.changes) == 3
    assert "block.organization" in addresses(plan)
    assert plan.ids == {} and plan.problems == () and plan.notes == ()


def test_labels_taken_by_foreign_blocks_are_refused() -> None:
    plan = plan_case("label_taken_on_agent")
    assert [p.address for p in plan.problems] == [
        "agent.supervisor.memory_blocks.human",
        "agent.worker",
    ]
    assert "block-762e595c-86e1-4678-8997-2033a0f4c346" in plan.problems[1].message
    assert [(c.action, c.address, c.target) for c in plan.changes] == [
        (CREATE, "block.handoff", None),
        (ATTACH, "agent.supervisor", "block.handoff"),
    ]


def test_another_stacks_resources_are_ignored() -> None:
    plan = plan_case("other_stack_same_address")
    assert [(c.action, c.address) for c in plan.changes] == [
        (CREATE, "block.organization"),
        (CREATE, "agent.supervisor"),
        (CREATE, "agent.worker"),
    ]
    assert plan.ids == {} and plan.problems == () and plan.notes == ()


def test_only_agent_fields_the_manifest_sets_are_compared() -> None:
    plan = plan_case("agent_fields_changed")
    assert addresses(plan) == {"agent.supervisor"}
    c = change(plan, "agent.supervisor", UPDATE)
    assert c.remote_id == SUPERVISOR
    assert c.body == {
        "name": "Support Supervisor",
        "description": "Routes tickets to workers and reviews their output.",
        "system": (
            "You are the supervisor of the Acme support team.\n"
            "Route each ticket to a worker and review the answer before it is sent."
        ),
        "model": "anthropic/claude-sonnet-4-20250514",
    }
    assert [d.field for d in c.diffs] == ["name", "description", "system", "model"]


def test_tags_and_metadata_keep_the_stacks_marks() -> None:
    plan = plan_case("agent_tags_metadata_changed")
    assert addresses(plan) == {"block.organization", "agent.supervisor"}
    org = change(plan, "block.organization", UPDATE)
    assert org.body == {"tags": ["letta-apply:acme-support", "shared"]}
    assert diffs(org) == [("tags", [], ["shared"])]

    c = change(plan, "agent.supervisor", UPDATE)
    assert c.body["tags"] == [TAG, "team:support", "tier:1"]
    assert c.body["metadata"] == {
        "owner": "support-platform",
        "sla": {"hours": 4, "channels": ["email", "chat"]},
        **marks(STACK, "agent.supervisor"),
    }
    assert diffs(c) == [
        ("tags", ["legacy", "team:support"], ["team:support", "tier:1"]),
        ("metadata['sla']['channels'][1]", None, "chat"),
        ("metadata['sla']['hours']", 8, 4),
        ("metadata['sla']['tier']", "gold", None),
    ]


def test_declared_tools_keep_base_tools_and_unknown_tools_are_refused() -> None:
    plan = plan_case("tools")
    supervisor = change(plan, "agent.supervisor", UPDATE)
    assert supervisor.body == {"tool_ids": [*BASE_TOOLS, LOOKUP_TICKET, SEND_EMAIL]}
    assert diffs(supervisor) == [
        ("tools", ["legacy_crm_sync", "lookup_ticket"], ["lookup_ticket", "send_email"])
    ]
    [p] = plan.problems
    assert (p.address, p.message) == ("agent.worker", "unknown tool 'escalate_ticket'")
    triage = change(plan, "agent.triage", CREATE)
    assert triage.body["tool_ids"] == [LOOKUP_TICKET]
    assert triage.body["include_base_tools"] is False
    assert addresses(plan) == {"agent.supervisor", "agent.triage"}


def test_plan_text_shows_include_base_tools_it_will_send() -> None:
    # Plan is a promise: an agent created without its base tools must say so.
    plan = plan_case("tools")
    assert change(plan, "agent.triage", CREATE).body["include_base_tools"] is False
    assert "include_base_tools: false" in plan_text(plan, BASE_URL)


def test_resources_no_longer_declared_are_pruned() -> None:
    plan = plan_case("no_longer_declared")
    assert [(c.action, c.address) for c in plan.changes] == [
        (DELETE, "agent.reviewer.memory_blocks.persona"),
        (DELETE, "agent.worker.memory_blocks.scratchpad"),
        (DELETE, "agent.reviewer"),
        (DELETE, "block.handoff"),
    ]
    assert plan.notes == ()


def test_two_agents_with_one_address_use_the_first_listed() -> None:
    plan = plan_case("duplicate_agent_address")
    assert not plan.has_changes
    [note] = plan.notes
    assert note.startswith("agent.worker: more than one agent carries this address")
    assert plan.ids["agent.worker"] == WORKER


def test_new_own_block_of_existing_agent_is_created_then_attached() -> None:
    plan = plan_case("memory_block_added")
    create = change(plan, "agent.supervisor.memory_blocks.human", CREATE)
    assert create.body == {
        "label": "human",
        "value": "Nothing known about the customer yet.",
        "description": "What I know about the customer.",
        "metadata": marks(STACK, "agent.supervisor.memory_blocks.human"),
        "tags": [TAG],
    }
    attach = change(plan, "agent.supervisor", ATTACH, "agent.supervisor.memory_blocks.human")
    assert attach.remote_id == SUPERVISOR
    assert len(plan.changes) == 2


# -- bugs these cases found --------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
def test_own_blocks_created_for_existing_agents_are_attached(case: str) -> None:
    # An own block created on its own but never attached is not found on the agent by the next
    # plan, so every apply would create it again.
    plan = plan_case(case)
    existing = {a for a in plan.ids if a.startswith("agent.") and ".memory_blocks." not in a}
    for c in plan.changes:
        agent = c.address.split(".memory_blocks.")[0]
        if c.action == CREATE and ".memory_blocks." in c.address and agent in existing:
            assert any(
                a.action == ATTACH and a.address == agent and a.target == c.address
                for a in plan.changes
            ), f"{c.address} would be created and never attached"


def test_refused_agent_gets_no_new_own_block() -> None:
    plan = plan_case("refused_agent_new_memory_block")
    assert [p.address for p in plan.problems] == ["agent.worker"]
    assert not [c for c in plan.changes if c.address.startswith("agent.worker")]


def test_duplicate_shared_block_uses_the_one_attached_to_the_agents() -> None:
    plan = plan_case("duplicate_block_address")
    assert plan.ids["block.organization"] == ORG
    assert plan.problems == ()
    assert not plan.has_changes
    [note] = plan.notes
    assert note.startswith("block.organization: more than one block carries this address")


@pytest.mark.parametrize("case", ["shared_value_written_by_agent", "long_value_diff"])
def test_drift_diff_headers_name_the_side_each_line_comes_from(case: str) -> None:
    plan = plan_case(case)
    for d in plan.drift:
        lines = [line.strip() for line in drift_lines(d)]
        if not any(line.startswith("--- ") for line in lines):
            continue
        sides = {"declared": str(d.declared).splitlines(), "live": str(d.live).splitlines()}
        minus = next(line[4:] for line in lines if line.startswith("--- "))
        plus = next(line[4:] for line in lines if line.startswith("+++ "))
        removed = [ln[1:] for ln in lines if ln.startswith("-") and not ln.startswith("---")]
        added = [ln[1:] for ln in lines if ln.startswith("+") and not ln.startswith("+++")]
        assert removed or added
        assert all(r in sides[minus] for r in removed), (minus, removed)
        assert all(a in sides[plus] for a in added), (plus, added)


def test_live_helper_keeps_the_tagged_copy_of_a_block() -> None:
    # The helper mirrors letta_apply.read.live: a block listed by tag keeps its tags even
    # though the agent's view of it has none.
    _, live = load_case("tools")
    assert isinstance(live, Live)
    assert live.of("block").blocks[ORG].tags == (TAG,)
    assert ORG in live.of("block").tagged
