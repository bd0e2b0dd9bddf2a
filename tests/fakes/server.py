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
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from letta_apply import LettaClient
from tests.fakes.agentfiles import FakeAgentFiles
from tests.fakes.agents import FakeAgents
from tests.fakes.archives import FakeArchives
from tests.fakes.blocks import FakeBlocks
from tests.fakes.common import Http, Route, _public
from tests.fakes.folders import FakeFolders
from tests.fakes.groups import FakeGroups
from tests.fakes.identities import FakeIdentities
from tests.fakes.mcp_servers import FakeMcpServers
from tests.fakes.providers import FakeProviders
from tests.fakes.sleeptime import FakeSleeptime
from tests.fakes.tools import FakeTools

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


class FakeLetta(
    FakeBlocks, FakeAgents, FakeTools, FakeIdentities, FakeGroups, FakeMcpServers, FakeFolders,
    FakeArchives, FakeProviders, FakeAgentFiles, FakeSleeptime,
):  # fmt: skip
    """The server: the stores, the routing, listing and paging every kind shares, request counts
    and fault hooks; each kind's routes and rules are in its own module, mixed in here."""

    def __init__(self, *, base_tools: bool = True) -> None:
        """A server holding nothing but, with `base_tools`, a few of Letta's own tools."""
        # One request served at a time, as a database would keep each consistent: many stacks
        # applied at once send them from several threads (re-entrant: a hook may send one).
        self._serving = threading.RLock()
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
        with self._serving:
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
        routes: list[Route] = [
            ("GET", r"/v1/health/", lambda: {"version": "0.16.8", "status": "ok"}),
            ("GET", r"/v1/models/", lambda: [{"handle": h} for h in sorted(self.models)]),
            ("GET", r"/v1/projects", self._projects),
            (
                "GET",
                r"/v1/models/embedding",
                lambda: [{"handle": h} for h in sorted(self.embeddings)],
            ),
            *self.block_routes(q, body),
            *self.agent_routes(q, body),
            *self.tool_routes(q, body),
            *self.identity_routes(q, body),
            *self.group_routes(q, body),
            *self.mcp_server_routes(body),
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
                except Http as e:
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
            raise Http(404, "Not Found")
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

    def _get(self, store: dict[str, dict[str, Any]], rid: str) -> dict[str, Any]:
        if rid not in store:
            raise Http(404, f"{rid} not found")
        return _public(store[rid])

    def _delete(self, store: dict[str, dict[str, Any]], rid: str) -> None:
        if rid not in store:
            raise Http(404, f"{rid} not found")
        del store[rid]
        for a in self.agents.values():  # deleting a block detaches it everywhere
            if rid in a["block_ids"]:
                a["block_ids"].remove(rid)
