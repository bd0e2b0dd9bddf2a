"""Leases on the stack lock: a run that died holding it is taken over, a live one never is."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from typing import Any

import httpx
import pytest

from letta_apply import plan_for
from letta_apply.apply.session import ApplyEvents, run_apply
from letta_apply.core.model import LOCK_KEY
from letta_apply.errors import ApiError
from letta_apply.server.host import machine
from letta_apply.server.lease import lease_for
from letta_apply.server.lock import StackLock
from letta_apply.server.lock_records import LockError, list_locks
from letta_apply.server.serial import STACK_LABEL, bump_serial
from tests.fakes import FakeLetta
from tests.helpers import SEED, Clock, desired
from tests.unit.test_resilience import planner


def dead_pid() -> int:
    """The pid of a process of this machine that has ended (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def record(fake: FakeLetta, **info: Any) -> str:
    """A lock record as another run wrote it; returns its id."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    md = {"stack": "unit", "holder": "ci", "host": "elsewhere", "pid": 4242, "time": now,
          "operation": "apply", "token": "t", "lease": 90.0, "renewals": 0, "renewed": now,
          "machine": "another-boot/pid:[1]", **info}  # fmt: skip
    made = fake.client().create_block({
        "label": "letta-apply-lock", "value": "{}", "metadata": {LOCK_KEY: md},
        "tags": ["letta-apply-lock:unit"],
    })  # fmt: skip
    return str(made["id"])


def waiter(fake: FakeLetta, clock: Clock, timeout: float, told: list[str]) -> StackLock:
    return StackLock(
        fake.client(), "unit", "apply", timeout=timeout, settle=0, sleep=clock.sleep, clock=clock,
        on_take_over=lambda held, why: told.append(f"{held.id}: {why}"),
    )  # fmt: skip


def serial(fake: FakeLetta) -> list[str]:
    return [str(b["metadata"][LOCK_KEY]["serial"]) for b in fake.blocks.values()
            if b["label"] == STACK_LABEL]  # fmt: skip


def test_the_lease_outlasts_a_holder_that_stops_and_its_last_request() -> None:
    # A holder stops sending 25 s after its last renewal; a request sent just before ends
    # within the request timeout: the lease is longer than both together.
    assert lease_for(60.0) == 90.0 and lease_for(5.0) == 35.0


def test_a_holder_of_this_machine_whose_process_is_gone_is_taken_over_at_once() -> None:
    fake = FakeLetta()
    dead = record(fake, host=socket.gethostname(), machine=machine(), pid=dead_pid())
    clock, told = Clock(), []
    lock = waiter(fake, clock, 60, told)
    held = lock.acquire()
    assert clock.now < 1  # no wait
    assert [lk.id for lk in list_locks(fake.client(), "unit")] == [held.id]
    assert len(told) == 1 and told[0].startswith(f"{dead}: its process ")
    assert "on this machine is gone" in told[0]
    assert len(serial(fake)) == 1  # the dead run may have written: the plan is made again
    lock.release()


def renewing(fake: FakeLetta, rid: str) -> None:
    """The holder of record `rid` renews it between the waiter's looks at the lock."""

    def renew(request: httpx.Request) -> httpx.Response | None:
        tags = request.url.params.get_list("tags")
        if request.method == "GET" and "letta-apply-lock:unit" in tags and rid in fake.blocks:
            fake.blocks[rid]["metadata"][LOCK_KEY]["renewals"] += 1
        return None

    fake.before.append(renew)


def test_a_live_holder_of_this_machine_is_never_taken_over() -> None:
    fake = FakeLetta()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = record(fake, host=socket.gethostname(), machine=machine(), pid=alive.pid)
        renewing(fake, live)
        clock, told = Clock(), []
        with pytest.raises(LockError, match=live):
            waiter(fake, clock, 200, told).acquire()  # longer than its lease: it renews
        assert told == [] and clock.now >= 195
    finally:
        alive.kill()
        alive.wait()


def test_a_pid_of_another_machine_with_the_same_host_name_proves_nothing() -> None:
    # Containers may share a host name: the pid is looked at only on the same boot and PID
    # namespace. Only the lease, unrenewed, lets the record go.
    fake = FakeLetta()
    dead = record(fake, host=socket.gethostname(), machine="another-boot/pid:[1]", pid=dead_pid())
    clock, told = Clock(), []
    lock = waiter(fake, clock, 30, told)
    lock.acquire()
    assert clock.now >= 90 and len(told) == 1 and "lease of 90 s was not renewed" in told[0]
    assert told[0].startswith(dead)
    lock.release()


def test_a_holder_elsewhere_is_taken_over_after_its_lease_goes_unrenewed() -> None:
    fake = FakeLetta()
    dead = record(fake, lease=20.0)
    clock, told = Clock(), []
    lock = waiter(fake, clock, 60, told)
    lock.acquire()
    assert 20 <= clock.now <= 23  # waited the lease out, on its own clock
    assert len(told) == 1 and told[0].startswith(f"{dead}: its lease of 20 s was not renewed")
    lock.release()


def test_a_holder_that_renews_its_lease_keeps_the_lock() -> None:
    fake = FakeLetta()
    live = record(fake, lease=20.0)
    renewing(fake, live)
    clock, told = Clock(), []
    with pytest.raises(LockError, match=live):
        waiter(fake, clock, 50, told).acquire()
    assert told == [] and clock.now >= 45


def test_a_holder_that_stops_renewing_is_waited_for_past_the_lock_timeout() -> None:
    # --lock-timeout bounds the wait for a live holder; a silent one may be dead, and its
    # lease is waited out rather than giving up just before it runs out.
    fake = FakeLetta()
    dead = record(fake, lease=40.0)
    clock, told = Clock(), []
    lock = waiter(fake, clock, 10, told)
    lock.acquire()
    assert 40 <= clock.now <= 43 and told[0].startswith(dead)
    lock.release()


def test_a_record_renewed_long_ago_is_taken_over_after_two_renewals_of_silence() -> None:
    fake = FakeLetta()
    dead = record(fake, renewed="2026-01-01T00:00:00Z")
    clock, told = Clock(), []
    lock = waiter(fake, clock, 60, told)
    lock.acquire()
    assert 20 <= clock.now < 23  # not the whole 90 s lease
    assert told == [f"{dead}: its lease of 90 s ran out (last renewed 2026-01-01T00:00:00Z)"]
    lock.release()


def test_a_live_holder_whose_clock_lags_far_behind_keeps_the_lock() -> None:
    fake = FakeLetta()
    live = record(fake, renewed="2026-01-01T00:00:00Z")  # its clock, months behind ours
    renewing(fake, live)
    clock, told = Clock(), []
    with pytest.raises(LockError, match=live):
        waiter(fake, clock, 60, told).acquire()
    assert told == []


def test_a_record_without_a_lease_waits_for_force_unlock() -> None:
    fake = FakeLetta()
    old = record(fake, lease=None, renewals=None, renewed=None, machine=None)
    clock, told = Clock(), []
    with pytest.raises(LockError, match=f"force-unlock {old}"):
        waiter(fake, clock, 200, told).acquire()
    assert told == []


def test_the_holder_renews_its_lease_and_stops_when_it_cannot() -> None:
    fake = FakeLetta()
    client = fake.client()
    lock = StackLock(client, "unit", "apply", settle=0, renew=0.05, halt=0.3)
    held = lock.acquire()
    deadline = time.monotonic() + 5
    while fake.blocks[held.id]["metadata"][LOCK_KEY]["renewals"] < 2:
        assert time.monotonic() < deadline, "the lease was not renewed"
        time.sleep(0.02)
    assert client.halted is None
    failing = threading.Event()
    failing.set()

    def down(request: httpx.Request) -> httpx.Response | None:
        if failing.is_set() and request.method == "PATCH":
            return httpx.Response(503, json={"detail": "down"})
        return None

    fake.before.append(down)
    while client.halted is None:
        assert time.monotonic() < deadline + 5, "the holder did not stop"
        time.sleep(0.05)
    with pytest.raises(ApiError, match="could not be renewed"):
        client.list_blocks("anything")  # nothing more is sent
    failing.clear()
    lock.release()  # the lock's own last requests go through
    assert list_locks(client, "unit") == []


def test_an_apply_with_nothing_to_do_removes_a_dead_runs_lock_and_no_other() -> None:
    # A run killed while it released the lock leaves its record and nothing to do: the next
    # apply, which takes no lock, still removes the record (its listing of the stack's blocks
    # takes the lock records in: no more requests).
    fake = FakeLetta()
    client = fake.client()
    assert run_apply(client, planner(client, SEED)[1]).ok
    dead = record(fake, host=socket.gethostname(), machine=machine(), pid=dead_pid())
    alive = record(fake, renewed=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    told: list[str] = []

    class Events(ApplyEvents):
        def lock_taken_over(self, held: Any, why: str) -> None:
            told.append(held.id)

    result = run_apply(client, planner(client, SEED)[1], events=Events())
    assert result.ok and not result.plan.has_changes
    assert told == [dead] and dead not in fake.blocks and alive in fake.blocks


def test_a_destroy_stopped_while_releasing_the_lock_is_finished_by_the_next() -> None:
    # Killed after its deletes, while it gave the lock back: the serial and its lock record
    # are left. The next destroy has nothing to delete; it removes both, and writes no serial.
    fake = FakeLetta()
    client = fake.client()
    assert run_apply(client, planner(client, SEED)[1]).ok

    def destroying() -> Any:
        return plan_for(client, desired(SEED), destroy=True), None

    assert run_apply(client, destroying, operation="destroy").ok
    assert fake.blocks == {}
    bump_serial(client, "unit")
    record(fake, host=socket.gethostname(), machine=machine(), pid=dead_pid(), operation="destroy")
    result = run_apply(client, destroying, operation="destroy")
    assert result.ok and not result.plan.has_changes
    assert fake.blocks == {}
