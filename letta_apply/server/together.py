"""Listings by tag asked for at the same moment, from several threads of one process, sent as one.

Many stacks applied from one process (many.run, a SaaS with a stack per tenant) each list their
blocks by their own tags: the lock's records twice per run (server.lock), the blocks a stage
just made (apply.runner), the serial a destroy forgets. Letta's cost is per request, not per
block (about 11 ms of Letta CPU and 10 ms of Postgres CPU for a listing of 2 tags or of 32, and
a listing is two requests: a page, then the empty page that ends it), and Letta lists the blocks
carrying any of the tags it is given. So the asks that wait while a listing of the same kind
(the same other parameters) is on its way are sent together once it is back, and each is given
the blocks carrying one of its own tags.

An ask is answered only by a listing sent after it was made (group commit): a listing already
on its way may have been sent before the asker's last write and would not show it (a lock's
own new record, a block just made). A block of a shared listing that carries none of the tags
asked for (a server that does not say a block's tags) cannot be given to anyone: then each ask
is sent again alone. One thread alone never waits: its ask is sent at once, as before.
"""

from __future__ import annotations

import copy
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..core.jsonish import JsonObject, items

AT_ONCE = 20
"""Asks one listing takes at most: a lock's ask has two tags of up to 82 characters (a stack name
has 63 at most), so the listing's URL stays under 4 KB."""

P = TypeVar("P", bound=Mapping[str, object])  # a listing's other parameters


@dataclass(eq=False)
class _Ask:
    tags: tuple[str, ...]
    key: tuple[tuple[str, str], ...]  # the other parameters: only asks alike share a listing
    answer: list[JsonObject] | None = None
    error: BaseException | None = None
    done: bool = False


class Together(Generic[P]):
    """`listing(tags, params)` is `fetch(tags, params)` (one listing: the items carrying any of
    the tags), sent with the asks alike made meanwhile from other threads. Thread-safe."""

    def __init__(
        self, fetch: Callable[[list[str], P], list[JsonObject]], at_once: int = AT_ONCE
    ) -> None:
        self.fetch = fetch
        self.at_once = at_once
        self.shared = 0  # listings that answered two asks or more
        self._cond = threading.Condition()
        self._queue: deque[_Ask] = deque()
        self._busy: set[tuple[tuple[str, str], ...]] = set()  # kinds of listing on their way

    def listing(self, tags: Sequence[str], params: P) -> list[JsonObject]:
        ask = _Ask(tuple(tags), tuple(sorted((k, repr(v)) for k, v in params.items())))
        with self._cond:
            self._queue.append(ask)
            while not ask.done:
                if ask.key in self._busy:
                    self._cond.wait()
                    continue
                self._busy.add(ask.key)
                alike = [a for a in self._queue if a.key == ask.key][: self.at_once]
                for a in alike:
                    self._queue.remove(a)
                self._cond.release()
                try:
                    self._answer(alike, params)
                finally:
                    self._cond.acquire()
                    self._busy.discard(ask.key)
                    self._cond.notify_all()
        if ask.error is not None:
            raise ask.error
        assert ask.answer is not None
        return ask.answer

    def _answer(self, asks: list[_Ask], params: P) -> None:
        try:
            for a, answer in zip(asks, self.batch([a.tags for a in asks], params), strict=True):
                a.answer = answer
        except BaseException as e:  # each ask of the listing raises it, as its own would
            for a in asks:
                a.error = e
        finally:
            for a in asks:
                a.done = True

    def batch(self, asks: Sequence[Sequence[str]], params: P) -> list[list[JsonObject]]:
        """What `fetch` gives each of `asks` (its tags), in one listing when they are several."""
        if len(asks) == 1:
            return [self.fetch(list(asks[0]), params)]
        wanted = [frozenset(tags) for tags in asks]
        every = frozenset().union(*wanted)
        listing = self.fetch(sorted(every), params)
        carried = [frozenset(str(t) for t in items(b.get("tags"))) for b in listing]
        if any(not (c & every) for c in carried):
            return [self.fetch(list(tags), params) for tags in asks]  # no tags shown: alone
        self.shared += 1
        given = [[b for b, c in zip(listing, carried, strict=True) if c & w] for w in wanted]
        # A block two asks both carry tags of is given to each as its own copy, as two
        # listings would have.
        if sum(map(len, given)) > len(listing):
            return [[copy.deepcopy(b) for b in g] for g in given]
        return given
