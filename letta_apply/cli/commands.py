"""Command line: parse arguments, run the pipeline, print, return an exit code.

Exit codes, the same for every command: 0 success / no changes, 2 changes present (plan with
--detailed-exitcode) or drift found (drift), 1 error (including usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO, cast

from ..apply.report import apply_document
from ..apply.runner import Done
from ..apply.session import ApplyEvents, ApplyResult, Planned, run_apply
from ..convert.files import write_output
from ..core.changes import Change, Plan
from ..core.model import Desired
from ..core.sensitive import MaskedStream, Masker, mask_plan
from ..errors import (
    ApiError,
    DestroyPrevented,
    ExportError,
    LettaApplyError,
    ManifestError,
    UsageError,
    with_code,
)
from ..kinds import KINDS
from ..memory.backup import Backups
from ..pipeline import load_manifest, plan_for, validate_manifest
from ..plan import planfile
from ..plan.graph import changed_graph, stack_graph
from ..plan.listing import list_stack
from ..plan.planner import restrict
from ..plan.saved import check_server, read_saved_plan, verify_saved_plan
from ..plan.targets import TARGET_WARNING, expand_targets
from ..read.export import ExportFormat, Selection, export_manifest
from ..read.live import read_live
from ..render.diagram import render_graph
from ..render.markdown import plan_markdown
from ..render.results import diagnostics_json, done_text, show_text
from ..render.text import colorize, drift_text, plan_text
from ..server.client import DEFAULT_MAX_CONNECTIONS, LettaClient, RetryPolicy, url_secrets
from ..server.lock import LockInfo, StackLock, force_unlock
from .agentfile import convert_command, export_agent_file_command
from .arguments import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, options_of
from .arguments import parser as _parser
from .completion import ADDRESSES_COMMAND, complete_addresses
from .completion import script as completion_script
from .progress import Progress
from .restoring import cmd_restore, saved_document, saved_text

ClientFactory = Callable[..., LettaClient]
"""Makes the client a command talks through: `factory(base_url, **options)`, like LettaClient."""


class _Out:
    """Where a command writes, and how: format, colors, request counts."""

    def __init__(
        self,
        args: argparse.Namespace,
        out: TextIO,
        err: TextIO,
        masker: Masker | None = None,
        *,
        client_factory: ClientFactory = LettaClient,
        stdin: TextIO | None = None,
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.masker = masker if masker is not None else Masker()
        self.client_factory = client_factory
        self.stdin = stdin if stdin is not None else sys.stdin
        self.targets_expanded = False  # --target is expanded once, by the first plan
        # export's default format depends on its -o file; completion has none.
        self.format: str = getattr(args, "format", None) or ""
        self.lock: StackLock | None = None  # the stack lock, while apply or destroy holds it
        # Where a run's deletes are saved first (None: --no-backup), and how plans say it.
        self.backups: Backups | None = None
        self.backup_note: str | None = ""
        self.color = (
            self.format == "text"
            and not getattr(args, "no_color", False)
            and "NO_COLOR" not in os.environ
            and out.isatty()
        )

    @property
    def progress_tty(self) -> bool:
        """Whether progress may redraw a line in place on stderr."""
        return self.err.isatty() and os.environ.get("TERM") != "dumb"

    def text(self, text: str) -> None:
        print(colorize(text) if self.color else text, file=self.out, flush=True)

    def json(self, doc: object) -> None:
        print(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False), file=self.out)

    def connect(self) -> LettaClient:
        a = self.args
        self.masker.add(url_secrets(a.base_url))  # the client shows the URL without them
        self.client = self.client_factory(
            a.base_url,
            api_key=a.api_key,
            project=a.project,
            timeout=a.timeout,
            # One connection per concurrent write, so that --parallelism is not capped by the pool.
            max_connections=max(getattr(a, "parallelism", 0), DEFAULT_MAX_CONNECTIONS),
            retry=RetryPolicy(max_retries=a.max_retries, max_time=a.retry_max_time),
            redact=self.masker.text,
            on_retry=lambda line: print(line, file=self.err, flush=True),
        )
        self.client.wait_timeout = getattr(a, "wait_timeout", self.client.wait_timeout)
        return self.client

    def stats(self) -> None:
        """With -v, how many requests the command made: printed whether it succeeded or not."""
        client: LettaClient | None = getattr(self, "client", None)
        if getattr(self.args, "verbose", False):
            reads, writes = (client.reads, client.writes) if client else (0, 0)
            extra = ""
            if client and client.retries:
                extra += f", {client.retries} retried"
            if client and client.adopted:
                extra += f", {client.adopted} create(s) found made after an unclear failure"
            lock = self.lock
            if lock is not None:
                # The lock's own requests are shown apart: the counts stay the cost of the work.
                reads, writes = reads - lock.reads, writes - lock.writes
                extra += f"; stack lock: {lock.reads} reads, {lock.writes} writes"
            print(f"requests: {reads} reads, {writes} writes{extra}", file=self.err)


def _load(args: argparse.Namespace, o: _Out) -> Desired:
    """The manifest of `-f` with its variables; its secrets are masked in all output from now."""
    desired = load_manifest(args.file, options_of(args))
    o.masker.add(desired.secrets)
    return desired


def _origin(
    args: argparse.Namespace, client: LettaClient, desired: Desired | None = None
) -> planfile.Origin:
    files = desired.files if desired else ()
    return planfile.Origin(client.base_url, args.project, files, desired.digest if desired else "")


def _show_plan(
    o: _Out,
    plan: Plan,
    origin: planfile.Origin,
    *,
    destroy: bool = False,
    desired: Desired | None = None,
) -> None:
    """Print the plan, sensitive values masked (markdown with a diagram, given `desired`)."""
    plan = mask_plan(plan, o.masker)
    if o.format == "json":
        o.out.write(planfile.dumps(plan, origin))
    elif o.format == "markdown":
        graph = stack_graph(desired, plan) if desired is not None else None
        o.out.write(plan_markdown(plan, origin.base_url, graph, o.backup_note))
    else:
        o.text(plan_text(plan, origin.base_url, destroy=destroy, backups=o.backup_note))


def _targeted(args: argparse.Namespace, desired: Desired, plan: Plan, o: _Out) -> Plan:
    """The plan limited to `--target` (expanded to declared addresses once, in `args`)."""
    if not args.target:
        return plan
    if not o.targets_expanded:
        args.target = expand_targets(desired, args.target)
        o.targets_expanded = True
        print(TARGET_WARNING, file=o.err)
    return restrict(plan, desired, args.target)


def _confirm(plan: Plan, out: TextIO, stdin: TextIO) -> bool:
    if not stdin.isatty():
        raise UsageError(
            "refusing to ask for confirmation: standard input is not a terminal; "
            "review the plan and pass --auto-approve",
            code="LA905",
        )
    out.write(f'\nApply these changes to stack "{plan.stack}"? Only "yes" is accepted: ')
    out.flush()
    return stdin.readline().strip() == "yes"


# -- commands ---------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace, o: _Out) -> int:
    # Needs no variable values: one not given is unknown, and checked as far as its
    # declaration tells (plan and apply need them all).
    try:
        found = validate_manifest(args.file, options_of(args))
    except ManifestError as e:
        if o.format != "json":
            raise
        print(diagnostics_json(e.diagnostics), file=o.out)
        return EXIT_ERROR
    desired = found.desired
    checked = ", ".join(args.file)
    if args.var_file:
        checked += f" with {', '.join(args.var_file)}"
    if o.format == "json":
        print(diagnostics_json([], found.unknown), file=o.out)
    elif desired is None:
        o.text(
            f"{checked}: valid, without values for {', '.join(found.unknown)} (what depends on "
            "them is checked by plan, which needs them)"
        )
    else:
        o.masker.add(desired.secrets)
        counts = [
            f"{len(desired.of(k.name))} {k.noun or k.name.replace('_', ' ')}(s)"
            for k in KINDS
            if desired.of(k.name)
        ]
        o.text(
            f'{checked}: valid: stack "{desired.stack}", '
            + (", ".join(counts) or "nothing declared")
        )
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    # Where apply will save what this plan deletes: a folder of its own per run.
    folder = Path(args.backup_dir) / desired.stack
    o.backup_note = None if args.no_backup else f"{folder}{os.sep} (a folder per run)"
    with o.connect() as client:
        plan = plan_for(
            client, desired, destroy=args.destroy, detach_unmanaged=args.detach_unmanaged_blocks
        )
        plan = _targeted(args, desired, plan, o)
        origin = _origin(args, client, desired)
        _show_plan(o, plan, origin, destroy=args.destroy, desired=desired)
        if args.out:
            # Saved without sensitive values: `apply FILE -f ...` takes them from the manifest.
            write_output(
                args.out, o.masker.text(planfile.dumps(mask_plan(plan, o.masker), origin))
            )
            print(f"Plan saved to {args.out}; apply it with {_apply_command(args)}.", file=o.err)
    if plan.problems:
        return EXIT_ERROR
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK


def _apply_command(args: argparse.Namespace) -> str:
    """The command that applies the plan `plan --out` saved: with the manifest and variable
    files it was made from (its sensitive values come from them); --var values are not repeated
    here, for they may be secrets."""
    argv = ["letta-apply", "apply", args.out]
    for path in args.file:
        argv += ["-f", path]
    for path in args.var_file:
        argv += ["--var-file", path]
    same = " and the same --var values" if args.var else ""
    return f"`{shlex.join(argv)}`{same}"


def _cmd_destroy(args: argparse.Namespace, o: _Out) -> int:
    args.plan_file = None
    args.target = []
    args.detach_unmanaged_blocks = False
    return _cmd_apply(args, o, destroy=True)


def _cmd_export(args: argparse.Namespace, o: _Out) -> int:
    if args.format == "af":
        return export_agent_file_command(args, o)
    if not args.stack:
        raise UsageError("export: name the manifest's stack with --stack NAME", code="LA902")
    sel = Selection(ids=args.id, names=args.name, tags=args.tag, everything=args.all)
    if not (sel.ids or sel.names or sel.tags or sel.everything):
        raise UsageError("export: select agents with --id, --name, --tag or --all", code="LA902")
    # JSON when asked, or when the file to write is named so; YAML otherwise.
    json_file = bool(args.output and args.output.lower().endswith(".json"))
    fmt: ExportFormat = args.format or ("json" if json_file else "yaml")
    with o.connect() as client:
        result = export_manifest(client, args.stack, sel, include_system=args.include_system)
    for why in result.skipped:
        print(f"skipped {why}", file=o.err)
    if not result.selected:
        # A manifest of nothing would adopt nothing, and -o would overwrite a file with it.
        managed = "every selected agent is already managed by a stack"
        why = managed if result.skipped else "no agent matches the selection"
        raise ExportError(f"nothing to export: {why}; nothing was written", code="LA830")
    for note in result.notes:
        print(f"note: {note}", file=o.err)
    if args.output:
        write_output(args.output, result.text(fmt))
        print(
            f"Wrote {args.output}: {result.summary}. "
            f"`letta-apply apply -f {args.output}` adopts them.",
            file=o.err,
        )
    else:
        o.out.write(result.text(fmt))
    return EXIT_OK


def _saved_plan(args: argparse.Namespace, client: LettaClient, o: _Out) -> Planned:
    saved = read_saved_plan(args.plan_file)
    check_server(saved, client.base_url, args.project)
    desired = _load(args, o) if args.file else None
    plan = verify_saved_plan(
        client, saved, desired, project=args.project, masker=o.masker,
        manifest=", ".join(args.file or ()),
    )  # fmt: skip
    return plan, desired


class _Events(ApplyEvents):
    """How an apply run shows on the terminal: the plan, the prompt, progress, the record."""

    def __init__(self, args: argparse.Namespace, o: _Out, client: LettaClient) -> None:
        self.args, self.o, self.client = args, o, client
        self.progress: Progress | None = None

    def planned(self, plan: Plan, desired: Desired | None) -> None:
        backups = self.o.backups
        self.o.backup_note = str(backups.for_stack(plan.stack)) if backups else None
        if self.o.format == "text":
            destroy = self.args.command == "destroy"
            _show_plan(self.o, plan, _origin(self.args, self.client, desired), destroy=destroy)

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


def _cmd_apply(args: argparse.Namespace, o: _Out, *, destroy: bool = False) -> int:
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
                desired = _load(args, o)
                plan = plan_for(
                    client, desired, destroy=destroy, detach_unmanaged=args.detach_unmanaged_blocks
                )
                return _targeted(args, desired, plan, o), desired
            finally:
                planning.clear()

        stop = threading.Event()
        with _stopped_by_signals(stop, o, planning) as received:
            result = run_apply(
                client, make, operation="destroy" if destroy else "apply", lock=args.lock,
                lock_timeout=args.lock_timeout, parallelism=args.parallelism,
                events=_Events(args, o, client), stop=stop, backups=o.backups,
            )  # fmt: skip
        code = _applied(args, o, client, result)
        # Stopped by a signal: the shell's convention, 128 + its number (130, 143).
        return 128 + received[0] if received else code


class _Interrupted(KeyboardInterrupt):
    """A signal while nothing was written yet: the run ends at once."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


@contextmanager
def _stopped_by_signals(
    stop: threading.Event, o: _Out, planning: threading.Event
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
            raise _Interrupted(signum)
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


def _applied(args: argparse.Namespace, o: _Out, client: LettaClient, result: ApplyResult) -> int:
    """Report an apply run; its exit code."""
    plan, failure = result.plan, result.failure
    if o.format == "json":
        doc = apply_document(result, _origin(args, client, result.desired), o.masker)
        o.json({**doc, **saved_document(o.backups)})
    elif o.backups is not None and o.backups.saved:
        o.text("\n" + saved_text(o.backups))
    if result.blocked:
        raise DestroyPrevented(
            "prevent_destroy: this plan would delete protected resources; nothing was applied"
        )
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


def _cmd_drift(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    with o.connect() as client:
        plan = plan_for(
            client, desired, detach_unmanaged=args.detach_unmanaged_blocks, memory=False
        )
        plan = mask_plan(plan, o.masker)
        origin = _origin(args, client, desired)
        if o.format == "json":
            o.json(planfile.drift_document(plan, origin))
        elif o.format == "markdown":
            o.out.write(plan_markdown(plan, origin.base_url))
        else:
            o.text(drift_text(plan, origin.base_url))
    return EXIT_CHANGES if plan.drift else EXIT_OK


def _cmd_show(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    with o.connect() as client:
        listing = list_stack(desired, read_live(client, desired))
        if o.format == "json":
            o.json({"stack": listing.stack, "ids": listing.ids})
        else:
            o.text(show_text(listing, client.base_url))
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    plan = None
    if args.plan or args.destroy or args.only_changes:
        with o.connect() as client:
            plan = plan_for(
                client, desired, destroy=args.destroy,
                detach_unmanaged=args.detach_unmanaged_blocks, memory=False,
            )  # fmt: skip
    graph = stack_graph(desired, plan)
    o.out.write(render_graph(changed_graph(graph) if args.only_changes else graph, args.format))
    return EXIT_ERROR if plan is not None and plan.problems else EXIT_OK


def _cmd_force_unlock(args: argparse.Namespace, o: _Out) -> int:
    with o.connect() as client:
        info = force_unlock(client, args.lock_id)
    o.text(f'Removed lock {info.id} of stack "{info.stack}", held by {info.describe()}.')
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace, o: _Out) -> int:
    o.out.write(completion_script(args.shell, _parser()))
    return EXIT_OK


COMMANDS = {
    "validate": _cmd_validate,
    "plan": _cmd_plan,
    "apply": _cmd_apply,
    "drift": _cmd_drift,
    "show": _cmd_show,
    "destroy": _cmd_destroy,
    "export": _cmd_export,
    "convert": convert_command,
    "force-unlock": _cmd_force_unlock,
    "restore": cmd_restore,
    "graph": _cmd_graph,
    "completion": _cmd_completion,
}


def main(
    argv: Sequence[str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
    *,
    client_factory: ClientFactory | None = None,
    stdin: TextIO | None = None,
) -> int:
    """Entry point of the `letta-apply` command; returns the exit code. `client_factory` makes
    the server client (LettaClient by default); `stdin` answers the confirmation prompt."""
    masker = Masker()
    # Every byte written goes through the masker: sensitive values never reach the terminal.
    streams = MaskedStream(out or sys.stdout, masker), MaskedStream(err or sys.stderr, masker)
    try:
        return _main(argv, *streams, masker, client_factory, stdin)
    finally:
        if out is None and streams[0].closed_by_reader:
            # Python flushes stdout once more at exit: point it at /dev/null so that a closed
            # pipe is not reported as an error after the command is done.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _main(
    argv: Sequence[str] | None,
    masked_out: MaskedStream,
    masked_err: MaskedStream,
    masker: Masker,
    client_factory: ClientFactory | None,
    stdin: TextIO | None,
) -> int:
    out, err = cast(TextIO, masked_out), cast(TextIO, masked_err)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [ADDRESSES_COMMAND]:  # hidden: what shell completion asks on each Tab
        return complete_addresses(argv[1:], out)
    args = _parser().parse_args(argv)
    o = _Out(args, out, err, masker, client_factory=client_factory or LettaClient, stdin=stdin)
    try:
        return COMMANDS[args.command](args, o)
    except ManifestError as e:
        for d in e.diagnostics:
            print(with_code(str(d), d.code), file=err)
        n = len(e.diagnostics)
        print(
            f"{n} error{'s' if n > 1 else ''} in the manifest; nothing was sent to the server.",
            file=err,
        )
        return EXIT_ERROR
    except LettaApplyError as e:
        print(f"error: {with_code(str(e), e.code)}", file=err)
        return EXIT_ERROR
    except _Interrupted as e:
        print("interrupted while planning; nothing was written", file=err)
        return 128 + e.signum
    except KeyboardInterrupt:
        print("interrupted", file=err)
        return 130
    except Exception:
        # A bug, not a user error: the traceback helps, but it goes through the masker too.
        print(traceback.format_exc().rstrip(), file=err)
        return EXIT_ERROR
    finally:
        o.stats()


if __name__ == "__main__":
    sys.exit(main())
