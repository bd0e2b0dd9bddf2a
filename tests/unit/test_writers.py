"""What `export` and `convert` write, byte for byte, for a fleet that holds every kind: the
manifest (its sections, their order, the imports) and the notes. Ids are the server's, so they
are shown as `<id N>` in the order they first appear.

`UPDATE_GOLDEN=1 pytest tests/unit/test_writers.py` rewrites the expected files from the current
output instead of comparing; review the diff before keeping it.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from letta_apply.kinds import KINDS
from tests.helpers import Cli, write

UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
GOLDEN = Path(__file__).parent / "writers"

FLEET = """\
version: 1
stack: src
identities:
  alice: {identifier_key: alice-1, name: Alice, identity_type: user, properties: {tier: gold}}
  acme: {identity_type: org}
mcp_servers:
  search:
    server_name: acme-search
    mcp_server_type: streamable_http
    server_url: https://mcp.example.com/mcp
blocks:
  organization:
    value: "Facts.\\nMore facts.\\n"
    description: Shared facts.
    limit: 3000
    identities: [alice]
  policy: {value: Be kind., read_only: true, metadata: {team: a}, tags: [t1]}
agents:
  supervisor:
    model: letta/letta-free
    embedding: letta/letta-free
    description: The boss.
    system: You lead.
    tags: [team, boss]
    metadata: {role: lead}
    memory_blocks:
      - {label: persona, value: "I am the supervisor.\\nBe kind.", limit: 4000}
      - {label: human, value: Someone.}
    blocks: [organization, policy]
    identities: [alice, acme]
    mcp_tools: [{server: search, tools: [lookup]}]
    tools: [web_search]
  worker:
    model: {provider: local, name: gpt-4o-mini}
    embedding: letta/letta-free
    tags: [team]
    memory_blocks: [{label: persona, value: I am the worker.}]
    blocks: [organization]
    folders: [handbook]
    archives: [facts]
providers:
  local:
    name: acme-local
    provider_type: openai
    api_key: sk-fleet-Xy7Qw2Lp
    base_url: http://127.0.0.1:9/v1
folders:
  handbook:
    name: acme-handbook
    description: Acme's support handbook.
    instructions: Search it first.
    metadata: {owner: support}
    embedding: letta/letta-free
    files: [docs/*.md]
archives:
  facts:
    name: acme-facts
    description: Facts.
    embedding: letta/letta-free
    passages: {files: [docs/*.md]}
groups:
  team:
    manager_type: supervisor
    manager_agent: supervisor
    agents: [worker]
    description: The team.
"""
"""Every kind, applied by stack `src`, then let go of (`removed:`): resources made by hand."""

_ADDRESS = re.compile(r"^  (\w+):$", re.M)


def _hand_built(cli: Cli, tmp_path: Path) -> None:
    cli.fake.mcp_offers["acme-search"] = ["lookup", "fetch"]
    cli.fake.provider_offers["http://127.0.0.1:9/v1"] = ["gpt-4o-mini"]
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\nText.\n", encoding="utf-8")
    made = cli("apply", "-f", str(write(tmp_path, FLEET)), "--auto-approve")
    assert made.code == 0, made.out + made.err
    doc = yaml.safe_load(FLEET)
    gone = [f"{k.name}.{key}" for k in KINDS for key in doc.get(k.section) or ()]
    text = "version: 1\nstack: src\nremoved:\n" + "".join(f"  - from: {a}\n" for a in gone)
    let_go = cli("apply", "-f", str(write(tmp_path, text, "gone.yaml")), "--auto-approve")
    assert let_go.code == 0, let_go.out + let_go.err


def _ids_shown(text: str) -> str:
    """`text` with each server id as `<id N>`, N in the order of first appearance."""
    seen: dict[str, int] = {}

    def number(m: re.Match[str]) -> str:
        return f"<id {seen.setdefault(m.group(), len(seen) + 1)}>"

    return re.sub(r"\b[a-z_]+-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                  number, text)  # fmt: skip


def _same(name: str, text: str) -> None:
    expected = GOLDEN / name
    if UPDATE:
        expected.parent.mkdir(exist_ok=True)
        expected.write_text(text, encoding="utf-8")
        return
    assert expected.is_file(), f"no {expected}; run with UPDATE_GOLDEN=1 to write it"
    assert text == expected.read_text(encoding="utf-8")


def test_export_of_a_fleet_of_every_kind_is_byte_identical(cli: Cli, tmp_path: Path) -> None:
    _hand_built(cli, tmp_path)
    r = cli("export", "--stack", "copy", "--all", "--include-system")
    assert r.code == 0, r.err
    _same("export.yaml", _ids_shown(r.out))
    _same("export.err", _ids_shown(r.err))
    assert "sk-fleet-Xy7Qw2Lp" not in r.out + r.err  # a provider's key is never written
    assert cli("validate", "-f", str(write(tmp_path, r.out, "copy.yaml"))).code == 0


_SOURCE = '''def lookup_ticket(ticket_id: str) -> str:
    """Look up a ticket.

    Args:
        ticket_id: The ticket's id.
    """
    return ticket_id
'''


def _agent_file() -> dict[str, Any]:
    """An Agent File holding what convert converts and what it only reports, of every kind."""
    config = {"llm_config": {"handle": "letta/letta-free", "context_window": 30000},
              "embedding_config": {"handle": "letta/letta-free"}, "messages": [],
              "in_context_message_ids": []}  # fmt: skip
    mcp = {"mcp": {"server_name": "acme-search", "server_id": "mcp_server-x"}}
    return {
        "agents": [
            {**config, "id": "agent-0", "name": "helper", "system": "You help.",
             "description": "Helps.", "tags": ["team", "letta-apply:old"],
             "metadata": {"owner": "ops", "letta_apply": {"stack": "old"}},
             "block_ids": ["block-0", "block-1"], "identity_ids": ["identity-x"],
             "tool_ids": ["tool-0", "tool-1", "tool-2", "tool-3", "tool-5", "tool-6"],
             "tool_rules": [
                 {"type": "max_count_per_step", "tool_name": "lookup_ticket",
                  "max_count_limit": 2, "prompt_template": None},
                 {"type": "exit_loop", "tool_name": "send_message"},
                 {"type": "made_up", "tool_name": "lookup_ticket"},
             ],
             "secrets": {"TICKET_KEY": ""}, "source_ids": ["source-0"],
             "timezone": "Europe/Paris"},
            {**config, "id": "agent-1", "name": "Second Bot", "agent_type": "memgpt_v2_agent",
             "block_ids": ["block-2", "block-1"], "tool_ids": []},
            {**config, "id": "agent-2", "name": "helper-sleeptime",
             "agent_type": "sleeptime_agent", "block_ids": ["block-0"], "tool_ids": []},
        ],
        "blocks": [
            {"id": "block-0", "label": "persona", "value": "I help.\nGladly.", "limit": 5000},
            {"id": "block-1", "label": "organization", "value": "Shared.", "description": "Org."},
            {"id": "block-2", "label": "persona", "value": "I second.", "read_only": True},
            {"id": "block-3", "label": "orphan", "value": "x"},
        ],
        "tools": [
            {"id": "tool-0", "name": "lookup_ticket", "tool_type": "custom",
             "source_type": "json", "source_code": _SOURCE, "tags": ["support"],
             "return_char_limit": 2000, "pip_requirements": [{"name": "requests"}],
             "json_schema": {"name": "lookup_ticket", "description": "Look up a ticket."},
             "description": "Look up a ticket."},
            {"id": "tool-1", "name": "send_message", "tool_type": "letta_core"},
            {"id": "tool-2", "name": "web_search", "tool_type": "letta_builtin"},
            {"id": "tool-3", "name": "composio_thing", "tool_type": "external_composio"},
            {"id": "tool-4", "name": "no_doc", "tool_type": "custom",
             "source_code": "def no_doc():\n    return 1\n"},
            {"id": "tool-5", "name": "search", "tool_type": "external_mcp", "metadata_": mcp},
            {"id": "tool-6", "name": "stray", "tool_type": "external_mcp"},
        ],
        "mcp_servers": [
            {"id": "mcp_server-0", "server_name": "acme-search",
             "server_type": "streamable_http", "server_url": "https://mcp.example.com"},
            {"id": "mcp_server-1", "server_name": "half", "server_type": "stdio"},
        ],
        "groups": [
            {"id": "group-0", "agent_ids": ["agent-1"], "description": "Team.",
             "manager_config": {"manager_type": "supervisor", "manager_agent_id": "agent-0"}},
            {"id": "group-1", "agent_ids": ["agent-2"], "description": "",
             "manager_config": {"manager_type": "sleeptime", "manager_agent_id": "agent-0"}},
            {"id": "group-2", "agent_ids": ["agent-1"],
             "manager_config": {"manager_type": "swarm"}},
        ],
        "sources": [{"id": "source-0", "name": "handbook"}],
        "files": [{"id": "file-0", "source_id": "source-0", "file_name": "a.md"}],
        "skills": [{"name": "pdf", "source_url": "anthropic:pdf"}],
    }  # fmt: skip


def test_convert_of_an_agent_file_of_every_kind_is_byte_identical(cli: Cli, tmp_path: Path) -> None:
    path = tmp_path / "Team Bots.af"
    path.write_text(json.dumps(_agent_file()), encoding="utf-8")
    out = tmp_path / "stack" / "team.yaml"
    r = cli("convert", str(path), "-o", str(out))
    assert r.code == 0, r.err
    _same("convert.yaml", out.read_text(encoding="utf-8").replace(str(tmp_path), "<tmp>"))
    _same("convert.err", r.err.replace(str(tmp_path), "<tmp>"))
    assert (tmp_path / "stack" / "tools" / "lookup_ticket.py").read_text() == _SOURCE
