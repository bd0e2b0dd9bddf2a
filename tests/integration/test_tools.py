"""Custom tools and tool rules against the real server: a tool created from its source file,
attached, updated in place when the source changes, pruned; tool rules converged; unknown tool
names refused before any write.

Tool names are unique on a Letta server, so every test names its tool's function after its
own stack, and deletes what it made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from letta_apply.server.client import LettaClient
from tests.integration.conftest import Run

SOURCE = '''def {fn}(ticket_id: str) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.

    Returns:
        str: the ticket's subject and status
    """
    return f"{{ticket_id}}: open"
'''

CHANGED = '''def {fn}(ticket_id: str, include_history: bool = False) -> str:
    """Look up a support ticket.

    Args:
        ticket_id: The ticket's id, e.g. T-1234.
        include_history: Also return the ticket's past messages.

    Returns:
        str: the ticket's subject and status
    """
    status = f"{{ticket_id}}: open"
    return status + " (with history)" if include_history else status
'''

MANIFEST = """\
version: 1
stack: {stack}
tools:
  lookup:
    source_file: tools/lookup.py
    tags: [support]
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    tools: [lookup, web_search]
    tool_rules:
      - {type: run_first, tool_name: lookup}
      - {type: max_count_per_step, tool_name: lookup, max_count_limit: 2}
"""


@pytest.fixture
def fn(stack: str) -> str:
    """The tool's function name, unique to this test."""
    return "lookup_" + stack.replace("-", "_")


@pytest.fixture
def source(tmp_path: Path) -> Callable[[str], None]:
    def _write(text: str) -> None:
        (tmp_path / "tools").mkdir(exist_ok=True)
        (tmp_path / "tools" / "lookup.py").write_text(text, encoding="utf-8")

    return _write


@pytest.fixture
def cleanup(api: httpx.Client, fn: str) -> Iterator[list[str]]:
    """Ids of agents to delete at the end; every tool named after this test goes too."""
    agents: list[str] = []
    yield agents
    for aid in agents:
        api.delete(f"/v1/agents/{aid}")
    for t in api.get("/v1/tools/", params={"names": [fn]}).json():
        api.delete(f"/v1/tools/{t['id']}")


def tool_named(api: httpx.Client, name: str) -> dict[str, Any]:
    [tool] = api.get("/v1/tools/", params={"names": [name]}).json()
    return tool  # type: ignore[no-any-return]


def agent_named(api: httpx.Client, name: str) -> dict[str, Any]:
    [agent] = api.get(
        "/v1/agents/", params={"name": name, "include": ["agent.tools", "agent.tags"]}
    ).json()
    return agent  # type: ignore[no-any-return]


def rules(agent: dict[str, Any]) -> list[tuple[str, str, Any]]:
    return sorted(
        (r["type"], r["tool_name"], r.get("max_count_limit")) for r in agent["tool_rules"]
    )


def test_custom_tool_created_attached_updated_in_place_and_pruned(
    tmp_path: Path,
    run: Run,
    manifest: Callable[[str], str],
    source: Callable[[str], None],
    api: httpx.Client,
    stack: str,
    fn: str,
    cleanup: list[str],
) -> None:
    source(SOURCE.format(fn=fn))
    path = manifest(MANIFEST)
    first = run("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.err
    assert f'name: "{fn}"' in first.out
    tool = tool_named(api, fn)
    agent = agent_named(api, f"{stack}-helper")
    cleanup.append(agent["id"])
    assert tool["metadata_"]["letta_apply"]["address"] == "tool.lookup"
    assert sorted(tool["tags"]) == sorted([f"letta-apply:{stack}", "support"])
    assert tool["json_schema"]["name"] == fn
    assert {fn, "web_search"} <= {t["name"] for t in agent["tools"]}
    assert {("run_first", fn, None), ("max_count_per_step", fn, 2)} <= set(rules(agent))

    again = run("apply", "-f", path, "--auto-approve")
    assert (again.code, again.writes) == (0, 0), again.out
    assert "No changes. The server matches the manifest." in again.out

    shown = run("show", "-f", path)
    assert f"tool.lookup  {tool['id']}  name='{fn}'" in shown.out

    # The source changes: the plan shows it as a diff, apply updates the same tool.
    source(CHANGED.format(fn=fn))
    saved = tmp_path / "plan.json"
    plan = run("plan", "-f", path, "--detailed-exitcode", "--out", str(saved))
    assert plan.code == 2, plan.out
    assert f"~ tool.lookup ({tool['id']}): update" in plan.out
    assert f"-def {fn}(ticket_id: str) -> str:" in plan.out
    assert f"+def {fn}(ticket_id: str, include_history: bool = False) -> str:" in plan.out
    assert "+        include_history: Also return the ticket's past messages." in plan.out
    applied = run("apply", str(saved), "-f", path, "--auto-approve")  # exactly what it showed
    assert applied.code == 0, applied.err
    assert f"tool.lookup: updated ({tool['id']})" in applied.out
    # Once applied, the saved plan is stale: the tool it was planned from has changed.
    stale = run("apply", str(saved), "--auto-approve")
    assert (stale.code, stale.writes) == (1, 0)
    assert "stale plan: changed on the server since the plan was made: tool.lookup" in stale.err
    updated = tool_named(api, fn)
    assert updated["id"] == tool["id"]
    assert updated["source_code"] == CHANGED.format(fn=fn)
    # The server's schema follows the new source (a PATCH of the source alone would not).
    assert "include_history" in updated["json_schema"]["parameters"]["properties"]
    assert run("apply", "-f", path, "--auto-approve").writes == 0
    # Renamed in its source, the tool is renamed in place, its schema derived by the server
    # (without the generate-schema route, which Letta Cloud lacks), and no scratch tool stays.
    source(CHANGED.format(fn=fn).replace(f"def {fn}(", f"def {fn}_v2("))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    moved = api.get(f"/v1/tools/{tool['id']}").json()
    assert (moved["name"], moved["json_schema"]["name"]) == (f"{fn}_v2", f"{fn}_v2")
    assert "include_history" in moved["json_schema"]["parameters"]["properties"]
    source(CHANGED.format(fn=fn))
    assert run("apply", "-f", path, "--auto-approve").code == 0
    assert api.get(f"/v1/tools/{tool['id']}").json()["json_schema"]["name"] == fn
    names = {t["name"] for t in api.get("/v1/tools/", params={"limit": 100000}).json()}
    assert not {n for n in names if n.startswith("letta_apply_schema_")}

    # A hand-made agent starts using the tool: removing the tool from the manifest is refused.
    foreign = api.post(
        "/v1/agents/",
        json={
            "name": f"{stack}-by-hand",
            "model": "letta/letta-free",
            "embedding": "letta/letta-free",
            "tool_ids": [tool["id"]],
        },
    ).json()
    cleanup.append(foreign["id"])
    without = manifest(
        MANIFEST.split("tools:\n")[0]
        + MANIFEST.split("    tags: [support]\n")[1]
        .replace("[lookup, web_search]", "[web_search]")
        .split("    tool_rules:")[0]
    )
    refused = run("apply", "-f", without, "--auto-approve")
    assert refused.code == 1
    assert (
        f"x tool.lookup: not deleted: still attached to agents this stack does not manage: "
        f"{stack}-by-hand ({foreign['id']})" in refused.out
    )
    assert tool_named(api, fn)["id"] == tool["id"]

    # Once that agent is gone, the tool the stack no longer declares is deleted.
    api.delete(f"/v1/agents/{foreign['id']}")
    pruned = run("apply", "-f", without, "--auto-approve")
    assert pruned.code == 0, pruned.out
    assert f"tool.lookup: deleted ({tool['id']})" in pruned.out
    assert api.get(f"/v1/tools/{tool['id']}").status_code == 404
    assert fn not in {t["name"] for t in agent_named(api, f"{stack}-helper")["tools"]}
    assert run("apply", "-f", without, "--auto-approve").writes == 0


def test_tool_rules_are_applied_and_converged(
    run: Run,
    manifest: Callable[[str], str],
    source: Callable[[str], None],
    api: httpx.Client,
    stack: str,
    fn: str,
    cleanup: list[str],
) -> None:
    source(SOURCE.format(fn=fn))
    path = manifest(MANIFEST)
    assert run("apply", "-f", path, "--auto-approve").code == 0
    agent = agent_named(api, f"{stack}-helper")
    cleanup.append(agent["id"])
    server_rules = [r for r in rules(agent) if r[1] != fn]

    # The manifest changes the rules: the server's own rules for its base tools stay.
    changed = manifest(
        MANIFEST.replace(
            "{type: max_count_per_step, tool_name: lookup, max_count_limit: 2}",
            "{type: exit_loop, tool_name: lookup}",
        )
    )
    plan = run("plan", "-f", changed)
    assert (
        f"tool_rules: [max_count_per_step({fn}, max_count_limit=2), run_first({fn})] -> "
        f"[exit_loop({fn}), run_first({fn})]" in plan.out
    )
    assert run("apply", "-f", changed, "--auto-approve").code == 0
    now = rules(agent_named(api, f"{stack}-helper"))
    assert now == sorted([("exit_loop", fn, None), ("run_first", fn, None), *server_rules])
    assert run("apply", "-f", changed, "--auto-approve").writes == 0

    # A rule removed by hand on the server is drift: apply puts it back.
    kept = [
        r for r in agent_named(api, f"{stack}-helper")["tool_rules"] if r["type"] != "exit_loop"
    ]
    api.patch(f"/v1/agents/{agent['id']}", json={"tool_rules": kept})
    drift = run("apply", "-f", changed, "--auto-approve")
    assert "tool_rules: [run_first" in drift.out and "(changed on the server)" in drift.out
    assert rules(agent_named(api, f"{stack}-helper")) == now
    assert run("apply", "-f", changed, "--auto-approve").writes == 0


def test_unknown_tool_names_are_a_plan_error_with_zero_writes(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(
        MANIFEST.split("tools:\n")[0]
        + MANIFEST.split("    tags: [support]\n")[1]
        .replace("[lookup, web_search]", f"[web_search, no_such_tool_{stack[2:]}]")
        .replace("tool_name: lookup}", "tool_name: web_search}")
        .replace("tool_name: lookup,", f"tool_name: missing_{stack[2:]},")
    )
    plan = run("plan", "-f", path)
    assert plan.code == 1
    assert f"x agent.helper: unknown tool 'no_such_tool_{stack[2:]}'" in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert (applied.code, applied.writes) == (1, 0)
    assert f"error: agent.helper: unknown tool 'no_such_tool_{stack[2:]}'" in applied.err
    tag = f"letta-apply:{stack}"
    assert api.get("/v1/agents/", params={"tags": [tag]}).json() == []

    # Rules are checked too, when the tools themselves exist.
    rules_only = manifest(Path(path).read_text().replace(f", no_such_tool_{stack[2:]}]", "]"))
    plan = run("plan", "-f", rules_only)
    assert plan.code == 1
    assert f"x agent.helper: tool_rules name unknown tool 'missing_{stack[2:]}'" in plan.out
    assert run("apply", "-f", rules_only, "--auto-approve").writes == 0


def test_a_tool_not_ours_with_the_declared_name_is_never_overwritten(
    run: Run,
    manifest: Callable[[str], str],
    source: Callable[[str], None],
    api: httpx.Client,
    stack: str,
    fn: str,
    cleanup: list[str],
) -> None:
    # Letta's create would silently overwrite a tool of the same name: plan refuses instead.
    hand = api.post("/v1/tools/", json={"source_code": SOURCE.format(fn=fn)}).json()
    source(CHANGED.format(fn=fn))
    path = manifest(MANIFEST)
    plan = run("plan", "-f", path)
    assert plan.code == 1
    assert f"x tool.lookup: a tool named '{fn}' already exists on the server" in plan.out
    assert "x agent.helper: uses tool.lookup, which apply refuses to create" in plan.out
    applied = run("apply", "-f", path, "--auto-approve")
    assert (applied.code, applied.writes) == (1, 0)
    after = tool_named(api, fn)
    assert (after["id"], after["source_code"]) == (hand["id"], SOURCE.format(fn=fn))
    assert "letta_apply" not in (after["metadata_"] or {})

    # Adopted with `imports:` by name: the same tool gets the stack's marks and the new source.
    adopting = manifest(MANIFEST + f"imports:\n  - {{to: tool.lookup, name: {fn}}}\n")
    plan = run("plan", "-f", adopting)
    assert f"= tool.lookup ({hand['id']}): import" in plan.out
    adopted = run("apply", "-f", adopting, "--auto-approve")
    assert adopted.code == 0, adopted.out
    cleanup.append(agent_named(api, f"{stack}-helper")["id"])
    after = tool_named(api, fn)
    assert (after["id"], after["source_code"]) == (hand["id"], CHANGED.format(fn=fn))
    assert after["metadata_"]["letta_apply"]["address"] == "tool.lookup"
    assert "include_history" in after["json_schema"]["parameters"]["properties"]
    assert run("apply", "-f", adopting, "--auto-approve").writes == 0


def test_a_declared_rule_on_a_base_tool_replaces_the_servers_own(
    run: Run,
    manifest: Callable[[str], str],
    source: Callable[[str], None],
    api: httpx.Client,
    stack: str,
    fn: str,
    cleanup: list[str],
) -> None:
    # Letta adds continue_loop for conversation_search even when the request has a rule for it.
    source(SOURCE.format(fn=fn))
    path = manifest(
        MANIFEST.replace(
            "{type: max_count_per_step, tool_name: lookup, max_count_limit: 2}",
            "{type: exit_loop, tool_name: conversation_search}",
        )
    )
    first = run("apply", "-f", path, "--auto-approve")
    assert first.code == 0, first.err
    # Tool: create, then its marks; agent: create, then its rules without the server's extra.
    assert first.writes == 4
    agent = agent_named(api, f"{stack}-helper")
    cleanup.append(agent["id"])
    assert "conversation_search" in {t["name"] for t in agent["tools"]}
    assert [r for r in rules(agent) if r[1] == "conversation_search"] == [
        ("exit_loop", "conversation_search", None)
    ]
    assert run("apply", "-f", path, "--auto-approve").writes == 0


def test_a_change_of_run_first_args_converges(
    run: Run,
    manifest: Callable[[str], str],
    source: Callable[[str], None],
    api: httpx.Client,
    stack: str,
    fn: str,
    cleanup: list[str],
) -> None:
    # Letta 0.16.8 compares run_first rules without their args: a change of the args alone
    # would be dropped by the server while apply said "updated".
    source(SOURCE.format(fn=fn))
    first = MANIFEST.replace(
        "{type: run_first, tool_name: lookup}",
        "{type: run_first, tool_name: lookup, args: {ticket_id: T-1}}",
    )
    assert run("apply", "-f", manifest(first), "--auto-approve").code == 0
    cleanup.append(agent_named(api, f"{stack}-helper")["id"])
    changed = manifest(first.replace("T-1", "T-2"))
    applied = run("apply", "-f", changed, "--auto-approve")
    assert applied.code == 0, applied.out
    [rule] = [
        r for r in agent_named(api, f"{stack}-helper")["tool_rules"] if r["type"] == "run_first"
    ]
    assert rule["args"] == {"ticket_id": "T-2"}
    assert run("apply", "-f", changed, "--auto-approve").writes == 0


PLAIN = """\
version: 1
stack: {stack}
agents:
  helper:
    name: {stack}-helper
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks:
      - {label: persona, value: I help., description: Who I am.}
"""


def _detach(api: httpx.Client, agent: dict[str, Any], name: str) -> None:
    [tool] = [t for t in agent["tools"] if t["name"] == name]
    api.patch(f"/v1/agents/{agent['id']}/tools/detach/{tool['id']}").raise_for_status()


def test_tools_are_listed_and_checked_only_where_the_stack_manages_them(
    run: Run,
    manifest: Callable[[str], str],
    api: httpx.Client,
    stack: str,
    cleanup: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A stack whose agents declare no tools lists its agents without them (most of what Letta
    spends listing an agent), and a hand edit of an agent's tools neither shows in its plans
    nor makes its saved plans stale; once an agent declares `tools`, they are listed, compared,
    and a saved plan writing them is refused when they changed since."""
    includes: list[list[str]] = []
    real = LettaClient.request

    def spy(self: LettaClient, method: str, path: str, **kw: Any) -> Any:
        if method == "GET" and path == "/v1/agents/":
            includes.append(list(kw.get("params", {}).get("include", [])))
        return real(self, method, path, **kw)

    monkeypatch.setattr(LettaClient, "request", spy)
    plain = manifest(PLAIN)
    assert run("apply", "-f", plain, "--auto-approve").code == 0
    agent = agent_named(api, f"{stack}-helper")
    cleanup.append(agent["id"])
    includes.clear()
    assert run("plan", "-f", plain, "--detailed-exitcode").code == 0
    assert includes and all("agent.tools" not in i and "agent.blocks" in i for i in includes)
    _detach(api, agent, "conversation_search")
    assert run("plan", "-f", plain, "--detailed-exitcode").code == 0
    edited = manifest(PLAIN.replace("Who I am.", "Who I am now."))
    saved = str(Path(edited).with_suffix(".json"))
    assert run("plan", "-f", edited, "--out", saved).code == 0
    _detach(api, agent, "memory_insert")
    applied = run("apply", saved, "--auto-approve")
    assert applied.code == 0, applied.err
    # Declared now: listed with the agents, the detached one is put back.
    includes.clear()
    declared = manifest(
        PLAIN.replace("    memory_blocks:", "    tools: [conversation_search, memory_replace]\n"
                      "    memory_blocks:")
    )  # fmt: skip
    saved = str(Path(declared).with_suffix(".json"))
    planned = run("plan", "-f", declared, "--out", saved, "--detailed-exitcode")
    assert planned.code == 2 and "conversation_search" in planned.out, planned.out
    assert includes and all("agent.tools" in i for i in includes)
    _detach(api, agent_named(api, f"{stack}-helper"), "memory_replace")
    stale = run("apply", saved, "--auto-approve")
    assert stale.code == 1 and "stale plan" in stale.err and "agent.helper" in stale.err
    assert run("apply", "-f", declared, "--auto-approve").code == 0
    names = {t["name"] for t in agent_named(api, f"{stack}-helper")["tools"]}
    assert {"conversation_search", "memory_replace"} <= names
    assert run("plan", "-f", declared, "--detailed-exitcode").code == 0
