"""MCP servers: `mcp_servers:`, addressed mcp_server.<key> (Letta's `/v1/mcp-servers/`): the
Model Context Protocol servers whose tools Letta turns into its own tools (`tool_type:
external_mcp`), which agents attach with `mcp_tools:` (kinds.agent.mcp_tools).

Where the marks live: Letta's MCP servers carry no tags and no metadata, and nothing free-form
that is not sent to the MCP server itself. The mark (stack, address, the server's id, digests of
its plain fields, the names of its sensitive ones) is kept in a *mark block* (kinds.mark_blocks)
labelled `letta-apply-mcp-server`, as groups do. Ownership of a server is that block naming its
id, nothing else, which is safe:

- a server registered by hand or by another tool is named by no mark block, so it is never
  changed, pruned or destroyed, even when its name is the declared one;
- server names are unique per organization (Letta refuses a second one, and a *rename* onto a
  taken name deletes the other server): a declared name held by a server the stack does not own
  is a clash, refused with the hint to import it, and so is a rename onto it;
- the block kind lists the stack's tagged blocks anyway: the marks cost no request. A mark whose
  server is gone proves nothing (the server is registered again, the stale mark deleted).

Secrets: `auth_token`, the values of `custom_headers` and of `env` are always sensitive (Letta
returns them in plain from its listing): compared in memory, shown as `(sensitive)`, never in a
mark, a digest, a plan file or an error. What Letta 0.16.8 does decides the rest
(letta/services/mcp_server_manager.py, letta/schemas/mcp_server.py):

- it stores a token without its `Bearer ` prefix and sends it as `Authorization: Bearer <token>`
  whatever `auth_header` said, and sends no token at all when custom headers are set: so
  `auth_header` may only be `Authorization`, and a token goes with no custom headers;
- its PATCH for a streamable_http server drops a new token (the internal update names it
  `auth_token`, the table `token`); the PATCH shaped as for an `sse` server writes url, token
  and headers and keeps the server's type, so updates of both HTTP transports are sent so;
- it refuses MCP URLs on loopback or private addresses, and stdio servers unless started with
  MCP_DISABLE_STDIO=false (Letta Cloud: never);
- tools: registering a server registers its tools (best effort); `PATCH .../refresh` adds new
  ones, updates changed ones in place (same ids: agents keep them) and deletes the vanished ones
  (detached from every agent). A plan lists each used server's live tools once
  (`GET /v1/tools/mcp/servers/{name}/tools`, which asks the MCP server).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar
from urllib.parse import quote

from ...core.changes import CREATE, DELETE, NEW, Change, FieldDiff, Problem, Why
from ...core.jsonish import JsonObject, items, obj, objs
from ...core.marks import digest
from ...core.model import Desired, Import, Live
from ...core.sensitive import MASKED, Masker
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...server import routes
from ...server.client import LettaClient
from ..base import Field, Kind, Listing, Shape
from ..block.kind import our_agent_ids, stack_of
from ..context import Context, Matched, PoolOf, Run, StateOf, Update, Users
from ..declaring import entries, ignored, prevents_destroy
from ..mark_blocks import (
    MarkedLeft,
    drop_marks,
    prune_marks,
    read_marks,
    reuse,
    unanswered,
)
from ..matching import one_per_address
from ..named import refuse_taken, secret
from ..resource import applied_of
from ..tool.kind import TOOLS
from ..writing import Conversion, Export
from .model import (
    HTTP,
    MAPPINGS,
    MARK_LABEL,
    MCP_TOOL,
    PLAIN,
    DesiredMcpServer,
    LiveMcpServer,
    McpState,
    check_mcp_servers,
    hidden_fields,
    mark_body,
    mcp_applied,
    registered,
    token_of,
    used_servers,
)
from .requests import ROUTE, create, delete, update, update_config

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA636", "Problem", "an MCP server's transport changed",
       "The manifest declares another transport (mcp_server_type) for an MCP server; Letta "
       "cannot change it.",
       "Declare the new transport under another key (a new server), and move the agents' "
       "mcp_tools to it.")
# fmt: on

__all__ = ["MARK_LABEL", "MCP_TOOL", "LiveMcpServer", "McpServerKind", "McpState", "registered"]


# The MCP servers' live state and pool, typed (for the kinds that read them).
MCP_SERVERS = StateOf[McpState]("mcp_server")
MCP_POOL = PoolOf[LiveMcpServer]("mcp_server")


class McpServerKind(Kind[DesiredMcpServer, LiveMcpServer, McpState]):
    name: ClassVar[str] = "mcp_server"
    noun: ClassVar[str] = "MCP server"
    section: ClassVar[str] = "mcp_servers"
    id_prefix: ClassVar[str] = "mcp_server-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
    fields: ClassVar[tuple[Field, ...]] = (
        Field("server_name"),
        Field("mcp_server_type"),
        Field("server_url"),
        Field("auth_header"),
        Field("auth_token", "sensitive"),
        Field("custom_headers", "sensitive"),
        Field("command"),
        Field("args"),
        Field("env", "sensitive"),
    )
    marks: ClassVar[str] = (
        f"the metadata of a `{MARK_LABEL}` block tagged with the stack (MCP servers have no "
        "tags and no metadata)"
    )
    shape: ClassVar[Shape] = "parallelogram"
    import_by_name: ClassVar[bool] = True
    listing: ClassVar[Listing] = "marks"
    mark_label: ClassVar[str] = MARK_LABEL
    sensitive_in: ClassVar[tuple[str, ...]] = ("auth_token", "custom_headers", "env")

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """Fields that fit the transport, and what Letta can keep (see the module's doc)."""
        return check_mcp_servers(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredMcpServer]:
        out: dict[str, DesiredMcpServer] = {}
        for key, spec in entries(data, self.section):
            config: JsonObject = {"mcp_server_type": spec["mcp_server_type"]}
            for k in PLAIN:
                if k in spec:
                    config[k] = list(items(spec[k])) if k == "args" else spec[k]
            if "auth_token" in spec:
                config["auth_token"] = token_of(spec["auth_token"])
                config.setdefault("auth_header", "Authorization")
            for k in MAPPINGS:
                if k in spec:
                    config[k] = {str(n): secret(v) for n, v in obj(spec[k]).items()}
            address = f"{self.name}.{key}"
            out[address] = DesiredMcpServer(
                address, str(spec.get("server_name", key)), config, prevents_destroy(spec),
                ignored(spec),
            )  # fmt: skip
        return out

    def hidden(self, declared: DesiredMcpServer) -> frozenset[str]:
        return hidden_fields(declared.config)

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        return ROUTE.get(client)

    def marked(self, blocks: Sequence[Mapping[str, object]], stack: str) -> bool:
        return bool(read_marks(blocks, stack, MARK_LABEL, self.name))

    def state(self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str) -> McpState:
        marks = read_marks(objs(raw.get("block")), stack, MARK_LABEL, self.name)
        listing = raw.get(self.name)
        return McpState(tuple(objs(listing)), marks, listing is not None)

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveMcpServer | str, object]:
        """From the listing already read: by id, or by server_name (given as `name`)."""
        for s in objs(raw.get(self.name)):
            if s.get("id") == imp.id or (imp.name is not None and s.get("server_name") == imp.name):
                return LiveMcpServer.from_api(s), None
        return f"no such MCP server on the server: {imp.id or imp.name}", None

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> McpState:
        """The live tool names of each server the manifest's agents use: one request per such
        server."""
        state = self.state_of(live)
        live = Live({**live.states, self.name: state}, live.imported, live.facts, live.project)
        found = dict(self.match(desired.stack, live).pool)
        found.update((a, s) for a, s in live.imported.items() if isinstance(s, LiveMcpServer))
        found.update((to, found[was]) for was, to in desired.moved.items() if was in found)
        used = [found[a] for a in sorted(used_servers(desired)) if a in found]

        def tools_of(s: LiveMcpServer) -> tuple[str, ...] | str:
            try:
                name = quote(s.server_name, safe="")
                listed = routes.TOOLS.at("mcp", "servers", name, "tools").get(client)
            except ApiError as e:
                # Letta quotes the MCP client's error: whatever of the server's secrets it
                # names is masked (a token written in the manifest is no variable to mask).
                known = [s.auth_token, *s.custom_headers.values(), *s.env.values()]
                return Masker([str(v) for v in known if v]).text(e.detail)
            return tuple(sorted(str(t["name"]) for t in objs(listed)))

        # Each listing asks the MCP server itself (a stdio one is started for it): side by side.
        with ThreadPoolExecutor(max_workers=max(1, min(8, len(used)))) as pool:
            tools = dict(zip([s.id for s in used], pool.map(tools_of, used), strict=True))
        return McpState(
            state.servers, state.marks, state.listed, tools, self._users(client, live, doomed)
        )

    def _users(self, client: LettaClient, live: Live, doomed: set[str]) -> dict[str, Users]:
        """Agents using the tools of each server a plan may delete (deleting a server deletes
        its tools, detaching them everywhere): one listing of every agent with its tools, only
        then (Letta has no route for a tool's agents)."""
        ids = sorted(i for i in doomed if i.startswith(self.id_prefix))
        if not ids:
            return {}
        server_of = {
            t.id: obj(t.metadata.get("mcp")).get("server_id")
            for t in TOOLS.of(live).tools
            if t.tool_type == MCP_TOOL
        }
        out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in ids}
        for a in client.list_agents(include=("agent.tools", "agent.tags")):
            using = {server_of.get(str(t["id"])) for t in objs(a.get("tools"))} & set(ids)
            for sid in using:
                out[str(sid)].append((str(a["id"]), str(a.get("name") or ""), stack_of(a)))
        return {i: tuple(u) for i, u in out.items()}

    def resources(self, state: McpState) -> Iterable[LiveMcpServer]:
        return state.live()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveMcpServer]:
        state = self.state_of(live)
        pool, notes = one_per_address(state.live(), stack, self.name, self.noun)
        ids = [str(s["id"]) for s in state.servers]
        stale = unanswered(state.resolved(), ids) if state.listed else ()
        by_address = {a: s.id for a, s in pool.items()}
        return Matched(pool, by_address, notes, MarkedLeft[LiveMcpServer](stale))

    def _holder(self, ctx: Context, name: str, own: str | None = None) -> list[str]:
        """Ids of servers named `name` that are not the stack's (nor `own`)."""
        ours = {s.id for s in self.pool_of(ctx).values()}
        return [
            s.id for s in self.state_of(ctx.live).live()
            if s.server_name == name and s.id not in ours and s.id != own
        ]  # fmt: skip

    def _clash(self, ctx: Context, dm: DesiredMcpServer, holders: list[str]) -> None:
        hint = (
            f"adopt it with an `imports:` entry ({{to: {dm.address}, name: {dm.name}}}), "
            "or declare another server_name"
        )
        refuse_taken(ctx, dm.address, f"an MCP server named '{dm.name}'", holders, hint)

    def create(self, ctx: Context, declared: DesiredMcpServer) -> None:
        dm = declared
        holders = self._holder(ctx, dm.name)
        if holders:
            self._clash(ctx, dm, holders)
            return
        body: JsonObject = {
            "server": {"server_name": dm.name, "config": dict(dm.config)},
            "mark": mark_body(ctx.stack, dm),
            **reuse(ctx, self.name, dm.address),
        }
        diffs = [FieldDiff("server_name", None, dm.name, NEW)]
        diffs += [FieldDiff(k, None, v, NEW) for k, v in dm.config.items() if k not in MAPPINGS]
        for k in MAPPINGS:
            diffs += [
                FieldDiff(f"{k}['{n}']", None, v, NEW) for n, v in obj(dm.config.get(k)).items()
            ]
        ctx.changes.append(
            Change(dm.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,), kind=self.name)
        )

    def update(
        self, ctx: Context, declared: DesiredMcpServer, found: LiveMcpServer, *, adopt: bool
    ) -> None:
        dm, ls = declared, found
        u = Update(ctx, dm, None if adopt else applied_of(ls))
        if ls.mcp_server_type != dm.config["mcp_server_type"]:
            ctx.problems.append(
                Problem(
                    dm.address,
                    f"the server is a {ls.mcp_server_type} MCP server and Letta cannot change "
                    f"its transport to {dm.config['mcp_server_type']}",
                    "declare the new transport under another key (a new server) and move the "
                    "agents' mcp_tools to it",
                    code="LA636",
                )
            )
            return
        patch: JsonObject = {}
        if "server_name" not in dm.ignore and ls.server_name != dm.name:
            holders = self._holder(ctx, dm.name, own=ls.id)
            if holders:
                self._clash(ctx, dm, holders)
                return
            u.field("server_name", ls.server_name, dm.name)
        for k in PLAIN:
            if u.managed(k):
                live = list(ls.args) if k == "args" and ls.args is not None else getattr(ls, k)
                u.field(k, live, dm.config[k])
        if u.managed("auth_token") and ls.auth_token != dm.config["auth_token"]:
            before = None if ls.auth_token is None else MASKED
            u.diffs.append(FieldDiff("auth_token", before, dm.config["auth_token"]))
            u.body["auth_token"] = dm.config["auth_token"]
        for k in MAPPINGS:
            was, now = ls.mapping(k), obj(dm.config.get(k))
            if u.managed(k) and dict(was) != dict(now):
                for n in sorted({*was, *now}):
                    if was.get(n) != now.get(n):
                        before = MASKED if n in was else None
                        u.diffs.append(FieldDiff(f"{k}['{n}']", before, now.get(n)))
                u.body[k] = dict(now)
        if "server_name" in u.body:
            patch["server_name"] = u.body.pop("server_name")
        config = {k: u.body.pop(k) for k in [*PLAIN, "auth_token", *MAPPINGS] if k in u.body}
        if config:
            patch["config"] = update_config(dm, ls, config)
        refresh = bool(config) and ls.id in self.state_of(ctx.live).tools
        listed = self.state_of(ctx.live).tools.get(ls.id)
        if isinstance(listed, tuple):
            have = sorted(registered(ctx, ls.id))
            if have != list(listed):
                # Letta registers a server's tools when it is made and on a refresh only.
                u.diffs.append(FieldDiff("tools", have, list(listed)))
                refresh = True
        u.protection(bool(ls.mark) or adopt)
        marks_stale = not adopt and (u.applied or {}) != mcp_applied(dm)
        if u.needed(adopt=adopt, also=bool(patch) or refresh or marks_stale):
            u.body.update(
                {"patch": patch, "refresh": refresh, "mark": mark_body(ctx.stack, dm),
                 "mark_block": ls.mark_block}
            )  # fmt: skip
            u.emit(self.name, ls.id, adopt=adopt)

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        prune_marks(ctx, self.name)

    def delete(self, ctx: Context, address: str, found: LiveMcpServer, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        users = self.state_of(ctx.live).users.get(found.id, ())
        if ctx.used_elsewhere(address, users, our_agent_ids(ctx)):
            return
        body = {"mark_block": found.mark_block}
        ctx.changes.append(Change(address, DELETE, found.id, body=body, why=(why,), kind=self.name))

    def fingerprint(self, resource: LiveMcpServer, blank: frozenset[str]) -> str:
        s = resource
        # Secrets in: the fingerprint is a digest that never leaves the plan's checks, but a
        # plain hash of a short token gives it away, so only whether each is set is kept.
        return digest(
            [s.id, s.server_name, s.mcp_server_type, s.server_url, s.auth_header,
             s.auth_token is not None, sorted(s.custom_headers), s.command,
             None if s.args is None else list(s.args), sorted(s.env), dict(s.mark),
             s.mark_block]
        )  # fmt: skip

    def describe(self, resource: LiveMcpServer, live: Live, hidden: frozenset[str]) -> str:
        s = resource
        where = s.server_url if s.mcp_server_type in HTTP else s.command
        return f"server_name={s.server_name!r}  {s.mcp_server_type} {where}"

    def created_name(self, change: Change) -> str:
        return str(obj(change.body.get("server", {})).get("server_name", ""))

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state = self.state_of(live)
        return tuple(s.id for s in state.live() if s.server_name == name and not s.mark)

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> McpState:
        state = self.state_of(live)
        if names and not state.listed:
            listed = objs(ROUTE.get(client))
            return McpState(tuple(listed), state.marks)
        return state

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        drop_marks(run, MARK_LABEL, self.name, change.address)

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        rid = change.remote_id or ""
        if change.action == CREATE:
            return create(run, change, body)
        if change.action == DELETE:
            return delete(run, rid, body)
        update(run, change, rid, body)
        return rid

    # -- export ----------------------------------------------------------------------------

    def export(self, found: LiveMcpServer) -> JsonObject:
        """The server without its secrets (token, header and env values): they are declared
        from sensitive variables, never written into a manifest."""
        out: JsonObject = {"server_name": found.server_name}
        out["mcp_server_type"] = found.mcp_server_type
        for k, v in (("server_url", found.server_url), ("command", found.command)):
            if v:
                out[k] = v
        if found.args is not None:
            out["args"] = list(found.args)
        return out

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_servers  # builds on this module

        return export_servers(self, ex)

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        from .writing import convert_servers

        return convert_servers(self, conv)
