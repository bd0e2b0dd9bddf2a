"""Lock listings shared by the stacks one process locks at once (many.run: a SaaS applying one
stack per tenant).

Taking a stack's lock lists the stack's lock and serial records twice (server.lock), and each
listing is two requests (a page, then the empty page that ends it). Letta's cost is per request,
not per record (about 11 ms of Letta CPU and 10 ms of Postgres CPU for a listing of 2 tags or of
32), so the listings of the stacks that ask at the same moment are one request: Letta lists the
blocks carrying any of the tags given, and each stack is given the records its own tags name.

The lock protocol is unchanged: each stack has its own records, taken and released as alone. A
stack is answered only by a listing sent after it asked (one already on its way may have been
sent before the stack's record was made, and would not show it): the stacks that ask while a
listing is on its way wait for the next one, which takes all of them (group commit).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from ..core.jsonish import JsonObject, items
from .client import LettaClient
from .lock_records import lock_listing, lock_tag
from .serial import serial_tag

AT_ONCE = 32
"""Stacks one listing takes at most (two tags each: its URL stays under 4 KB for long names)."""


@dataclass
class _Ask:
    stack: str
    answer: list[JsonObject] | None = None
    error: BaseException | None = None
    done: bool = False


class LockListings:
    """`listings(stack)` is `lock_listing(client, stack)`, made together with those of the
    stacks that ask at the same moment (from other threads). Thread-safe."""

    def __init__(self, client: LettaClient, at_once: int = AT_ONCE) -> None:
        self.client = client
        self.at_once = at_once
        self.sent = 0  # listings made (each a page and the empty page that ends it)
        self._lock = threading.Condition()
        self._queue: deque[_Ask] = deque()
        self._busy = False

    def __call__(self, stack: str) -> list[JsonObject]:
        ask = _Ask(stack)
        with self._lock:
            self._queue.append(ask)
            while not ask.done:
                if self._busy:
                    self._lock.wait()
                    continue
                self._busy = True
                batch = [self._queue.popleft() for _ in range(min(self.at_once, len(self._queue)))]
                self._lock.release()
                try:
                    self._send(batch)
                finally:
                    self._lock.acquire()
                    self._busy = False
                    self._lock.notify_all()
        if ask.error is not None:
            raise ask.error
        assert ask.answer is not None
        return ask.answer

    def _send(self, batch: list[_Ask]) -> None:
        """One listing for `batch`; each ask gets its stack's records, or the listing's error."""
        try:
            found = listed_together(self.client, [a.stack for a in batch])
            self.sent += 1
            for a in batch:
                a.answer = found[a.stack]
        except BaseException as e:  # each stack of the batch raises it, as its own listing would
            for a in batch:
                a.error = e
        finally:
            for a in batch:
                a.done = True


def listed_together(client: LettaClient, stacks: list[str]) -> dict[str, list[JsonObject]]:
    """Each stack's lock and serial records (what `lock_listing` gives it), in one listing."""
    if len(stacks) == 1:
        return {stacks[0]: lock_listing(client, stacks[0])}
    tags = {s: frozenset((lock_tag(s), serial_tag(s))) for s in stacks}
    listing = client.list_blocks(*sorted(set().union(*tags.values())))
    return {s: [b for b in listing if mine.intersection(items(b.get("tags")))]
            for s, mine in tags.items()}  # fmt: skip
