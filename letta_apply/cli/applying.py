"""`letta-apply apply` and `destroy`: a run with its prompt, progress, stack lock and signals,
and the report of what it did."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TextIO

from ..apply.report import apply_document
from ..apply.runner import Done
from ..apply.session import ApplyEvents, ApplyResult, Planned, run_apply
from ..core.changes import Change, Plan
from ..core.model import Desired
from ..errors import ApiError, UsageError, with_code
from ..memory.backup import Backups
from ..pipeline import plan_for
from ..plan.saved import check_server, read_saved_plan, verify_saved_plan
from ..policy import check_plan, policies_for
from ..render.results import done_text
from ..server.client import LettaClient
from ..server.lock import StackLock
from ..server.lock_records import LockInfo
from .arguments import EXIT_ERROR, EXIT_OK
from .output import Out, Stream, plan_origin, show_plan
from .planning import load, targeted
from .progress import Progress
from .restoring import saved_document, saved_text


def _confirm(plan: Plan, out: Stream, stdin: TextIO) -> bool:
    return _ask(f'\nApply these changes to stack "{plan.stack}"?', out, stdin)


def confirm_text(question: str, o: Out) -> bool:
    """Whether the person at the terminal answers "yes" to `question`."""
    return _ask(question, o.out, o.stdin)


def _ask(question: str, out: Stream, stdin: TextIO) -> bool:
    if not stdin.isatty():
        raise UsageError(
            "refusing to ask for confirmation: standard input is not a terminal; "
            "review the plan and pass --auto-approve",
            code="LA905",
        )
    out.write(f'{question} Only "yes" is accepted: ')
    out.flush()
    return stdin.readline().strip() == "yes"


def cmd_destroy(args: argparse.Namespace, o: Out) -> int:
    args.plan_file = None
    args.policy = []  # the manifest's own policy files still apply
    args.target = []
    args.detach_unmanaged_blocks = False
    return cmd_apply(args, o, destroy=True)


def _saved_plan(args: argparse.Namespace, client: LettaClient, o: Out) -> Planned:
    saved = read_saved_plan(args.plan_file)
    check_server(saved, client.base_url, args.project)
    desired = load(args, o) if args.file else None
    if args.policy and desired is None:
        raise UsageError("--policy on a saved plan needs its manifest (-f FILE)", code="LA902")
    plan = verify_saved_plan(
        client, saved, desired, project=args.project, masker=o.masker,
        manifest=", ".join(args.file or ()),
    )  # fmt: skip
    # What the rules found when it was planned stays in the file; --policy checks again.
    if args.policy and desired:
        plan = check_plan(plan, desired, policies_for(args.policy, desired))
    return plan, desired


class _Events(ApplyEvents):
    """How an apply run shows on the terminal: the plan, the prompt, progress, the record."""

    def __init__(self, args: argparse.Namespace, o: Out, client: LettaClient) -> None:
        self.args, self.o, self.client = args, o, client
        self.progress: Progress | None = None

    def planned(self, plan: Plan, desired: Desired | None) -> None:
        backups = self.o.backups
        self.o.backup_note = str(backups.for_stack(plan.stack)) if backups else None
        if self.o.format == "text":
            destroy = self.args.command == "destroy"
            show_plan(self.o, plan, plan_origin(self.args, self.client, desired), destroy=destroy)

    def confirm(self, plan: Plan) -> bool:
        return bool(self.args.auto_approve) or _confirm(plan, self.o.out, self.o.stdin)

    def lock_created(self, lock: StackLock) -> None:
        self.o.lock = lock

    def lock_wait(self, held: LockInfo) -> None:
        print(f"waiting for the lock held by {held.describe()}", file=self.o.err)

    def lock_taken_over(self, held: LockInfo, why: str) -> None:
        print(f"took over the lock held by {held.describe()}: {why}", file=self.o.err)

    def lock_not_released(self, held: LockInfo, error: ApiError) -> None:
        print(
            f"warning: could not release the lock of stack {held.stack!r} ({error}); the next "
            "run takes it over once its lease runs out, or remove it now with "
            f"`letta-apply force-unlock {held.id}`",
            file=self.o.err,
        )

    def started(self, plan: Plan) -> None:
        self.progress = Progress(self.o.err, len(plan.changes), tty=self.o.progress_tty)

    def done(self, done: Done) -> None:
        if self.progress:
            self.progress.completed()

    def failed(self, change: Change, error: BaseException) -> None:
        if self.progress:
            self.progress.failure()

    def finished(self, done: list[Done]) -> None:
        # Changes complete in any order; the record of them is printed in plan order, also
        # when the apply stopped half-way.
        if self.progress:
            self.progress.close()
        if self.o.format == "text" and done:
            self.o.text("\n" + done_text(done))


def cmd_apply(args: argparse.Namespace, o: Out, *, destroy: bool = False) -> int:
    if not args.file and not args.plan_file:
        raise UsageError("apply needs a manifest (-f FILE) or a saved plan (PLAN)", code="LA902")
    if o.format != "text" and not args.auto_approve:
        raise UsageError(
            f"--format {o.format} needs --auto-approve (no prompt in that mode)", code="LA903"
        )
    if args.plan_file and args.target:
        raise UsageError("--target cannot narrow a saved plan: it applies as saved", code="LA903")
    with o.connect() as client:
        planning = threading.Event()  # set while the first plan is made: nothing written yet
        planning.set()
        if not args.no_backup:
            o.backups = Backups(
                args.backup_dir, masker=o.masker, operation="destroy" if destroy else "apply",
                server=client.base_url,
            )  # fmt: skip

        def make() -> Planned:
            try:
                if args.plan_file:
                    return _saved_plan(args, client, o)
                desired = load(args, o)
                policies = policies_for(args.policy, desired)  # in error: before any request
                plan = plan_for(
                    client, desired, destroy=destroy, detach_unmanaged=args.detach_unmanaged_blocks
                )
                return check_plan(targeted(args, desired, plan, o), desired, policies), desired
            finally:
                planning.clear()

        stop = threading.Event()
        with stopped_by_signals(stop, o, planning) as received:
            result = run_apply(
                client, make, operation="destroy" if destroy else "apply", lock=args.lock,
                lock_timeout=args.lock_timeout, parallelism=args.parallelism,
                events=_Events(args, o, client), stop=stop, backups=o.backups,
            )  # fmt: skip
        code = _applied(args, o, client, result)
        # Stopped by a signal: the shell's convention, 128 + its number (130, 143).
        return 128 + received[0] if received else code


class Interrupted(KeyboardInterrupt):
    """A signal while nothing was written yet: the run ends at once."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@contextmanager
def stopped_by_signals(
    stop: threading.Event, o: Out, planning: threading.Event
) -> Iterator[list[int]]:
    """While applying, the first SIGINT or SIGTERM sets `stop`: no new change starts, those in
    flight finish, the lock is released and what was done is reported. A second one aborts at
    once (a lock left behind is taken over by the next run: server.lock). While the first plan is
    made (`planning`), nothing is written yet: the first one aborts at once."""
    received: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield received  # signals reach only the main thread
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if planning.is_set():
            raise Interrupted(signum)
        if received:
            raise KeyboardInterrupt
        received.append(signum)
        stop.set()
        print(
            "\nStopping: no new change starts; waiting for those in flight "
            "(interrupt again to abort at once).",
            file=o.err,
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _applied(args: argparse.Namespace, o: Out, client: LettaClient, result: ApplyResult) -> int:
    """Report an apply run; its exit code."""
    plan, failure = result.plan, result.failure
    if o.format == "json":
        doc = apply_document(result, plan_origin(args, client, result.desired), o.masker)
        o.json({**doc, **saved_document(o.backups)})
    elif o.backups is not None and o.backups.saved:
        o.text("\n" + saved_text(o.backups))
    if (blocked := result.refusal) is not None:
        raise blocked
    # After a destroy, apply would make the stack again: a destroy is finished by another.
    run, again = (
        ("Destroy", "Run destroy again to finish it.")
        if args.command == "destroy"
        else ("Apply", "Run apply again to converge.")
    )
    if result.cancelled:
        o.text(f"{run} cancelled; nothing was changed.")
        return EXIT_ERROR
    if failure and failure.interrupted and o.format != "json":
        for skipped in failure.skipped:
            print(f"not attempted: {skipped}", file=o.err)
        print(
            f"{run} interrupted: {failure.done} change(s) done, {failure.not_attempted} not "
            f"attempted. {again}",
            file=o.err,
        )
    elif failure and o.format != "json":
        for f in failure.failures:
            print(f"error: {f}", file=o.err)
        for skipped in failure.skipped:
            print(f"not attempted: {skipped}", file=o.err)
        after = (
            "A request was refused as wrong (by the server, HTTP 4xx, or by letta-apply before "
            "sending it): sending it again gets the same answer; fix what it names in the "
            f"manifest or on the server, then {run.lower()} again."
            if failure.rejected
            else again
        )
        print(
            f"{run} stopped: {failure.done} change(s) done, {len(failure.failures)} failed, "
            f"{failure.not_attempted} not attempted. {after}",
            file=o.err,
        )
    elif plan.problems and o.format != "json":
        # Not complete: what was refused is still to do. Every reason, as the plan listed them.
        for p in plan.problems:
            print(f"error: {with_code(f'{p.address}: {p.message}', p.code)}", file=o.err)
        refused = len({p.address for p in plan.problems})
        made = (
            f"{sum(1 for d in result.done if d.change.action == 'delete')} resource(s) deleted"
            if args.command == "destroy"
            else f"{len(result.done)} change(s) made"
        )
        o.text(
            f"\n{run} incomplete: {made}; {refused} resource(s) refused (see the errors): fix "
            f"them, then {run.lower()} again."
        )
    elif plan.has_changes and o.format != "json" and args.command == "destroy":
        deleted = sum(1 for d in result.done if d.change.action == "delete")
        o.text(f"\nDestroy complete: {deleted} resource(s) deleted.")
    elif plan.has_changes and o.format != "json":
        o.text(f"\nApply complete: {len(result.done)} change(s) made.")
    if failure or plan.problems:
        return EXIT_ERROR
    return EXIT_OK
