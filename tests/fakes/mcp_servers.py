"""MCP server routes of the fake Letta server (tests/fakes/server.py). MCP servers as Letta 0.16.8
keeps them: a token without "Bearer " (listed with it, under auth_header Authorization), headers
and env in plain; a streamable_http-shaped PATCH drops a token, an sse-shaped one writes it;
names are unique; registering and refreshing make a Letta tool of each tool offered, and deleting
the server deletes them."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes.common import Http, Route


class FakeMcpServers:
    """The MCP server part of the fake server; FakeLetta mixes it in."""

    tools: dict[str, dict[str, Any]]
    mcp_servers: dict[str, dict[str, Any]]
    mcp_offers: dict[str, list[str]]
    mcp_stdio: bool
    _delete_tool: Callable[[str], None]

    def mcp_server_routes(self, body: Any) -> list[Route]:
        return [
            ("GET", r"/v1/mcp-servers/", lambda: list(self.mcp_servers.values())),
            ("POST", r"/v1/mcp-servers/", lambda: self._create_mcp(body)),
            ("PATCH", r"/v1/mcp-servers/(mcp_server-[^/]+)", lambda i: self._patch_mcp(i, body)),
            ("DELETE", r"/v1/mcp-servers/(mcp_server-[^/]+)", self._delete_mcp),
            ("GET", r"/v1/mcp-servers/(mcp_server-[^/]+)/tools", self._mcp_registered),
            ("PATCH", r"/v1/mcp-servers/(mcp_server-[^/]+)/refresh", self._refresh_mcp),
            ("GET", r"/v1/tools/mcp/servers/([^/]+)/tools", self._mcp_offered),
        ]

    def _create_mcp(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["server_name"]
        if any(s["server_name"] == name for s in self.mcp_servers.values()):
            raise Http(409, f"MCP server with name '{name}' already exists")
        config = dict(body["config"])
        if config["mcp_server_type"] == "stdio" and not self.mcp_stdio:
            raise Http(400, "MCP stdio servers are disabled. Set MCP_DISABLE_STDIO=false.")
        sid = f"mcp_server-{uuid.uuid4()}"
        server = {"id": sid, "server_name": name, **_mcp_fields(config, {})}
        self.mcp_servers[sid] = server
        self._refresh_mcp(sid)
        return server

    def _patch_mcp(self, sid: str, body: dict[str, Any]) -> dict[str, Any]:
        server = self._get_mcp(sid)
        if body.get("server_name"):
            # As in Letta, a rename onto a taken name deletes the other server.
            for other in [i for i, s in self.mcp_servers.items() if i != sid]:
                if self.mcp_servers[other]["server_name"] == body["server_name"]:
                    del self.mcp_servers[other]
            server["server_name"] = body["server_name"]
        config = dict(body.get("config") or {})
        if config.get("mcp_server_type") == "streamable_http":
            config.pop("auth_token", None)
        server.update(_mcp_fields(config, server))
        return server

    def _get_mcp(self, sid: str) -> dict[str, Any]:
        if sid not in self.mcp_servers:
            raise Http(404, f"{sid} not found")
        return self.mcp_servers[sid]

    def _delete_mcp(self, sid: str) -> None:
        self._get_mcp(sid)
        for tid in [t["id"] for t in self._mcp_registered(sid)]:
            self._delete_tool(tid)
        del self.mcp_servers[sid]

    def _mcp_registered(self, sid: str) -> list[dict[str, Any]]:
        return [
            t for t in self.tools.values()
            if t.get("tool_type") == "external_mcp"
            and (t.get("metadata_") or {}).get("mcp", {}).get("server_id") == sid
        ]  # fmt: skip

    def _refresh_mcp(self, sid: str) -> dict[str, Any]:
        server = self._get_mcp(sid)
        offers = self.mcp_offers.get(server["server_name"], [])
        have = {t["name"]: t["id"] for t in self._mcp_registered(sid)}
        for name, tid in have.items():
            if name not in offers:
                self._delete_tool(tid)
        for name in offers:
            if name not in have:
                tid = f"tool-{uuid.uuid4()}"
                meta = {"mcp": {"server_name": server["server_name"], "server_id": sid}}
                tags = [f"mcp:{server['server_name']}"]
                self.tools[tid] = {"id": tid, "name": name, "tool_type": "external_mcp",
                                   "metadata_": meta, "tags": tags}  # fmt: skip
        return {
            "added": sorted(set(offers) - set(have)),
            "deleted": sorted(set(have) - set(offers)),
        }

    def _mcp_offered(self, name: str) -> list[dict[str, Any]]:
        if not any(s["server_name"] == name for s in self.mcp_servers.values()):
            raise Http(404, f"MCP server {name} not found")
        return [{"name": n, "description": f"{n} tool"} for n in self.mcp_offers.get(name, [])]


def _mcp_fields(config: Mapping[str, Any], old: Mapping[str, Any]) -> dict[str, Any]:
    """An MCP server's fields as listed, from a create or PATCH config over the `old` ones."""
    kind = old.get("mcp_server_type") or config["mcp_server_type"]
    if kind == "stdio":
        keys = ("command", "args", "env")
        out = {"mcp_server_type": kind, **{k: old.get(k) for k in keys}}
        out.update({k: config[k] for k in keys if config.get(k) is not None})
        return out
    token = config.get("auth_token")
    if isinstance(token, str):
        token = token.removeprefix("Bearer ")
    else:
        token = (old.get("auth_token") or "").removeprefix("Bearer ") or None
    headers = config.get("custom_headers")
    return {
        "mcp_server_type": kind,
        "server_url": config.get("server_url") or old.get("server_url"),
        "auth_header": "Authorization" if token else None,
        "auth_token": f"Bearer {token}" if token else None,
        "custom_headers": headers if headers is not None else old.get("custom_headers"),
    }
