"""`plan --stacks DIR`, `apply --stacks DIR`, `destroy --stacks DIR`: many stacks from one
process, the server read once for all of them, each stack under its own lock, one summary.

Exit code: 1 when any stack failed (its row and the lines under the table say why), else 0;
plan with --detailed-exitcode: 2 when any stack has changes."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

from ..core.changes import Plan
from ..errors import UsageError
from ..many.report import Operation, stacks_document, stacks_text
from ..many.run import Settings, Source, StackRun, apply_stacks, plan_stacks, sources_read_ahead
from ..policy import policies_for
from ..read.shared import Ahead
from .applying import confirm_text, stopped_by_signals
from .arguments import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, options_of
from .output import Out
from .progress import Progress

# Options of one stack that mean nothing for many (dest, as the user wrote it).
_ONE_STACK = (
    ("file", "-f"), ("target", "--target"), ("out", "--out"), ("plan_file", "PLAN"),
    ("detach_unmanaged_blocks", "--detach-unmanaged-blocks"),
)  # fmt: skip


def cmd_stacks(args: argparse.Namespace, o: Out) -> int:
    operation: Operation = "destroy" if args.command == "destroy" else args.command
    for dest, option in _ONE_STACK:
        if getattr(args, dest, None):
            raise UsageError(f"--stacks: not with {option} (it names one stack)", code="LA903")
    policies = policies_for(getattr(args, "policy", None) or [], None)  # before any request
    if o.format not in ("text", "json"):
        raise UsageError("--stacks: --format text or json", code="LA903")
    if operation != "plan" and o.format != "text" and not args.auto_approve:
        raise UsageError(
            f"--format {o.format} needs --auto-approve (no prompt in that mode)", code="LA903"
        )
    with o.connect() as client:
        sources, ahead = sources_read_ahead(client, args.stacks, options_of(args))
        for s in sources:
            if s.desired is not None:
                o.masker.add(s.desired.secrets)
        if operation == "plan":
            runs = plan_stacks(
                client, sources, destroy=args.destroy, concurrency=args.concurrency, ahead=ahead,
                policies=policies,
            )  # fmt: skip
        else:
            settings = Settings(
                destroy=operation == "destroy", concurrency=args.concurrency,
                parallelism=args.parallelism, lock=args.lock, lock_timeout=args.lock_timeout,
                backups=None if args.no_backup else Path(args.backup_dir), policies=policies,
            )  # fmt: skip
            runs = _apply(args, o, sources, settings, operation, ahead)
    if o.format == "json":
        o.json(stacks_document(runs, operation, o.masker))
    else:
        o.text(stacks_text(runs, operation))
    if any(not r.ok for r in runs):
        return EXIT_ERROR
    changes = any(r.plan is not None and r.plan.has_changes for r in runs)
    return EXIT_CHANGES if getattr(args, "detailed_exitcode", False) and changes else EXIT_OK


def _apply(
    args: argparse.Namespace,
    o: Out,
    sources: list[Source],
    settings: Settings,
    op: Operation,
    ahead: Ahead,
) -> list[StackRun]:
    """Apply every stack; without --auto-approve, once the plans' table was shown and the
    changes confirmed: then only the stacks with changes are applied, each only if its plan
    still holds."""
    client = o.client
    planned: dict[str, StackRun] = {}
    approved: dict[str, Plan] | None = None
    if not args.auto_approve:
        runs = plan_stacks(
            client, sources, destroy=settings.destroy, concurrency=args.concurrency, ahead=ahead
        )  # fmt: skip
        ahead = {}  # read for this plan: the apply reads afresh
        o.text(stacks_text(runs, "plan"))
        planned = {r.origin: r for r in runs}
        approved = {r.stack: r.plan for r in runs if r.ok and r.plan and r.plan.has_changes}
        if not approved:
            return runs
        what = f"{len(approved)} stack{'s' if len(approved) > 1 else ''}"
        if not confirm_text(f"\n{op.capitalize()} these changes to {what}?", o):
            o.text(f"{op.capitalize()} cancelled; nothing was changed.")
            return runs
        sources = [s for s in sources if s.desired is not None and s.desired.stack in approved]
    progress = Progress(o.err, len(sources), tty=o.progress_tty, what=op)
    stop = threading.Event()

    def ended(run: StackRun) -> None:
        if run.ok:
            progress.completed()
        else:
            progress.failure()

    with stopped_by_signals(stop, o, threading.Event()):
        applied = apply_stacks(
            client, sources, settings, plans=approved, on_stack=ended, stop=stop, ahead=ahead
        )  # fmt: skip
    progress.close()
    if not planned:
        return applied
    by_origin = {r.origin: r for r in applied}
    return [by_origin.get(origin, run) for origin, run in planned.items()]
