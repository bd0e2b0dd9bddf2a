"""The requests that carry out an MCP server's changes (kinds.mcp_server): its create (the intent
first, kinds.mark_blocks), update, refresh and delete, each with its mark block, and the errors
of those that carry secrets masked."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from ...core.changes import Change
from ...core.jsonish import JsonObject, items, obj, opt_text, text
from ...core.model import Sensitive
from ...core.sensitive import Masker
from ...errors import ApiError
from ...server.routes import BLOCKS, Route
from ..context import Run
from ..mark_blocks import intend, write_mark
from .model import HTTP, MARK_LABEL, DesiredMcpServer, LiveMcpServer

ROUTE = Route("/v1/mcp-servers/")
_KIND = "mcp_server"  # the key of the server's id in its mark (kinds.mark_blocks)
T = TypeVar("T")


def create(run: Run, change: Change, body: Mapping[str, object]) -> str:
    """Register the server: its intent first, so a run that dies after the create leaves a
    server its stack adopts, not a name that blocks it; then its mark."""
    c = run.client
    server = obj(body.get("server"))
    mark = obj(body.get("mark"))
    block = intend(
        run, MARK_LABEL, _KIND, change.address, mark,
        {"server_name": server.get("server_name")}, (), opt_text(body.get("intent_block")),
    )  # fmt: skip
    # No `find`: an ambiguous failure of this create is reported, never retried into a
    # clash with itself; the next run adopts the server by its intent.
    created = _guarded(change, server, lambda: ROUTE.post(c, server))
    rid = str(obj(created)["id"])
    write_mark(run, MARK_LABEL, _KIND, change.address, rid, mark, block)
    run.record(change.address, rid)
    for stale in items(body.get("stale")):
        BLOCKS.at(str(stale)).delete(c)
    return rid


def update(run: Run, change: Change, rid: str, body: Mapping[str, object]) -> None:
    """The PATCH (when a field changed), the refresh of its tools, and its mark."""
    c = run.client
    patch = obj(body.get("patch"))
    if patch:
        _guarded(change, patch, lambda: ROUTE.at(rid).patch(c, patch))
    if body.get("refresh"):
        ROUTE.at(rid, "refresh").patch(c)
    mark = obj(body.get("mark"))
    write_mark(run, MARK_LABEL, _KIND, change.address, rid, mark, opt_text(body.get("mark_block")))


def delete(run: Run, rid: str, body: Mapping[str, object]) -> str:
    """The server (its tools go with it), then its mark. Without a server: a mark that marks
    none."""
    if rid:
        ROUTE.at(rid).delete(run.client)
    if body.get("mark_block"):
        BLOCKS.at(text(body.get("mark_block"))).delete(run.client)
    return rid or str(body.get("mark_block"))


def update_config(
    dm: DesiredMcpServer, ls: LiveMcpServer, changed: Mapping[str, object]
) -> JsonObject:
    """A PATCH's `config`. HTTP servers: shaped as for an `sse` server whatever the transport
    (Letta 0.16.8 writes a token only so, and keeps the type), with the url it requires.
    stdio: command and args together (Letta ignores one without the other), env kept."""
    if dm.config["mcp_server_type"] in HTTP:
        out: JsonObject = {
            "mcp_server_type": "sse",
            "server_url": dm.config.get("server_url", ls.server_url),
        }
        if "auth_token" in changed:
            out["auth_token"] = changed["auth_token"]
        if "custom_headers" in changed:
            out["custom_headers"] = changed["custom_headers"]
        return out
    return {
        "mcp_server_type": "stdio",
        "command": dm.config.get("command", ls.command),
        "args": dm.config.get("args", list(ls.args or ())),
        "env": changed.get("env", dm.config.get("env", dict(ls.env))),
    }


def _guarded(change: Change, sent: Mapping[str, object], send: Callable[[], T]) -> T:
    """Send a request carrying secrets: should the server quote them in its error, they are
    masked (a plain token declared in the manifest is no sensitive variable the CLI knows);
    stdio refused by the server is said plainly."""
    try:
        return send()
    except ApiError as e:
        values = [str(v) for v in _secrets(sent)]
        detail = Masker(values).text(e.detail)
        if "stdio" in detail and "disabled" in detail:
            detail = (
                f"{change.address}: this Letta server does not allow stdio MCP servers (a "
                "self-hosted server allows them when started with MCP_DISABLE_STDIO=false; "
                f"Letta Cloud never does): {detail}"
            )
        raise ApiError(detail, status=e.status, method=e.method, path=e.path, code=e.code) from None


def _secrets(value: object) -> list[Sensitive]:
    if isinstance(value, Sensitive):
        return [value]
    if isinstance(value, Mapping):
        return [s for v in value.values() for s in _secrets(v)]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _secrets(v)]
    return []
