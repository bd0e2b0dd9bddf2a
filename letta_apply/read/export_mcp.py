"""What `export` writes for the exported agents' MCP tools (server.export): the MCP servers they
come from, without their secrets, with the imports that adopt them, and each agent's
`mcp_tools:`. A server another stack owns (a mark block names it) is left out: its tools stay
in the agent's `tools:`, by name."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..kinds.agent.kind import LiveAgent
from ..kinds.base import mark_of
from ..kinds.mcp_server.kind import MARK_LABEL, MCP_TOOL, LiveMcpServer, McpServerKind
from ..server.client import LettaClient

Key = Callable[[str, set[str]], str]


def export_mcp(
    client: LettaClient, agents: Iterable[LiveAgent], imports: list[dict[str, str]], key: Key
) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """The `mcp_servers:` entries and each agent's `mcp_tools:` (by agent id). Three listings
    (servers, tools, mark blocks), only when an exported agent has MCP tools."""
    agents = list(agents)
    if not any(t.tool_type == MCP_TOOL for a in agents for t in a.tools):
        return {}, {}
    owned = {
        str(mark_of(b.get("metadata")).get("mcp_server"))
        for b in client.paginate("/v1/blocks/", {"label": MARK_LABEL})
    }
    servers = {
        str(s["id"]): LiveMcpServer.from_api(s)
        for s in client.request("GET", "/v1/mcp-servers/")
        if str(s["id"]) not in owned
    }
    server_of = {
        str(t["id"]): (t.get("metadata_") or {}).get("mcp", {}).get("server_id")
        for t in client.paginate("/v1/tools/", {})
        if t.get("tool_type") == MCP_TOOL
    }
    kind = McpServerKind()
    keys: dict[str, str] = {}
    taken: set[str] = set()
    entries: dict[str, Any] = {}
    per_agent: dict[str, list[dict[str, Any]]] = {}
    for agent in agents:
        used: dict[str, list[str]] = {}
        for t in agent.tools:
            sid = server_of.get(t.id)
            if t.tool_type == MCP_TOOL and sid in servers:
                used.setdefault(sid, []).append(t.name)
        for sid in sorted(used, key=lambda i: servers[i].server_name):
            if sid not in keys:
                keys[sid] = key(servers[sid].server_name, taken)
                entries[keys[sid]] = kind.export(servers[sid])
                imports.append({"to": f"mcp_server.{keys[sid]}", "id": sid})
            entry = {"server": keys[sid], "tools": sorted(used[sid])}
            per_agent.setdefault(agent.id, []).append(entry)
    return entries, per_agent
