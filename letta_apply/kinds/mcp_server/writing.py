"""MCP servers in the manifests letta-apply writes (kinds.writing): the servers the exported
agents' tools come from, and those of an Agent File, each without its secrets (token, header
and env values: declared from sensitive variables, never written into a manifest); and each
agent's tools of theirs (`mcp_tools:`), for the agent kind to declare. A server another stack
owns (a mark block names it) is left out: its tools stay in the agent's `tools:`, by name."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.jsonish import JsonObject, items, obj, objs, opt_text
from ...server.routes import BLOCKS, TOOLS
from ..resource import mark_of
from ..writing import Conversion, Export
from .kind import MARK_LABEL, MCP_TOOL, LiveMcpServer, McpServerKind
from .requests import ROUTE


def export_servers(kind: McpServerKind, ex: Export) -> JsonObject:
    """Three listings (servers, tools, mark blocks), only when an exported agent has MCP tools.
    Each agent's `mcp_tools:` entries, by its id, go to `ex.extra`."""
    tools = {str(a["id"]): objs(a.get("tools")) for a in ex.selected}
    if not any(t.get("tool_type") == MCP_TOOL for used in tools.values() for t in used):
        return {}
    owned = {
        str(mark_of(b.get("metadata")).get("mcp_server"))
        for b in BLOCKS.list(ex.client, {"label": MARK_LABEL})
    }
    servers = {
        str(s["id"]): LiveMcpServer.from_api(s)
        for s in objs(ROUTE.get(ex.client))
        if str(s["id"]) not in owned
    }
    server_of = {
        str(t["id"]): opt_text(obj(obj(t.get("metadata_")).get("mcp")).get("server_id"))
        for t in TOOLS.list(ex.client)
        if t.get("tool_type") == MCP_TOOL
    }
    entries: JsonObject = {}
    per_agent: dict[str, list[JsonObject]] = {}
    for agent_id, used_tools in tools.items():
        used: dict[str, list[str]] = {}
        for t in used_tools:
            sid = server_of.get(str(t["id"]))
            if t.get("tool_type") == MCP_TOOL and sid is not None and sid in servers:
                used.setdefault(sid, []).append(str(t.get("name") or ""))
        for sid in sorted(used, key=lambda i: servers[i].server_name):
            key = ex.keys.get(kind.name, {}).get(sid)
            if key is None:
                key = ex.key(kind.name, sid, servers[sid].server_name)
                entries[key] = kind.export(servers[sid])
            per_agent.setdefault(agent_id, []).append({"server": key, "tools": sorted(used[sid])})
    ex.extra[kind.name] = per_agent
    return entries


def server_entry(s: Mapping[str, object]) -> JsonObject | None:
    """An Agent File's MCP server as a manifest declares it, or None when its transport is
    not given in full."""
    kind = s.get("server_type")
    out: JsonObject = {"server_name": s["server_name"], "mcp_server_type": kind}
    if kind in ("streamable_http", "sse") and s.get("server_url"):
        out["server_url"] = s["server_url"]
        return out
    stdio = obj(s.get("stdio_config"))
    if kind == "stdio" and isinstance(stdio.get("command"), str):
        out["command"] = stdio["command"]
        if isinstance(stdio.get("args"), list):
            out["args"] = [str(a) for a in items(stdio["args"])]
        return out
    return None


def convert_servers(kind: McpServerKind, conv: Conversion) -> JsonObject:
    """The file's MCP servers, and its MCP tools by the file's ids: (server key, tool name) in
    `conv.extra`, for the agents that use them."""
    out: JsonObject = {}
    keys: dict[str, str] = {}
    for i, s in enumerate(conv.entities("mcp_servers")):
        entry = server_entry(s)
        if entry is None:
            conv.note(f"mcp_servers[{i}] ({s['server_name']!r}): its transport is not "
                      "given in full; not converted")  # fmt: skip
            continue
        name = str(s["server_name"])
        key = keys[name] = conv.key(kind.name, str(s["id"]), name)
        if entry["server_name"] == key:
            del entry["server_name"]
        out[key] = entry
        conv.note(
            f"mcp_servers[{i}] ({s['server_name']!r}): credentials (token, headers, env) "
            "are never in an Agent File: declare them from sensitive variables if it needs "
            "them"
        )
    tools: dict[str, tuple[str, str]] = {}
    for i, t in enumerate(conv.entities("tools")):
        if t.get("tool_type") != MCP_TOOL:
            continue
        mcp = obj(t.get("metadata_")).get("mcp")
        server = mcp.get("server_name") if isinstance(mcp, dict) else None
        if isinstance(server, str) and server in keys:
            tools[str(t["id"])] = (keys[server], str(t["name"]))
        else:
            conv.note(f"tools[{i}] ({t['name']!r}): an MCP tool of no MCP server in the "
                      "file; not converted")  # fmt: skip
    conv.extra[kind.name] = tools
    return out
