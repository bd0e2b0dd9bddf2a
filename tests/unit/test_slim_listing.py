"""A big stack's agents are held cut down to what planning reads (kinds.agent.slim): the cut-down
agent reads as the whole one, and the listing keeps no tool source, no memory rendered twice, and
each repeated string once."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path

import pytest

from letta_apply import apply_plan, plan_for
from letta_apply.core.jsonish import obj, objs
from letta_apply.kinds.agent import requests as agent_requests
from letta_apply.kinds.agent.kind import AgentKind
from letta_apply.kinds.agent.model import LiveAgent
from letta_apply.kinds.agent.slim import Shared, slim_agent
from letta_apply.kinds.block.reads import block_state
from tests.fakes import FakeLetta
from tests.helpers import Cli, agent_includes, desired
from tests.unit.test_scale import converged, fleet

SYSTEM = "You are a helpful agent. " * 80

BLOCK = {
    "id": "block-1", "label": "persona", "value": "I am x", "description": "who I am",
    "limit": 5000, "read_only": False, "metadata": {"letta_apply": {"stack": "s"}},
    "tags": [], "project_id": None, "template_name": None, "created_by_id": "user-1",
}  # fmt: skip

RICH: dict[str, object] = {
    "id": "agent-1", "name": "a", "description": "an agent", "system": SYSTEM,
    "model": None, "embedding": None, "agent_type": "letta_v1_agent",
    "tags": ["letta-apply:s", "team"], "metadata": {"letta_apply": {"address": "agent.a"}},
    "llm_config": {"handle": "letta/letta-free", "context_window": 8000, "max_tokens": 512,
                   "parallel_tool_calls": True, "model_endpoint": "https://x", "temperature": 1},
    "embedding_config": {"handle": "letta/letta-free", "embedding_dim": 1536},
    "model_settings": {"max_output_tokens": 4096, "temperature": 0.7},
    "compaction_settings": {"model": "letta/auto", "prompt": "Summarise. " * 100},
    "response_format": {"type": "text"}, "enable_sleeptime": True,
    "message_buffer_autoclear": False, "timezone": "Europe/Paris", "max_files_open": 5,
    "per_file_view_window_char_limit": 15000,
    "tools": [{"id": "tool-1", "name": "send_message", "tool_type": "letta_core",
               "source_code": "def send_message(): ..." * 50, "json_schema": {"name": "x"}},
              {"id": "tool-2", "name": "mine", "tool_type": "custom", "source_code": "pass"}],
    "blocks": [BLOCK],
    "memory": {"blocks": [BLOCK], "prompt_template": "{{ blocks }}" * 100},
    "tool_rules": [{"tool_name": "send_message", "type": "exit_loop"}],
    "identity_ids": ["identity-1"], "identities": [{"id": "identity-1", "name": "n"}],
    "secrets": [{"id": "env-1", "key": "API_KEY", "value": "s3cret", "agent_id": "agent-1"}],
    "managed_group": {"id": "group-1", "manager_type": "sleeptime",
                      "agent_ids": ["agent-1", "agent-2"], "description": "d"},
    "message_ids": ["message-1", "message-2", "message-3"],
    "sources": [], "created_at": "2026-01-01T00:00:00Z",
}  # fmt: skip


def test_a_cut_down_agent_reads_as_the_whole_one() -> None:
    slim = slim_agent(copy.deepcopy(RICH), Shared())
    assert LiveAgent.from_api(slim) == LiveAgent.from_api(RICH)
    whole = LiveAgent.from_api(RICH)
    assert whole.settings and whole.secrets and whole.sleeptime and whole.in_context == 3
    assert block_state({"block": [], "agent": [slim]}, {}) == block_state(
        {"block": [], "agent": [RICH]}, {}
    )


def test_a_cut_down_agent_keeps_no_source_no_memory_and_no_message_ids() -> None:
    slim = slim_agent(RICH, Shared())
    assert "memory" not in slim and "identities" not in slim and "sources" not in slim
    assert all(set(t) == {"id", "name", "tool_type"} for t in objs(slim["tools"]))
    kept = {"handle", "context_window", "max_tokens", "parallel_tool_calls"}
    assert set(obj(slim["llm_config"])) == kept
    assert slim["message_ids"] == [None, None, None]


def test_the_agents_listing_is_cut_down_as_it_is_read_and_shares_repeated_strings() -> None:
    fake = FakeLetta()
    client = converged(fake, fleet(3, 2))
    listed = AgentKind().read(client, "fleet", None)
    assert isinstance(listed, list) and len(listed) == 3
    tools = [t for a in objs(listed) for t in objs(a["tools"])]
    assert tools and all(set(t) <= {"id", "name", "tool_type"} for t in tools)
    systems = [a["system"] for a in objs(listed)]
    assert len({id(s) for s in systems}) == 1  # one copy of the system prompt for all
    # and one copy of each base tool, and of each shared block, however many agents show it
    firsts = {id(objs(a["tools"])[0]) for a in objs(listed)}
    assert len(firsts) == 1
    views = [b for a in objs(listed) for b in objs(a["blocks"]) if b["label"] != "persona"]
    assert len({id(b) for b in views}) == len({b["id"] for b in views}) < len(views)
    # and the plan made from it is the converged one
    assert plan_for(client, desired(fleet(3, 2))).changes == ()


def test_settling_a_stage_of_creates_looks_each_agent_up_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After a stage of creates, each agent made is looked for among the stack's agents by its
    address, not by a scan of them all (10,000 agents made would be 10^8 comparisons)."""
    looked_at = 0
    real = agent_requests.carries

    def counting(resource: Mapping[str, object], stack: str, address: str) -> bool:
        nonlocal looked_at
        looked_at += 1
        return real(resource, stack, address)

    monkeypatch.setattr(agent_requests, "carries", counting)
    fake = FakeLetta()
    client = fake.client()
    plan = plan_for(client, desired(fleet(60, 2)))
    apply_plan(client, plan, parallelism=8)
    assert 60 <= looked_at <= 2 * 60
    assert plan_for(client, desired(fleet(60, 2))).changes == ()


def _detach_a_tool(fake: FakeLetta, name: str) -> None:
    """Detach tool `name` from every agent, as a hand edit would."""
    ids = {t["id"] for t in fake.tools.values() if t["name"] == name}
    for a in fake.agents.values():
        a["tool_ids"] = [t for t in a["tool_ids"] if t not in ids]


def test_a_stack_whose_agents_manage_no_tools_lists_its_agents_without_them(
    cli: Cli, tmp_path: Path
) -> None:
    """An agent's tools are most of what Letta spends listing it; a stack none of whose agents
    declares `tools`, `tool_rules` or `mcp_tools` does not ask for them, and a saved plan of it
    is not made stale by a tool attached or detached by hand (nothing it does reads them)."""
    path = tmp_path / "m.yaml"
    path.write_text(fleet(3, 2), encoding="utf-8")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    seen = agent_includes(cli.fake)
    assert cli("plan", "-f", str(path), "--detailed-exitcode").code == 0
    assert seen and all("agent.blocks" in i and "agent.tools" not in i for i in seen)
    _detach_a_tool(cli.fake, "send_message")  # not the stack's to manage: no change
    assert cli("plan", "-f", str(path), "--detailed-exitcode").code == 0
    path.write_text(fleet(3, 2).replace("value: agent 1", "value: agent one"), encoding="utf-8")
    saved = tmp_path / "plan.json"
    assert cli("plan", "-f", str(path), "--out", str(saved)).code == 0
    _detach_a_tool(cli.fake, "conversation_search")
    r = cli("apply", str(saved), "--auto-approve")
    assert r.code == 0, r.err
    assert "agent one" in {b["value"] for b in cli.fake.blocks.values()}


def test_a_stack_whose_agents_manage_tools_lists_them_and_a_saved_plan_writing_them_checks_them(
    cli: Cli, tmp_path: Path
) -> None:
    text = fleet(3, 2).replace(
        "  a0:\n", "  a0:\n    tools: [send_message, conversation_search, web_search]\n"
    )
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    seen = agent_includes(cli.fake)
    assert cli("plan", "-f", str(path), "--detailed-exitcode").code == 0
    assert seen and all("agent.tools" in i for i in seen)
    # A tool detached by hand is drift the plan puts back.
    _detach_a_tool(cli.fake, "web_search")
    saved = tmp_path / "plan.json"
    r = cli("plan", "-f", str(path), "--out", str(saved), "--detailed-exitcode")
    assert r.code == 2 and "web_search" in r.out, r.out
    # Another hand edit of the tools it writes, after the review: the saved plan is stale.
    _detach_a_tool(cli.fake, "conversation_search")
    r = cli("apply", str(saved), "--auto-approve")
    assert r.code == 1 and "stale plan" in r.err and "agent.a0" in r.err, r.err
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    assert cli("plan", "-f", str(path), "--detailed-exitcode").code == 0
    names = {cli.fake.tools[t]["name"] for a in cli.fake.agents.values() for t in a["tool_ids"]}
    assert {"web_search", "conversation_search"} <= names
