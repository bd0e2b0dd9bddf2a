"""Listings by tag asked for at the same moment from several threads (many stacks locked at once
from one process): the asks made while a listing is on its way share the next one; each gets only
the blocks carrying its own tags; an error reaches every ask of its listing and no other; asks
with other parameters are not mixed; a server that does not show tags gets each ask alone; the
lock still excludes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from letta_apply.core.jsonish import JsonObject
from letta_apply.core.model import LOCK_KEY, LOCK_LABEL
from letta_apply.errors import ApiError
from letta_apply.server.client import LettaClient
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_records import lock_listing, lock_tag
from letta_apply.server.serial import STACK_LABEL, serial_tag
from letta_apply.server.together import Together
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


def asked(client: LettaClient, stacks: str, gated: Gated) -> dict[str, object]:
    """Stack `stacks[0]` asks first, its listing held at the gate; the others ask meanwhile;
    then the gate opens. What each got: its listing (the ids in it) or its error."""
    got: dict[str, object] = {}

    def ask(stack: str) -> None:
        try:
            got[stack] = {str(b["id"]) for b in lock_listing(client, stack)}
        except ApiError as e:
            got[stack] = e

    gated.gate.clear()
    first = threading.Thread(target=ask, args=(stacks[0],))
    first.start()
    until(lambda: len(gated.listed) == 1)
    others = [threading.Thread(target=ask, args=(s,)) for s in stacks[1:]]
    for t in others:
        t.start()
    until(lambda: len(client._together._queue) == len(others))  # all of them wait
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
    client = fake.client()
    got = asked(client, "abcd", gated)
    # `a`'s listing was on its way before the others asked (it would not show a record they
    # had just made): they are answered by the next one, all together.
    assert gated.listed == [tags("a"), tags("b", "c", "d")]
    assert client.counts["GET"] == 4  # each listing: a page and the empty page
    assert got == mine


def test_a_listing_takes_at_most_at_once_stacks() -> None:
    fake = FakeLetta()
    mine = {s: records(fake, s) for s in "abcde"}
    gated = Gated(fake)
    client = fake.client()
    client._together.at_once = 2
    assert asked(client, "abcde", gated) == mine
    assert gated.listed == [tags("a"), tags("b", "c"), tags("d", "e")]


def test_an_error_reaches_every_stack_of_its_listing_and_no_other() -> None:
    fake = FakeLetta()
    mine = {s: records(fake, s) for s in "abcd"}
    gated = Gated(fake)
    gated.refuse = {1}  # the second listing: b's and c's
    client = fake.client()
    client._together.at_once = 2
    got = asked(client, "abcd", gated)
    assert gated.listed == [tags("a"), tags("b", "c"), tags("d")]
    assert got["a"] == mine["a"] and got["d"] == mine["d"]
    for s in "bc":
        error = got[s]
        assert isinstance(error, ApiError) and error.status == 403


def test_the_lock_still_excludes_when_its_listings_are_shared() -> None:
    fake = FakeLetta()
    client = fake.client()
    waiting = threading.Event()

    def lock(stack: str) -> StackLock:
        return StackLock(client, stack, "apply", timeout=30, poll=0.05, settle=0,
                         sleep=time.sleep, clock=time.monotonic,
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


def test_asks_with_other_parameters_are_not_sent_together() -> None:
    sent: list[tuple[list[str], dict[str, str]]] = []
    gate = threading.Event()

    def fetch(tags: list[str], params: dict[str, str]) -> list[JsonObject]:
        sent.append((tags, params))
        assert gate.wait(10)
        return [{"id": f"{t}-{params.get('label')}", "tags": [t]} for t in tags]

    together: Together[dict[str, str]] = Together(fetch)
    got: dict[str, list[JsonObject]] = {}

    def ask(tag: str, label: str) -> None:
        got[f"{tag}/{label}"] = together.listing([tag], {"label": label})

    first = threading.Thread(target=ask, args=("a", "x"))
    first.start()
    until(lambda: len(sent) == 1)
    # Another kind of listing is not held back by the one on its way; asks alike wait for it.
    others = [threading.Thread(target=ask, args=a) for a in (("b", "y"), ("c", "x"), ("d", "x"))]
    for t in others:
        t.start()
    until(lambda: len(sent) == 2 and len(together._queue) == 2)
    gate.set()
    for t in [first, *others]:
        t.join(10)
    assert sent == [(["a"], {"label": "x"}), (["b"], {"label": "y"}), (["c", "d"], {"label": "x"})]
    assert got == {f"{t}/{lb}": [{"id": f"{t}-{lb}", "tags": [t]}]
                   for t, lb in (("a", "x"), ("b", "y"), ("c", "x"), ("d", "x"))}  # fmt: skip
    assert together.shared == 1


def test_a_listing_that_does_not_show_tags_is_sent_again_for_each_ask_alone() -> None:
    sent: list[list[str]] = []

    def fetch(tags: list[str], params: dict[str, str]) -> list[JsonObject]:
        sent.append(tags)
        return [{"id": t} for t in tags]  # no tags: which ask a block is for is not known

    together: Together[dict[str, str]] = Together(fetch)
    assert together.batch([["a"], ["b", "c"]], {}) == [[{"id": "a"}], [{"id": "b"}, {"id": "c"}]]
    assert sent == [["a", "b", "c"], ["a"], ["b", "c"]]
    assert together.shared == 0


def test_a_block_two_asks_share_is_given_to_each_as_its_own_copy() -> None:
    def fetch(tags: list[str], params: dict[str, str]) -> list[JsonObject]:
        return [{"id": "both", "tags": ["a", "b"]}, {"id": "a-only", "tags": ["a"]}]

    together: Together[dict[str, str]] = Together(fetch)
    first, second = together.batch([["a"], ["b"]], {})
    assert [b["id"] for b in first] == ["both", "a-only"] and second == [first[0]]
    assert second[0] is not first[0]  # changing one's answer changes no other's
