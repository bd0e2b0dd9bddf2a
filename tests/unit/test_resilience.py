"""Retries, ambiguous creates, duplicate settling and the stack lock, against the fake server."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from letta_apply import ApplyError, LettaApplyError, LettaClient, apply_plan, plan_for
from letta_apply.apply.session import Planned, run_apply
from letta_apply.core.model import MARK_KEY, stack_tag
from letta_apply.errors import ApiError, ServerUnreachable
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_records import LockError, force_unlock, list_locks
from letta_apply.server.retry import RetryPolicy, retry_after
from letta_apply.server.serial import STACK_LABEL
from tests.fakes import FakeLetta
from tests.helpers import SEED, Clock, desired


def answer(status: int, retry: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry} if retry is not None else {}
    return httpx.Response(status, headers=headers, json={"detail": f"status {status}"})


def scripted(fake: FakeLetta, method: str, statuses: list[int | None], retry: str | None = None):  # type: ignore[no-untyped-def]
    """Answer the next requests of `method` with `statuses` (None: let the fake serve)."""
    queue = list(statuses)

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method == method and queue:
            status = queue.pop(0)
            return None if status is None else answer(status, retry)
        return None

    fake.before.append(hook)


def marked(store: dict[str, dict[str, Any]], address: str) -> list[dict[str, Any]]:
    return [
        r
        for r in store.values()
        if (r.get("metadata") or {}).get(MARK_KEY, {}).get("address") == address
    ]


# -- the retry policy ---------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    rng = random.Random(7)
    for retry, cap in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        waits = [policy.backoff(retry, rng) for _ in range(200)]
        assert all(cap / 2 <= w <= cap for w in waits)
        assert len({round(w, 6) for w in waits}) > 100  # jittered, not lockstep


def test_retry_after_in_seconds_and_as_a_date() -> None:
    assert retry_after(answer(429, "3")) == 3.0
    assert retry_after(answer(429, "0")) == 0.0
    assert retry_after(answer(429)) is None
    assert retry_after(answer(429, "soon")) is None
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    assert 25 < (retry_after(answer(503, format_datetime(later, usegmt=True))) or 0) <= 30


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_transient_statuses_are_retried_honouring_retry_after(status: int) -> None:
    fake = FakeLetta()
    scripted(fake, "GET", [status, status], retry="2")
    clock = Clock()
    client = fake.client(sleep=clock.sleep, clock=clock)
    assert client.health()["status"] == "ok"
    assert clock.sleeps == [2.0, 2.0]
    assert client.retries == 2


def test_conflict_is_retried_only_with_retry_after() -> None:
    fake = FakeLetta()
    scripted(fake, "GET", [409], retry="1")
    client = fake.client()
    assert client.health()["status"] == "ok"
    scripted(fake, "GET", [409])  # a unique violation: not transient
    with pytest.raises(ApiError) as e:
        client.health()
    assert e.value.status == 409
    assert fake.counts["GET"] == 3


def test_retries_are_bounded_in_count() -> None:
    fake = FakeLetta()
    scripted(fake, "GET", [503] * 100)
    clock = Clock()
    client = fake.client(sleep=clock.sleep, clock=clock, retry=RetryPolicy(max_retries=3))
    with pytest.raises(ApiError) as e:
        client.health()
    assert fake.counts["GET"] == 4
    assert "gave up after 4 attempt(s)" in str(e.value)
    assert "HTTP 503: status 503" in str(e.value)


def test_retries_are_bounded_in_time_and_a_long_retry_after_is_not_waited_out() -> None:
    fake = FakeLetta()
    scripted(fake, "GET", [503] * 100)
    clock = Clock()
    client = fake.client(
        sleep=clock.sleep, clock=clock, retry=RetryPolicy(max_retries=100, max_time=10)
    )
    with pytest.raises(ApiError):
        client.health()
    assert clock.now <= 10
    fake2 = FakeLetta()
    scripted(fake2, "GET", [429], retry="3600")
    clock2 = Clock()
    with pytest.raises(ApiError) as e:
        fake2.client(sleep=clock2.sleep, clock=clock2).health()
    assert clock2.sleeps == []
    assert "the server asked to wait 3600s more" in str(e.value)


def test_a_server_error_on_a_write_is_not_retried() -> None:
    fake = FakeLetta()
    client = fake.client()
    block = client.create_block({"label": "x", "value": "v"})
    scripted(fake, "PATCH", [500])
    with pytest.raises(ApiError):
        client.update_block(block["id"], {"description": "d"})
    assert fake.counts["PATCH"] == 1


def test_a_server_unreachable_on_first_contact_is_named_at_once() -> None:
    attempts = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    client = LettaClient(
        "http://127.0.0.1:9", transport=httpx.MockTransport(refuse), sleep=lambda s: None,
        retry=RetryPolicy(max_retries=2),
    )  # fmt: skip
    with pytest.raises(ServerUnreachable) as e:
        client.health()
    assert len(attempts) == 1  # no server there: retrying only makes the user wait
    assert "cannot reach the Letta server at http://127.0.0.1:9" in str(e.value)


def test_a_server_that_answered_then_went_away_is_retried_then_named() -> None:
    attempts = []

    def answer_once(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            return httpx.Response(200, json={"status": "ok"})
        raise httpx.ConnectError("connection refused", request=request)

    client = LettaClient(
        "http://127.0.0.1:9", transport=httpx.MockTransport(answer_once), sleep=lambda s: None,
        retry=RetryPolicy(max_retries=2),
    )  # fmt: skip
    client.health()
    with pytest.raises(ServerUnreachable) as e:
        client.health()
    assert len(attempts) == 1 + 3
    assert "cannot reach the Letta server at http://127.0.0.1:9" in str(e.value)


def test_a_server_url_without_a_scheme_is_a_configuration_error() -> None:
    with pytest.raises(LettaApplyError) as e:
        LettaClient("127.0.0.1:9999")
    assert str(e.value) == (
        "the server URL '127.0.0.1:9999' has no scheme: write it as http://127.0.0.1:9999 "
        "(or https://)"
    )


def lose_answer(fake: FakeLetta, method: str, path_part: str, times: int = 1, status: int = 0):  # type: ignore[no-untyped-def]
    """The server carries the request out, then the answer is lost (reset) or replaced by
    `status` (a gateway error after the fact)."""
    left = [times]

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method == method and path_part in request.url.path and left[0] > 0:
            left[0] -= 1
            if status:
                return answer(status)
            raise httpx.ReadError("connection reset by peer", request=request)
        return None

    fake.after.append(hook)


def test_connection_refused_create_is_resent_once_made() -> None:
    fake = FakeLetta()
    failed = [False]

    def refuse_once(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and not failed[0]:
            failed[0] = True
            raise httpx.ConnectError("refused", request=request)
        return None

    fake.before.append(refuse_once)
    client = fake.client()
    client.health()  # the server answered once: a refused connection now is transient
    client.create_block({"label": "x", "value": "v"})
    assert len(fake.blocks) == 1 and fake.counts["POST"] == 2


def test_an_ambiguous_create_without_a_lookup_is_never_resent() -> None:
    fake = FakeLetta()
    lose_answer(fake, "POST", "/v1/blocks/")
    with pytest.raises(ServerUnreachable) as e:
        fake.client().create_block({"label": "x", "value": "v"})
    assert "lost the connection" in str(e.value)
    assert fake.counts["POST"] == 1 and len(fake.blocks) == 1


@pytest.mark.parametrize("status", [0, 500, 502, 504])
def test_ambiguous_creates_are_adopted_not_duplicated(status: int) -> None:
    fake = FakeLetta()
    lose_answer(fake, "POST", "/v1/blocks/", status=status)
    lose_answer(fake, "POST", "/v1/agents/", times=2, status=status)
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    assert fake.counts["POST"] == 3  # one per resource: nothing re-sent
    assert client.adopted == 3
    assert len(fake.blocks) == 3 and len(fake.agents) == 2
    persona = next(
        b for b in fake.blocks.values() if b["label"] == "persona" and b["metadata"]
    )  # the supervisor's own block got its metadata back although its agent was adopted
    assert persona["metadata"] == {"kind": "persona"}
    assert plan_for(client, desired(SEED)).changes == ()


def test_a_create_the_server_did_not_make_is_sent_again() -> None:
    fake = FakeLetta()
    scripted(fake, "POST", [503, 502])  # refused before acting, yet ambiguous to the client
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    assert len(fake.blocks) == 3 and len(fake.agents) == 2
    assert client.adopted == 0 and client.retries == 2


def test_a_repeated_delete_or_detach_that_finds_nothing_counts_as_done() -> None:
    fake = FakeLetta()
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    lose_answer(fake, "PATCH", "/detach/")
    lose_answer(fake, "DELETE", "/v1/agents/")
    lose_answer(fake, "DELETE", "/v1/blocks/", times=3)
    plan = plan_for(client, desired(SEED), destroy=True)
    apply_plan(client, plan)
    assert fake.agents == {} and fake.blocks == {}
    # a 404 without an earlier attempt is still an error
    with pytest.raises(ApiError):
        client.delete_block("block-missing")


# -- two runs creating at once ---------------------------------------------------------------------


def rival_creates_first(fake: FakeLetta, path: str) -> None:
    """Before our create of `path` lands, another run makes the same resource (same marks)."""
    done = [False]

    def hook(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == path and not done[0]:
            done[0] = True
            fake._serve(request)  # the rival's identical request, served first
        return None

    fake.before.append(hook)


def test_a_block_made_by_another_run_first_wins_and_ours_is_deleted() -> None:
    fake = FakeLetta()
    rival_creates_first(fake, "/v1/blocks/")
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)))
    (org,) = marked(fake.blocks, "block.organization")
    assert all(org["id"] in a["block_ids"] for a in fake.agents.values())
    assert plan_for(client, desired(SEED)).changes == ()


def test_an_agent_made_by_another_run_first_wins_and_ours_is_deleted() -> None:
    fake = FakeLetta()
    rival_creates_first(fake, "/v1/agents/")
    client = fake.client()
    apply_plan(client, plan_for(client, desired(SEED)), parallelism=1)
    assert len(marked(fake.agents, "agent.supervisor")) == 1
    assert len(fake.agents) == 2
    assert len(fake.blocks) == 3  # the loser's own block went with it
    assert plan_for(client, desired(SEED)).changes == ()


def test_random_faults_never_duplicate_and_converge() -> None:
    kinds: Counter[str] = Counter()
    for seed in range(40):
        rng = random.Random(seed)
        fake = FakeLetta()

        def before(request: httpx.Request, rng: random.Random = rng) -> httpx.Response | None:
            roll = rng.random()
            if roll < 0.08:
                kinds["429"] += 1
                return answer(429, "0")
            if roll < 0.16:
                kinds["503"] += 1
                return answer(503)
            return None

        def after(request: httpx.Request, rng: random.Random = rng) -> httpx.Response | None:
            roll = rng.random()
            if roll < 0.08:
                kinds["reset after"] += 1
                raise httpx.ReadError("reset", request=request)
            if roll < 0.14:
                kinds["timeout after"] += 1
                raise httpx.ReadTimeout("timed out", request=request)
            if roll < 0.18:
                kinds["502 after"] += 1
                return answer(502)
            return None

        fake.before.append(before)
        fake.after.append(after)
        client = fake.client(retry=RetryPolicy(max_retries=3))
        for _ in range(10):
            try:
                apply_plan(client, plan_for(client, desired(SEED)))
                break
            except (ApplyError, ApiError):
                continue
        fake.before.clear()
        fake.after.clear()
        assert plan_for(client, desired(SEED)).changes == (), seed
        for address in ("block.organization", "agent.supervisor", "agent.worker"):
            store = fake.agents if address.startswith("agent") else fake.blocks
            assert len(marked(store, address)) == 1, (seed, address)
        assert len(fake.blocks) == 3, seed  # no orphaned own blocks either
    assert min(kinds.values()) > 5, kinds


def test_a_failure_lists_what_was_not_attempted() -> None:
    fake = FakeLetta()
    scripted(fake, "POST", [None, 422])  # the shared block is made, the first agent refused
    client = fake.client()
    with pytest.raises(ApplyError) as e:
        apply_plan(client, plan_for(client, desired(SEED)), parallelism=1)
    assert e.value.done == 1
    assert e.value.failures == [
        "agent.supervisor: create: POST /v1/agents/: HTTP 422: status 422 [LA507]"
    ]
    assert e.value.skipped == ["agent.worker: create"]


# -- the stack lock -------------------------------------------------------------------------


def test_lock_is_taken_released_and_invisible_to_plans() -> None:
    fake = FakeLetta()
    client = fake.client()
    lock = StackLock(client, "unit", "apply", settle=0)
    held = lock.acquire()
    assert [lk.id for lk in list_locks(client, "unit")] == [held.id]
    assert held.operation == "apply" and held.pid > 0 and held.host
    assert stack_tag("unit") not in fake.blocks[held.id]["tags"]
    assert [c.address for c in plan_for(client, desired(SEED)).changes] == [
        "block.organization", "agent.supervisor", "agent.worker",
    ]  # fmt: skip
    lock.release()
    assert list_locks(client, "unit") == [] and fake.blocks == {}


def test_a_free_stacks_lock_is_taken_with_one_write_and_two_looks() -> None:
    """No look before our record is made: the one after shows any holder."""
    fake = FakeLetta()
    sent: list[str] = []
    fake.before.append(lambda request: sent.append(request.method))
    lock = StackLock(fake.client(), "unit", "apply", settle=0)
    lock.acquire()
    assert sent == ["POST", "GET", "GET", "GET", "GET"]  # each look: a page and the empty one
    assert (lock.reads, lock.writes) == (4, 1)
    lock.release()


def test_a_held_lock_makes_others_wait_then_fail_naming_the_holder() -> None:
    fake = FakeLetta()
    # A holder without a lease: the fake clock outruns the real one its renewals use, and a
    # silent lease would be waited out and its lock taken over (test_lock_lease.py).
    first = StackLock(fake.client(), "unit", "destroy", settle=0, lease=0)
    held = first.acquire()
    clock = Clock()
    waited: list[str] = []
    second = StackLock(
        fake.client(), "unit", "apply", timeout=5, settle=0, sleep=clock.sleep, clock=clock,
        on_wait=lambda h: waited.append(h.id),
    )  # fmt: skip
    with pytest.raises(LockError) as e:
        second.acquire()
    assert waited == [held.id]
    assert held.id in str(e.value) and "destroy" in str(e.value)
    assert f"letta-apply force-unlock {held.id}" in str(e.value)
    assert clock.now <= 5
    assert [lk.id for lk in list_locks(fake.client(), "unit")] == [held.id]


def test_the_oldest_lock_record_wins_a_race() -> None:
    fake = FakeLetta()
    client = fake.client()
    rival = StackLock(client, "unit", "apply", settle=0, lease=0)  # see the test above
    calls = [0]

    def race(request: httpx.Request) -> httpx.Response | None:
        # The rival's record is made between our look at the stack and our own record.
        if request.method == "POST" and calls[0] == 0:
            calls[0] += 1
            rival.acquire()
        return None

    fake.before.append(race)
    clock = Clock()
    ours = StackLock(client, "unit", "apply", timeout=3, settle=0, sleep=clock.sleep, clock=clock)
    with pytest.raises(LockError):
        ours.acquire()
    assert rival.held is not None
    assert [lk.id for lk in list_locks(client, "unit")] == [rival.held.id]  # ours withdrawn


def test_force_unlock_removes_only_lock_records() -> None:
    fake = FakeLetta()
    client = fake.client()
    held = StackLock(client, "unit", "apply", settle=0).acquire()
    other = client.create_block({"label": "notes", "value": "v"})
    with pytest.raises(LockError, match="not a letta-apply lock record"):
        force_unlock(client, other["id"])
    assert force_unlock(client, held.id).id == held.id
    assert list_locks(client, "unit") == []
    with pytest.raises(LockError, match="no lock"):
        force_unlock(client, held.id)


# -- the stack's serial: the plan under the lock ------------------------------------------------


def planner(client: LettaClient, text: str) -> tuple[list[int], Callable[[], Planned]]:
    """A `make` for run_apply, and how many times it was called."""
    made = [0]

    def make() -> Planned:
        made[0] += 1
        return plan_for(client, desired(text)), None

    return made, make


def test_a_plan_stands_under_the_lock_when_no_run_wrote_since_it_was_read() -> None:
    fake = FakeLetta()
    client = fake.client()
    made, make = planner(client, SEED)
    first = run_apply(client, make)
    assert first.ok and made == [1]  # planned once: nothing wrote to the stack meanwhile
    (record,) = [b for b in fake.blocks.values() if b["label"] == STACK_LABEL]
    serial = record["metadata"]["letta_apply_lock"]["serial"]
    assert record["tags"] == ["letta-apply-serial:unit"]  # no resource, no lock record
    assert [c.address for c in plan_for(client, desired(SEED)).changes] == []  # not a block
    made, make = planner(client, SEED)
    assert run_apply(client, make).ok and made == [1]
    assert record["metadata"]["letta_apply_lock"]["serial"] == serial  # nothing was written
    made, make = planner(client, SEED.replace("Nothing here yet.", "Something."))
    assert run_apply(client, make).ok and made == [1]
    assert record["metadata"]["letta_apply_lock"]["serial"] != serial  # written to


def test_a_run_that_wrote_between_the_plan_and_the_lock_makes_it_plan_again() -> None:
    fake = FakeLetta()
    client = fake.client()
    assert run_apply(client, planner(client, SEED)[1]).ok
    other = SEED.replace("Nothing here yet.", "Theirs.")
    wrote = [False]

    def another_run_first(request: httpx.Request) -> httpx.Response | None:
        # Just before this run takes the lock, another run applies its manifest (the lock's
        # own listing: the plan's takes the lock records in with the stack's blocks).
        tags = request.url.params.get_list("tags")
        if "letta-apply-lock:unit" in tags and stack_tag("unit") not in tags and not wrote[0]:
            wrote[0] = True
            theirs = fake.client()
            assert run_apply(theirs, planner(theirs, other)[1]).ok
        return None

    fake.before.append(another_run_first)
    mine = SEED.replace("Nothing here yet.", "Ours.")
    made, make = planner(client, mine)
    result = run_apply(client, make)
    assert result.ok and made == [2]  # planned again under the lock
    (org,) = [b for b in fake.memory.values() if b["label"] == "organization"]
    assert org["value"] == "Ours."


def test_a_hand_edit_does_not_change_the_serial() -> None:
    fake = FakeLetta()
    client = fake.client()
    assert run_apply(client, planner(client, SEED)[1]).ok
    (org,) = [b for b in fake.memory.values() if b["label"] == "organization"]
    edited = [False]

    def by_hand(request: httpx.Request) -> httpx.Response | None:
        if "letta-apply-lock" in str(request.url) and not edited[0]:
            edited[0] = True
            org["description"] = "by hand"  # no run of ours: the lock never held it off
        return None

    fake.before.append(by_hand)
    made, make = planner(client, SEED.replace("Nothing here yet.", "Ours."))
    assert run_apply(client, make).ok and made == [1]


def test_destroy_deletes_the_serial_and_force_unlock_changes_it() -> None:
    fake = FakeLetta()
    client = fake.client()
    assert run_apply(client, planner(client, SEED)[1]).ok
    dead = StackLock(client, "unit", "apply", settle=0).acquire()  # a run that died holding it

    def serial() -> list[str]:
        return [
            b["metadata"]["letta_apply_lock"]["serial"]
            for b in fake.blocks.values() if b["label"] == STACK_LABEL
        ]  # fmt: skip

    before = serial()
    with pytest.raises(LockError):  # the serial record is no lock
        force_unlock(client, next(i for i, b in fake.blocks.items() if b["label"] == STACK_LABEL))
    force_unlock(client, dead.id)
    assert len(serial()) == 1 and serial() != before  # the dead run may have written

    def destroying() -> Planned:
        return plan_for(client, desired(SEED), destroy=True), None

    assert run_apply(client, destroying, operation="destroy").ok
    assert fake.blocks == {} and fake.agents == {}
