"""MCP servers as letta-apply sees them (kinds.mcp_server): the declared and live servers, the
rules a manifest's `mcp_servers:` must follow, and the marks letta-apply writes. See
kinds.mcp_server for what Letta 0.16.8 does with them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from ...core.jsonish import objs
from ...core.marks import digest, sensitive_names
from ...core.model import MARK_KEY, Desired, Sensitive
from ...errors import Diagnostic, define
from ...manifest.files import Document, clip
from ..context import Context, DeclaredOf, Users
from ..mark_blocks import MarkBlock, resolve
from ..resource import Declared
from ..tool.kind import TOOLS

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA461", "ManifestError", "an MCP server URL that is not one",
       "An MCP server's `server_url` is not an http(s) URL with a host.",
       "Give the server's full URL.")
define("LA462", "ManifestError", "an MCP server on a private address",
       "An MCP server's `server_url` is on a loopback or private address, which Letta "
       "refuses (at registration and before every connection).",
       "Give a public address.")
define("LA463", "ManifestError", "a field this MCP transport does not take",
       "An MCP server sets a field of another transport (`command` on an HTTP server, "
       "`server_url` on a stdio one...).",
       "Remove the field.")
define("LA464", "ManifestError", "an MCP server missing a field",
       "An MCP server lacks a field its transport needs (`server_url`; `command` and `args` "
       "for stdio).",
       "Add the field (`args: []` for none).")
define("LA465", "ManifestError", "an auth_header Letta does not send",
       "An MCP server's `auth_header` is not `Authorization`; Letta sends a token as "
       "`Authorization: Bearer <token>` only.",
       "Put another header in `custom_headers`.")
define("LA466", "ManifestError", "a token beside custom_headers",
       "An MCP server sets `auth_token` and `custom_headers`; Letta sends no token when "
       "custom headers are set.",
       "Put the token in custom_headers (`Authorization: Bearer ...`).")
define("LA467", "ManifestError", "MCP server name used twice",
       "Two MCP servers of the manifest have the same server_name; names are unique on a "
       "server.",
       "Give each its own `server_name`.")
# fmt: on

SECTION = "mcp_servers"
MARK_LABEL = "letta-apply-mcp-server"
HTTP = ("streamable_http", "sse")
PLAIN = ("server_url", "auth_header", "command", "args")
MAPPINGS = ("custom_headers", "env")  # their values are secrets, their keys are not
BEARER = "Bearer "
MCP_TOOL = "external_mcp"
_LOCAL_SUFFIXES = (
    ".local",
    ".localdomain",
    ".home.arpa",
    ".svc",
    ".cluster.local",
)  # Letta's tool_type for a tool an MCP server provides


@dataclass(frozen=True)
class DesiredMcpServer:
    """An MCP server as the manifest declares it. `config` holds mcp_server_type and the fields
    declared: server_url, auth_header, auth_token, custom_headers, command, args, env (secrets
    as Sensitive)."""

    address: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LiveMcpServer:
    id: str
    server_name: str
    mcp_server_type: str
    server_url: str | None = None
    auth_header: str | None = None
    auth_token: str | None = field(default=None, repr=False)  # Sensitive, without "Bearer "
    custom_headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    command: str | None = None
    args: tuple[str, ...] | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)
    mark: Mapping[str, Any] = field(default_factory=dict)
    mark_block: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, Any], mark: MarkBlock | None = None) -> LiveMcpServer:
        token = raw.get("auth_token")
        if isinstance(token, str) and token.startswith(BEARER):
            token = token[len(BEARER) :]
        args = raw.get("args")
        return cls(
            str(raw["id"]),
            str(raw.get("server_name") or ""),
            str(raw.get("mcp_server_type") or ""),
            raw.get("server_url"),
            raw.get("auth_header"),
            Sensitive(token) if token else None,
            {str(k): Sensitive(v) for k, v in (raw.get("custom_headers") or {}).items()},
            raw.get("command"),
            None if args is None else tuple(args),
            {str(k): Sensitive(v) for k, v in (raw.get("env") or {}).items()},
            dict(mark.mark) if mark else {},
            mark.id if mark else None,
        )


@dataclass(frozen=True)
class McpState:
    """Every MCP server of the organization (they cannot be filtered by mark), the stack's mark
    blocks, and the live tool names of the servers the stack's agents use (by server id; a
    string says why they could not be listed)."""

    servers: tuple[Mapping[str, Any], ...] = ()
    marks: tuple[MarkBlock, ...] = ()
    listed: bool = True
    tools: Mapping[str, tuple[str, ...] | str] = field(default_factory=dict)
    users: Mapping[str, Users] = field(default_factory=dict)  # of the servers a plan may delete

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by a server given it (kinds.mark_blocks): server
        names are unique, so the name the create sent identifies it."""
        return resolve(
            self.marks, self.servers, lambda c, s: s.get("server_name") == c.get("server_name")
        )

    def live(self) -> list[LiveMcpServer]:
        by_id: dict[str, MarkBlock] = {}
        for m in self.resolved():
            by_id.setdefault(m.target, m)
        return [LiveMcpServer.from_api(s, by_id.get(str(s["id"]))) for s in self.servers]


def refused_url(url: str) -> bool:
    """Whether Letta 0.16.8 refuses an MCP URL without resolving it (validate_mcp_server_url):
    localhost and local names, and IP addresses that are not global."""
    host = (urlparse(url).hostname or "").rstrip(".").lower()
    if host in ("localhost", "metadata.google.internal") or host.endswith(_LOCAL_SUFFIXES):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _broken_url(url: str) -> str | None:
    """Why a URL cannot name a server (no host, or one that cannot be read), else None."""
    try:
        parts = urlparse(url)
        host = parts.hostname
        parts.port  # noqa: B018 (reading it checks it)
    except ValueError as e:
        return f"{clip(url)} is not a valid URL ({e})"
    if not host:
        return f"{clip(url)} names no host"
    return None


def secret(value: Any) -> Sensitive:
    return value if isinstance(value, Sensitive) else Sensitive(str(value))


def token_of(value: Any) -> Sensitive:
    """A token as Letta stores it: without its `Bearer ` prefix."""
    text = secret(value)
    return Sensitive(text[len(BEARER) :]) if text.startswith(BEARER) else text


def hidden_fields(config: Mapping[str, Any]) -> frozenset[str]:
    out = {"auth_token"} if "auth_token" in config else set()
    for name in MAPPINGS:
        out |= {f"{name}.{k}" for k in config.get(name) or {}}
    return frozenset(out)


def mcp_applied(dm: DesiredMcpServer) -> dict[str, Any]:
    """Digests of the plain fields letta-apply writes, and the names of the sensitive ones."""
    out: dict[str, Any] = {"server_name": digest(dm.name)}
    for k in ("mcp_server_type", *PLAIN):
        if k in dm.config and k not in dm.ignore:
            out[k] = digest(dm.config[k])
    if dm.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **sensitive_names(hidden_fields(dm.config))}


def mark_body(stack: str, dm: DesiredMcpServer) -> dict[str, Any]:
    return {MARK_KEY: {"stack": stack, "address": dm.address, "applied": mcp_applied(dm)}}


def registered(ctx: Context, server_id: str) -> dict[str, str]:
    """The Letta tools made from a server's tools, name -> tool id (from the tool listing)."""
    out = {}
    for t in TOOLS.of(ctx.live).tools:
        if t.tool_type == MCP_TOOL and (t.metadata.get("mcp") or {}).get("server_id") == server_id:
            out[t.name] = t.id
    return out


def used_servers(desired: Desired) -> set[str]:
    """Addresses of the MCP servers whose tools the manifest's agents attach."""
    agents = DeclaredOf[Declared]("agent").of(desired).values()
    return {str(e["server"]) for a in agents for e in objs(a.config.get("mcp_tools"))}


def check_mcp_servers(doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
    """Fields that fit the transport, and what Letta can keep (see kinds.mcp_server)."""
    errors: list[Diagnostic] = []
    names: dict[str, str] = {}
    section = data.get(SECTION)
    for key, spec in (section if isinstance(section, dict) else {}).items():
        if not isinstance(spec, dict):
            continue
        at = (SECTION, key)
        where = f"{SECTION}.{key}"
        kind = spec.get("mcp_server_type")
        if kind not in (*HTTP, "stdio"):
            continue  # the schema says
        url = spec.get("server_url")
        broken = _broken_url(url) if kind in HTTP and isinstance(url, str) else None
        if broken:
            message = f"{where}.server_url: {broken}"
            errors.append(doc.diag((*at, "server_url"), message, code="LA461"))
        elif kind in HTTP and isinstance(url, str) and refused_url(url):
            errors.append(
                doc.diag(
                    (*at, "server_url"),
                    f"{where}.server_url: Letta refuses MCP servers on loopback or private "
                    "addresses (it checks at registration and before every connection); "
                    "give a public address",
                    code="LA462",
                )
            )
        wrong = ("command", "args", "env") if kind in HTTP else (
            "server_url", "auth_header", "auth_token", "custom_headers"
        )  # fmt: skip
        for f in wrong:
            if f in spec:
                errors.append(
                    doc.diag(
                        (*at, f),
                        f"{where}.{f}: a {kind} server does not take it",
                        code="LA463",
                        key=True,
                    )
                )
        # Letta 0.16.8 refuses a stdio server without `args` (CreateStdioMCPServer requires it).
        for need in ("server_url",) if kind in HTTP else ("command", "args"):
            if need not in spec:
                tail = " (args: [] for none)" if need == "args" else ""
                errors.append(
                    doc.diag(
                        at,
                        f"{where}: a {kind} server needs `{need}`{tail}",
                        code="LA464",
                        key=True,
                    )
                )
        header = spec.get("auth_header")
        if header is not None and header != "Authorization":
            errors.append(
                doc.diag(
                    (*at, "auth_header"),
                    f"{where}.auth_header: Letta sends a token as `Authorization: Bearer "
                    "<token>` only; put another header in custom_headers",
                    code="LA465",
                )
            )
        if "auth_token" in spec and spec.get("custom_headers"):
            errors.append(
                doc.diag(
                    (*at, "auth_token"),
                    f"{where}: Letta sends no token when custom_headers are set; put the "
                    "token in custom_headers (Authorization: Bearer ...)",
                    code="LA466",
                    key=True,
                )
            )
        name = spec.get("server_name", key)
        if isinstance(name, str) and name in names:
            errors.append(
                doc.diag(
                    at,
                    f"{where}: server_name {name!r} is already used by "
                    f"{SECTION}.{names[name]}; MCP server names are unique on a server",
                    code="LA467",
                    key=True,
                )
            )
        elif isinstance(name, str):
            names[name] = key
    return errors
