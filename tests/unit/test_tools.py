"""Custom tools and tool rules: validation with positions (in the manifest and in the tool's own
source file), the desired state, the plan's tool changes and rules, and apply against the fake."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from letta_apply.apply.runner import apply_plan
from letta_apply.core.changes import CREATE, DELETE, IMPORT, UPDATE
from letta_apply.core.model import Desired
from letta_apply.errors import ApplyError, Diagnostic, ManifestError
from letta_apply.kinds.agent.kind import AgentKind
from letta_apply.kinds.tool.rules import tool_rules_update
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import load_manifest, plan_for
from letta_apply.plan.planner import restrict
from tests.fakes import FakeLetta
from tests.helpers import Cli

LOOKUP = '''def helper(x):
    return x


def lookup_ticket(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id.

    Returns:
        str: the ticket
    """
    return helper(ticket_id)
'''

MANIFEST = """version: 1
stack: tools-unit
tools:
  lookup:
    source_file: tools/lookup.py
    tags: [support]
agents:
  helper:
    model: letta/letta-free
    tools: [lookup, web_search]
    tool_rules:
      - {type: run_first, tool_name: lookup}
      - {type: max_count_per_step, tool_name: lookup_ticket, max_count_limit: 2}
"""


def write(tmp_path: Path, manifest: str = MANIFEST, source: str | None = LOOKUP) -> Path:
    (tmp_path / "tools").mkdir(exist_ok=True)
    if source is not None:
        (tmp_path / "tools" / "lookup.py").write_text(source, encoding="utf-8")
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest, encoding="utf-8")
    return path


def desired(tmp_path: Path, manifest: str = MANIFEST, source: str | None = LOOKUP) -> Desired:
    return load_manifest(str(write(tmp_path, manifest, source)))


def errors(
    tmp_path: Path, manifest: str = MANIFEST, source: str | None = LOOKUP
) -> list[Diagnostic]:
    with pytest.raises(ManifestError) as e:
        desired(tmp_path, manifest, source)
    return e.value.diagnostics


# -- validation -----------------------------------------------------------------------------------


def test_a_declared_tool_takes_its_last_functions_name_and_agents_use_it_by_key(
    tmp_path: Path,
) -> None:
    d = desired(tmp_path)
    tool = d.of("tool")["tool.lookup"]
    assert (tool.name, tool.source_code, tool.config) == (
        "lookup_ticket",
        LOOKUP,
        {"tags": ["support"]},
    )
    agent = d.of("agent")["agent.helper"]
    assert agent.config["tools"] == ["lookup_ticket", "web_search"]
    assert agent.config["tool_rules"] == [
        {"type": "run_first", "tool_name": "lookup_ticket"},
        {"type": "max_count_per_step", "tool_name": "lookup_ticket", "max_count_limit": 2},
    ]
    assert AgentKind().references(agent, d) == ["tool.lookup"]  # what --target keeps with it


def test_a_missing_source_file_is_an_error_at_its_manifest_line(tmp_path: Path) -> None:
    [d] = errors(tmp_path, source=None)
    assert (d.line, d.col) == (5, 18)
    assert d.message.startswith("tools.lookup.source_file: no such file: ")
    assert d.message.endswith("tools/lookup.py")


def test_a_syntax_error_is_reported_in_the_source_file(tmp_path: Path) -> None:
    [d] = errors(tmp_path, source="def lookup(x:\n    pass\n")
    assert d.file.endswith("tools/lookup.py")
    assert d.line == 1 and d.message.startswith("tool.lookup: ")


def test_the_tools_function_needs_a_docstring(tmp_path: Path) -> None:
    [d] = errors(tmp_path, source="import os\n\n\ndef lookup(x: str) -> str:\n    return x\n")
    assert (Path(d.file).name, d.line, d.col) == ("lookup.py", 4, 1)
    assert "function 'lookup' has no docstring" in d.message


def test_a_source_file_outside_the_manifests_folder_is_refused_unless_allowed(
    tmp_path: Path,
) -> None:
    inside = tmp_path / "repo"
    inside.mkdir()
    (tmp_path / "lookup.py").write_text(LOOKUP, encoding="utf-8")
    text = MANIFEST.replace("tools/lookup.py", "../lookup.py")
    with pytest.raises(ManifestError) as e:
        load_manifest(str(write(inside, text)))
    [d] = e.value.diagnostics
    assert (d.line, d.col) == (5, 18)
    assert d.message == (
        f"tools.lookup.source_file: '../lookup.py' is outside {inside} (the folder given to -f); "
        "pass --allow-outside-files to read it"
    )
    # The same rule, and the same way out, as value_file and system_file.
    allowed = load_manifest(str(inside / "manifest.yaml"), Options(allow_outside_files=True))
    assert allowed.of("tool")["tool.lookup"].source_code == LOOKUP


def test_two_tools_with_one_name_are_an_error(tmp_path: Path) -> None:
    text = MANIFEST.replace(
        "    tags: [support]\n", "    tags: [support]\n  again:\n    source_file: tools/lookup.py\n"
    )
    [d] = errors(tmp_path, text)
    assert (d.line, d.col) == (8, 18)
    assert "tool name 'lookup_ticket' is already declared by tools.lookup" in d.message


@pytest.mark.parametrize(
    ("rule", "at", "message"),
    [
        (
            "{type: exit_loop, tool_name: lookup, children: [a]}",
            "children",
            "agents.helper.tool_rules[0]: 'children' is not a field of exit_loop rules",
        ),
        (
            "{type: max_count_per_step, tool_name: lookup}",
            "",
            "agents.helper.tool_rules[0]: missing required key 'max_count_limit'",
        ),
        (
            "{type: conditional, tool_name: lookup, child_output_mapping: {a: b}, children: [a]}",
            "children",
            "agents.helper.tool_rules[0]: 'children' is not a field of conditional rules (it "
            "takes default_child, child_output_mapping, require_output_mapping)",
        ),
        ("{tool_name: lookup}", "", "agents.helper.tool_rules[0]: missing required key 'type'"),
    ],
)
def test_tool_rules_are_checked_with_their_position(
    tmp_path: Path, rule: str, at: str, message: str
) -> None:
    text = MANIFEST.split("    tool_rules:\n")[0] + f"    tool_rules:\n      - {rule}\n"
    col = 9 + (rule.index(at) if at else 0)  # the rule starts at column 9; `at` is the key
    assert [(d.line, d.col, d.message) for d in errors(tmp_path, text)] == [(12, col, message)]


# -- plan ----------------------------------------------------------------------------------------


def test_server_rules_of_base_tools_are_kept_and_not_compared() -> None:
    declared = [{"type": "run_first", "tool_name": "lookup"}]
    server = {"type": "continue_loop", "tool_name": "memory_replace", "prompt_template": None}
    live = [{"type": "run_first", "tool_name": "lookup", "args": None}, server]
    assert tool_rules_update(declared, live, ["memory_replace"]) is None
    # A rule the manifest gives a base tool replaces the server's own rule for it.
    declared.append({"type": "exit_loop", "tool_name": "memory_replace"})
    update = tool_rules_update(declared, live, ["memory_replace"])
    assert update is not None
    assert update[1] == [
        {"type": "run_first", "tool_name": "lookup"},
        {"type": "exit_loop", "tool_name": "memory_replace"},
    ]


def test_target_of_an_agent_includes_the_tools_it_uses(tmp_path: Path) -> None:
    fake = FakeLetta()
    d = desired(tmp_path)
    plan = plan_for(fake.client(), d)
    assert [c.address for c in restrict(plan, d, ["agent.helper"]).changes] == [
        "tool.lookup",
        "agent.helper",
    ]
    assert [c.address for c in restrict(plan, d, ["tool.lookup"]).changes] == ["tool.lookup"]


# -- apply, against the fake ---------------------------------------------------------------------


def test_create_update_in_place_and_prune(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    plan = plan_for(client, desired(tmp_path))
    assert [(c.address, c.action) for c in plan.changes] == [
        ("tool.lookup", CREATE),
        ("agent.helper", CREATE),
    ]
    apply_plan(client, plan)
    [tool] = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    assert tool["metadata_"]["letta_apply"]["address"] == "tool.lookup"
    assert sorted(tool["tags"]) == ["letta-apply:tools-unit", "support"]
    [agent] = fake.agents.values()
    assert tool["id"] in agent["tool_ids"]
    assert agent["tool_rules"][0] == {"type": "run_first", "tool_name": "lookup_ticket"}
    assert plan_for(client, desired(tmp_path)).changes == ()

    # The source changes: the same tool is updated, with the schema of the new source.
    renamed = LOOKUP.replace("lookup_ticket", "find_ticket").replace("Look up", "Find")
    again = desired(tmp_path, MANIFEST.replace("lookup_ticket", "find_ticket"), renamed)
    plan = plan_for(client, again)
    [update] = [c for c in plan.changes if c.address == "tool.lookup"]
    assert (update.action, update.remote_id) == (UPDATE, tool["id"])
    assert [d.field for d in update.diffs] == ["name", "source_code"]
    apply_plan(client, plan)
    assert fake.tools[tool["id"]]["name"] == "find_ticket"
    assert fake.tools[tool["id"]]["json_schema"]["description"] == "Find a support ticket."
    assert plan_for(client, again).changes == ()

    # Declared no more: the agent stops using it, then it is deleted.
    text = MANIFEST.split("tools:\n")[0] + "agents:\n  helper:\n    model: letta/letta-free\n"
    text += "    tools: [web_search]\n"
    plan = plan_for(client, desired(tmp_path, text))
    assert [(c.address, c.action) for c in plan.changes] == [
        ("agent.helper", UPDATE),
        ("tool.lookup", DELETE),
    ]
    apply_plan(client, plan)
    assert tool["id"] not in fake.tools


def test_a_tool_made_by_hand_since_the_plan_is_not_overwritten(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    plan = plan_for(client, desired(tmp_path))
    fake.tools["tool-hand"] = {"id": "tool-hand", "name": "lookup_ticket", "tool_type": "custom"}
    with pytest.raises(ApplyError, match="a tool named 'lookup_ticket' now exists"):
        apply_plan(client, plan)
    assert fake.tools["tool-hand"] == {
        "id": "tool-hand",
        "name": "lookup_ticket",
        "tool_type": "custom",
    }
    assert fake.counts["POST"] == 0


def test_protection_and_ignored_source(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    protected = MANIFEST.replace(
        "    tags: [support]\n",
        "    tags: [support]\n    prevent_destroy: true\n    ignore_changes: [source_code]\n",
    )
    apply_plan(client, plan_for(client, desired(tmp_path, protected)))
    [tool] = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    # The source changes, but the manifest ignores it: nothing to do.
    edited = LOOKUP.replace("return helper(ticket_id)", "return ticket_id")
    assert plan_for(client, desired(tmp_path, protected, edited)).changes == ()
    # Protection is recorded in the tool's marks: it holds once the tool leaves the manifest.
    text = MANIFEST.split("tools:\n")[0] + "agents: {}\n"
    plan = plan_for(client, desired(tmp_path, text))
    assert plan.blocked
    assert [(p.address, p.fatal) for p in plan.problems] == [("tool.lookup", True)]
    assert tool["id"] in fake.tools


def test_a_create_interrupted_before_the_marks_is_finished_not_repeated(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    plan = plan_for(client, desired(tmp_path))
    # The tool was created (with the stack's tag) but apply stopped before writing its marks.
    create = next(c for c in plan.changes if c.address == "tool.lookup")
    body = {k: v for k, v in create.body.items() if k not in ("name", "metadata_")}
    made = client.create_tool(body)
    again = plan_for(client, desired(tmp_path))
    finish = next(c for c in again.changes if c.address == "tool.lookup")
    assert (finish.action, finish.remote_id) == (UPDATE, made["id"])
    apply_plan(client, again)
    assert fake.tools[made["id"]]["metadata_"]["letta_apply"]["address"] == "tool.lookup"
    assert plan_for(client, desired(tmp_path)).changes == ()
    assert [t["name"] for t in fake.tools.values()].count("lookup_ticket") == 1


def test_a_tool_made_by_hand_is_adopted_with_imports(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    made = client.create_tool({"source_code": LOOKUP.replace("Look up", "Find"), "tags": ["x"]})
    refused = plan_for(client, desired(tmp_path))
    assert "{to: tool.lookup, name: lookup_ticket}" in refused.problems[-1].hint
    text = MANIFEST + "imports:\n  - {to: tool.lookup, name: lookup_ticket}\n"
    plan = plan_for(client, desired(tmp_path, text))
    adopt = next(c for c in plan.changes if c.address == "tool.lookup")
    assert (adopt.action, adopt.remote_id) == (IMPORT, made["id"])
    assert [d.field for d in adopt.diffs] == ["source_code", "tags"]
    assert adopt.body["tags"] == ["letta-apply:tools-unit", "support"]
    apply_plan(client, plan)
    tool = fake.tools[made["id"]]
    assert tool["metadata_"]["letta_apply"]["address"] == "tool.lookup"
    assert tool["source_code"] == LOOKUP
    assert plan_for(client, desired(tmp_path, text)).changes == ()
    assert len([t for t in fake.tools.values() if t["name"] == "lookup_ticket"]) == 1


def test_a_tool_key_renamed_with_moved_keeps_the_tool(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path)))
    [tool] = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    text = MANIFEST.replace("  lookup:\n", "  tickets:\n").replace("[lookup,", "[tickets,")
    text = text.replace("tool_name: lookup}", "tool_name: tickets}")
    text += "moved:\n  - {from: tool.lookup, to: tool.tickets}\n"
    plan = plan_for(client, desired(tmp_path, text))
    assert [(c.address, c.action, c.remote_id) for c in plan.changes] == [
        ("tool.tickets", UPDATE, tool["id"])
    ]
    apply_plan(client, plan)
    assert fake.tools[tool["id"]]["metadata_"]["letta_apply"]["address"] == "tool.tickets"
    assert plan_for(client, desired(tmp_path, text)).changes == ()


def test_source_edited_on_the_server_is_drift_and_restored(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path)))
    [tool] = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    tool["source_code"] = LOOKUP.replace("return helper(ticket_id)", "return 'hacked'")
    plan = plan_for(client, desired(tmp_path))
    [restore] = plan.changes
    assert (restore.address, restore.why) == ("tool.lookup", ("drift",))
    assert [(d.address, d.field, d.kind) for d in plan.drift] == [
        ("tool.lookup", "source_code", "configuration")
    ]
    apply_plan(client, plan)
    assert tool["source_code"] == LOOKUP
    assert plan_for(client, desired(tmp_path)).changes == ()


def test_validate_counts_declared_tools(tmp_path: Path, cli: Cli) -> None:
    code, out, _ = cli("validate", "-f", str(write(tmp_path)))
    assert code == 0
    assert out.rstrip().endswith("1 tool(s), 1 agent(s)")


def test_a_new_source_gets_the_servers_schema_without_the_generate_schema_route(
    tmp_path: Path,
) -> None:
    """Letta Cloud has no generate-schema route: the schema comes from a scratch tool of a name
    of its own (never overwriting a tool), deleted at once; renames stay in place."""
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path)))
    (tool,) = [t for t in fake.tools.values() if t["name"] == "lookup_ticket"]
    before = set(fake.tools)
    changed = LOOKUP.replace("def lookup_ticket(", "def find_ticket(").replace(
        "Look up a support ticket.", "Find a support ticket."
    )
    fake.calls.clear()
    apply_plan(client, plan_for(client, desired(tmp_path, MANIFEST, changed)))
    assert set(fake.tools) == before  # the scratch tool is gone, nothing else was made
    assert (tool["name"], tool["json_schema"]["name"]) == ("find_ticket", "find_ticket")
    assert tool["json_schema"]["description"] == "Find a support ticket."
    assert tool["source_code"] == changed
    writes = [(m, p) for m, p in fake.calls if m != "GET" and p.startswith("/v1/tools/")]
    assert [m for m, _ in writes] == ["POST", "DELETE", "PATCH"], writes
    assert not [p for _, p in fake.calls if "generate-schema" in p]


def test_a_tool_rules_change_in_the_manifest_is_not_drift(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path)))
    changed = MANIFEST.replace("max_count_limit: 2", "max_count_limit: 3")
    plan = plan_for(client, desired(tmp_path, changed))
    [update] = [c for c in plan.changes if c.address == "agent.helper"]
    [diff] = [d for d in update.diffs if d.field == "tool_rules"]
    assert diff.why == "manifest"
    assert plan.drift == ()
    # Changed on the server instead: that is drift.
    [agent] = fake.agents.values()
    agent["tool_rules"] = [r for r in agent["tool_rules"] if r["type"] != "run_first"]
    plan = plan_for(client, desired(tmp_path))
    assert [(d.address, d.field) for d in plan.drift] == [("agent.helper", "tool_rules")]


RUN_FIRST_ARGS = MANIFEST.replace(
    "{type: run_first, tool_name: lookup}",
    "{type: run_first, tool_name: lookup, args: {ticket_id: T-1}}",
)


def test_a_change_of_run_first_args_alone_is_written_so_the_server_takes_it(
    tmp_path: Path,
) -> None:
    # Letta compares run_first rules without their args and drops a list that differs only
    # there: the rules are written without them first, then whole.
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path, RUN_FIRST_ARGS)))
    changed = desired(tmp_path, RUN_FIRST_ARGS.replace("T-1", "T-2"))
    apply_plan(client, plan_for(client, changed))
    [agent] = fake.agents.values()
    [rule] = [r for r in agent["tool_rules"] if r["type"] == "run_first"]
    assert rule["args"] == {"ticket_id": "T-2"}
    assert plan_for(client, changed).changes == ()


def test_rules_the_server_did_not_take_fail_the_apply(tmp_path: Path) -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(tmp_path, RUN_FIRST_ARGS)))
    plan = plan_for(client, desired(tmp_path, RUN_FIRST_ARGS.replace("T-1", "T-2")))
    [update] = [c for c in plan.changes if c.address == "agent.helper"]
    # As a server that drops the update: the interim write is left out.
    body = {k: v for k, v in update.body.items() if k != "tool_rules_interim"}
    stripped = replace(plan, changes=(replace(update, body=body),))
    with pytest.raises(ApplyError, match="the server did not take the tool_rules written"):
        apply_plan(client, stripped)
    [agent] = fake.agents.values()
    assert [r.get("args") for r in agent["tool_rules"] if r["type"] == "run_first"] == [
        {"ticket_id": "T-1"}
    ]
