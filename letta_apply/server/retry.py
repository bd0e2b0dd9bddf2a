"""How long the client waits before it sends a request again, and when it stops trying.

Transient failures (no connection, timeouts, 429, 502, 503, 504, 409 with Retry-After) are
retried with exponential backoff and jitter, honouring Retry-After, bounded in count and in time.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import ApiError

if TYPE_CHECKING:  # imported by the client, when it connects: validate never does
    import httpx


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried: at most `max_retries` re-sends of one request, and
    none that would start more than `max_time` seconds after its first attempt. Waits grow
    exponentially from `base_delay` up to `max_delay`, with jitter so that parallel workers do
    not retry in lockstep; a Retry-After header replaces the computed wait."""

    max_retries: int = 6
    max_time: float = 120.0
    base_delay: float = 0.5
    max_delay: float = 20.0

    def backoff(self, retry: int, rng: random.Random) -> float:
        """Wait before re-send number `retry` (1-based): half fixed, half random ("equal
        jitter"), so waits still grow while spreading out."""
        cap: float = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return cap / 2 + rng.uniform(0, cap / 2)


def retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (Retry-After, in seconds or as an HTTP date)."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        import email.utils  # here: only a Retry-After that is a date needs it

        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def gave_up(
    failure: ApiError, attempts: int, elapsed: float, wait: float, asked: float | None
) -> ApiError:
    """`failure` as the client raises it once it stops retrying: saying how long it tried."""
    why = f"gave up after {attempts} attempt(s) in {elapsed:.1f}s"
    if asked is not None and asked == wait:
        why += f"; the server asked to wait {asked:.0f}s more"
    return type(failure)(
        f"{failure.detail} ({why})", status=failure.status, method=failure.method,
        path=failure.path, code=failure.code,
    )  # fmt: skip
