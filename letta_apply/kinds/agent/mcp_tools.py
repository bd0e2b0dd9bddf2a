"""An agent's MCP tools (kinds.agent): `mcp_tools: [{server: key, tools: all | [names]}]`, the
tools of the manifest's MCP servers (kinds.mcp_server) the agent attaches.

Letta makes a tool of its own (`tool_type: external_mcp`, `metadata_.mcp.server_id`) of each tool
an MCP server offers, when the server is registered or refreshed; an agent attaches those by id,
in the same `tool_ids` as every other tool. So:

- the names are resolved against the live tool list of the MCP server, read once per server at
  plan (kinds.mcp_server); an unknown name is refused with a did-you-mean, `all` is that list;
- a tool Letta has not registered yet (new on the MCP server: the server's change refreshes it;
  or on a server this plan registers) is named in the request by a placeholder, `{"$mcp":
  address, "tools": [...]}`, that apply turns into ids with one listing of the server's tools
  (`GET /v1/mcp-servers/{id}/tools`) once the server's change is made;
- attached MCP tools of a server the agent declares are managed: a tool that vanished from the
  MCP server is shown detached (drift); MCP tools of other servers are left alone, and so are
  MCP tools in `tools:` management (kinds.agent.plan keeps them like base tools).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import TYPE_CHECKING, TypeGuard
from weakref import WeakKeyDictionary

from ...core.changes import MANIFEST, NEW, FieldDiff, Problem
from ...core.jsonish import JsonObject, items, obj, objs, strings, text
from ...errors import ApiError, Diagnostic, Rejected, define
from ...manifest.files import Document
from ..mcp_server.kind import MCP_POOL, MCP_SERVERS, MCP_TOOL, registered
from ..mcp_server.requests import ROUTE as MCP_ROUTE
from ..tool.kind import TOOLS

__all__ = ["MCP_TOOL", "check_mcp_tools", "declared_mcp_tools", "expand", "mcp_servers_of"]

if TYPE_CHECKING:
    from ..context import Context, Run, Update
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA416", "ManifestError", "an MCP server listed twice on an agent",
       "An agent's `mcp_tools` names the same MCP server in two entries.",
       "Merge the entries: one per server, with every tool wanted.")
define("LA417", "ManifestError", "no such MCP server",
       "An agent's `mcp_tools` names a server that `mcp_servers:` does not declare.",
       "Declare it, or fix the key (the message suggests a close one).")
define("LA637", "Problem", "an MCP server whose tools cannot be listed",
       "Letta cannot list the tools of an MCP server an agent uses (it cannot reach it, or "
       "the server failed); the agent is refused.",
       "Check that Letta can reach the MCP server (the hint says how for its transport).")
define("LA638", "Problem, Rejected", "an MCP tool the server does not offer",
       "An agent's `mcp_tools` names a tool its MCP server does not offer (found by plan, or "
       "by apply for a server it registered).",
       "Fix the tool's name (the hint suggests one), or use `tools: all`.")
define("LA726", "ApiError", "an MCP server whose tools Letta could not list",
       "Letta registered no tool of an MCP server this apply registered: the server offers "
       "none, or Letta could not reach it.",
       "Check that Letta can reach the MCP server (the message says how for its transport), "
       "then apply again.")
# fmt: on

MARKER = "$mcp"
ALL = "all"
# The tools of each server an apply made or refreshed, listed once per apply (the servers'
# changes all come before the agents'): run -> server id -> name -> tool id.
_LISTED: WeakKeyDictionary[Run, dict[str, dict[str, str]]] = WeakKeyDictionary()


def declared_mcp_tools(entries: object) -> list[JsonObject]:
    """The manifest's entries with servers as addresses (names sorted, `all` kept)."""
    out: list[JsonObject] = []
    for e in objs(entries):
        tools = e.get("tools", ALL)
        out.append(
            {
                "server": f"mcp_server.{e['server']}",
                "tools": tools if tools == ALL else sorted(strings(tools)),
            }
        )
    return out


def _entries(config: Mapping[str, object]) -> list[tuple[str, str | list[str]]]:
    """The MCP servers an agent's declared config names, by address, each with `all` or the
    names of the tools it takes."""
    out: list[tuple[str, str | list[str]]] = []
    for e in objs(config.get("mcp_tools")):
        tools = e.get("tools")
        out.append((text(e.get("server")), ALL if tools == ALL else strings(tools)))
    return out


def mcp_servers_of(config: Mapping[str, object]) -> list[str]:
    return [server for server, _ in _entries(config)]


def check_mcp_tools(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Each entry names a declared MCP server, once per agent."""
    errors: list[Diagnostic] = []
    section = data.get("mcp_servers")
    known = sorted(section) if isinstance(section, dict) else []
    agents = data.get("agents")
    for key, spec in agents.items() if isinstance(agents, Mapping) else ():
        entries = spec.get("mcp_tools") if isinstance(spec, Mapping) else None
        seen: set[str] = set()
        for i, e in enumerate(entries if isinstance(entries, list) else []):
            ref = e.get("server") if isinstance(e, Mapping) else None
            if not isinstance(ref, str):
                continue  # the schema says
            at = ("agents", key, "mcp_tools", i, "server")
            where = f"agents.{key}.mcp_tools[{i}].server"
            if ref in seen:
                message = f"{where}: MCP server {ref!r} is listed twice"
                errors.append(doc.diag(at, message, code="LA416"))
            seen.add(ref)
            if ref not in known:
                hint = difflib.get_close_matches(ref, known, n=1)
                tail = (
                    f"; did you mean '{hint[0]}'?" if hint
                    else f" (declared: {', '.join(known)})" if known
                    else " (the manifest declares none under 'mcp_servers')"
                )  # fmt: skip
                message = f"{where}: no MCP server {ref!r} is declared{tail}"
                errors.append(doc.diag(at, message, code="LA417"))
    return errors


def _label(address: str, tool: str) -> str:
    return f"{address.split('.', 1)[1]}/{tool}"


def _wanted(
    ctx: Context, da: DesiredAgent, *, report: bool = True
) -> tuple[list[object], list[str]] | None:
    """The ids (or placeholders) of the MCP tools the agent should have, and their names as
    shown (`key/tool`); None when one cannot be attached (a problem was reported)."""
    ids: list[object] = []
    shown: list[str] = []
    listed_by = MCP_SERVERS.of(ctx.live).tools
    for address, tools in _entries(da.config):
        server = MCP_POOL.of(ctx).get(address)
        if address in ctx.refused:
            if report:
                ctx.problems.append(
                    Problem(
                        da.address,
                        f"uses {address}, which apply refuses to create",
                        f"see {address}",
                        code="LA622",
                    )
                )
            return None
        if server is None:
            # Registered by this plan: its tools are known once it is.
            ids.append({MARKER: address, "tools": tools})
            named = tools if isinstance(tools, list) else None  # None: all
            shown += (
                [_label(address, "*")] if named is None else [_label(address, t) for t in named]
            )
            continue
        listed = listed_by.get(server.id)
        if not isinstance(listed, tuple):
            if report:
                ctx.problems.append(
                    Problem(
                        da.address,
                        f"cannot list the tools of {address} (MCP server '{server.server_name}'): "
                        f"{listed or 'not listed'}",
                        reach_hint(server.mcp_server_type),
                        code="LA637",
                    )
                )
            return None
        names = list(tools) if isinstance(tools, list) else list(listed)
        unknown = [n for n in names if n not in listed]
        if unknown:
            if report:
                hints = [h for n in unknown for h in difflib.get_close_matches(n, listed, n=1)]
                ctx.problems.append(
                    Problem(
                        da.address,
                        f"{address} offers no tool{'s' if len(unknown) > 1 else ''} "
                        + ", ".join(map(repr, unknown)),
                        f"did you mean {', '.join(map(repr, hints))}?"
                        if hints
                        else f"it offers: {', '.join(listed) or 'none'}",
                        code="LA638",
                    )
                )
            return None
        have = registered(ctx, server.id)
        missing = [n for n in names if n not in have]
        ids += [have[n] for n in names if n in have]
        if missing:
            ids.append({MARKER: address, "tools": missing})
        shown += [_label(address, n) for n in names]
    return ids, sorted(shown)


def reach_hint(transport: str) -> str:
    """What to check when Letta cannot list an MCP server's tools, by its transport."""
    if transport == "stdio":
        return (
            "check the server's command, args and env: Letta starts the command on its own "
            "host, where it must be installed"
        )
    return "check the server's url, token and headers: Letta must reach it"


def create_tools(ctx: Context, da: DesiredAgent, body: JsonObject) -> bool:
    """Add the agent's MCP tools to its create request; False when one cannot be attached."""
    wanted = _wanted(ctx, da)
    if wanted is None:
        return False
    body["tool_ids"] = [*items(body.get("tool_ids")), *wanted[0]]
    return True


def create_diffs(ctx: Context, da: DesiredAgent) -> list[FieldDiff]:
    if "mcp_tools" not in da.config:
        return []
    wanted = _wanted(ctx, da, report=False)
    return [FieldDiff("mcp_tools", None, wanted[1], NEW)] if wanted else []


def plan_mcp_tools(ctx: Context, u: Update, da: DesiredAgent, la: LiveAgent) -> None:
    """Compare the agent's MCP tools of its declared servers with the wanted ones; add the
    difference and the `tool_ids` that converge it to `u`."""
    if not u.managed("mcp_tools"):
        return
    wanted = _wanted(ctx, da)
    if wanted is None:
        return
    ids, shown = wanted
    servers = {s.id: a for a, s in MCP_POOL.of(ctx).items() if a in mcp_servers_of(da.config)}
    by_id = {t.id: t for t in TOOLS.of(ctx.live).tools}
    managed: dict[str, str] = {}  # attached tool id -> shown name
    for t in la.tools:
        found = by_id.get(t.id)
        sid = obj(found.metadata.get("mcp")).get("server_id") if found else None
        if t.tool_type == MCP_TOOL and isinstance(sid, str) and sid in servers:
            managed[t.id] = _label(servers[sid], t.name)
    if not any(_placeholder(i) for i in ids) and set(managed) == set(ids):
        return
    before = sorted(managed.values())
    pool = MCP_POOL.of(ctx)
    for name in sorted(set(before) - set(shown)):
        server, _, tool = name.partition("/")
        listed = MCP_SERVERS.of(ctx.live).tools.get(pool[f"mcp_server.{server}"].id)
        if isinstance(listed, tuple) and tool not in listed:
            # The server's refresh deletes Letta's copy (detaching it everywhere) anyway.
            ctx.notes.append(
                f"{da.address}: MCP tool '{tool}' is gone from mcp_server.{server}; detached"
            )
    u.diffs.append(FieldDiff("mcp_tools", before, shown, MANIFEST))
    base = strings(u.body["tool_ids"]) if "tool_ids" in u.body else [t.id for t in la.tools]
    u.body["tool_ids"] = [i for i in base if i not in managed] + ids


def expand(run: Run, body: JsonObject) -> JsonObject:
    """The request with the placeholders of MCP tools replaced by their ids: one listing of
    each server's tools, made now that the server's change is."""
    ids = body.get("tool_ids")
    if not isinstance(ids, list) or not any(_placeholder(i) for i in ids):
        return body
    with run.lock:
        tools = _LISTED.setdefault(run, {})
    out: list[object] = []
    for i in ids:
        if not _placeholder(i):
            out.append(i)
            continue
        address = str(i[MARKER])
        sid = run.id_of(address)
        if sid not in tools:
            listed = objs(MCP_ROUTE.at(sid, "tools").get(run.client))
            with run.lock:
                tools[sid] = {str(t["name"]): str(t["id"]) for t in listed}
        have = tools[sid]
        names = sorted(have) if i["tools"] == ALL else strings(i["tools"])
        missing = [n for n in names if n not in have]
        if missing:
            raise _not_registered(run, address, sid, missing, sorted(have))
        out += [have[n] for n in names if have[n] not in out]
    return {**body, "tool_ids": out}


def _not_registered(
    run: Run, address: str, sid: str, missing: list[str], have: list[str]
) -> ApiError:
    """Why tools named for a server this apply registered are not among those Letta registered:
    a name the MCP server does not offer (said as plan says it), or an MCP server Letta could
    not reach, so that it registered none (what to check depends on its transport)."""
    names = ", ".join(map(repr, missing))
    if have:
        plural = "s" if len(missing) > 1 else ""
        hints = [h for n in missing for h in difflib.get_close_matches(n, have, n=1)]
        mean = f"; did you mean {', '.join(map(repr, hints))}?" if hints else ""
        return Rejected(
            f"{address} offers no tool{plural} {names}{mean} (it offers: {', '.join(have)})",
            code="LA638",
        )
    servers = MCP_ROUTE.get(run.client)
    found = [s for s in objs(servers) if s.get("id") == sid]
    transport = str(found[0].get("mcp_server_type") or "") if found else ""
    return ApiError(
        f"{address}: Letta registered no tools of it, so not {names} (the MCP server offers "
        f"none, or Letta could not reach it); {reach_hint(transport)}",
        code="LA726",
    )


def _placeholder(value: object) -> TypeGuard[Mapping[str, object]]:
    return isinstance(value, Mapping) and MARKER in value
