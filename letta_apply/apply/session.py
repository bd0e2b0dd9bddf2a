"""One apply or destroy run: plan, take the stack lock when there is something to write, plan
again under it only if another run wrote to the stack since (the stack's serial says), confirm,
apply, give the stack a new serial and its record of what it holds (plan.record), release.

The caller decides how each step shows: `ApplyEvents` is told what happens, and nothing here
prints."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace

from ..core.changes import ERROR, Change, Plan, natural_key
from ..core.model import Desired
from ..errors import (
    ApiError,
    ApplyError,
    DestroyPrevented,
    LettaApplyError,
    PolicyViolated,
    with_code,
)
from ..kinds import apply_order
from ..memory.backup import Backups
from ..server.client import LettaClient
from ..server.lock import StackLock
from ..server.lock_records import LockInfo
from ..server.serial import Recording, bump_serial, forget_serial, refresh_record
from .runner import Done, apply_plan

Planned = tuple[Plan, Desired | None]
"""A plan and the manifest it was made from (None for a saved plan applied without one)."""


class ApplyEvents:
    """What an apply run reports as it goes; every method does nothing unless overridden.
    `done` and `failed` are called from apply's worker threads."""

    def planned(self, plan: Plan, desired: Desired | None) -> None:
        """The plan about to be confirmed and applied (checked under the lock)."""

    def confirm(self, plan: Plan) -> bool:
        """Whether to apply `plan`; asked only when it has changes."""
        return True

    def lock_created(self, lock: StackLock) -> None:
        """The stack lock, before it is taken (its requests are counted apart)."""

    def lock_wait(self, held: LockInfo) -> None:
        """Another run holds the lock: told once, before waiting for it."""

    def lock_taken_over(self, held: LockInfo, why: str) -> None:
        """The run holding the lock is gone (`why`): its lock is taken over."""

    def lock_not_released(self, held: LockInfo, error: ApiError) -> None:
        """The lock record could not be deleted; later runs take it over once its lease runs
        out (or at once on this machine, this process gone)."""

    def started(self, plan: Plan) -> None:
        """Writing begins."""

    def done(self, done: Done) -> None:
        """One change was made."""

    def failed(self, change: Change, error: BaseException) -> None:
        """One change failed; no new change starts."""

    def finished(self, done: list[Done]) -> None:
        """Writing ended, completely or not (also on an interruption)."""


@dataclass(frozen=True)
class ApplyResult:
    """What an apply run did. `failure` is set when a change failed (the others then stop);
    `cancelled` when the plan was not confirmed; `blocked` when prevent_destroy refused it."""

    plan: Plan
    desired: Desired | None
    done: tuple[Done, ...] = ()
    failure: ApplyError | None = None
    cancelled: bool = False
    # Where what the run deleted was saved first (memory.backup); None when nothing was.
    backup_folder: str | None = None

    @property
    def blocked(self) -> bool:
        return self.plan.blocked

    @property
    def refusal(self) -> LettaApplyError | None:
        """Why a blocked run wrote nothing, as the error to raise or report: a policy rule broken
        at `error` (PolicyViolated), else what blocked it (DestroyPrevented); None when not
        blocked."""
        if self.plan.refused_by_policy:
            n = sum(1 for v in self.plan.violations if v.severity == ERROR)
            return PolicyViolated(f"policy: {n} violation(s) at error; nothing was applied")
        if self.blocked:
            return DestroyPrevented(
                "prevent_destroy: this plan would delete protected resources; nothing was applied"
            )
        return None

    @property
    def errors(self) -> list[str]:
        """Failed changes, then the resources the plan refused, as `address: message`."""
        refused = [with_code(f"{p.address}: {p.message}", p.code) for p in self.plan.problems]
        return [*(self.failure.failures if self.failure else []), *refused]

    @property
    def ok(self) -> bool:
        """Everything planned was applied and nothing was refused."""
        return not (self.failure or self.cancelled or self.blocked or self.plan.problems)


def in_plan_order(done: Iterable[Done]) -> list[Done]:
    """Completed changes in a stable order (they complete in parallel, in any order): the
    order of the plan."""
    return sorted(
        done,
        key=lambda d: (
            apply_order(d.change),
            natural_key(d.change.address),
            natural_key(d.change.target or ""),
        ),
    )


def run_apply(
    client: LettaClient,
    make: Callable[[], Planned],
    *,
    operation: str = "apply",
    lock: bool = True,
    lock_timeout: float = 60.0,
    parallelism: int = 8,
    events: ApplyEvents | None = None,
    stop: threading.Event | None = None,
    backups: Backups | None = None,
) -> ApplyResult:
    """Plan with `make`, then apply. With `lock` and something to write, the stack lock is
    taken; the plan stands under it when no other run wrote to the stack since it was read
    (the stack's serial says), else `make` is called again. A blocked plan writes nothing.
    Setting `stop` starts no new change; the lock is released all the same. With `backups`,
    every delete is preceded by the backup of what it deletes (memory.backup)."""
    events = events or ApplyEvents()
    planned = make()
    stack = planned[0].stack
    destroying = operation == "destroy"

    def writes(p: Planned) -> bool:
        return p[0].has_changes and not p[0].blocked

    # A blocked plan (prevent_destroy, a policy) writes nothing, not even a dead run's lock.
    if lock and planned[0].locks and not writes(planned) and not planned[0].blocked:
        # Nothing to write, but a run that died holding the lock may have left its record.
        # Taken over, it may have written after this plan was read: plan again.
        gone = destroying and not planned[0].has_changes  # the stack owns nothing any more
        cleared = StackLock(client, stack, operation, on_take_over=events.lock_taken_over)
        if cleared.clear_dead(planned[0].locks, serial=not gone):
            planned = make()
    # The lock costs its writes: a run with nothing to do neither takes it nor writes.
    if not (lock and writes(planned)):
        unlocked = _apply_planned(client, *planned, parallelism, events, stop, backups=backups)
        # Without the lock too, a run that wrote says so to the runs that hold it; a destroyed
        # stack keeps no serial (one a stopped destroy left included).
        if destroying and unlocked.ok and (unlocked.plan.has_changes or planned[0].serial):
            forget_serial(client, stack)
        elif _wrote(unlocked):
            bump_serial(client, stack, record=_recording(unlocked.plan, unlocked))
        elif _refreshes(unlocked) and not unlocked.plan.locks and unlocked.plan.serial is not None:
            # Not while another run holds the lock: its own record is the one to keep.
            record = unlocked.plan.record
            assert record is not None
            refresh_record(client, stack, unlocked.plan.serial, record.after(()))
        return _saved(unlocked, backups)
    stack_lock = StackLock(
        client, stack, operation, timeout=lock_timeout, on_wait=events.lock_wait,
        on_take_over=events.lock_taken_over,
    )  # fmt: skip
    events.lock_created(stack_lock)
    stack_lock.acquire()
    result: ApplyResult | None = None
    try:
        if stop is not None and stop.is_set():  # asked to stop while waiting for the lock
            result = ApplyResult(planned[0], planned[1], cancelled=True)
            return result
        if planned[0].serial is None or planned[0].serial != stack_lock.serial:
            planned = make()  # another run wrote to the stack since: plan again
        applied = _apply_planned(client, *planned, parallelism, events, stop, stack_lock, backups)
        result = _saved(applied, backups)
        return result
    finally:
        _release(stack_lock, events, planned[0], result, destroying)


def _saved(result: ApplyResult, backups: Backups | None) -> ApplyResult:
    if backups is None or not backups.saved:
        return result
    return replace(result, backup_folder=str(backups.folder))


def _wrote(result: ApplyResult | None) -> bool:
    """Whether a run may have written to the stack: it made a change, or one failed in a way
    that may have acted (or it ended in an exception)."""
    if result is None:
        return True
    failure = result.failure
    return bool(result.done) or (failure is not None and not failure.rejected)


def _refreshes(result: ApplyResult) -> bool:
    """Whether a run that wrote nothing writes the stack's record all the same: the plan found
    it missing what the stack holds, and was neither refused nor declined."""
    record = result.plan.record
    return bool(record and record.lacking and not (result.cancelled or result.blocked))


def _recording(plan: Plan, result: ApplyResult | None) -> Recording | None:
    """The stack's record after a run of `plan` (`result`: what it did; None when it ended
    in an exception: then only what the plan left held). Should another run have written to
    the stack since the plan was read (a run without the lock beside others), what that run
    recorded wins: this run adds what it made and takes away what it took."""
    record = plan.record
    if record is None:
        return None
    made = {d.change.address for d in result.done} if result else set()
    after = record.after(made)

    def recording(serial: str, now: frozenset[str] | None) -> frozenset[str]:
        if serial == plan.serial or now is None:
            return after
        # What the other run recorded, but what this one took away (moved away included),
        # with what this one moved or made.
        moved = record.kept - record.held
        return (now - (record.held - record.kept)) | moved | (record.adds & made)

    return recording


def _release(
    lock: StackLock,
    events: ApplyEvents,
    plan: Plan,
    result: ApplyResult | None,
    destroying: bool,
) -> None:
    held = lock.held
    plan = result.plan if result is not None else plan
    wrote = _wrote(result)
    try:
        lock.release(
            wrote=wrote or (result is not None and _refreshes(result)),
            destroyed=destroying and result is not None and result.ok,
            record=_recording(plan, result),
        )
    except ApiError as e:
        if held is not None:
            events.lock_not_released(held, e)


def _apply_planned(
    client: LettaClient,
    plan: Plan,
    desired: Desired | None,
    parallelism: int,
    events: ApplyEvents,
    stop: threading.Event | None = None,
    lock: StackLock | None = None,
    backups: Backups | None = None,
) -> ApplyResult:
    """Confirm and apply (under `lock`, when it is held)."""
    events.planned(plan, desired)
    if plan.blocked:
        return ApplyResult(plan, desired)
    if plan.has_changes and not events.confirm(plan):
        return ApplyResult(plan, desired, cancelled=True)
    if not plan.has_changes:
        return ApplyResult(plan, desired)
    done: list[Done] = []  # appended from apply's worker threads
    failure: ApplyError | None = None
    events.started(plan)

    def on_done(d: Done) -> None:
        done.append(d)
        events.done(d)

    ahead = plan.record.ahead if plan.record else None
    try:
        if ahead is not None:
            # The record never names what letta-apply takes away, even if this run is killed.
            if lock is not None:
                lock.write_record(ahead)
            else:
                bump_serial(client, plan.stack, record=lambda _serial, _now: ahead)
        apply_plan(
            client, plan, parallelism=parallelism, on_done=on_done, on_failed=events.failed,
            stop=stop, backups=backups,
        )  # fmt: skip
    except ApplyError as e:
        failure = e
    finally:
        events.finished(done)
    return ApplyResult(plan, desired, tuple(in_plan_order(done)), failure)
