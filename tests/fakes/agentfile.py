"""Letta 0.16.8's Agent File export (`GET /v1/agents/{id}/export`) on the fake server, for unit
tests only, shaped as Letta's AgentSerializationManager writes it (letta/schemas/agent_file.py,
letta/services/agent_serialization_manager.py at the 0.16.8 tag):

- one agent per request, numbered from 0 in every file; the manager of a group brings the group
  and the group's other agents along (their own groups are not: only their ids are named);
- file ids are given in the order Letta maps them: the agent, its messages, its tools, then its
  blocks, each in the agent's order; the lists are then sorted (tools by name, blocks by label),
  so an id does not say where its entity is;
- blocks without tags, agents with `llm_config`/`embedding_config` and no `model`, their
  messages (the first, the system message, holding the compiled prompt), secrets with their
  values blanked, and everything letta-apply marked still marked (the export copies metadata
  and tags as they are).

FakeLetta serves it (tests/fakes/agentfiles.py); `serve_exports` records the agents exported.
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.fakes.server import FakeLetta

_EXPORT = re.compile(r"/v1/agents/(agent-[^/]+)/export")


def serve_exports(fake: FakeLetta) -> list[str]:
    """Teach `fake` the export route; the list returned records the agents exported."""
    exported: list[str] = []

    def hook(request: httpx.Request) -> httpx.Response | None:
        m = _EXPORT.fullmatch(request.url.path)
        if request.method != "GET" or not m:
            return None
        if m.group(1) not in fake.agents:
            return httpx.Response(404, json={"detail": f"Agent {m.group(1)} not found"})
        exported.append(m.group(1))
        return httpx.Response(200, json=letta_export(fake, m.group(1)))

    fake.before.append(hook)
    return exported


class _Ids:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.counts: dict[str, int] = {}

    def __call__(self, db_id: str, prefix: str) -> str:
        if db_id not in self.ids:
            n = self.counts.get(prefix, 0)
            self.counts[prefix] = n + 1
            self.ids[db_id] = f"{prefix}-{n}"
        return self.ids[db_id]


def letta_export(fake: FakeLetta, agent_id: str) -> dict[str, Any]:
    """The Agent File Letta writes for one agent of `fake`."""
    ids = _Ids()
    wanted = [agent_id]
    groups = [g for g in fake.groups.values() if g.get("manager_agent_id") == agent_id]
    for g in groups:
        wanted += [a for a in g["agent_ids"] if a not in wanted]
    agents = [_agent(fake, fake.agents[a], ids) for a in wanted]
    tool_ids = dict.fromkeys(t for a in wanted for t in fake.agents[a]["tool_ids"])
    block_ids = dict.fromkeys(b for a in wanted for b in fake.agents[a]["block_ids"])
    tools = sorted(
        ({**fake.tools[t], "id": ids(t, "tool")} for t in tool_ids), key=lambda t: t["name"]
    )
    blocks = sorted((_block(fake.blocks[b], ids(b, "block")) for b in block_ids), key=_label)
    return {
        "agents": agents,
        "groups": [_group(g, ids) for g in groups],
        "blocks": blocks,
        "files": [],
        "sources": [],
        "tools": tools,
        "mcp_servers": [],
        "skills": [],
        "metadata": {"revision_id": "fake"},
        "created_at": "2026-01-01T00:00:00+00:00",
    }


def _label(block: dict[str, Any]) -> str:
    return str(block["label"])


def _agent(fake: FakeLetta, a: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    me = ids(a["id"], "agent")
    # The agent's messages (FakeLetta.messages_of), the first the system message, which holds
    # the compiled prompt.
    said = fake.messages_of(a["id"])
    prompt = f"{a['system']}\n<memory_blocks>...</memory_blocks>"
    messages = [
        {
            "id": ids(m["id"], "message"),
            "role": m["role"],
            "agent_id": me,
            "type": "message",
            "content": m["content"]
            if isinstance(m["content"], list)
            else [{"type": "text", "text": prompt if i == 0 else m["content"]}],
        }
        for i, m in enumerate(said)
    ]
    secrets = {row["key"]: "" for row in a.get("secrets") or ()}
    managed = [g["id"] for g in fake.groups.values() if g.get("manager_agent_id") == a["id"]]
    return {
        "id": me,
        "name": a["name"],
        "system": a["system"],
        "agent_type": a["agent_type"],
        "description": a.get("description"),
        "tags": list(a["tags"]),
        "metadata": dict(a["metadata"]),
        "tool_rules": list(a["tool_rules"]),
        "llm_config": {"handle": a.get("model"), "context_window": 30000},
        "embedding_config": {"handle": a.get("embedding"), "embedding_dim": 1536},
        "model": None,
        "embedding": None,
        "memory_blocks": [],
        "include_base_tools": False,
        "tool_ids": [ids(t, "tool") for t in a["tool_ids"]],
        "source_ids": [],
        "block_ids": [ids(b, "block") for b in a["block_ids"]],
        "group_ids": [ids(g, "group") for g in managed],
        "secrets": secrets or None,
        "tool_exec_environment_variables": secrets,
        "timezone": "UTC",
        "max_files_open": 5,
        "per_file_view_window_char_limit": 15000,
        "messages": messages,
        "in_context_message_ids": [m["id"] for m in messages],
        "files_agents": [],
    }


def _block(b: dict[str, Any], file_id: str) -> dict[str, Any]:
    return {
        "id": file_id,
        "label": b["label"],
        "value": b["value"],
        "limit": b["limit"],
        "description": b["description"],
        "read_only": b["read_only"],
        "metadata": dict(b["metadata"]),
        "tags": None,
    }


def _group(g: dict[str, Any], ids: _Ids) -> dict[str, Any]:
    config = {k: g[k] for k in ("manager_type", "max_turns") if g.get(k) is not None}
    if g.get("manager_agent_id"):
        config["manager_agent_id"] = ids(g["manager_agent_id"], "agent")
    return {
        "id": ids(g["id"], "group"),
        "agent_ids": [ids(a, "agent") for a in g["agent_ids"]],
        "description": g["description"],
        "manager_config": config,
        "shared_block_ids": [],
    }
