"""`convert AGENT.af`: a manifest from an Agent File. Hostile files are refused with one located
line and nothing written; what converts loads, validates and, applied, converges; what a manifest
does not manage is reported, a note a line; secrets never reach the manifest."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from letta_apply.convert.files import check_converted
from letta_apply.convert.manifest import convert
from letta_apply.errors import LettaApplyError
from letta_apply.memory import af_format
from letta_apply.memory.af_format import check_agent_file
from tests.helpers import Cli


def _af(**parts: Any) -> dict[str, Any]:
    """A small Agent File in Letta's shape: one agent with a persona, unless `parts` say."""
    doc: dict[str, Any] = {
        "agents": [
            {
                "id": "agent-0", "name": "helper", "system": "You help.",
                "llm_config": {"handle": "letta/letta-free", "context_window": 30000},
                "embedding_config": {"handle": "letta/letta-free"},
                "block_ids": ["block-0"], "tool_ids": [], "messages": [],
                "in_context_message_ids": [],
            }
        ],
        "groups": [], "files": [], "sources": [], "tools": [], "mcp_servers": [],
        "blocks": [{"id": "block-0", "label": "persona", "value": "I help.", "limit": 100000}],
    }  # fmt: skip
    doc.update(parts)
    return doc


def _write(tmp_path: Path, doc: Any, name: str = "helper.af") -> Path:
    path = tmp_path / name
    text = doc if isinstance(doc, (str, bytes)) else json.dumps(doc)
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def _agent(**fields: Any) -> dict[str, Any]:
    return {**_af()["agents"][0], **fields}


def _nested(depth: int) -> dict[str, Any]:
    value: Any = "deep"
    for _ in range(depth):
        value = {"x": value}
    return _af(agents=[_agent(metadata=value)])


HOSTILE = [
    ('{"agents": [', "helper.af:1:13: not valid JSON: Expecting value"),
    (b'{"agents": "\xff"}', "helper.af: not UTF-8 text (byte 12)"),
    ('{"agents": [], "blocks": [{"id": "b", "label": "x", "limit": NaN}]}', "NaN is not a JSON"),
    ("[1, 2]", "helper.af: expected a JSON object (an Agent File), got a list"),
    ('"just text"', "helper.af: expected a JSON object (an Agent File), got a string"),
    ({"blocks": []}, "helper.af: agents: expected a list of agents, got nothing"),
    ({"agents": {"a": 1}}, "helper.af: agents: expected a list of agents, got an object"),
    (_af(agents=["agent-0"]), "helper.af: agents[0]: expected an object, got a string"),
    (_af(agents=[_agent(name=7)]), "agents[0].name: expected a string, got a number"),
    (_af(agents=[_agent(tags=["a", 3])]), "agents[0].tags[1]: expected a string, got a number"),
    (_af(agents=[_agent(block_ids=["block-0", "block-9"])]),
     "agents[0].block_ids[1]: 'block-9' is not the id of any of blocks"),
    (_af(agents=[_agent(tool_ids=["tool-0"])]),
     "agents[0].tool_ids[0]: 'tool-0' is not the id of any of tools"),
    (_af(agents=[_agent(in_context_message_ids=["message-3"])]),
     "agents[0].in_context_message_ids[0]: 'message-3' is not the id of any of agents[0].messages"),
    (_af(blocks=[{"id": "agent-0", "label": "x"}]),
     "blocks[0].id: id 'agent-0' is also the id of agents[0].id"),
    (_af(blocks=[{"id": "block-0", "label": "x", "limit": True}]),
     "blocks[0].limit: expected a whole number, got a boolean"),
    (_af(blocks=[{"id": "block-0", "label": "x", "limit": 1.5}]),
     "blocks[0].limit: expected a whole number, got a number"),
    (_af(tools=[{"id": "tool-0"}]), "tools[0].name: missing (a string)"),
    (_af(groups=[{"id": "group-0", "agent_ids": ["agent-0"], "manager_config": {
        "manager_type": "supervisor", "manager_agent_id": "agent-7"}}]),
     "groups[0].manager_config.manager_agent_id: 'agent-7' is not the id of any of agents"),
    (_af(agents=[_agent(messages=[{"id": "message-0"}])]),
     "agents[0].messages[0].role: missing (a string)"),
    (_af(files=[{"id": "file-0", "source_id": "source-0"}]),
     "files[0].source_id: 'source-0' is not the id of any of sources"),
    ('{"agents": [], "blocks": [{"id": "b", "label": "x", "limit": 1' + "0" * 5000 + "}]}",
     "helper.af: not valid JSON: Exceeds the limit"),
    (_nested(100), f"helper.af: nested more than {af_format.MAX_DEPTH} levels deep"),
    ('{"agents": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested more than"),
]  # fmt: skip


@pytest.mark.parametrize(("content", "expected"), HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_agent_files_are_refused_in_one_located_line(
    cli: Cli, tmp_path: Path, content: Any, expected: str
) -> None:
    path = _write(tmp_path, content)
    out = tmp_path / "out" / "m.yaml"
    r = cli("convert", str(path), "-o", str(out))
    assert r.code == 1
    assert r.out == ""
    assert r.err.count("\n") == 1, r.err  # one line, no traceback
    assert r.err.startswith(f"error: {path}") and expected in r.err, r.err
    assert not (tmp_path / "out").exists()  # nothing written


def test_files_that_are_not_agent_files_are_refused(cli: Cli, tmp_path: Path) -> None:
    missing = cli("convert", str(tmp_path / "nowhere.af"))
    assert missing.code == 1
    assert "nowhere.af: cannot read: No such file or directory" in missing.err
    folder = cli("convert", str(tmp_path))
    assert folder.code == 1 and "is a directory, not a file" in folder.err
    fifo = tmp_path / "pipe.af"
    os.mkfifo(fifo)
    piped = cli("convert", str(fifo))  # never blocks waiting for a writer
    assert piped.code == 1 and "not a regular file" in piped.err


def test_a_huge_file_is_refused_before_it_is_read(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(af_format, "MAX_BYTES", 1000)
    path = _write(tmp_path, _af(agents=[_agent(system="x" * 2000)]))
    r = cli("convert", str(path))
    assert r.code == 1
    assert f"{path}: is {path.stat().st_size} bytes; the limit is 1000" in r.err


def test_an_agent_file_converts_to_a_manifest_that_applies_and_converges(
    cli: Cli, tmp_path: Path
) -> None:
    shared = {"id": "block-1", "label": "organization", "value": "Shared.", "description": "Org."}
    doc = _af(
        agents=[
            _agent(block_ids=["block-0", "block-1"], tags=["team", "letta-apply:old"],
                   metadata={"owner": "ops", "letta_apply": {"stack": "old", "address": "x"}}),
            _agent(id="agent-1", name="Second Bot", block_ids=["block-2", "block-1"],
                   agent_type="memgpt_v2_agent", timezone="Europe/Paris"),
        ],
        blocks=[
            {"id": "block-0", "label": "persona", "value": "I help.", "limit": 5000},
            shared,
            {"id": "block-2", "label": "persona", "value": "I second.", "read_only": True},
        ],
    )  # fmt: skip
    path = _write(tmp_path, doc, "Team Bots.af")
    out = tmp_path / "stack" / "team.yaml"
    r = cli("convert", str(path), "-o", str(out))
    assert r.code == 0, r.err
    assert 'stack "team-bots", 2 agent(s)' in r.err
    manifest = yaml.safe_load(out.read_text())
    assert manifest["stack"] == "team-bots"  # from the file's name
    assert manifest["blocks"] == {"organization": {"value": "Shared.", "description": "Org."}}
    helper, second = manifest["agents"]["helper"], manifest["agents"]["second_bot"]
    assert helper == {
        "system": "You help.", "model": "letta/letta-free", "embedding": "letta/letta-free",
        "include_base_tools": False, "tags": ["team"], "metadata": {"owner": "ops"},
        "memory_blocks": [{"label": "persona", "value": "I help.", "limit": 5000}],
        "blocks": ["organization"],
    }  # fmt: skip
    assert second["name"] == "Second Bot" and second["agent_type"] == "memgpt_v2_agent"
    assert second["timezone"] == "Europe/Paris"
    assert second["memory_blocks"] == [
        {"label": "persona", "value": "I second.", "read_only": True}
    ]
    first = cli("apply", "-f", str(out), "--auto-approve")
    assert first.code == 0, first.err
    again = cli("plan", "-f", str(out), "--detailed-exitcode")
    assert again.code == 0 and "No changes." in again.out, again.out


def test_secrets_become_sensitive_variables_and_their_values_are_never_written(
    cli: Cli, tmp_path: Path
) -> None:
    # Letta blanks them in its export; a file made by hand may not have.
    plain = {"TICKET_KEY": "hunter2-plain"}
    doc = _af(agents=[_agent(secrets=plain, tool_exec_environment_variables=plain)])
    path = _write(tmp_path, doc)
    out = tmp_path / "m.yaml"
    r = cli("convert", str(path), "-o", str(out))
    assert r.code == 0, r.err
    text = out.read_text()
    assert "hunter2" not in text + r.out + r.err
    manifest = yaml.safe_load(text)
    assert manifest["variables"] == {
        "helper_TICKET_KEY": {
            "sensitive": True,
            "description": "TICKET_KEY for the tools of agent.helper (from the Agent File)",
        }
    }
    assert manifest["agents"]["helper"]["secrets"] == {"TICKET_KEY": "${var.helper_TICKET_KEY}"}
    assert "note: agents[0].secrets: TICKET_KEY (var.helper_TICKET_KEY): made sensitive" in r.err
    unset = cli("validate", "-f", str(out))  # the value is the user's to give, at apply
    assert unset.code == 0 and "without values for var.helper_TICKET_KEY" in unset.out
    given = cli("validate", "-f", str(out), "--var", "helper_TICKET_KEY=s3cret-value")
    assert given.code == 0, given.err


def test_text_from_the_file_is_kept_literal_not_read_as_references(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", "/home/secret-user")
    doc = _af(
        agents=[_agent(system="Costs $${x} or ${env.HOME}", tags=["${var.x}"])],
        blocks=[{"id": "block-0", "label": "persona", "value": "I am ${env.HOME}"}],
    )
    out = tmp_path / "m.yaml"
    assert cli("convert", str(_write(tmp_path, doc)), "-o", str(out)).code == 0
    assert cli("apply", "-f", str(out), "--auto-approve").code == 0
    (agent,) = cli.fake.agents.values()
    assert agent["system"] == "Costs $${x} or ${env.HOME}"
    assert "${var.x}" in agent["tags"]
    (persona,) = [b for b in cli.fake.blocks.values() if b["label"] == "persona"]
    assert persona["value"] == "I am ${env.HOME}"


_SOURCE = '''def lookup_ticket(ticket_id: str) -> str:
    """Look up a ticket.

    Args:
        ticket_id: The ticket's id.
    """
    return ticket_id
'''


def _tools_af() -> dict[str, Any]:
    tools = [
        {"id": "tool-0", "name": "lookup_ticket", "tool_type": "custom", "source_type": "json",
         "source_code": _SOURCE, "tags": ["support"], "return_char_limit": 50000,
         "json_schema": {"name": "lookup_ticket", "description": "Look up a ticket."},
         "description": "Look up a ticket."},
        {"id": "tool-1", "name": "send_message", "tool_type": "letta_core"},
        {"id": "tool-2", "name": "web_search", "tool_type": "letta_builtin"},
        {"id": "tool-3", "name": "../../evil", "tool_type": "custom",
         "source_code": _SOURCE.replace("lookup_ticket", "evil")},
        {"id": "tool-4", "name": "no_doc", "tool_type": "custom",
         "source_code": "def no_doc():\n    return 1\n"},
    ]  # fmt: skip
    rules = [
        {"type": "max_count_per_step", "tool_name": "lookup_ticket", "max_count_limit": 2,
         "prompt_template": None},
        {"type": "exit_loop", "tool_name": "send_message"},  # Letta's own loop rule
        {"type": "requires_approval", "tool_name": "lookup_ticket"},
        {"type": "made_up", "tool_name": "lookup_ticket"},
    ]  # fmt: skip
    agent = _agent(tool_ids=["tool-0", "tool-1", "tool-2", "tool-3", "tool-4"], tool_rules=rules)
    return _af(agents=[agent], tools=tools)


def test_custom_tools_get_their_sources_beside_the_manifest(cli: Cli, tmp_path: Path) -> None:
    path = _write(tmp_path, _tools_af())
    stdout = cli("convert", str(path))
    assert stdout.code == 1
    assert "holds 2 custom tool(s): give -o FILE" in stdout.err and stdout.out == ""
    out = tmp_path / "stack" / "m.yaml"
    r = cli("convert", str(path), "-o", str(out))
    assert r.code == 0, r.err
    assert (tmp_path / "stack" / "tools" / "lookup_ticket.py").read_text() == _SOURCE
    assert sorted(p.name for p in (tmp_path / "stack" / "tools").iterdir()) == [
        "evil.py", "lookup_ticket.py",
    ]  # a tool's name never makes a path outside the folder  # fmt: skip
    manifest = yaml.safe_load(out.read_text())
    assert manifest["tools"] == {
        "lookup_ticket": {"source_file": "tools/lookup_ticket.py", "tags": ["support"]},
        "evil": {"source_file": "tools/evil.py"},
    }
    agent = manifest["agents"]["helper"]
    assert agent["tools"] == ["evil", "lookup_ticket", "web_search"]
    assert "include_base_tools" not in agent  # it has Letta's base tools
    assert agent["tool_rules"] == [
        {"type": "max_count_per_step", "tool_name": "lookup_ticket", "max_count_limit": 2}
    ]
    assert "note: tools[4] ('no_doc'): its source has no function with a docstring" in r.err
    assert "note: tools[3] ('../../evil'): its source makes the tool 'evil'; converted so" in r.err
    assert "note: agents[0].tool_rules[3]: a rule of type 'made_up', not converted" in r.err
    assert cli("apply", "-f", str(out), "--auto-approve").code == 0
    assert cli("plan", "-f", str(out), "--detailed-exitcode").code == 0


def test_a_tool_source_that_exists_with_other_content_is_never_overwritten(
    cli: Cli, tmp_path: Path
) -> None:
    mine = tmp_path / "tools" / "lookup_ticket.py"
    mine.parent.mkdir()
    mine.write_text("# mine\n")
    out = tmp_path / "m.yaml"
    r = cli("convert", str(_write(tmp_path, _tools_af())), "-o", str(out))
    assert r.code == 1
    assert f"{mine} exists with other content; nothing was written" in r.err
    assert mine.read_text() == "# mine\n"
    assert not out.exists() and not (tmp_path / "tools" / "evil.py").exists()


def test_messages_are_reported_or_kept_as_the_first_messages_when_asked(
    cli: Cli, tmp_path: Path
) -> None:
    said = json.dumps({"type": "user_message", "message": "Hi there", "time": "now"})
    beat = json.dumps({"type": "heartbeat", "reason": "continue"})
    sent = {"name": "send_message", "arguments": json.dumps({"message": "Hello!"})}
    call = {"id": "c1", "type": "function", "function": sent}
    messages = [
        {"id": "message-0", "role": "system", "content": [{"type": "text", "text": "prompt"}]},
        {"id": "message-1", "role": "user", "content": [{"type": "text", "text": said}]},
        {"id": "message-2", "role": "assistant", "content": "thinking", "tool_calls": [call]},
        {"id": "message-3", "role": "tool", "content": "ok"},
        {"id": "message-4", "role": "user", "content": beat},
        {"id": "message-5", "role": "assistant", "content": [{"type": "text", "text": "Bye."}]},
    ]
    path = _write(tmp_path, _af(agents=[_agent(messages=messages)]))
    plain = cli("convert", str(path))
    assert plain.code == 0, plain.err
    assert "initial_message_sequence" not in plain.out
    assert (
        "note: agents[0].messages: 6 message(s) not converted (history is not configuration"
        in plain.err
    )
    kept = cli("convert", str(path), "--messages")
    assert kept.code == 0, kept.err
    assert yaml.safe_load(kept.out)["agents"]["helper"]["initial_message_sequence"] == [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "assistant", "content": "Bye."},
    ]
    assert "note: agents[0].messages: 3 of 6 kept as initial_message_sequence; 3 not" in kept.err


def test_what_a_manifest_does_not_manage_is_reported_a_line_each(cli: Cli, tmp_path: Path) -> None:
    doc = _af(
        agents=[_agent(source_ids=["source-0"], identity_ids=["identity-x"],
                       model_settings={"provider_type": "openai"})],
        sources=[{"id": "source-0", "name": "handbook"}],
        files=[{"id": "file-0", "source_id": "source-0", "file_name": "a.md"}],
        skills=[{"name": "pdf", "source_url": "anthropic:pdf"}],
        blocks=[_af()["blocks"][0], {"id": "block-7", "label": "orphan", "value": "x"}],
    )  # fmt: skip
    r = cli("convert", str(_write(tmp_path, doc)))
    assert r.code == 0, r.err
    notes = [line for line in r.err.splitlines() if line.startswith("note: ")]
    assert notes == [
        "note: blocks[1] ('orphan'): held by no agent; not converted",
        "note: agents[0].identity_ids: 1 identities not converted (an Agent File does not "
        "describe them)",
        "note: agents[0]: 1 folder(s) attached, not converted (see sources)",
        "note: agents[0].model_settings: not converted (declare `model_settings:` to manage it)",
        "note: sources[0] ('handbook'): a folder of 1 file(s), not converted (declare it under "
        "`folders:` with its files)",
        "note: skills: 1 skill(s) not converted (a manifest has none)",
    ]


def test_groups_and_mcp_servers_convert_by_key(cli: Cli, tmp_path: Path) -> None:
    mcp = {"mcp": {"server_name": "acme-search", "server_id": "mcp_server-x"}}
    mcp_tool = {"id": "tool-0", "name": "search", "tool_type": "external_mcp", "metadata_": mcp}
    doc = _af(
        agents=[_agent(tool_ids=["tool-0"]), _agent(id="agent-1", name="worker", block_ids=[])],
        tools=[mcp_tool],
        mcp_servers=[{"id": "mcp_server-0", "server_name": "acme-search",
                      "server_type": "streamable_http", "server_url": "https://mcp.example.com"}],
        groups=[{"id": "group-0", "agent_ids": ["agent-1"], "description": "Team.",
                 "manager_config": {"manager_type": "supervisor", "manager_agent_id": "agent-0"}}],
    )  # fmt: skip
    r = cli("convert", str(_write(tmp_path, doc)))
    assert r.code == 0, r.err
    manifest = yaml.safe_load(r.out)
    assert manifest["mcp_servers"] == {
        "acme-search": {
            "mcp_server_type": "streamable_http",
            "server_url": "https://mcp.example.com",
        }
    }
    assert manifest["agents"]["helper"]["mcp_tools"] == [
        {"server": "acme-search", "tools": ["search"]}
    ]
    assert manifest["groups"] == {
        "helper_group": {"manager_type": "supervisor", "manager_agent": "helper",
                         "agents": ["worker"], "description": "Team."}
    }  # fmt: skip
    assert "credentials (token, headers, env) are never in an Agent File" in r.err


def test_a_file_whose_manifest_would_not_validate_writes_nothing(cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "m.yaml"
    doc = _af(agents=[_agent(tags=["x" * 300])])
    r = cli("convert", str(_write(tmp_path, doc)), "-o", str(out))
    assert r.code == 1
    assert r.err.count("\n") == 1, r.err
    assert "cannot convert: the manifest made from it would not validate:" in r.err
    assert f"{out}: agents.helper.tags[0]" in r.err
    assert not out.exists()


def test_the_stack_comes_from_the_file_name_or_stack(cli: Cli, tmp_path: Path) -> None:
    named = cli("convert", str(_write(tmp_path, _af(), "My Agent (v2).af")))
    assert yaml.safe_load(named.out)["stack"] == "my-agent-v2"
    given = cli("convert", str(_write(tmp_path, _af(), "x.af")), "--stack", "prod")
    assert yaml.safe_load(given.out)["stack"] == "prod"
    nameless = cli("convert", str(_write(tmp_path, _af(), "___.af")))
    assert nameless.code == 1 and "give --stack" in nameless.err
    bad = cli("convert", str(_write(tmp_path, _af(), "x.af")), "--stack", "Not Valid")
    assert bad.code == 1 and "would not validate" in bad.err and "stack" in bad.err


def _rich_af() -> dict[str, Any]:
    """An Agent File using every part convert reads: shared and own blocks, tools of each kind,
    rules, secrets, messages, an MCP server, a group, a folder with a file, a skill."""
    doc = _tools_af()
    agent = doc["agents"][0]
    agent.update(
        block_ids=["block-0", "block-1"], secrets={"K": ""}, tags=["t"], metadata={"m": 1},
        source_ids=["source-0"], timezone="Europe/Paris", response_format={"type": "json_object"},
        messages=[{"id": "message-0", "role": "user", "content": "hi",
                   "tool_calls": [{"function": {"name": "send_message", "arguments": "{}"}}]}],
        in_context_message_ids=["message-0"],
        files_agents=[{"file_id": "file-0", "source_id": "source-0"}],
    )  # fmt: skip
    second = _agent(id="agent-1", name="worker", block_ids=["block-1"], tool_ids=["tool-5"])
    doc["agents"].append(second)
    doc["blocks"].append({"id": "block-1", "label": "org", "value": "v", "metadata": {"k": "v"}})
    doc["tools"].append(
        {"id": "tool-5", "name": "search", "tool_type": "external_mcp",
         "metadata_": {"mcp": {"server_name": "s"}}}
    )  # fmt: skip
    doc["mcp_servers"] = [
        {"id": "mcp_server-0", "server_name": "s", "server_type": "stdio",
         "stdio_config": {"command": "uvx", "args": ["a"]}}
    ]  # fmt: skip
    doc["groups"] = [
        {"id": "group-0", "agent_ids": ["agent-1"], "description": "d",
         "manager_config": {"manager_type": "supervisor", "manager_agent_id": "agent-0"}}
    ]  # fmt: skip
    doc["sources"] = [{"id": "source-0", "name": "docs"}]
    doc["files"] = [{"id": "file-0", "source_id": "source-0", "file_name": "a.md"}]
    doc["skills"] = [{"name": "pdf"}]
    return doc


def _paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [path] if path else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*path, i))
    return out


def _replaced(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    copy = json.loads(json.dumps(doc))
    target = copy
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = new
    return copy


HOSTILE_VALUES = [None, True, "${env.HOME}", [3], {"a": [1]}]


def test_no_value_anywhere_in_an_agent_file_makes_convert_fail_badly(
    cli: Cli, tmp_path: Path
) -> None:
    """Every field of a rich file, replaced by each hostile value in turn: convert makes a
    manifest that validates, or refuses with one line; no other exception, ever."""
    rich = _rich_af()
    assert cli("convert", str(_write(tmp_path, rich)), "-o", str(tmp_path / "m.yaml")).code == 0
    runs = refused = 0
    for path in _paths(rich):
        for value in HOSTILE_VALUES:
            runs += 1
            try:
                converted = convert(check_agent_file(_replaced(rich, path, value), "x.af"), "s")
                check_converted(converted, "m.yaml")
            except LettaApplyError as e:
                refused += 1
                assert "\n" not in str(e) and str(e).startswith("x.af"), f"{path}: {e}"
    assert runs > 500 and 0 < refused < runs


def test_letta_s_own_sleep_time_agent_and_group_become_enable_sleeptime(
    cli: Cli, tmp_path: Path
) -> None:
    doc = _af(
        agents=[
            _agent(block_ids=["block-0"]),
            _agent(id="agent-1", name="helper-sleeptime", agent_type="sleeptime_agent",
                   block_ids=["block-0", "block-1"]),
        ],
        blocks=[_af()["blocks"][0], {"id": "block-1", "label": "memory_persona", "value": "x"}],
        groups=[{"id": "group-0", "agent_ids": ["agent-1"], "description": "",
                 "manager_config": {"manager_type": "sleeptime", "manager_agent_id": "agent-0",
                                    "sleeptime_agent_frequency": 5}}],
    )  # fmt: skip
    r = cli("convert", str(_write(tmp_path, doc)))
    assert r.code == 0, r.err
    manifest = yaml.safe_load(r.out)
    assert list(manifest["agents"]) == ["helper"] and "groups" not in manifest
    helper = manifest["agents"]["helper"]
    assert helper["enable_sleeptime"] is True
    assert helper["memory_blocks"] == [{"label": "persona", "value": "I help."}]  # not shared
    assert "blocks" not in manifest  # the block it shared with its sleep-time agent is its own
    assert (
        "note: agents[1] ('helper-sleeptime'): the sleep-time agent Letta made for agent.helper; "
        "not converted" in r.err
    )
    assert "note: groups[0]: Letta's sleep-time group; not converted" in r.err
    assert "held by no agent" not in r.err
