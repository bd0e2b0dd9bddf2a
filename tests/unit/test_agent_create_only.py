"""What an agent is made with and cannot change: `agent_type` and `include_base_tool_rules` (a
change replaces the agent, create-first), `initial_message_sequence` (sent with the create,
never compared), against the fake server, which keeps them as Letta 0.16.8 does."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write

HEAD = "version: 1\nstack: s\n"
MESSAGES = (
    "    initial_message_sequence:\n"
    "      - {role: user, content: 'Hello, I am Ada.'}\n"
    "      - {role: assistant, content: 'Hi Ada.', name: helper}\n"
)
AGENT = (
    HEAD + "agents:\n  helper:\n    model: letta/letta-free\n    embedding: letta/letta-free\n"
    "    agent_type: memgpt_v2_agent\n    include_base_tool_rules: false\n" + MESSAGES
)


def apply(cli: Cli, path: Path) -> str:
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.out + r.err
    return r.out


def writes(cli: Cli, path: Path) -> int:
    before = cli.fake.writes
    apply(cli, path)
    return cli.fake.writes - before


def only_agent(cli: Cli) -> dict[str, Any]:
    (agent,) = cli.fake.agents.values()
    return agent


def test_create_sends_them_and_a_second_apply_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, AGENT)
    plan = cli("plan", "-f", str(path)).out
    assert 'agent_type: "memgpt_v2_agent"' in plan
    assert "include_base_tool_rules: false" in plan
    assert 'initial_message_sequence[0]: {"content": "Hello, I am Ada.", "role": "user"}' in plan
    apply(cli, path)
    agent = only_agent(cli)
    assert agent["agent_type"] == "memgpt_v2_agent"
    assert agent["_initial_messages"] == [
        {"role": "user", "content": "Hello, I am Ada."},
        {"role": "assistant", "content": "Hi Ada.", "name": "helper"},
    ]
    assert agent["metadata"]["letta_apply"]["applied"]["include_base_tool_rules"] is False
    assert "No changes" in cli("plan", "-f", str(path)).out
    assert writes(cli, path) == 0


def test_initial_messages_are_never_sent_again(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, AGENT)
    apply(cli, path)
    agent = only_agent(cli)
    path.write_text(AGENT.replace("Hello, I am Ada.", "Hello, I am Grace."))
    assert "No changes" in cli("plan", "-f", str(path)).out
    assert writes(cli, path) == 0
    path.write_text(AGENT.replace(MESSAGES, ""))  # left out: nothing to do either
    assert writes(cli, path) == 0
    assert only_agent(cli) is agent
    assert agent["_initial_messages"][0]["content"] == "Hello, I am Ada."


def test_a_change_of_agent_type_replaces_the_agent_in_one_apply(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, AGENT)
    apply(cli, path)
    old = only_agent(cli)
    path.write_text(AGENT.replace("memgpt_v2_agent", "react_agent"))
    plan = cli("plan", "-f", str(path))
    assert 'agent_type: "memgpt_v2_agent" -> "react_agent"  (forces replacement)' in plan.out
    assert "1 to replace" in plan.out
    apply(cli, path)
    new = only_agent(cli)
    assert new["id"] != old["id"] and new["agent_type"] == "react_agent"
    # A new agent: it starts with the declared first messages.
    assert new["_initial_messages"][0]["content"] == "Hello, I am Ada."
    assert writes(cli, path) == 0


def test_a_change_of_include_base_tool_rules_replaces_the_agent(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, AGENT)
    apply(cli, path)
    old = only_agent(cli)
    assert old["tool_rules"] == []
    path.write_text(
        AGENT.replace("include_base_tool_rules: false", "include_base_tool_rules: true")
    )
    plan = cli("plan", "-f", str(path)).out
    assert "include_base_tool_rules: false -> true  (forces replacement)" in plan
    apply(cli, path)
    new = only_agent(cli)
    assert new["id"] != old["id"]
    assert {"type": "exit_loop", "tool_name": "send_message"} in new["tool_rules"]
    assert writes(cli, path) == 0


def test_base_tool_rules_beside_declared_rules_converge(cli: Cli, tmp_path: Path) -> None:
    text = AGENT.replace("include_base_tool_rules: false", "include_base_tool_rules: true") + (
        "    tools: [web_search]\n"
        "    tool_rules: [{type: max_count_per_step, tool_name: web_search, max_count_limit: 2}]\n"
    )
    path = write(tmp_path, text)
    apply(cli, path)
    rules = only_agent(cli)["tool_rules"]
    assert len(rules) > 1
    assert writes(cli, path) == 0


def test_declaring_the_type_an_agent_has_changes_nothing(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, AGENT.replace("    agent_type: memgpt_v2_agent\n", ""))
    apply(cli, path)
    assert only_agent(cli)["agent_type"] == "letta_v1_agent"  # the server's default
    path.write_text(AGENT.replace("memgpt_v2_agent", "letta_v1_agent"))
    assert "No changes" in cli("plan", "-f", str(path)).out
    assert writes(cli, path) == 0


def test_an_import_keeps_its_type_or_is_refused(cli: Cli, tmp_path: Path) -> None:
    made = cli.fake._create_agent(
        {"name": "helper", "model": "letta/letta-free", "agent_type": "react_agent"}
    )
    imports = f"imports:\n  - {{to: agent.helper, id: {made['id']}}}\n"
    path = write(tmp_path, AGENT + imports)
    r = cli("plan", "-f", str(path))
    assert r.code == 1
    assert (
        "agent.helper: the agent to import has agent_type react_agent, the manifest declares "
        "memgpt_v2_agent: Letta cannot change it"
    ) in r.out + r.err
    assert cli.fake.agents[made["id"]]["metadata"] == {}
    path.write_text(AGENT.replace("memgpt_v2_agent", "react_agent") + imports)
    apply(cli, path)
    assert only_agent(cli)["id"] == made["id"]


def test_export_names_a_type_other_than_the_default(cli: Cli, tmp_path: Path) -> None:
    for name, kind in (("v2", "memgpt_v2_agent"), ("v1", "letta_v1_agent")):
        cli.fake._create_agent(
            {"name": name, "model": "letta/letta-free", "agent_type": kind, "tags": ["t"]}
        )
    r = cli("export", "--stack", "s", "--tag", "t")
    assert r.code == 0, r.err
    agents = yaml.safe_load(r.out)["agents"]
    assert agents["v2"]["agent_type"] == "memgpt_v2_agent"
    assert "agent_type" not in agents["v1"]
    path = write(tmp_path, r.out)
    apply(cli, path)  # adopted as they are: no replacement
    assert {a["name"] for a in cli.fake.agents.values()} == {"v1", "v2"}
    assert len(cli.fake.agents) == 2


def test_bad_input_is_reported_where_it_is_written_all_at_once(tmp_path: Path) -> None:
    text = HEAD + (
        "variables:\n  key: {sensitive: true, default: sk-secret-1234567890}\n"
        "agents:\n"
        "  a:\n"
        "    model: letta/letta-free\n"
        "    agent_type: memgpt_v3_agent\n"
        "    initial_message_sequence:\n"
        "      - {role: user, content: [{type: text, text: hi}]}\n"
        "      - {role: tool, content: x}\n"
        "      - {content: no role}\n"
        "      - {role: user, content: 'key ${var.key}'}\n"
        "    ignore_changes: [initial_message_sequence, agent_type]\n"
        "  b:\n    model: letta/letta-free\n    agent_type: voice_convo_agent\n"
        "  c:\n    model: letta/letta-free\n    agent_type: split_thread_agent\n"
        "  d:\n    model: letta/letta-free\n    agent_type: workflow_agent\n"
        "    message_buffer_autoclear: false\n"
    )
    found = [
        (at(d), d.message)
        for d in diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
    ]
    short = [(pos, m[:60]) for pos, m in found]
    assert short == [
        ((8, 17), "agents.a.agent_type: 'memgpt_v3_agent' is not one of ['memgp"),
        ((10, 31), "agents.a.initial_message_sequence[0].content: expected a str"),
        ((11, 16), "agents.a.initial_message_sequence[1].role: 'tool' is not one"),
        ((12, 9), "agents.a.initial_message_sequence[2]: missing required key '"),
        ((13, 31), "agents.a.initial_message_sequence[3].content: a sensitive va"),
        ((14, 22), "agents.a.ignore_changes[0]: 'initial_message_sequence' is no"),
        ((14, 48), "agents.a.ignore_changes[1]: 'agent_type' is not one of ['nam"),
        ((17, 17), "agents.b.agent_type: a voice_convo_agent needs `enable_sleep"),
        ((20, 17), "agents.c.agent_type: a split_thread_agent needs a `system` p"),
        ((24, 31), "agents.d.message_buffer_autoclear: a workflow_agent always c"),
    ]
    assert "sk-secret" not in json.dumps(found)


def test_what_the_server_needs_for_a_type_is_accepted(tmp_path: Path) -> None:
    text = HEAD + (
        "agents:\n"
        "  b:\n    model: letta/letta-free\n    agent_type: voice_convo_agent\n"
        "    enable_sleeptime: true\n"
        "  c:\n    model: letta/letta-free\n    agent_type: split_thread_agent\n"
        "    system: You split threads.\n"
        "  d:\n    model: letta/letta-free\n    agent_type: workflow_agent\n"
        "    initial_message_sequence: []\n"
    )
    agents = load_manifest(str(write(tmp_path, text))).of("agent")
    assert agents["agent.d"].created == {
        "agent_type": "workflow_agent", "initial_message_sequence": []
    }  # fmt: skip
