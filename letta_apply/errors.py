"""Errors letta-apply raises. Each names where it happened: a file position or a resource address.

LettaApplyError
 ├── ManifestError     one or more `file:line:col: message` diagnostics; nothing was sent
 ├── ApiError          the server refused or failed a request (carries status and address)
 │    ├── ServerUnreachable
 │    ├── RouteGone     a kind's route answered 404 or 410: the server does not offer the kind
 │    └── Rejected      a request not sent: what the server holds shows it wrong
 ├── StalePlanError    a saved plan no longer matches the manifest or the server; nothing written
 └── ApplyError        some changes failed; carries what was done and what was not
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from http import HTTPStatus


def escape_controls(text: str, keep: str = "") -> str:
    """`text` with control and format characters (a newline, a terminal escape, a bidirectional
    override) written as escapes, so that text from a manifest (a file name, a key) can neither
    fake a line of output nor drive the terminal; those in `keep` are left as they are."""
    if text.isprintable():
        return text
    out = []
    for ch in text:
        if ch not in keep and unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp"):
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(ch)
    return "".join(out)


@dataclass(frozen=True, order=True)
class Diagnostic:
    """A problem in a manifest, at a 1-based line and column."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        message = escape_controls(self.message)
        if self.line == 0:  # not in a file: a command-line option or an environment variable
            return f"{escape_controls(self.file)}: {message}"
        return f"{escape_controls(self.file)}:{self.line}:{self.col}: {message}"


class LettaApplyError(Exception):
    """Base of every error letta-apply reports to its user."""


class ManifestError(LettaApplyError):
    """The manifest is invalid. Carries every diagnostic found, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ApiError(LettaApplyError):
    """A request to the Letta server failed."""

    def __init__(
        self, message: str, *, status: int | None = None, method: str = "", path: str = ""
    ) -> None:
        self.status = status
        self.method = method
        self.path = path
        self.detail = message
        where = f"{method} {path}: " if method else ""
        code = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{where}{code}{message}")


def is_rejection(error: BaseException) -> bool:
    """A request the server refused as wrong (a 4xx that is not about timing: not a timeout,
    a conflict, a lock or a rate limit): sending it again gets the same answer."""
    status = getattr(error, "status", None)
    return isinstance(error, Rejected) or (
        isinstance(error, ApiError)
        and status is not None
        and 400 <= status < 500
        and (status not in (408, 409, 423, 429))
    )


class ServerUnreachable(ApiError):
    """No connection could be made to the server (refused, DNS, timeout)."""


# A path naming one resource (its id holds a UUID): a 404 there says the resource is gone, not
# the route.
_ONE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-")


def route_gone(error: ApiError) -> bool:
    """Whether a failed request says the server does not offer its route at all: 410 Gone, or
    404 Not Found on a route that names no one resource."""
    return error.status == 410 or (error.status == 404 and not _ONE.search(error.path))


class RouteGone(ApiError):
    """A route a kind of resource needs answered 404 Not Found or 410 Gone: the server does not
    offer the kind (Letta Cloud drops deprecated routes). Said in one line naming the kind and
    the route, never retried: asking again gets the same answer."""

    def __init__(self, section: str, error: ApiError, why: str) -> None:
        super().__init__(error.detail, status=error.status, method=error.method, path=error.path)
        self.section = section
        try:
            phrase = f" {HTTPStatus(error.status or 0).phrase}"
        except ValueError:
            phrase = ""
        self.args = (
            f"{section}: Letta answered {error.status}{phrase} for {error.method} {error.path}: "
            f"this server {'no longer offers' if error.status == 410 else 'does not offer'} "
            f"{section}, {why}",
        )


class Rejected(ApiError):
    """A request apply does not send, for what the server holds shows it wrong (an MCP tool the
    MCP server does not offer): sending it again would get the same answer."""


class StalePlanError(LettaApplyError):
    """The plan given to apply is not what the manifest and the server's state give now;
    nothing was applied. The same class through the command line and the Python API."""


class ApplyError(LettaApplyError):
    """Apply stopped on a failed change; `done` and `not_attempted` say where it stood."""

    def __init__(
        self,
        failures: list[str],
        done: int,
        not_attempted: int,
        skipped: list[str] | None = None,
        *,
        interrupted: bool = False,
        rejected: bool = False,
    ) -> None:
        self.failures = failures
        # The server refused a request as wrong (HTTP 4xx): running apply again sends it again.
        self.rejected = rejected
        self.done = done
        self.not_attempted = not_attempted
        self.skipped = skipped or []  # the changes not attempted, described
        self.interrupted = interrupted  # stopped when asked (a signal), not by a failure
        super().__init__("; ".join(failures) or "stopped when asked; no new change was started")
