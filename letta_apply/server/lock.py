"""An advisory lock per stack, held on the server, so two applies of one stack do not interleave.

Letta has no compare-and-swap, so the lock is a record anyone can write: a block tagged
`letta-apply-lock:<stack>` whose metadata says who holds it (holder, host, pid, time, operation).
To take the lock a run creates its record, then lists every record of the stack: the oldest
wins. A loser deletes its record and waits until the stack is free or `timeout` runs out. The
winner looks once more after a short pause, in case a record with an earlier timestamp was still
being committed when it first looked.

Lock records carry neither the stack's tag nor its marks, and are attached to no agent: no kind
sees them, so plan, prune, drift and export leave them out (a plan's listing of the stack's
blocks takes them in, at no extra request, only so that a run with nothing to write can still
remove a dead run's record). The lock is advisory: the no-duplicate rule of apply holds
without it.

**Leases.** A run killed while it holds the lock (a cancelled CI job) cannot release it. So a
record carries a lease: its holder renews it (a counter in the record, one write every
`RENEW` seconds) while it works, and stops sending requests when no renewal succeeded for
`HALT` seconds, well before the lease (HALT + the request timeout + a margin) can run out:
whatever it had in flight has ended by then. A run that finds the lock held takes it over
(deleting the dead run's record and changing the serial, so that it plans again) when:

- the holder ran on this machine (same host name, boot and process namespace) and its process
  is gone: at once;
- or it has watched the record go unrenewed for a whole lease on its own clock (clocks of
  different machines are never compared), or for two renewal intervals when the record's last
  renewal, by the holder's clock, is older than the lease and a generous allowance for skew.

A record without a lease (older releases) is never taken over: `force-unlock` removes it.

The stack's *serial* (server.serial) says whether another run wrote to the stack since a plan
read it; a run that wrote changes it before it releases the lock.
"""

from __future__ import annotations

import getpass
import json
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.model import LOCK_KEY, LOCK_LABEL, LOCK_TAG
from ..errors import ApiError, LettaApplyError
from .client import LettaClient
from .serial import Recording, bump_serial, forget_serial, serial_tag, stack_serial

RENEW = 10.0  # seconds between renewals of a lease
HALT = 25.0  # seconds without a renewal after which the holder sends nothing more
MARGIN = 5.0
SKEW = 60.0  # what clocks of two machines may differ by, for a record's own renewal time


def lease_for(request_timeout: float) -> float:
    """The lease a holder takes: it stops after HALT without renewing, and a request it sent
    just before ends within the request timeout."""
    return HALT + request_timeout + MARGIN


def lock_tag(stack: str) -> str:
    """The tag every lock record of `stack` carries (never the stack's own tag)."""
    return f"{LOCK_TAG}{stack}"


def is_lock_record(block: Mapping[str, Any]) -> bool:
    return isinstance((block.get("metadata") or {}).get(LOCK_KEY), Mapping)


class LockError(LettaApplyError):
    """The stack is locked by another run (or a lock record is not what it should be)."""


@dataclass(frozen=True)
class LockInfo:
    """One lock record: its block id and who wrote it."""

    id: str
    stack: str
    holder: str
    host: str
    pid: int
    time: str
    operation: str
    token: str
    lease: float = 0.0  # seconds; 0: a record of an older release, never taken over
    renewals: int = 0
    renewed: str = ""  # the holder's clock at its last renewal (UTC)
    machine: str = ""  # boot and process namespace: what makes `host` one machine

    @classmethod
    def from_block(cls, block: Mapping[str, Any]) -> LockInfo | None:
        md = (block.get("metadata") or {}).get(LOCK_KEY)
        if not isinstance(md, Mapping):
            return None
        try:
            lease, renewals = float(md.get("lease") or 0), int(md.get("renewals") or 0)
            pid = int(md.get("pid") or 0)
        except (TypeError, ValueError):
            lease, renewals, pid = 0.0, 0, 0
        return cls(
            id=block["id"],
            stack=str(md.get("stack", "")),
            holder=str(md.get("holder", "?")),
            host=str(md.get("host", "?")),
            pid=pid,
            time=str(md.get("time", "?")),
            operation=str(md.get("operation", "?")),
            token=str(md.get("token", "")),
            lease=lease,
            renewals=renewals,
            renewed=str(md.get("renewed") or ""),
            machine=str(md.get("machine") or ""),
        )

    def describe(self) -> str:
        return (
            f"{self.holder}@{self.host} (pid {self.pid}, {self.operation} since {self.time}; "
            f"lock id {self.id})"
        )


def list_locks(client: LettaClient, stack: str) -> list[LockInfo]:
    """Every lock record of `stack`, oldest first."""
    return _records(client.list_blocks(lock_tag(stack)), stack)


def _lock_listing(client: LettaClient, stack: str) -> list[dict[str, Any]]:
    """The stack's lock records and its serial record, in one listing."""
    return client.list_blocks(lock_tag(stack), serial_tag(stack))


def _records(blocks: Iterable[Mapping[str, Any]], stack: str) -> list[LockInfo]:
    found = (LockInfo.from_block(b) for b in blocks if b.get("label") == LOCK_LABEL)
    return [lock for lock in found if lock is not None and lock.stack == stack]


class StackLock:
    """Take with `acquire()` (raises LockError after `timeout` seconds of waiting), give back
    with `release()`. `on_wait` is told once who holds the lock when it has to wait."""

    def __init__(
        self,
        client: LettaClient,
        stack: str,
        operation: str,
        *,
        timeout: float = 60.0,
        poll: float = 1.0,
        settle: float = 0.3,
        on_wait: Callable[[LockInfo], None] = lambda lock: None,
        on_take_over: Callable[[LockInfo, str], None] = lambda lock, why: None,
        sleep: Callable[[float], None] | None = None,
        clock: Callable[[], float] | None = None,
        lease: float | None = None,
        renew: float = RENEW,
        halt: float = HALT,
    ) -> None:
        """`sleep` and `clock` default to the client's: a lock waits the way its client does.
        `lease` defaults to what the client's request timeout needs (see `lease_for`)."""
        self.client = client
        self.stack = stack
        self.operation = operation
        self.timeout = timeout
        self.poll = poll
        self.settle = settle
        self.on_wait = on_wait
        self.on_take_over = on_take_over
        self.lease = lease if lease is not None else lease_for(client.timeout)
        self.renew = renew
        self.halt = halt
        self._watched: dict[str, tuple[int, float]] = {}  # record id -> (renewals, first seen)
        self._renewing: set[str] = set()  # records seen renewed while this run waited
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._info: dict[str, Any] = {}
        self._sleep = sleep or client.sleep
        self._clock = clock or client.clock
        self.held: LockInfo | None = None
        self.serial = ""  # the stack's serial when the lock was taken (see stack_serial)
        self._seen: list[dict[str, Any]] = []  # the last listing of lock and serial records
        # Requests made for the lock, counted apart so that a command's own cost stays visible.
        self.reads = 0
        self.writes = 0

    def _counted(self, action: Callable[[], Any]) -> Any:
        reads, writes = self.client.reads, self.client.writes
        try:
            return action()
        finally:
            self.reads += self.client.reads - reads
            self.writes += self.client.writes - writes

    def _record(self, token: str) -> dict[str, Any]:
        now = _utc()
        info = {
            "stack": self.stack,
            "holder": _user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": now,
            "operation": self.operation,
            "token": token,
            "lease": self.lease,
            "renewals": 0,
            "renewed": now,
            "machine": _machine(),
        }
        self._info = info
        return {
            "label": LOCK_LABEL,
            "value": json.dumps(info, sort_keys=True),
            "description": f"letta-apply lock of stack {self.stack!r}; remove a stuck one with "
            "`letta-apply force-unlock ID`",
            "metadata": {LOCK_KEY: info},
            "tags": [lock_tag(self.stack)],
        }

    def _create(self) -> LockInfo:
        token = uuid.uuid4().hex

        def find() -> dict[str, Any] | None:
            # A lock record made by an attempt that failed ambiguously is ours: adopt it.
            for b in self.client.list_blocks(lock_tag(self.stack), label=LOCK_LABEL):
                if (b.get("metadata") or {}).get(LOCK_KEY, {}).get("token") == token:
                    return b
            return None

        try:
            block = self.client.create_block(self._record(token), find=find)
        except ApiError:
            # The record may exist although the create failed: one left behind would block
            # every later run, so look once more and withdraw it.
            try:
                found = find()
                if found is not None:
                    self.client.delete_block(found["id"])
            except ApiError:
                pass  # the original error says more
            raise
        made = LockInfo.from_block(block)
        assert made is not None
        return made

    def _locks(self) -> list[LockInfo]:
        self._seen = _lock_listing(self.client, self.stack)
        return _records(self._seen, self.stack)

    def _other(self, locks: list[LockInfo], mine: LockInfo | None) -> LockInfo | None:
        """The record that holds the lock, when it is not ours."""
        if not locks or (mine is not None and locks[0].id == mine.id):
            return None
        return locks[0]

    def acquire(self) -> LockInfo:
        result: LockInfo = self._counted(self._acquire)
        return result

    def _acquire(self) -> LockInfo:
        deadline = self._clock() + self.timeout
        told = False
        while True:
            holder = self._other(self._locks(), None)
            gone = self._gone(holder) if holder is not None else ""
            if holder is not None and gone:
                self._take_over(holder, gone)
                continue
            if holder is None:
                mine = self._create()
                try:
                    holder = self._other(self._locks(), mine)
                    if holder is None:
                        self._sleep(self.settle)
                        holder = self._other(self._locks(), mine)
                finally:
                    if holder is not None or sys.exc_info()[0] is not None:
                        # Lost the race (the older record holds it) or failed: withdraw ours.
                        self._withdraw(mine)
                if holder is None:
                    self.held = mine
                    self.serial = stack_serial(self._seen, self.stack)
                    self._start_renewing(mine)
                    return mine
            if self._clock() + self.poll > deadline and not self._expiring(holder):
                raise LockError(
                    f'stack "{self.stack}" is locked by {holder.describe()}; waited '
                    f"{self.timeout:.0f}s (--lock-timeout). If no run holds it any more, "
                    f"remove it with `letta-apply force-unlock {holder.id}`",
                    code="LA710",
                )
            if not told:
                self.on_wait(holder)
                told = True
            # Jittered, but never past the deadline (--lock-timeout is a promise), unless a
            # silent holder's lease is being waited out.
            wait = self.poll * (0.5 + random.random())
            if not self._expiring(holder):
                wait = min(wait, deadline - self._clock())
            self._sleep(max(0.0, wait))

    def _gone(self, holder: LockInfo) -> str:
        """Why the run holding the lock is surely gone ("" when it may be alive)."""
        if (
            holder.pid
            and holder.machine
            and holder.host == socket.gethostname()
            and holder.machine == _machine()
            and not _alive(holder.pid)
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
        renewed = _parse_utc(holder.renewed)
        silent = seen is not None and seen[0] == holder.renewals and now - seen[1] >= 2 * RENEW
        if silent and renewed is not None and time.time() - renewed > holder.lease + SKEW:
            return f"its lease of {holder.lease:.0f} s ran out (last renewed {holder.renewed})"
        return ""

    def clear_dead(self, blocks: Iterable[Mapping[str, Any]], *, serial: bool = True) -> bool:
        """Take over (and so remove) the records among `blocks` whose holders are surely gone
        without waiting (see `_gone`); a record whose holder may be alive is left alone. Without
        `serial` the stack's serial is left to the caller (a destroyed stack keeps none).
        Whether one was taken over."""
        taken = False
        for holder in _records(blocks, self.stack):
            gone = self._gone(holder)
            if gone:
                self._take_over(holder, gone, serial=serial)
                taken = True
        return taken

    def _expiring(self, holder: LockInfo) -> bool:
        """Whether `holder` has a lease that has not been renewed since this run first saw it:
        the run may be dead, and waiting out its lease beats giving up (a live holder renews
        within `RENEW` seconds, and is then waited for only until the deadline)."""
        seen = self._watched.get(holder.id)
        return bool(holder.lease > 0 and seen and seen[0] == holder.renewals
                    and holder.id not in self._renewing)  # fmt: skip

    def _take_over(self, holder: LockInfo, why: str, *, serial: bool = True) -> None:
        """Remove a dead run's record, as force-unlock does: the stack gets a new serial first
        (the dead run may have written), so the plan is made again under the lock."""
        self.on_take_over(holder, why)
        if serial:
            bump_serial(self.client, self.stack)
        try:
            self.client.delete_block(holder.id)
        except ApiError as e:
            if e.status != 404:  # another run took it over at the same moment
                raise

    def _start_renewing(self, mine: LockInfo) -> None:
        self._stop.clear()
        self._renewer = threading.Thread(
            target=self._renew_loop, args=(mine,), name="letta-apply-lease", daemon=True
        )
        self._renewer.start()

    def _renew_loop(self, mine: LockInfo) -> None:
        """Renew the lease every `renew` seconds; when none succeeded for `halt` seconds, stop
        the client from sending anything more (the lease may run out: another run may take the
        lock over, and this one must not write beside it)."""
        last = time.monotonic()
        renewals = 0
        while not self._stop.wait(self.renew):
            try:
                info = {**self._info, "renewals": renewals + 1, "renewed": _utc()}
                self.client.update_block(mine.id, {"metadata": {LOCK_KEY: info}})
                renewals += 1
                last = time.monotonic()
                self.writes += 1  # counted apart from the command's own requests
            except Exception:
                if time.monotonic() - last > self.halt:
                    self.client.halted = (
                        f'stopped: the lease on the lock of stack "{self.stack}" could not be '
                        f"renewed for {self.halt:.0f} s (lock id {mine.id}); apply again"
                    )
                    return

    def _stop_renewing(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        self.client.halted = None  # the lock's own last requests go through

    def _withdraw(self, mine: LockInfo) -> None:
        # Deleting is safe to repeat, and a record left behind blocks every later run: try
        # harder than for other writes (a 500 is retried too).
        for attempt in range(3):
            try:
                self.client.delete_block(mine.id)
                return
            except ApiError as e:
                if e.status == 404:
                    return
                if attempt == 2:
                    raise
                self._sleep(self.poll)

    def write_record(self, record: Iterable[str]) -> None:
        """Give the stack a new serial with `record` (server.serial) while the lock is held:
        written ahead of a run's writes, with the lock's own requests."""
        kept = frozenset(record)
        self._counted(lambda: bump_serial(self.client, self.stack, self._seen, lambda s, n: kept))

    def release(
        self, *, wrote: bool = False, destroyed: bool = False, record: Recording | None = None
    ) -> None:
        """Delete our lock record (a record already gone counts as released). A run that
        `wrote` gives the stack a new serial first, with `record` (server.serial; one that
        `destroyed` the stack deletes it): should that fail, the lock stays held, for no later
        run to apply a plan made before these writes."""
        if self.held is None:
            return
        held = self.held
        self._stop_renewing()
        if destroyed:
            self._counted(lambda: forget_serial(self.client, self.stack))
        elif wrote:
            self._counted(lambda: bump_serial(self.client, self.stack, self._seen, record))
        self._counted(lambda: self._withdraw(held))
        self.held = None


_LOCK_ID = re.compile(r"block-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def force_unlock(client: LettaClient, lock_id: str) -> LockInfo:
    """Delete the lock record `lock_id`, whoever holds it; refuses any block that is not one."""
    if not _LOCK_ID.fullmatch(lock_id):
        raise LockError(
            f"force-unlock: {lock_id!r} is not a lock id: lock ids look like block-<uuid>, as "
            "the error that named the lock wrote it",
            code="LA711",
        )
    try:
        block = client.get_block(lock_id)
    except ApiError as e:
        if e.status == 404:
            raise LockError(
                f"force-unlock: no lock {lock_id} on the server", code="LA712"
            ) from None
        raise
    info = LockInfo.from_block(block) if block.get("label") == LOCK_LABEL else None
    if info is None or lock_tag(info.stack) not in (block.get("tags") or ()):
        raise LockError(
            f"force-unlock: {lock_id} is not a letta-apply lock record; not deleted", code="LA713"
        )
    # The run that held it may have written to the stack before it died.
    bump_serial(client, info.stack)
    client.delete_block(lock_id)
    return info


def _utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_utc(text: str) -> float | None:
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return None
    return when.replace(tzinfo=timezone.utc).timestamp()


def _machine() -> str:
    """This machine's boot and this process's PID namespace: a host name alone may be shared
    (containers), and a pid means something only within one boot and one namespace. "" where
    the system does not say (then only leases recover a lock)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text(encoding="ascii").strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    """Whether process `pid` (on this machine) still runs; a zombie does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name (some containers)
        return "unknown"
