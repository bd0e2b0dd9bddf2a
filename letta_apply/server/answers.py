"""What the server's answers mean to the client: a success's JSON, and for a failure its message
(secrets masked), whether the server may have acted on the request, and whether asking again
may help."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ApiError
from .retry import retry_after

if TYPE_CHECKING:  # imported by the client, when it connects: validate never does
    import httpx

_RETRY_STATUS = {429, 502, 503, 504}


@dataclass(frozen=True)
class Failure:
    """One attempt that failed: the error raised if it is not tried again, whether the request
    may have reached the server and acted (`sent`), whether sending it again may succeed, and
    how long the server asked to wait first (Retry-After)."""

    error: ApiError
    sent: bool
    retryable: bool = True
    delay: float | None = None


def refused(resp: httpx.Response, method: str, path: str, redact: Callable[[str], str]) -> Failure:
    """The failure an unsuccessful answer stands for."""
    error = _error(resp, method, path, redact)
    delay = retry_after(resp)
    status = resp.status_code
    retryable = (status in _RETRY_STATUS and not _mcp_unreachable(resp)) or (
        status == 409 and delay is not None
    )
    # 429 and 409-with-Retry-After: refused before acting. Other 5xx: maybe acted.
    return Failure(error, status >= 500, retryable, delay)


def gone_means_done(method: str, path: str) -> bool:
    """A DELETE or detach answered 404 after an attempt that may have landed: it did land."""
    return method == "DELETE" or (method == "PATCH" and "/core-memory/blocks/detach/" in path)


def decode(resp: httpx.Response, method: str, path: str) -> object:
    """A successful response's JSON (None when empty)."""
    if not resp.content:
        return None
    try:
        found: object = resp.json()
    except ValueError:
        raise ApiError(
            "the server answered with something that is not JSON",
            status=resp.status_code,
            method=method,
            path=path,
        ) from None
    return found


def _json(resp: httpx.Response) -> object:
    """The answer's JSON; None when it is not JSON."""
    try:
        found: object = resp.json()
    except ValueError:
        return None
    return found


def _letta_error(resp: httpx.Response) -> Mapping[str, object]:
    """The `error` object of Letta's own error answers ({"error": {"type", "message",
    "detail"}}); empty for any other answer."""
    body = _json(resp)
    error = body.get("error") if isinstance(body, Mapping) else None
    return error if isinstance(error, Mapping) else {}


def _mcp_unreachable(resp: httpx.Response) -> bool:
    """A 502 that is Letta's answer, not a gateway's: Letta could not connect to an MCP server
    (a stdio command not installed, a URL that refuses). Asking again asks the same MCP server
    the same way: not retried."""
    return _letta_error(resp).get("type") == "mcp_connection_error"


def _error(resp: httpx.Response, method: str, path: str, redact: Callable[[str], str]) -> ApiError:
    """The error a failed response stands for, with the server's own message (secrets masked,
    then cut short)."""
    letta = _letta_error(resp)
    body = _json(resp)
    detail = body.get("detail", resp.text) if isinstance(body, Mapping) else resp.text
    if letta:
        said = [str(letta.get(k) or "").strip() for k in ("message", "detail")]
        detail = " ".join(dict.fromkeys(s for s in said if s)) or detail
    text = redact(str(detail).strip().replace("\n", " ")) or resp.reason_phrase
    if len(text) > 300:
        text = text[:297] + "..."
    if resp.status_code in (401, 403):
        text += " (check --api-key / LETTA_API_KEY)"
    return ApiError(text, status=resp.status_code, method=method, path=path)
