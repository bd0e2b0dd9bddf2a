"""Carry out a plan's changes through the client, in dependency order, in parallel within a
level.

The order comes from the resource kinds' dependency graph (letta_apply.kinds.apply_order):
creates and updates level by level (each agent created in one request with its own blocks,
shared block ids, tools, identities, tags and marks), then detaches, then attaches, then
deletes, dependents first. On the first failure no new work starts; work in flight finishes;
the error says what was done, what failed and what was not attempted.

No duplicates: a create that failed ambiguously is first looked up by its marks and adopted when
the server did make it. Once a stage has made resources of a kind whose names may repeat, the
stack's resources of that kind are listed once: should another run have made one of the same
address too (two applies at once without the lock), the oldest wins and the others are deleted
by their makers, before the next stage names them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from itertools import groupby
from queue import Empty, SimpleQueue
from typing import TYPE_CHECKING

from ..core.changes import CREATE, FORGET, IMPORT, REPLACE, Change, Plan
from ..core.jsonish import JsonObject
from ..core.model import stack_tag
from ..errors import ApiError, ApplyError, is_rejection, with_code
from ..kinds import apply_order, flag_of, kind, kind_of_address
from ..kinds.flags import apply_flag, raise_flag
from ..server.client import LettaClient

if TYPE_CHECKING:
    from ..memory.backup import Backups


@dataclass(frozen=True)
class Done:
    """A change that was made, with the id of the resource it made or changed."""

    change: Change
    remote_id: str


OnDone = Callable[[Done], None]
OnFailed = Callable[[Change, BaseException], None]


def _resolve(value: object, ids: Mapping[str, str]) -> object:
    """`value` with the id of what each `{"$ref": address}` in it names."""
    if isinstance(value, dict):
        if set(value) == {"$ref"}:
            return ids[value["$ref"]]
        return {k: _resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, ids) for v in value]
    return value


class _Runner:
    """What a kind gets to carry out a change: the client, the stack, and the ids of what
    exists (or was made by this apply) by address."""

    def __init__(
        self,
        client: LettaClient,
        stack: str,
        ids: dict[str, str],
        on_done: OnDone,
        backups: Backups | None = None,
    ) -> None:
        self.client = client
        self.backups = backups
        self.stack = stack
        self.tag = stack_tag(stack)
        self.ids = ids
        self.on_done = on_done
        self.lock = threading.Lock()

    def id_of(self, address_or_id: str) -> str:
        with self.lock:
            return self.ids.get(address_or_id, address_or_id)

    def record(self, address: str, rid: str) -> None:
        with self.lock:
            self.ids[address] = rid

    def resolve(self, body: Mapping[str, object]) -> JsonObject:
        with self.lock:
            return {k: _resolve(v, self.ids) for k, v in body.items()}

    def run(self, change: Change) -> Done:
        body = self.resolve(change.body)
        k = kind(change.kind or kind_of_address(change.address))
        flagged = flag_of(change)
        if flagged is None and self.backups is not None:
            self.backups.before(self, change)  # what a delete loses is saved first (memory)
        if flagged is not None:  # a kind's flag, written or deleted on its own (kinds.flags)
            rid = apply_flag(self, change, flagged)
        elif change.action == FORGET:  # `removed:`: the resource is kept, its marks go
            k.unmark(self, change)
            rid = change.remote_id or ""
        else:
            if k.listing == "flag" and change.action in (CREATE, REPLACE, IMPORT):
                # The stack is about to hold one: its flag first, unless the plan found it.
                raise_flag(self, k)
            rid = k.apply(self, change, body)
        done = Done(change, rid)
        self.on_done(done)
        return done


def apply_plan(
    client: LettaClient,
    plan: Plan,
    *,
    parallelism: int = 8,
    on_done: OnDone = lambda d: None,
    on_failed: OnFailed = lambda c, e: None,
    stop: threading.Event | None = None,
    backups: Backups | None = None,
) -> list[Done]:
    """Execute `plan` against the server, calling `on_done` as each change completes and
    `on_failed` as one fails (both from worker threads). Raises ApplyError naming what failed,
    what was done and what was not attempted. Setting `stop` (a signal handler, say) starts no
    new change: those in flight finish, and ApplyError says the apply was interrupted. With
    `backups`, what each delete would lose is saved before it is sent (a backup that fails
    fails its change)."""
    if backups is not None:
        backups.prepare(plan)
    runner = _Runner(client, plan.stack, dict(plan.ids), on_done, backups)
    asked = stop if stop is not None else threading.Event()
    failed = threading.Event()  # set on the first failure: queued work then never starts

    def run(change: Change) -> Done | None:
        if failed.is_set() or asked.is_set():
            return None
        try:
            return runner.run(change)
        except BaseException as e:
            failed.set()
            on_failed(change, e)
            raise

    done: list[Done] = []
    failures: list[str] = []
    rejected = False
    changes = sorted(plan.changes, key=apply_order)  # stable: plan order within a level
    attempted: set[int] = set()
    with ThreadPoolExecutor(max_workers=max(1, parallelism)) as pool:
        for _, group in groupby(range(len(changes)), key=lambda i: apply_order(changes[i])):
            futures = {pool.submit(run, changes[i]): i for i in group}
            stage: list[Done] = []
            for f in _as_completed(futures):
                exc = f.exception()
                if exc is None:
                    result = f.result()
                    if result is not None:
                        stage.append(result)
                        attempted.add(futures[f])
                elif isinstance(exc, ApiError):
                    failures.append(with_code(f"{describe(changes[futures[f]])}: {exc}", exc.code))
                    rejected = rejected or is_rejection(exc)
                    attempted.add(futures[f])
                else:
                    raise exc
            try:
                # Before the next stage names what this one made (failed or not: what was
                # made is settled now, not left for a later run to find twice).
                done.extend(_settled(runner, stage))
            except ApiError as e:
                done.extend(stage)
                failures.append(
                    with_code(f"settling what this apply made with other runs: {e}", e.code)
                )
            if failures or asked.is_set():
                break
    skipped = [describe(c) for i, c in enumerate(changes) if i not in attempted]
    if failures or skipped:
        raise ApplyError(
            failures, done=len(done), not_attempted=len(skipped), skipped=skipped,
            interrupted=not failures, rejected=rejected,
        )  # fmt: skip
    return done


def _settled(runner: _Runner, stage: list[Done]) -> list[Done]:
    """The stage's changes once each kind settled what it made with other runs (see
    Kind.settle), one listing per kind: a create another run beat shows the id kept."""
    made: dict[str, list[tuple[Change, str]]] = {}
    for d in stage:
        if d.change.action in (CREATE, REPLACE) and flag_of(d.change) is None:
            name = d.change.kind or kind_of_address(d.change.address)
            made.setdefault(name, []).append((d.change, d.remote_id))
    moved: dict[str, str] = {}
    for name, items in sorted(made.items()):
        moved.update(kind(name).settle(runner, items))
    return [
        replace(d, remote_id=moved[d.change.address])
        if d.change.action in (CREATE, REPLACE) and d.change.address in moved
        else d
        for d in stage
    ]


def _as_completed(futures: Iterable[Future[Done | None]]) -> Iterator[Future[Done | None]]:
    """Futures as they complete, the waiting thread waking at least every 0.1 s: a signal's
    handler runs only when the main thread runs, and a stop must not wait for a whole level.
    Each future reports itself as it completes: waiting on all those pending after each one
    (`concurrent.futures.wait`) costs time in their number, quadratic over a level of 10,000
    creates."""
    finished: SimpleQueue[Future[Done | None]] = SimpleQueue()
    left = 0
    for f in futures:
        f.add_done_callback(finished.put)
        left += 1
    while left:
        try:
            f = finished.get(timeout=0.1)
        except Empty:
            continue
        left -= 1
        yield f


def describe(change: Change) -> str:
    if change.target:
        return f"{change.address}: {change.action} {change.target}"
    return f"{change.address}: {change.action}"
