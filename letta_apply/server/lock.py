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

Leases (server.lease) let a run take over the lock of a run that died holding it. What a lock
record says, and `force-unlock`, are in server.lock_records.

The stack's *serial* (server.serial) says whether another run wrote to the stack since a plan
read it; a run that wrote changes it before it releases the lock.
"""

from __future__ import annotations

import json
import os
import random
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

from ..core.jsonish import JsonObject, obj
from ..core.model import LOCK_KEY, LOCK_LABEL
from ..errors import ApiError
from .client import LettaClient
from .host import machine, user, utc_now
from .lease import HALT, RENEW, Watch, lease_for
from .lock_records import LockError, LockInfo, lock_listing, lock_tag, records
from .serial import Recording, bump_serial, forget_serial, stack_serial

T = TypeVar("T")


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
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._info: JsonObject = {}
        self._sleep = sleep or client.sleep
        self._clock = clock or client.clock
        self._watch = Watch(self._clock)  # the leases of the records that hold the lock
        self.held: LockInfo | None = None
        self.serial = ""  # the stack's serial when the lock was taken (see stack_serial)
        self._seen: list[JsonObject] = []  # the last listing of lock and serial records
        # Requests made for the lock, counted apart so that a command's own cost stays visible.
        self.reads = 0
        self.writes = 0

    def _counted(self, action: Callable[[], T]) -> T:
        reads, writes = self.client.reads, self.client.writes
        try:
            return action()
        finally:
            self.reads += self.client.reads - reads
            self.writes += self.client.writes - writes

    def _record(self, token: str) -> JsonObject:
        now = utc_now()
        info: JsonObject = {
            "stack": self.stack,
            "holder": user(),
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "time": now,
            "operation": self.operation,
            "token": token,
            "lease": self.lease,
            "renewals": 0,
            "renewed": now,
            "machine": machine(),
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

        def find() -> JsonObject | None:
            # A lock record made by an attempt that failed ambiguously is ours: adopt it.
            for b in self.client.list_blocks(lock_tag(self.stack), label=LOCK_LABEL):
                if obj(obj(b.get("metadata")).get(LOCK_KEY)).get("token") == token:
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
                    self.client.delete_block(str(found["id"]))
            except ApiError:
                pass  # the original error says more
            raise
        made = LockInfo.from_block(block)
        assert made is not None
        return made

    def _locks(self) -> list[LockInfo]:
        self._seen = lock_listing(self.client, self.stack)
        return records(self._seen, self.stack)

    def _other(self, locks: list[LockInfo], mine: LockInfo | None) -> LockInfo | None:
        """The record that holds the lock, when it is not ours."""
        if not locks or (mine is not None and locks[0].id == mine.id):
            return None
        return locks[0]

    def acquire(self) -> LockInfo:
        return self._counted(self._acquire)

    def _acquire(self) -> LockInfo:
        deadline = self._clock() + self.timeout
        told = False
        looked = False
        while True:
            # The first try creates its record without looking first: the listing right after
            # shows any holder, and most runs find the stack free (a request saved per run).
            holder = self._other(self._locks(), None) if looked else None
            looked = True
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
            gone = self._watch.gone(holder)  # seen before our record was made or after
            if gone:
                self._take_over(holder, gone)
                continue
            if self._clock() + self.poll > deadline and not self._watch.expiring(holder):
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
            if not self._watch.expiring(holder):
                wait = min(wait, deadline - self._clock())
            self._sleep(max(0.0, wait))

    def clear_dead(self, blocks: Iterable[Mapping[str, object]], *, serial: bool = True) -> bool:
        """Take over (and so remove) the records among `blocks` whose holders are surely gone
        without waiting (see `Watch.gone`); a record whose holder may be alive is left alone.
        Without `serial` the stack's serial is left to the caller (a destroyed stack keeps
        none). Whether one was taken over."""
        taken = False
        for holder in records(blocks, self.stack):
            gone = self._watch.gone(holder)
            if gone:
                self._take_over(holder, gone, serial=serial)
                taken = True
        return taken

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
                info = {**self._info, "renewals": renewals + 1, "renewed": utc_now()}
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
