"""Leases on a stack's lock (server.lock): how a holder keeps the lock, and how a run that finds
it held tells a dead holder from a live one.

A run killed while it holds the lock (a cancelled CI job) cannot release it. So a record
carries a lease: its holder renews it (a counter in the record, one write every `RENEW`
seconds) while it works, and stops sending requests when no renewal succeeded for `HALT`
seconds, well before the lease (HALT + the request timeout + a margin) can run out: whatever it
had in flight has ended by then. A run that finds the lock held takes it over (deleting the dead
run's record and changing the serial, so that it plans again) when:

- the holder ran on this machine (same host name, boot and process namespace) and its process
  is gone: at once;
- or it has watched the record go unrenewed for a whole lease on its own clock (clocks of
  different machines are never compared), or for two renewal intervals when the record's last
  renewal, by the holder's clock, is older than the lease and a generous allowance for skew.

A record without a lease (older releases) is never taken over: `force-unlock` removes it.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from .host import alive, machine, parse_utc
from .lock_records import LockInfo

RENEW = 10.0  # seconds between renewals of a lease
HALT = 25.0  # seconds without a renewal after which the holder sends nothing more
MARGIN = 5.0
SKEW = 60.0  # what clocks of two machines may differ by, for a record's own renewal time


def lease_for(request_timeout: float) -> float:
    """The lease a holder takes: it stops after HALT without renewing, and a request it sent
    just before ends within the request timeout."""
    return HALT + request_timeout + MARGIN


class Watch:
    """What a run waiting for the lock saw of the holders' leases, on its own clock."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._watched: dict[str, tuple[int, float]] = {}  # record id -> (renewals, first seen)
        self._renewing: set[str] = set()  # records seen renewed while this run waited

    def gone(self, holder: LockInfo) -> str:
        """Why the run holding the lock is surely gone ("" when it may be alive)."""
        if (
            holder.pid
            and holder.machine
            and holder.host == socket.gethostname()
            and holder.machine == machine()
            and not alive(holder.pid)
        ):
            return f"its process {holder.pid} on this machine is gone"
        if holder.lease <= 0:
            return ""
        now = self._clock()
        seen = self._watched.get(holder.id)
        if seen is None or seen[0] != holder.renewals:
            if seen is not None:
                self._renewing.add(holder.id)  # seen renewing: alive
            self._watched[holder.id] = (holder.renewals, now)
        elif now - seen[1] >= holder.lease:
            return f"its lease of {holder.lease:.0f} s was not renewed for {now - seen[1]:.0f} s"
        # Long dead by its own clock: taken over once this run has seen it silent for two
        # renewals, so that a live holder whose clock lags far behind is never taken for dead.
        renewed = parse_utc(holder.renewed)
        silent = seen is not None and seen[0] == holder.renewals and now - seen[1] >= 2 * RENEW
        if silent and renewed is not None and time.time() - renewed > holder.lease + SKEW:
            return f"its lease of {holder.lease:.0f} s ran out (last renewed {holder.renewed})"
        return ""

    def expiring(self, holder: LockInfo) -> bool:
        """Whether `holder` has a lease that has not been renewed since this run first saw it:
        the run may be dead, and waiting out its lease beats giving up (a live holder renews
        within `RENEW` seconds, and is then waited for only until the deadline)."""
        seen = self._watched.get(holder.id)
        return bool(holder.lease > 0 and seen and seen[0] == holder.renewals
                    and holder.id not in self._renewing)  # fmt: skip
