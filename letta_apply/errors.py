"""Errors letta-apply raises. Each names where it happened (a file position or a resource
address) and carries a stable code, `err.code`: `LA` and three digits, defined with what it
means and what to do (error_codes/, and each kind's folder) and listed in docs/errors.md
(written from CODES by scripts/schemas). A code is never given to another problem, not even
once its own is gone (RETIRED). The command line ends each error line with it:
`error: ... [LA601]`, `file:line:col: ... [LA302]`.

The first digit says which step found it (error_codes.RANGES): LA1xx to LA4xx, the manifest,
before any request; LA5xx the server; LA6xx plans and what they refuse; LA7xx apply and the
lock; LA8xx backups, restore, Agent Files, export; LA9xx usage.

LettaApplyError
 ├── UsageError        an option or argument is wrong or missing; nothing was sent
 ├── ManifestError     one or more `file:line:col: message` diagnostics, each with its code;
 │                     nothing was sent (its code is the first diagnostic's)
 ├── ApiError          the server refused or failed a request (carries status and address;
 │    │                its code follows the status)
 │    ├── ServerUnreachable
 │    ├── RouteGone     a kind's route answered 404 or 410: the server does not offer the kind
 │    ├── Rejected      a request not sent: what the server holds shows it wrong
 │    └── BackupFailed  (memory.backup) a delete's backup failed: the delete was not sent
 ├── ServerStateError  what the server holds or answered keeps the command from going on
 ├── PlanFileError     a file given as a saved plan is not one this run can apply
 ├── StalePlanError    a saved plan no longer matches the manifest or the server; nothing written
 ├── ApplyError        some changes failed; carries what was done and what was not
 │    └── ApplyFailed   (api) with the run's result
 ├── DestroyPrevented  prevent_destroy refused the plan; nothing was applied
 ├── PolicyViolated    a policy rule at error refused the plan; nothing was applied
 ├── LockError         (server.lock_records) the stack is locked, or a lock record is not one
 ├── AgentFileError    (memory.af_format) an Agent File letta-apply will not read
 ├── RestoreError      a backup that cannot be restored as asked
 └── ExportError       export or convert cannot write what was asked; nothing was written
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
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
    """A problem in a manifest, at a 1-based line and column, with its code (see CODES)."""

    file: str
    line: int
    col: int
    message: str
    code: str = field(default="", kw_only=True)  # none only where it stands for a place

    def __str__(self) -> str:
        message = escape_controls(self.message)
        if self.line == 0:  # not in a file: a command-line option or an environment variable
            return f"{escape_controls(self.file)}: {message}"
        return f"{escape_controls(self.file)}:{self.line}:{self.col}: {message}"


def with_code(text: str, code: str) -> str:
    """One line for the user: `text`, then the code docs/errors.md explains."""
    return f"{text} [{code}]" if code else text


class LettaApplyError(Exception):
    """Base of every error letta-apply reports to its user; never raised itself. `code` is the
    class's own, or the one a raise names (`code=`): a class that stands for several problems
    has none of its own, and each raise names one."""

    code = ""

    def __init__(self, *args: object, code: str | None = None) -> None:
        super().__init__(*args)
        if code is not None:
            self.code = code


class UsageError(LettaApplyError):
    """A command-line option or an argument of the Python API is wrong or missing; nothing was
    read from the server or written."""


class ManifestError(LettaApplyError):
    """The manifest is invalid. Carries every diagnostic found, sorted by position; its code is
    the first one's (each diagnostic has its own)."""

    what = "the manifest"  # where the errors are, for the line that counts them

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics)
        super().__init__(
            "\n".join(str(d) for d in self.diagnostics),
            code=self.diagnostics[0].code if self.diagnostics else None,
        )


class PolicyFileError(ManifestError):
    """A policy file (`--policy`, or the manifest's `policy:`) is invalid, located as a
    manifest's problems are."""

    what = "the policy files"


def _by_status(status: int | None) -> str:
    """The code of a failed request, by what its status says to do about it."""
    if status in (401, 403):
        return "LA502"
    if status == 404:
        return "LA503"
    if status in (409, 423):
        return "LA504"
    if status in (408, 429):
        return "LA505"
    if status is not None and status >= 500:
        return "LA506"
    if status is not None and status >= 400:
        return "LA507"
    return ApiError.code


class ApiError(LettaApplyError):
    """A request to the Letta server failed. Its code follows the status, unless a subclass or
    the raise names one."""

    code = "LA510"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        method: str = "",
        path: str = "",
        code: str | None = None,
    ) -> None:
        if code is None and type(self).code == ApiError.code:
            code = _by_status(status)
        self.status = status
        self.method = method
        self.path = path
        self.detail = message
        where = f"{method} {path}: " if method else ""
        http = f"HTTP {status}: " if status is not None else ""
        super().__init__(f"{where}{http}{message}", code=code)


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

    code = "LA501"


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

    code = "LA508"

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


class ServerStateError(LettaApplyError):
    """What the server holds, or answered, keeps the command from going on (no such project,
    an answer that does not say what was asked)."""


class PlanFileError(LettaApplyError):
    """A file given as a saved plan cannot be read as one, or is not one this run can apply
    (another server, another stack, sensitive values without the manifest)."""


class StalePlanError(LettaApplyError):
    """The plan given to apply is not what the manifest and the server's state give now;
    nothing was applied. The same class through the command line and the Python API."""


class ApplyError(LettaApplyError):
    """Apply stopped on a failed change; `done` and `not_attempted` say where it stood. Each
    failure is a line ending with its own code; the error's code says that apply stopped."""

    code = "LA701"

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
        super().__init__(
            "; ".join(failures) or "stopped when asked; no new change was started",
            code="LA702" if interrupted else None,
        )


class DestroyPrevented(LettaApplyError):
    """prevent_destroy: the plan would delete a protected resource; nothing was applied."""

    code = "LA703"


class PolicyViolated(LettaApplyError):
    """A policy rule at severity error refused the plan; nothing was applied."""

    code = "LA655"


class RestoreError(LettaApplyError):
    """A backup folder or record that cannot be restored as asked; nothing was restored."""


class ExportError(LettaApplyError):
    """export or convert cannot write what was asked; nothing was written."""


# -- codes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Code:
    """A problem users can meet, by its stable code: the error raised, what it means and what
    to do about it (docs/errors.md is written from these)."""

    code: str
    error: str  # the class raised: ManifestError for a diagnostic, Problem for a refused
    # resource (a plan shows it, apply leaves the resource alone); several, comma-separated
    title: str
    meaning: str
    action: str


CODES: dict[str, Code] = {}
"""Every code, filled as modules are imported: letta_apply.error_codes holds the shared ones,
each kind's folder its own (so that a new kind touches nothing outside it)."""

RETIRED: dict[str, str] = {}
"""Codes no longer raised, with what they meant: never given to another problem."""

_CODE = re.compile(r"LA[1-9]\d\d")


def define(code: str, error: str, title: str, meaning: str, action: str) -> str:
    """Register a code (refused when malformed, taken or retired); returns it."""
    if not _CODE.fullmatch(code):
        raise ValueError(f"{code!r}: a code is LA and three digits, the first not 0")
    if code in CODES or code in RETIRED:
        raise ValueError(f"{code} is already given to {CODES.get(code) or RETIRED[code]}")
    CODES[code] = Code(code, error, title, meaning, action)
    return code
