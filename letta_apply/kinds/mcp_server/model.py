"""MCP servers as letta-apply sees them (kinds.mcp_server): the declared and live servers, the
rules a manifest's `mcp_servers:` must follow, and the marks letta-apply writes. See
kinds.mcp_server for what Letta 0.16.8 does with them."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlparse

from ...core.jsonish import JsonObject, obj, objs, opt_text, strings, text
from ...core.model import MARK_KEY, Desired, Sensitive
from ...errors import Diagnostic, define
from ...manifest.files import Document, clip
from ..context import Context, DeclaredOf, Users
from ..mark_blocks import MarkBlock, resolve, same, with_marks
from ..named import DesiredNamed, named_applied, secret
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
class DesiredMcpServer(DesiredNamed):
    """An MCP server as the manifest declares it: its server_name, and in `config` its
    mcp_server_type and the fields declared: server_url, auth_header, auth_token, custom_headers,
    command, args, env (secrets as Sensitive)."""


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
    mark: Mapping[str, object] = field(default_factory=dict)
    mark_block: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, object], mark: MarkBlock | None = None) -> LiveMcpServer:
        token = text(raw.get("auth_token"))
        if token.startswith(BEARER):
            token = token[len(BEARER) :]
        args = raw.get("args")
        return cls(
            str(raw["id"]),
            str(raw.get("server_name") or ""),
            str(raw.get("mcp_server_type") or ""),
            opt_text(raw.get("server_url")),
            opt_text(raw.get("auth_header")),
            Sensitive(token) if token else None,
            {str(k): Sensitive(v) for k, v in obj(raw.get("custom_headers")).items()},
            opt_text(raw.get("command")),
            None if args is None else tuple(strings(args)),
            {str(k): Sensitive(v) for k, v in obj(raw.get("env")).items()},
            dict(mark.mark) if mark else {},
            mark.id if mark else None,
        )

    def mapping(self, name: str) -> Mapping[str, str]:
        """The mapping of secrets `name` (custom_headers or env)."""
        return self.custom_headers if name == "custom_headers" else self.env


@dataclass(frozen=True)
class McpState:
    """Every MCP server of the organization (they cannot be filtered by mark), the stack's mark
    blocks, and the live tool names of the servers the stack's agents use (by server id; a
    string says why they could not be listed)."""

    servers: tuple[Mapping[str, object], ...] = ()
    marks: tuple[MarkBlock, ...] = ()
    listed: bool = True
    tools: Mapping[str, tuple[str, ...] | str] = field(default_factory=dict)
    users: Mapping[str, Users] = field(default_factory=dict)  # of the servers a plan may delete

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by a server given it (kinds.mark_blocks): server
        names are unique, so the name the create sent identifies it."""
        return resolve(self.marks, self.servers, same("server_name"))

    def live(self) -> list[LiveMcpServer]:
        return with_marks(self.servers, self.resolved(), LiveMcpServer.from_api)


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


def token_of(value: object) -> Sensitive:
    """A token as Letta stores it: without its `Bearer ` prefix."""
    token = secret(value)
    return Sensitive(token[len(BEARER) :]) if token.startswith(BEARER) else token


def hidden_fields(config: Mapping[str, object]) -> frozenset[str]:
    out = {"auth_token"} if "auth_token" in config else set()
    for name in MAPPINGS:
        out |= {f"{name}.{k}" for k in obj(config.get(name))}
    return frozenset(out)


def mcp_applied(dm: DesiredMcpServer) -> JsonObject:
    """Digests of the plain fields letta-apply writes, and the names of the sensitive ones."""
    return named_applied(dm, "server_name", ("mcp_server_type", *PLAIN), hidden_fields(dm.config))


def mark_body(stack: str, dm: DesiredMcpServer) -> JsonObject:
    return {MARK_KEY: {"stack": stack, "address": dm.address, "applied": mcp_applied(dm)}}


def registered(ctx: Context, server_id: str) -> dict[str, str]:
    """The Letta tools made from a server's tools, name -> tool id (from the tool listing)."""
    out = {}
    for t in TOOLS.of(ctx.live).tools:
        if t.tool_type == MCP_TOOL and obj(t.metadata.get("mcp")).get("server_id") == server_id:
            out[t.name] = t.id
    return out


def used_servers(desired: Desired) -> set[str]:
    """Addresses of the MCP servers whose tools the manifest's agents attach."""
    agents = DeclaredOf[Declared]("agent").of(desired).values()
    return {str(e["server"]) for a in agents for e in objs(a.config.get("mcp_tools"))}


def check_mcp_servers(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Fields that fit the transport, and what Letta can keep (see kinds.mcp_server)."""
    errors: list[Diagnostic] = []
    names: dict[str, str] = {}
    for key, spec in obj(data.get(SECTION)).items():
        if not isinstance(spec, dict):
            continue
        kind = spec.get("mcp_server_type")
        if kind not in (*HTTP, "stdio"):
            continue  # the schema says
        entry = _Entry(doc, key, str(kind), spec)
        errors += _url_problems(entry)
        errors += _transport_problems(entry)
        errors += _auth_problems(entry)
        name = spec.get("server_name", key)
        if isinstance(name, str) and name in names:
            errors.append(
                doc.diag(
                    entry.at,
                    f"{entry.where}: server_name {name!r} is already used by "
                    f"{SECTION}.{names[name]}; MCP server names are unique on a server",
                    code="LA467",
                    key=True,
                )
            )
        elif isinstance(name, str):
            names[name] = key
    return errors


@dataclass(frozen=True)
class _Entry:
    """One entry of `mcp_servers:` being checked, of a known transport (`kind`)."""

    doc: Document
    key: str
    kind: str
    spec: Mapping[str, object]

    @property
    def at(self) -> tuple[str, str]:
        return (SECTION, self.key)

    @property
    def where(self) -> str:
        return f"{SECTION}.{self.key}"

    @property
    def http(self) -> bool:
        return self.kind in HTTP


def _url_problems(e: _Entry) -> list[Diagnostic]:
    """An HTTP server's URL names a host Letta would accept."""
    url = e.spec.get("server_url")
    if not e.http or not isinstance(url, str):
        return []
    broken = _broken_url(url)
    if broken:
        return [e.doc.diag((*e.at, "server_url"), f"{e.where}.server_url: {broken}", code="LA461")]
    if refused_url(url):
        return [
            e.doc.diag(
                (*e.at, "server_url"),
                f"{e.where}.server_url: Letta refuses MCP servers on loopback or private "
                "addresses (it checks at registration and before every connection); "
                "give a public address",
                code="LA462",
            )
        ]
    return []


def _transport_problems(e: _Entry) -> list[Diagnostic]:
    """No field of the other transport, every field of its own."""
    errors: list[Diagnostic] = []
    wrong = ("command", "args", "env") if e.http else (
        "server_url", "auth_header", "auth_token", "custom_headers"
    )  # fmt: skip
    for f in wrong:
        if f in e.spec:
            errors.append(
                e.doc.diag(
                    (*e.at, f),
                    f"{e.where}.{f}: a {e.kind} server does not take it",
                    code="LA463",
                    key=True,
                )
            )
    # Letta 0.16.8 refuses a stdio server without `args` (CreateStdioMCPServer requires it).
    for need in ("server_url",) if e.http else ("command", "args"):
        if need not in e.spec:
            tail = " (args: [] for none)" if need == "args" else ""
            errors.append(
                e.doc.diag(
                    e.at,
                    f"{e.where}: a {e.kind} server needs `{need}`{tail}",
                    code="LA464",
                    key=True,
                )
            )
    return errors


def _auth_problems(e: _Entry) -> list[Diagnostic]:
    """Credentials Letta sends as declared: a token in `Authorization`, and not beside custom
    headers."""
    errors: list[Diagnostic] = []
    header = e.spec.get("auth_header")
    if header is not None and header != "Authorization":
        errors.append(
            e.doc.diag(
                (*e.at, "auth_header"),
                f"{e.where}.auth_header: Letta sends a token as `Authorization: Bearer "
                "<token>` only; put another header in custom_headers",
                code="LA465",
            )
        )
    if "auth_token" in e.spec and e.spec.get("custom_headers"):
        errors.append(
            e.doc.diag(
                (*e.at, "auth_token"),
                f"{e.where}: Letta sends no token when custom_headers are set; put the "
                "token in custom_headers (Authorization: Bearer ...)",
                code="LA466",
                key=True,
            )
        )
    return errors
