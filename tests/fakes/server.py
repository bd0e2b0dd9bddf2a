"""An in-memory stand-in for the parts of Letta's /v1 API letta-apply uses, for unit tests only.

It mimics the behaviours that matter to a provisioner (trailing-slash collection routes, tag
filters, `after` pagination, inline blocks losing their metadata, 409 on a duplicate label, 404
on detaching what is not attached) and plugs into LettaClient through httpx.MockTransport.
Integration tests use the real server instead.
"""

from __future__ import annotations

import itertools
import json
import re
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from letta_apply import LettaClient
from tests.fakes.agentfiles import FakeAgentFiles
from tests.fakes.archives import FakeArchives
from tests.fakes.folders import FakeFolders, Http
from tests.fakes.providers import FakeProviders
from tests.fakes.sleeptime import FakeSleeptime

Handler = Callable[[httpx.Request], httpx.Response | None]

BASE_TOOLS = [
    ("send_message", "letta_core"),
    ("conversation_search", "letta_core"),
    ("memory_insert", "letta_sleeptime_core"),
    ("web_search", "letta_builtin"),
]


MODELS = (
    "letta/letta-free", "openai/gpt-4o", "openai/gpt-4o-mini", "x/y", "x/z",
    "anthropic/claude-3-5-sonnet-20241022", "anthropic/claude-sonnet-4-20250514",
)  # fmt: skip
EMBEDDINGS = ("letta/letta-free", "openai/text-embedding-3-small", "x/y")


class FakeLetta(FakeFolders, FakeArchives, FakeAgentFiles, FakeSleeptime, FakeProviders):
    def __init__(self, *, base_tools: bool = True) -> None:
        """A server holding nothing but, with `base_tools`, a few of Letta's own tools."""
        self.blocks: dict[str, dict[str, Any]] = {}
        self.agents: dict[str, dict[str, Any]] = {}
        self.tools: dict[str, dict[str, Any]] = {}
        self.identities: dict[str, dict[str, Any]] = {}
        self.groups: dict[str, dict[str, Any]] = {}
        self.mcp_servers: dict[str, dict[str, Any]] = {}
        # The tools each MCP server offers, by server_name (what the MCP server itself says).
        self.mcp_offers: dict[str, list[str]] = {}
        self.init_folders()
        self.init_archives()
        self.init_providers()
        self.calls: list[tuple[str, str]] = []
        self.counts: Counter[str] = Counter()
        self.before: list[Handler] = []  # fault injection: return a response to short-circuit
        self.after: list[Handler] = []  # fault injection once the request was carried out
        self.sleeps: list[float] = []  # waits the client asked for (it never really sleeps)
        # The handles the server serves (GET /v1/models/, /v1/models/embedding).
        self.page_cap: Callable[[], int] | None = None  # items a list page holds, if capped
        # Letta Cloud's projects (GET /v1/projects); None: a self-hosted server, which has none.
        self.projects: list[dict[str, str]] | None = None
        self.models = set(MODELS)
        self.mcp_stdio = True  # whether stdio MCP servers are allowed (MCP_DISABLE_STDIO=false)
        self.embeddings = set(EMBEDDINGS)
        self._seq = itertools.count()
        for name, kind in BASE_TOOLS if base_tools else ():
            tid = f"tool-{uuid.uuid4()}"
            self.tools[tid] = {"id": tid, "name": name, "tool_type": kind}

    @classmethod
    def holding(cls, state: Mapping[str, Any]) -> FakeLetta:
        """A server holding exactly `state`, listed in its order:

            {"tools": [...], "identities": [...], "blocks": [...], "agents": [...],
             "groups": [...]}

        Each resource as the server stores it, with its "id". Agents name their blocks and tools
        by id in "block_ids" and "tool_ids". Fields left out take the values a create would give
        them; there are no base tools but those `state` lists."""
        fake = cls(base_tools=False)
        for tool in state.get("tools", ()):
            fake.tools[tool["id"]] = {"tool_type": "custom", **tool}
        for identity in state.get("identities", ()):
            fake.identities[identity["id"]] = {
                "_seq": next(fake._seq), "agent_ids": [], "block_ids": [], "properties": [],
                **identity,
            }  # fmt: skip
        for block in state.get("blocks", ()):
            fake._new_block(block)
        for agent in state.get("agents", ()):
            for key, store in (("block_ids", fake.blocks), ("tool_ids", fake.tools)):
                unknown = [i for i in agent.get(key, ()) if i not in store]
                if unknown:
                    raise ValueError(f"agent {agent['id']}: {key} names nothing held: {unknown}")
            fake._new_agent(agent)
        for group in state.get("groups", ()):
            fake.groups[group["id"]] = {**fake._group_defaults(), **group}
        for server in state.get("mcp_servers", ()):
            offers = server.get("offers", [])
            fake.mcp_servers[server["id"]] = {k: v for k, v in server.items() if k != "offers"}
            fake.mcp_offers[server["server_name"]] = list(offers)
        fake.hold_folders(state, lambda: next(fake._seq))
        fake.hold_archives(state, lambda: next(fake._seq))
        fake.hold_providers(state, lambda: next(fake._seq))
        return fake

    # -- plumbing --------------------------------------------------------------------------

    def client(self, **kw: Any) -> LettaClient:
        kw.setdefault("sleep", self.sleeps.append)
        kw.setdefault("seed", 0)
        return LettaClient(
            "http://127.0.0.1:8283", transport=httpx.MockTransport(self.handle), **kw
        )

    @property
    def writes(self) -> int:
        return sum(n for m, n in self.counts.items() if m != "GET")

    @property
    def memory(self) -> dict[str, dict[str, Any]]:
        """The blocks but letta-apply's lock records and stack serials."""
        return {
            i: b for i, b in self.blocks.items()
            if "letta_apply_lock" not in (b.get("metadata") or {})
        }  # fmt: skip

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        # A passage search is a POST that changes nothing: counted as a read, as the client does.
        search = request.url.path == "/v1/passages/search"
        self.counts["GET" if search else request.method] += 1
        for hook in self.before:
            resp = hook(request)
            if resp is not None:
                return resp
        served = self._serve(request)
        for hook in self.after:  # may raise (a lost connection) or replace the answer
            resp = hook(request)
            if resp is not None:
                return resp
        return served

    def _serve(self, request: httpx.Request) -> httpx.Response:
        # Uploads are multipart: only JSON bodies are decoded here.
        is_json = request.headers.get("content-type", "").startswith("application/json")
        body: Any = json.loads(request.content) if request.content and is_json else None
        q = request.url.params
        path = request.url.path
        m = request.method
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/v1/health/", lambda: {"version": "0.16.8", "status": "ok"}),
            ("GET", r"/v1/models/", lambda: [{"handle": h} for h in sorted(self.models)]),
            ("GET", r"/v1/projects", self._projects),
            (
                "GET",
                r"/v1/models/embedding",
                lambda: [{"handle": h} for h in sorted(self.embeddings)],
            ),
            ("GET", r"/v1/blocks/", lambda: self._list(self.blocks, q)),
            ("POST", r"/v1/blocks/", lambda: self._create_block(body)),
            ("GET", r"/v1/blocks/(block-[^/]+)", lambda i: self._get(self.blocks, i)),
            ("GET", r"/v1/blocks/(block-[^/]+)/agents", self._block_agents),
            (
                "GET",
                r"/v1/agents/(agent-[^/]+)",
                lambda i: self._agent_view(self._get(self.agents, i), q.get_list("include")),
            ),
            ("DELETE", r"/v1/blocks/(block-[^/]+)", self._delete_block),
            ("DELETE", r"/v1/agents/(agent-[^/]+)", self._delete_agent),
            ("PATCH", r"/v1/blocks/(block-[^/]+)", lambda i: self._patch_block(i, body)),
            (
                "GET",
                r"/v1/agents/",
                lambda: [
                    self._agent_view(a, q.get_list("include")) for a in self._list(self.agents, q)
                ],
            ),
            ("POST", r"/v1/agents/", lambda: self._create_agent(body)),
            ("PATCH", r"/v1/agents/(agent-[^/]+)", lambda i: self._patch_agent(i, body)),
            ("PATCH", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/attach/([^/]+)", self._attach),
            ("PATCH", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/detach/([^/]+)", self._detach),
            ("GET", r"/v1/agents/(agent-[^/]+)/core-memory/blocks/([^/]+)", self._by_label),
            (
                "PATCH",
                r"/v1/agents/(agent-[^/]+)/core-memory/blocks/([^/]+)",
                lambda a, label: self._patch_block(self._by_label(a, label)["id"], body),
            ),
            ("GET", r"/v1/tools/", lambda: self._list(self.tools, q)),
            ("POST", r"/v1/tools/", lambda: self._upsert_tool(body)),
            ("GET", r"/v1/tools/(tool-[^/]+)", lambda i: self._get(self.tools, i)),
            ("PATCH", r"/v1/tools/(tool-[^/]+)", lambda i: self._patch_tool(i, body)),
            ("DELETE", r"/v1/tools/(tool-[^/]+)", lambda i: self.tools.pop(i) and None),
            ("GET", r"/v1/identities/", lambda: self._list(self.identities, q)),
            ("POST", r"/v1/identities/", lambda: self._create_identity(body)),
            ("GET", r"/v1/identities/(identity-[^/]+)", lambda i: self._get(self.identities, i)),
            ("PATCH", r"/v1/identities/(identity-[^/]+)", lambda i: self._patch_identity(i, body)),
            (
                "DELETE",
                r"/v1/identities/(identity-[^/]+)",
                lambda i: self._delete(self.identities, i),
            ),
            (
                "GET",
                r"/v1/identities/(identity-[^/]+)/blocks",
                lambda i: [_public(self.blocks[b]) for b in self._get_raw(i)["block_ids"]],
            ),
            (
                "PATCH",
                r"/v1/blocks/(block-[^/]+)/identities/(attach|detach)/(identity-[^/]+)",
                self._block_identity,
            ),
            ("GET", r"/v1/groups/", lambda: self._list(self.groups, q)),
            ("POST", r"/v1/groups/", lambda: self._create_group(body)),
            ("PATCH", r"/v1/groups/(group-[^/]+)", lambda i: self._patch_group(i, body)),
            ("DELETE", r"/v1/groups/(group-[^/]+)", lambda i: self._delete(self.groups, i)),
            (
                "PATCH",
                r"/v1/groups/(group-[^/]+)/blocks/(attach|detach)/(block-[^/]+)",
                self._group_block,
            ),
            ("GET", r"/v1/mcp-servers/", lambda: list(self.mcp_servers.values())),
            ("POST", r"/v1/mcp-servers/", lambda: self._create_mcp(body)),
            ("PATCH", r"/v1/mcp-servers/(mcp_server-[^/]+)", lambda i: self._patch_mcp(i, body)),
            ("DELETE", r"/v1/mcp-servers/(mcp_server-[^/]+)", self._delete_mcp),
            ("GET", r"/v1/mcp-servers/(mcp_server-[^/]+)/tools", self._mcp_registered),
            ("PATCH", r"/v1/mcp-servers/(mcp_server-[^/]+)/refresh", self._refresh_mcp),
            ("GET", r"/v1/tools/mcp/servers/([^/]+)/tools", self._mcp_offered),
            *self.folder_routes(request, body, lambda: next(self._seq)),
            *self.archive_routes(request, body, lambda: next(self._seq)),
            *self.provider_routes(request, body, lambda: next(self._seq)),
            *self.agent_file_routes(request, lambda: next(self._seq)),
        ]
        for method, pattern, fn in routes:
            match = re.fullmatch(pattern, path)
            if method == m and match:
                try:
                    result = fn(*match.groups())
                except (_Http, Http) as e:
                    return httpx.Response(e.status, json={"detail": e.detail})
                project = request.headers.get("x-project-id")
                if m == "POST" and project and isinstance(result, dict):
                    self._in_project(result, project)
                return httpx.Response(200, json=result)
        if not path.endswith("/") and re.fullmatch(r"/v1/(agents|blocks|tools|folders)", path):
            return httpx.Response(307, headers={"location": path + "/"})
        return httpx.Response(404, json={"detail": f"no route {m} {path}"})

    # -- resources -------------------------------------------------------------------------

    def _in_project(self, made: dict[str, Any], project: str) -> None:
        """As Letta Cloud: what is made in a project is listed in that project only (tools
        are the organization's)."""
        for store in (self.agents, self.blocks, self.identities):
            if made.get("id") in store:
                store[made["id"]]["_project"] = project
        for b in made.get("blocks") or ():
            self.blocks[b["id"]]["_project"] = project

    def _projects(self) -> dict[str, Any]:
        if self.projects is None:
            raise _Http(404, "Not Found")
        return {"projects": self.projects, "hasNextPage": False}

    def _list(self, store: dict[str, dict[str, Any]], q: httpx.QueryParams) -> list[dict[str, Any]]:
        # Tools keep no sequence number: they are listed in the order they were made.
        items = sorted(store.values(), key=lambda r: int(r.get("_seq", 0)))
        items = [r for r in items if r.get("_project") == q.get("project_id")]
        tags = q.get_list("tags")
        if tags:
            items = [r for r in items if set(tags) & set(r.get("tags") or [])]
        if q.get("name"):
            items = [r for r in items if r.get("name") == q.get("name")]
        if q.get_list("names"):
            items = [r for r in items if r.get("name") in q.get_list("names")]
        if q.get("connected_to_agents_count_gt") is not None:
            gt = int(q["connected_to_agents_count_gt"])
            items = [r for r in items if self._attached(r["id"]) > gt]
        if q.get("connected_to_agents_count_lt") is not None:
            lt = int(q["connected_to_agents_count_lt"])
            items = [r for r in items if self._attached(r["id"]) < lt]
        if q.get("label"):
            items = [r for r in items if r.get("label") == q.get("label")]
        if q.get("after"):
            ids = [r["id"] for r in items]
            items = items[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        # A server that caps its pages (Letta Cloud) answers with its own number of items,
        # whatever `limit` asked for.
        limit = self.page_cap() if self.page_cap else int(q.get("limit") or 50)
        return [_public(r) for r in items[:limit]]

    # Identities: unique identifier keys; agents link to them with identity_ids, blocks with
    # the attach route. As in Letta 0.16.8, an identity's own agent_ids and block_ids read empty.

    def _create_identity(self, body: dict[str, Any]) -> dict[str, Any]:
        if any(i["identifier_key"] == body["identifier_key"] for i in self.identities.values()):
            raise _Http(409, "A unique constraint was violated for Identity")
        iid = f"identity-{uuid.uuid4()}"
        self.identities[iid] = {
            "id": iid, "_seq": next(self._seq), "agent_ids": [], "block_ids": [],
            "properties": [], **body,
        }  # fmt: skip
        return self._identity_view(iid)

    def _patch_identity(self, iid: str, body: dict[str, Any]) -> dict[str, Any]:
        identity = self._get_raw(iid)
        for k in ("identifier_key", "name", "identity_type", "properties"):
            if body.get(k) is not None:
                identity[k] = body[k]
        return self._identity_view(iid)

    def _identity_view(self, iid: str) -> dict[str, Any]:
        return {**_public(self.identities[iid]), "agent_ids": [], "block_ids": []}

    def _get_raw(self, iid: str) -> dict[str, Any]:
        if iid not in self.identities:
            raise _Http(404, f"{iid} not found")
        return self.identities[iid]

    def _block_identity(self, bid: str, verb: str, iid: str) -> dict[str, Any]:
        linked = self._get_raw(iid)["block_ids"]
        if verb == "attach" and bid not in linked:
            linked.append(bid)
        elif verb == "detach" and bid in linked:
            linked.remove(bid)
        return _public(self.blocks[bid])

    # Groups as Letta 0.16.8 keeps them (letta/services/group_manager.py): a PATCH ignores
    # falsy values and shared_block_ids, and refuses another manager type; a group's shared
    # blocks (kept in "_shared") are never reported: shared_block_ids reads empty.

    def _group_defaults(self) -> dict[str, Any]:
        return {"_seq": next(self._seq), "description": "", "agent_ids": [],
                "shared_block_ids": [], "_shared": [], "manager_agent_id": None}  # fmt: skip

    def _create_group(self, body: dict[str, Any]) -> dict[str, Any]:
        gid = f"group-{uuid.uuid4()}"
        unknown = [a for a in body["agent_ids"] if a not in self.agents]
        if unknown:
            raise _Http(404, f"Items not found in agents: {unknown}")
        config = dict(body["manager_config"])
        self.groups[gid] = {
            **self._group_defaults(), "id": gid, "description": body["description"],
            "agent_ids": list(body["agent_ids"]),
            "_shared": list(body.get("shared_block_ids") or ()), **config,
        }  # fmt: skip
        return _public(self.groups[gid])

    def _patch_group(self, gid: str, body: dict[str, Any]) -> dict[str, Any]:
        group = self._get_group(gid)
        config = body.get("manager_config") or {}
        if config and config["manager_type"] != group["manager_type"]:
            raise _Http(400, "Cannot change group pattern after creation")
        for k, v in config.items():
            if v:
                group[k] = v
        if body.get("description"):
            group["description"] = body["description"]
        if body.get("agent_ids"):
            group["agent_ids"] = list(body["agent_ids"])
        return _public(group)

    def _get_group(self, gid: str) -> dict[str, Any]:
        if gid not in self.groups:
            raise _Http(404, f"{gid} not found")
        return self.groups[gid]

    def _group_block(self, gid: str, verb: str, bid: str) -> None:
        shared = self._get_group(gid)["_shared"]
        self._get(self.blocks, bid)
        if verb == "attach" and bid not in shared:
            shared.append(bid)
        elif verb == "detach" and bid in shared:
            shared.remove(bid)

    # MCP servers as Letta 0.16.8 keeps them: a token without "Bearer " (listed with it, under
    # auth_header Authorization), headers and env in plain; a streamable_http-shaped PATCH
    # drops a token, an sse-shaped one writes it; names are unique; registering and refreshing
    # make a Letta tool of each tool offered, and deleting the server deletes them.

    def _create_mcp(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["server_name"]
        if any(s["server_name"] == name for s in self.mcp_servers.values()):
            raise _Http(409, f"MCP server with name '{name}' already exists")
        config = dict(body["config"])
        if config["mcp_server_type"] == "stdio" and not self.mcp_stdio:
            raise _Http(400, "MCP stdio servers are disabled. Set MCP_DISABLE_STDIO=false.")
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
            raise _Http(404, f"{sid} not found")
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
            raise _Http(404, f"MCP server {name} not found")
        return [{"name": n, "description": f"{n} tool"} for n in self.mcp_offers.get(name, [])]

    def _delete_tool(self, tid: str) -> None:
        self.tools.pop(tid, None)
        for a in self.agents.values():
            if tid in a["tool_ids"]:
                a["tool_ids"].remove(tid)

    def _get(self, store: dict[str, dict[str, Any]], rid: str) -> dict[str, Any]:
        if rid not in store:
            raise _Http(404, f"{rid} not found")
        return _public(store[rid])

    def _delete(self, store: dict[str, dict[str, Any]], rid: str) -> None:
        if rid not in store:
            raise _Http(404, f"{rid} not found")
        del store[rid]
        for a in self.agents.values():  # deleting a block detaches it everywhere
            if rid in a["block_ids"]:
                a["block_ids"].remove(rid)

    def _new_block(self, spec: Mapping[str, Any], *, keep_metadata: bool = True) -> dict[str, Any]:
        bid = spec.get("id") or f"block-{uuid.uuid4()}"
        self.blocks[bid] = {
            "id": bid,
            "_seq": next(self._seq),
            "label": spec["label"],
            "value": spec.get("value", ""),
            "description": spec.get("description"),
            "limit": spec.get("limit", 100000),
            "read_only": spec.get("read_only", False),
            "metadata": (spec.get("metadata") or {}) if keep_metadata else {},
            "tags": spec.get("tags") or [],
        }
        return self.blocks[bid]

    def _create_block(self, body: dict[str, Any]) -> dict[str, Any]:
        return _public(self._new_block(body))

    def _patch_block(self, bid: str, body: dict[str, Any]) -> dict[str, Any]:
        if bid not in self.blocks:
            raise _Http(404, f"{bid} not found")
        self.blocks[bid].update({k: v for k, v in body.items() if v is not None})
        return _public(self.blocks[bid])

    def _create_agent(self, body: dict[str, Any]) -> dict[str, Any]:
        # Letta keeps the tags of inline blocks but drops their metadata.
        own = [
            self._new_block(b, keep_metadata=False)["id"] for b in body.get("memory_blocks") or []
        ]
        shared = [i for i in body.get("block_ids") or [] if i in self.blocks]  # unknown ids dropped
        tools = list(body.get("tool_ids") or [])
        if body.get("include_base_tools", True):
            tools += [
                t["id"]
                for t in self.tools.values()
                if t["tool_type"] == "letta_core" and t["id"] not in tools
            ]
        # As Letta 0.16.8: include_base_tool_rules adds loop rules for the base tools it gives
        # (send_message ends the loop), after the declared rules; the agent does not report it.
        rules = list(body.get("tool_rules") or [])
        if body.get("include_base_tool_rules"):
            base = [
                self.tools[t]["name"] for t in tools if self.tools[t]["tool_type"] == "letta_core"
            ]
            rules += [
                {"type": "exit_loop" if n == "send_message" else "continue_loop", "tool_name": n}
                for n in base
            ]
        agent = self._new_agent(
            {**body, "id": None, "block_ids": own + shared, "tool_ids": tools, "tool_rules": rules}
        )
        # The agent's first messages (None: Letta's default greeting), kept where no view
        # shows them: letta-apply never reads messages.
        agent["_initial_messages"] = body.get("initial_message_sequence")
        if body.get("enable_sleeptime"):
            self.make_sleeptime(agent)
        return self._agent_view(_public(agent))

    def _new_agent(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        aid = spec.get("id") or f"agent-{uuid.uuid4()}"
        self.agents[aid] = {
            "id": aid,
            "_seq": next(self._seq),
            "name": spec.get("name", ""),
            "description": spec.get("description"),
            "system": spec.get("system", "default system"),
            "model": spec.get("model"),
            "embedding": spec.get("embedding"),
            "agent_type": spec.get("agent_type") or "letta_v1_agent",  # Letta's default
            "tags": spec.get("tags") or [],
            "metadata": spec.get("metadata") or {},
            "block_ids": list(spec.get("block_ids") or []),
            "tool_ids": list(spec.get("tool_ids") or []),
            "tool_rules": spec.get("tool_rules") or [],
            "identity_ids": [i for i in spec.get("identity_ids") or [] if i in self.identities],
        }
        _land_settings(self.agents[aid], spec)
        return self.agents[aid]

    def _patch_agent(self, aid: str, body: dict[str, Any]) -> dict[str, Any]:
        if aid not in self.agents:
            raise _Http(404, f"{aid} not found")
        for k, v in body.items():
            if k == "tool_rules" and _same_rules(self.agents[aid].get("tool_rules") or [], v):
                continue  # as in Letta, which compares a run_first rule without its args
            # Letta's UpdateAgent has no create-only fields: they are dropped.
            if v is not None and k not in (*_LANDED, *_SECRETS, *_CREATE_ONLY):
                self.agents[aid][k] = v
        _land_settings(self.agents[aid], body)
        self.sleeptime_patched(self.agents[aid], body)
        return self._agent_view(_public(self.agents[aid]))

    def _agent_view(self, a: dict[str, Any], include: list[str] | None = None) -> dict[str, Any]:
        out = {k: v for k, v in a.items() if k not in ("block_ids", "tool_ids")}
        self.sleeptime_view(out, include)
        # An agent's view of its blocks carries no tags, as in Letta.
        out["blocks"] = [
            {**_public(self.blocks[i]), "tags": []} for i in a["block_ids"] if i in self.blocks
        ]
        out["tools"] = [self.tools[t] for t in a["tool_ids"] if t in self.tools]
        out["message_ids"] = (
            [m["id"] for m in self.messages_of(a["id"])] if a["id"] in self.agents else []
        )
        return out

    def _upsert_tool(self, body: dict[str, Any]) -> dict[str, Any]:
        # As in Letta, creating a tool whose name exists overwrites that tool.
        schema = _schema(body["source_code"])
        found = [t for t in self.tools.values() if t["name"] == schema["name"]]
        new: dict[str, Any] = {"id": f"tool-{uuid.uuid4()}", "tool_type": "custom"}
        tool = found[0] if found else new
        tool.update(body, name=schema["name"], json_schema=schema, metadata_={})
        tool.setdefault("description", schema["description"])
        self.tools[tool["id"]] = tool
        return tool

    def _patch_tool(self, tid: str, body: dict[str, Any]) -> dict[str, Any]:
        if tid not in self.tools:
            raise _Http(404, f"{tid} not found")
        # As in Letta, new source alone keeps the old schema and name; a schema renames.
        self.tools[tid].update({k: v for k, v in body.items() if v is not None})
        if "json_schema" in body:
            self.tools[tid]["name"] = body["json_schema"]["name"]
        return self.tools[tid]

    def _attach(self, aid: str, bid: str) -> dict[str, Any]:
        agent = self.agents[aid]
        if bid not in self.blocks:
            raise _Http(404, f"{bid} not found")
        if bid in agent["block_ids"]:  # attaching again changes nothing, as in Letta
            return self._agent_view(_public(agent))
        labels = {self.blocks[i]["label"] for i in agent["block_ids"]}
        if self.blocks[bid]["label"] in labels:
            raise _Http(409, "duplicate label")
        agent["block_ids"].append(bid)
        self.attach_sleeptime(aid, bid)
        return self._agent_view(_public(agent))

    def _detach(self, aid: str, bid: str) -> dict[str, Any]:
        agent = self.agents[aid]
        if bid not in agent["block_ids"]:
            raise _Http(404, "block not attached")
        agent["block_ids"].remove(bid)
        return self._agent_view(_public(agent))

    def _attached(self, bid: str) -> int:
        return sum(1 for a in self.agents.values() if bid in a["block_ids"])

    def _block_agents(self, bid: str) -> list[dict[str, Any]]:
        self._get(self.blocks, bid)
        return [_public(a) for a in self.agents.values() if bid in a["block_ids"]]

    def _delete_block(self, bid: str) -> None:
        self._get(self.blocks, bid)
        del self.blocks[bid]
        for a in self.agents.values():  # deleting a block detaches it everywhere
            if bid in a["block_ids"]:
                a["block_ids"].remove(bid)

    def _delete_agent(self, aid: str) -> None:
        self._get(self.agents, aid)
        self.delete_sleeptime(aid)  # what Letta deletes with it
        if any(g.get("manager_agent_id") == aid for g in self.groups.values()):
            # The group's manager column is ON DELETE RESTRICT in Letta.
            raise _Http(409, 'update or delete on table "agents" violates foreign key constraint')
        del self.agents[aid]  # its own blocks stay behind, as in Letta
        for g in self.groups.values():  # its memberships go with it
            g["agent_ids"] = [a for a in g["agent_ids"] if a != aid]

    def _by_label(self, aid: str, label: str) -> dict[str, Any]:
        for i in self.agents[aid]["block_ids"]:
            if self.blocks[i]["label"] == label:
                return _public(self.blocks[i])
        raise _Http(404, f"no block labelled {label}")


class _Http(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status = status
        self.detail = detail


def _schema(source: str) -> dict[str, Any]:
    """A stand-in for Letta's schema derivation: the last function's name and docstring."""
    name = re.findall(r"^\s*def (\w+)", source, re.M)[-1]
    doc = re.search(r'"""(.*?)(\n|""")', source)
    return {"name": name, "description": doc.group(1) if doc else "", "parameters": {}}


def _same_rules(old: list[dict[str, Any]], new: Any) -> bool:
    """Letta's comparison of two rule lists: in order, a run_first rule without its args."""

    def compared(r: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in r.items() if not (r.get("type") == "run_first" and k == "args")}

    return (
        isinstance(new, list)
        and len(old) == len(new)
        and all(compared(a) == compared(b) for a, b in zip(old, new, strict=True))
    )


def _public(r: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in r.items() if not k.startswith("_")}


# Agent settings as Letta 0.16.8 keeps them: some requested at the top land in `llm_config` (and
# in `model_settings`, which the server derives from it); the objects it keeps come back completed
# with its defaults.
_LANDED = {"context_window_limit": "context_window", "max_tokens": "max_tokens"}
_KEPT = (
    "llm_config", "model_settings", "compaction_settings", "response_format", "timezone",
    "enable_sleeptime", "message_buffer_autoclear", "max_files_open",
    "per_file_view_window_char_limit",
)  # fmt: skip


# As Letta: secrets are sent as a mapping and returned as rows with their values in plain; a
# write of them replaces the set, each row with a new id.
_SECRETS = ("secrets", "tool_exec_environment_variables")
_CREATE_ONLY = (
    "agent_type", "include_base_tools", "include_base_tool_rules", "initial_message_sequence",
)  # fmt: skip


def _land_settings(agent: dict[str, Any], body: Mapping[str, Any]) -> None:
    # Only what a body sets: agents of other tests keep the fields they were made with.
    for name in _SECRETS:
        given = body.get(name)
        if isinstance(given, list):  # a case's live.json: rows as the server returns them
            agent["secrets"] = given
        elif isinstance(given, Mapping):
            agent["secrets"] = [
                {"id": f"agent-env-{uuid.uuid4()}", "key": k, "value": str(v)}
                for k, v in given.items()
            ]
    for k in _KEPT:
        if body.get(k) is not None:
            agent[k] = body[k]
    if isinstance(body.get("model_settings"), Mapping):
        agent["model_settings"] = {"temperature": 0.7, "strict": True, **body["model_settings"]}
    if isinstance(body.get("compaction_settings"), Mapping):
        agent["compaction_settings"] = {"clip_chars": 50000, **body["compaction_settings"]}
    llm = agent.get("llm_config") or {}
    settings = agent.get("model_settings") or {}
    for request, landed in _LANDED.items():
        if body.get(request) is not None:
            llm[landed] = body[request]
    if body.get("max_tokens") is not None:
        settings["max_output_tokens"] = body["max_tokens"]
    if body.get("parallel_tool_calls") is not None:
        llm["parallel_tool_calls"] = settings["parallel_tool_calls"] = body["parallel_tool_calls"]
    if llm:
        agent["llm_config"] = llm
    if settings:
        agent["model_settings"] = settings


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
