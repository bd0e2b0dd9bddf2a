"""The lock listings of many stacks locked at once from one process: the stacks that ask while a
listing is on its way share the next one; each gets only its own records; an error reaches every
stack of its listing and no other; the lock still excludes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from letta_apply.core.model import LOCK_KEY, LOCK_LABEL
from letta_apply.errors import ApiError
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_listings import LockListings
from letta_apply.server.lock_records import lock_tag
from letta_apply.server.serial import STACK_LABEL, serial_tag
from tests.fakes import FakeLetta


class Gated:
    """Hooks a fake's first pages of block listings: each is recorded (its tags), waits for
    `gate`, and is refused with 403 when its number (from 0) is in `refuse`."""

    def __init__(self, fake: FakeLetta) -> None:
        self.gate = threading.Event()
        self.gate.set()
        self.refuse: set[int] = set()
        self.listed: list[list[str]] = []
        fake.before.append(self)

    def __call__(self, request: httpx.Request) -> httpx.Response | None:
        if request.method != "GET" or request.url.path != "/v1/blocks/":
            return None
        if "after" in request.url.params:
            return None
        self.listed.append(sorted(request.url.params.get_list("tags")))
        assert self.gate.wait(10)
        refused = len(self.listed) - 1 in self.refuse
        return httpx.Response(403, json={"detail": "no"}) if refused else None


def records(fake: FakeLetta, stack: str) -> set[str]:
    """A lock record and a serial record of `stack`; their ids."""
    client = fake.client()
    lock = client.create_block({
        "label": LOCK_LABEL, "value": "{}", "tags": [lock_tag(stack)],
        "metadata": {LOCK_KEY: {"stack": stack, "time": "2026-01-01T00:00:00Z"}},
    })  # fmt: skip
    serial = client.create_block({
        "label": STACK_LABEL, "value": "", "tags": [serial_tag(stack)],
        "metadata": {LOCK_KEY: {"stack": stack, "serial": "s"}},
    })  # fmt: skip
    return {str(lock["id"]), str(serial["id"])}


def until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def asked(listings: LockListings, stacks: str, gated: Gated) -> dict[str, object]:
    """Stack `stacks[0]` asks first, its listing held at the gate; the others ask meanwhile;
    then the gate opens. What each got: its listing (the ids in it) or its error."""
    got: dict[str, object] = {}

    def ask(stack: str) -> None:
        try:
            got[stack] = {str(b["id"]) for b in listings(stack)}
        except ApiError as e:
            got[stack] = e

    gated.gate.clear()
    first = threading.Thread(target=ask, args=(stacks[0],))
    first.start()
    until(lambda: len(gated.listed) == 1)
    others = [threading.Thread(target=ask, args=(s,)) for s in stacks[1:]]
    for t in others:
        t.start()
    until(lambda: len(listings._queue) == len(others))  # all of them wait
    gated.gate.set()
    for t in [first, *others]:
        t.join(10)
    return got


def tags(*stacks: str) -> list[str]:
    return sorted(t for s in stacks for t in (lock_tag(s), serial_tag(s)))


def test_the_stacks_that_ask_meanwhile_share_the_next_listing_and_get_their_own_records() -> None:
    fake = FakeLetta()
    mine = {s: records(fake, s) for s in "abcd"}
    records(fake, "e")  # a stack nobody asks for
    gated = Gated(fake)
    listings = LockListings(fake.client())
    got = asked(listings, "abcd", gated)
    # `a`'s listing was on its way before the others asked (it would not show a record they
    # had just made): they are answered by the next one, all together.
    assert gated.listed == [tags("a"), tags("b", "c", "d")]
    assert listings.sent == 2
    assert got == mine


def test_a_listing_takes_at_most_at_once_stacks() -> None:
    fake = FakeLetta()
    mine = {s: records(fake, s) for s in "abcde"}
    gated = Gated(fake)
    listings = LockListings(fake.client(), at_once=2)
    assert asked(listings, "abcde", gated) == mine
    assert gated.listed == [tags("a"), tags("b", "c"), tags("d", "e")]


def test_an_error_reaches_every_stack_of_its_listing_and_no_other() -> None:
    fake = FakeLetta()
    mine = {s: records(fake, s) for s in "abcd"}
    gated = Gated(fake)
    gated.refuse = {1}  # the second listing: b's and c's
    listings = LockListings(fake.client(), at_once=2)
    got = asked(listings, "abcd", gated)
    assert gated.listed == [tags("a"), tags("b", "c"), tags("d")]
    assert got["a"] == mine["a"] and got["d"] == mine["d"]
    for s in "bc":
        error = got[s]
        assert isinstance(error, ApiError) and error.status == 403


def test_the_lock_still_excludes_when_its_listings_are_shared() -> None:
    fake = FakeLetta()
    client = fake.client()
    listings = LockListings(client)
    waiting = threading.Event()

    def lock(stack: str) -> StackLock:
        return StackLock(client, stack, "apply", timeout=30, poll=0.05, settle=0,
                         sleep=time.sleep, clock=time.monotonic, listing=listings,
                         on_wait=lambda held: waiting.set())  # fmt: skip

    first, other, second = lock("unit"), lock("other"), lock("unit")
    first.acquire()
    other.acquire()  # another stack is free
    took = threading.Thread(target=second.acquire)
    took.start()
    assert waiting.wait(10)  # the same stack is not
    assert second.held is None
    first.release()
    took.join(10)
    assert second.held is not None
    for held in (second, other):
        held.release()
    assert [b for b in fake.blocks.values() if b["label"] == LOCK_LABEL] == []
    assert listings.sent >= 6  # every listing went through the shared one
