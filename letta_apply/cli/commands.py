"""Command line: parse arguments, run the pipeline, print, return an exit code.

Exit codes, the same for every command: 0 success / no changes, 2 changes present (plan with
--detailed-exitcode) or drift found (drift), 1 error (including usage errors).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import Sequence
from dataclasses import replace
from typing import NoReturn, TextIO, cast

from .. import __version__
from ..apply.runner import Done, apply_plan
from ..errors import ApiError, ApplyError, LettaApplyError, ManifestError
from ..kinds import KINDS
from ..manifest.language import normalize_address
from ..manifest.variables import Options
from ..model import Desired
from ..pipeline import load_manifest, plan_for
from ..plan import planfile
from ..plan.changes import Plan
from ..plan.match import matched_ids
from ..plan.planner import make_plan, restrict, stale
from ..sensitive import MaskedStream, Masker, has_masked, mask_plan, masked_paths
from ..server.client import DEFAULT_BASE_URL, DEFAULT_MAX_CONNECTIONS, LettaClient, RetryPolicy
from ..server.export import Selection, export_manifest
from ..server.live import read_live, read_saved
from ..server.lock import LockInfo, StackLock, force_unlock
from .progress import Progress
from .render import (
    colorize,
    diagnostics_json,
    done_json,
    done_text,
    drift_text,
    plan_markdown,
    plan_text,
)

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
FORMATS = ("text", "json", "markdown")
TARGET_WARNING = (
    "Warning: --target limits this run to part of the manifest; the rest may not match the "
    "server afterwards. Use it for exceptional cases, then run a full plan."
)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse exits 2 on usage errors; 2 means "changes present" to pipelines.
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"letta-apply: error: {message}\n")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="letta-apply",
        description="Declarative provisioning for Letta agents and memory blocks.",
    )
    p.add_argument("--version", action="version", version=f"letta-apply {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, *, server: bool = True, file: bool = True) -> None:
        sp.add_argument(
            "-f", "--file", action="append", required=file, metavar="PATH",
            help="manifest file, or folder of *.yaml/*.yml files (repeatable: their union)",
        )  # fmt: skip
        sp.add_argument(
            "--var", action="append", default=[], metavar="NAME=VALUE",
            help="set a variable (repeatable; wins over --var-file and LETTA_APPLY_VAR_<NAME>)",
        )  # fmt: skip
        sp.add_argument(
            "--var-file", action="append", default=[], metavar="FILE",
            help="YAML file of variable values (repeatable; later files win)",
        )  # fmt: skip
        sp.add_argument(
            "--allow-outside-files", action="store_true",
            help="let value_file/system_file read files outside the folders given to -f",
        )  # fmt: skip
        sp.add_argument("--format", choices=FORMATS, default="text", help="output format")
        sp.add_argument("--no-color", action="store_true", help="no colors (also: NO_COLOR)")
        if not server:
            return
        sp.add_argument(
            "--base-url",
            default=os.environ.get("LETTA_BASE_URL", DEFAULT_BASE_URL),
            help="Letta server URL (env LETTA_BASE_URL; default %(default)s)",
        )
        sp.add_argument(
            "--api-key",
            default=os.environ.get("LETTA_API_KEY"),
            help="API key, sent as a Bearer token (env LETTA_API_KEY)",
        )
        sp.add_argument(
            "--project",
            default=os.environ.get("LETTA_PROJECT"),
            help="project, sent as the X-Project header (env LETTA_PROJECT)",
        )
        sp.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
        sp.add_argument(
            "--max-retries", type=_count, default=RetryPolicy.max_retries, metavar="N",
            help="re-sends of a request after transient failures (default %(default)s)",
        )  # fmt: skip
        sp.add_argument(
            "--retry-max-time", type=_seconds, default=RetryPolicy.max_time, metavar="SECONDS",
            help="no retry starts later than this after a request's first attempt "
            "(default %(default)s)",
        )  # fmt: skip
        sp.add_argument("-v", "--verbose", action="store_true", help="print request counts")

    def locking(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--lock", type=_boolean, default=True, metavar="true|false",
            help="hold the stack's lock on the server while writing (default true)",
        )  # fmt: skip
        sp.add_argument(
            "--lock-timeout", type=_seconds, default=60.0, metavar="SECONDS",
            help="how long to wait for a stack locked by another run (default %(default)s)",
        )  # fmt: skip

    def lifecycle(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--detach-unmanaged-blocks", action="store_true",
            help="detach blocks this stack does not manage from its agents (left alone otherwise)",
        )  # fmt: skip

    def target(sp: argparse.ArgumentParser) -> None:
        sp.add_argument(
            "--target", action="append", default=[], metavar="ADDRESS",
            help="limit to this resource and what it depends on (repeatable; exceptional use)",
        )  # fmt: skip

    common(sub.add_parser("validate", help="check a manifest; sends no request"), server=False)

    sp = sub.add_parser("plan", help="show what apply would change; writes nothing")
    common(sp)
    target(sp)
    lifecycle(sp)
    sp.add_argument("--destroy", action="store_true", help="plan the deletion of the whole stack")
    sp.add_argument("--out", metavar="FILE", help="also save the plan, for `apply FILE`")
    sp.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when there are changes"
    )

    sp = sub.add_parser("apply", help="converge the server to the manifest, or apply a saved plan")
    common(sp, file=False)
    target(sp)
    lifecycle(sp)
    sp.add_argument("plan_file", nargs="?", metavar="PLAN", help="a plan saved by `plan --out`")
    sp.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    sp.add_argument(
        "--parallelism", type=_positive, default=8, help="concurrent writes (default 8)"
    )
    locking(sp)

    sp = sub.add_parser("destroy", help="delete everything the stack owns (and nothing else)")
    common(sp)
    sp.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    sp.add_argument(
        "--parallelism", type=_positive, default=8, help="concurrent writes (default 8)"
    )
    locking(sp)

    sp = sub.add_parser("force-unlock", help="remove a stack lock left behind by a run that died")
    common(sp, file=False)
    sp.add_argument("lock_id", metavar="ID", help="the lock id named by the error message")

    sp = sub.add_parser("export", help="write a manifest from existing agents, to adopt them")
    common(sp, file=False)
    sp.add_argument("--stack", required=True, help="stack name for the manifest")
    sp.add_argument("--id", action="append", default=[], help="agent id (repeatable)")
    sp.add_argument("--name", action="append", default=[], help="agent name (repeatable)")
    sp.add_argument("--tag", action="append", default=[], help="agents with this tag (repeatable)")
    sp.add_argument("--all", action="store_true", help="every agent no stack manages")
    sp.add_argument("--include-system", action="store_true", help="also export system prompts")
    sp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")

    sp = sub.add_parser("drift", help="report what changed on the server outside the manifest")
    common(sp)
    sp.add_argument(
        "--detailed-exitcode", action="store_true",
        help="accepted for symmetry with plan: drift always exits 2 when it finds drift",
    )  # fmt: skip

    common(sub.add_parser("show", help="list the stack's resources on the server with their ids"))
    return p


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more: {text}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds: {text}")
    return value


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "yes", "1", "on"):
        return True
    if text.lower() in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false: {text}")


class _Out:
    """Where a command writes, and how: format, colors, request counts."""

    def __init__(
        self, args: argparse.Namespace, out: TextIO, err: TextIO, masker: Masker | None = None
    ) -> None:
        self.args = args
        self.out = out
        self.err = err
        self.masker = masker if masker is not None else Masker()
        self.format: str = args.format
        self.lock: StackLock | None = None  # the stack lock, while apply or destroy holds it
        self.color = (
            self.format == "text"
            and not args.no_color
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
        self.client = LettaClient(
            a.base_url,
            api_key=a.api_key,
            project=a.project,
            timeout=a.timeout,
            # One connection per concurrent write, so that --parallelism is not capped by the pool.
            max_connections=max(getattr(a, "parallelism", 0), DEFAULT_MAX_CONNECTIONS),
            retry=RetryPolicy(max_retries=a.max_retries, max_time=a.retry_max_time),
        )
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
    desired = load_manifest(
        args.file,
        Options(
            vars=args.var, var_files=args.var_file, env=dict(os.environ),
            allow_outside_files=args.allow_outside_files,
        ),
    )  # fmt: skip
    o.masker.add(desired.secrets)
    return desired


def _origin(
    args: argparse.Namespace, client: LettaClient, desired: Desired | None = None
) -> planfile.Origin:
    files = desired.files if desired else ()
    return planfile.Origin(client.base_url, args.project, files, desired.digest if desired else "")


def _show_plan(o: _Out, plan: Plan, origin: planfile.Origin) -> None:
    """Print the plan, sensitive values masked."""
    plan = mask_plan(plan, o.masker)
    if o.format == "json":
        o.out.write(planfile.dumps(plan, origin))
    elif o.format == "markdown":
        o.out.write(plan_markdown(plan, origin.base_url))
    else:
        o.text(plan_text(plan, origin.base_url))


def _targeted(args: argparse.Namespace, desired: Desired, plan: Plan, o: _Out) -> Plan:
    if not args.target:
        return plan
    declared = desired.addresses
    targets: list[str] = []
    for t in map(normalize_address, args.target):
        # A template's address stands for all its instances: agent.worker is every worker.
        found = [t] if t in declared else [a for a in declared if a.startswith(t + "[")]
        if not found:
            raise LettaApplyError(
                f"--target {t}: no such resource in the manifest (addresses look like "
                "block.<key>, agent.<key>, tool.<key>, identity.<key>, "
                'agent.<key>["<for_each key>"] or agent.<key>[<index>])'
            )
        targets += found
    args.target = targets
    print(TARGET_WARNING, file=o.err)
    return restrict(plan, desired, args.target)


def _confirm(plan: Plan, out: TextIO) -> bool:
    if not sys.stdin.isatty():
        raise LettaApplyError(
            "refusing to ask for confirmation: standard input is not a terminal; "
            "review the plan and pass --auto-approve"
        )
    out.write(f'\nApply these changes to stack "{plan.stack}"? Only "yes" is accepted: ')
    out.flush()
    return sys.stdin.readline().strip() == "yes"


# -- commands ---------------------------------------------------------------------------------


def _cmd_validate(args: argparse.Namespace, o: _Out) -> int:
    try:
        desired = _load(args, o)
    except ManifestError as e:
        if o.format != "json":
            raise
        print(diagnostics_json(e.diagnostics), file=o.out)
        return EXIT_ERROR
    if o.format == "json":
        print(diagnostics_json([]), file=o.out)
    else:
        tools = f", {len(desired.tools)} tool(s)" if desired.tools else ""
        o.text(
            f'{", ".join(args.file)}: valid: stack "{desired.stack}", {len(desired.blocks)} shared '
            f"block(s), {len(desired.agents)} agent(s){tools}"
        )
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    with o.connect() as client:
        plan = plan_for(
            client, desired, destroy=args.destroy, detach_unmanaged=args.detach_unmanaged_blocks
        )
        plan = _targeted(args, desired, plan, o)
        origin = _origin(args, client, desired)
        _show_plan(o, plan, origin)
        if args.out:
            # Saved without sensitive values: `apply FILE -f ...` takes them from the manifest.
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(o.masker.text(planfile.dumps(mask_plan(plan, o.masker), origin)))
            print(
                f"Plan saved to {args.out}; apply it with `letta-apply apply {args.out}`.",
                file=o.err,
            )
    if plan.problems:
        return EXIT_ERROR
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK


def _cmd_destroy(args: argparse.Namespace, o: _Out) -> int:
    args.plan_file = None
    args.target = []
    args.detach_unmanaged_blocks = False
    return _cmd_apply(args, o, destroy=True)


def _cmd_export(args: argparse.Namespace, o: _Out) -> int:
    sel = Selection(ids=args.id, names=args.name, tags=args.tag, everything=args.all)
    if not (sel.ids or sel.names or sel.tags or sel.everything):
        raise LettaApplyError("export: select agents with --id, --name, --tag or --all")
    with o.connect() as client:
        result = export_manifest(client, args.stack, sel, include_system=args.include_system)
    for why in result.skipped:
        print(f"skipped {why}", file=o.err)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(result.manifest)
        print(
            f"Wrote {args.output}: {result.agents} agent(s), {result.blocks} shared block(s). "
            f"`letta-apply apply -f {args.output}` adopts them.",
            file=o.err,
        )
    else:
        o.out.write(result.manifest)
    return EXIT_OK


def _saved_plan(
    args: argparse.Namespace, client: LettaClient, o: _Out
) -> tuple[Plan, Desired | None]:
    """Load a saved plan and refuse it unless the server, the stack, the manifest and every
    resource it touches are as they were when it was made. Sensitive values, left out of the
    saved plan, are taken from the manifest and its variables."""
    plan, origin = planfile.read(args.plan_file)
    here = (client.base_url, args.project)
    if (origin.base_url, origin.project) != here:
        raise LettaApplyError(
            f"{args.plan_file}: the plan was made against {origin.base_url} "
            f"(project {origin.project}), not {client.base_url} (project {args.project})"
        )
    desired: Desired | None = None
    if has_masked(plan) and not args.file:
        raise LettaApplyError(
            f"{args.plan_file}: the plan holds sensitive values, which are not saved in it: "
            "pass the manifest with -f and the same variables"
        )
    if args.file:
        desired = _load(args, o)
        if desired.stack != plan.stack:
            raise LettaApplyError(
                f"{args.plan_file}: the plan is for stack '{plan.stack}', the manifest declares "
                f"'{desired.stack}'"
            )
        if desired.digest != origin.manifest_digest:
            raise LettaApplyError(
                f"stale plan: {', '.join(args.file)} changed since {args.plan_file} was made "
                "(a manifest file, a file it reads or a variable); plan again"
            )
    live = read_saved(client, plan)
    changed = stale(plan, live)
    if changed:
        raise LettaApplyError(
            "stale plan: changed on the server since the plan was made: "
            + ", ".join(changed)
            + "; nothing was applied, plan again"
        )
    if desired is not None and has_masked(plan):
        plan = _fill_sensitive(plan, make_plan(desired, read_live(client, desired)), o)
    return plan, desired


def _fill_sensitive(saved: Plan, fresh: Plan, o: _Out) -> Plan:
    """The saved plan with its sensitive values taken from a plan made now from the manifest.
    The two must agree on every change that carries one: the fields it changes, and where the
    sensitive values go (a sensitive field the server changed since counts as stale)."""
    by_key = {(c.address, c.action, c.block): c for c in fresh.changes}
    masked_fresh = {
        k: mask_plan(Plan(fresh.stack, (c,)), o.masker).changes[0] for k, c in by_key.items()
    }
    changes = []
    for c in saved.changes:
        paths = masked_paths(dict(c.body))
        if not paths:
            changes.append(c)
            continue
        key = (c.address, c.action, c.block)
        now = by_key.get(key)
        if (
            now is None
            or [d.field for d in now.diffs] != [d.field for d in c.diffs]
            or sorted(map(str, masked_paths(dict(masked_fresh[key].body))))
            != sorted(map(str, paths))
        ):
            raise LettaApplyError(
                f"stale plan: {c.address} would not change the same way now (the server or a "
                "sensitive variable changed since the plan was made); nothing was applied, "
                "plan again"
            )
        changes.append(replace(c, body=now.body))
    return replace(saved, changes=tuple(changes))


def _cmd_apply(args: argparse.Namespace, o: _Out, *, destroy: bool = False) -> int:
    if not args.file and not args.plan_file:
        raise LettaApplyError("apply needs a manifest (-f FILE) or a saved plan (PLAN)")
    if o.format != "text" and not args.auto_approve:
        raise LettaApplyError(f"--format {o.format} needs --auto-approve (no prompt in that mode)")
    if args.plan_file and args.target:
        raise LettaApplyError("--target cannot narrow a saved plan: it applies as saved")
    with o.connect() as client:

        def build(first: bool) -> tuple[Plan, Desired | None]:
            if args.plan_file:
                return _saved_plan(args, client, o)
            desired = _load(args, o)
            plan = plan_for(
                client, desired, destroy=destroy, detach_unmanaged=args.detach_unmanaged_blocks
            )
            if first:
                return _targeted(args, desired, plan, o), desired
            return (restrict(plan, desired, args.target) if args.target else plan), desired

        plan, desired = build(True)
        # The lock costs two writes: a run with nothing to do neither takes it nor writes.
        if not (args.lock and plan.has_changes and not plan.blocked):
            return _apply_planned(args, o, client, plan, desired)
        lock = StackLock(
            client, plan.stack, "destroy" if destroy else "apply", timeout=args.lock_timeout,
            on_wait=lambda held: print(f"waiting for the lock held by {held.describe()}",
                                       file=o.err),
        )  # fmt: skip
        o.lock = lock
        lock.acquire()
        try:
            # Plan again under the lock: the run that held it may have changed the stack.
            return _apply_planned(args, o, client, *build(False))
        finally:
            _release(lock, o)


def _release(lock: StackLock, o: _Out) -> None:
    held: LockInfo | None = lock.held
    try:
        lock.release()
    except ApiError as e:
        if held is not None:
            print(
                f"warning: could not release the lock of stack {held.stack!r} ({e}); remove it "
                f"with `letta-apply force-unlock {held.id}`",
                file=o.err,
            )


def _apply_planned(
    args: argparse.Namespace, o: _Out, client: LettaClient, plan: Plan, desired: Desired | None
) -> int:
    origin = _origin(args, client, desired)
    if o.format == "text":
        _show_plan(o, plan, origin)
    shown = mask_plan(plan, o.masker)
    if plan.blocked:
        if o.format == "json":
            o.json({"plan": planfile.to_document(shown, origin), "applied": [], "errors": []})
        raise LettaApplyError(
            "prevent_destroy: this plan would delete protected resources; nothing was applied"
        )
    if plan.has_changes and not args.auto_approve and not _confirm(plan, o.out):
        o.text("Apply cancelled; nothing was changed.")
        return EXIT_ERROR
    done: list[Done] = []  # appended from apply's worker threads
    failure: ApplyError | None = None
    if plan.has_changes:
        progress = Progress(o.err, len(plan.changes), tty=o.progress_tty)

        def on_done(d: Done) -> None:
            done.append(d)
            progress.completed()

        try:
            apply_plan(
                client, plan, parallelism=args.parallelism,
                on_done=on_done, on_failed=lambda c, e: progress.failure(),
            )  # fmt: skip
        except ApplyError as e:
            failure = e
        finally:
            # Changes complete in any order; the record of them is printed in plan order,
            # also when the apply stopped half-way.
            progress.close()
            if o.format == "text" and done:
                o.text("\n" + done_text(done))
    errors = [f"{p.address}: {p.message}" for p in plan.problems]
    if failure:
        errors = failure.failures + errors
    if o.format == "json":
        o.json(
            {
                "format_version": planfile.FORMAT_VERSION,
                "plan": planfile.to_document(shown, origin),
                "applied": done_json(done),
                "errors": errors,
                "not_attempted": failure.not_attempted if failure else 0,
                "not_attempted_changes": failure.skipped if failure else [],
            }
        )
    elif failure:
        for f in failure.failures:
            print(f"error: {f}", file=o.err)
        for skipped in failure.skipped:
            print(f"not attempted: {skipped}", file=o.err)
        print(
            f"Apply stopped: {failure.done} change(s) done, {len(failure.failures)} failed, "
            f"{failure.not_attempted} not attempted. Run apply again to converge.",
            file=o.err,
        )
    elif plan.has_changes:
        o.text(f"\nApply complete: {len(done)} change(s) made.")
    if failure:
        return EXIT_ERROR
    if plan.problems:
        if o.format != "json":
            for p in plan.problems:
                print(f"error: {p.address}: {p.message}", file=o.err)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_drift(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    with o.connect() as client:
        plan = mask_plan(plan_for(client, desired), o.masker)
        origin = _origin(args, client, desired)
        if o.format == "json":
            doc = planfile.to_document(plan, origin)
            o.json(
                {
                    "format_version": planfile.FORMAT_VERSION,
                    "stack": plan.stack,
                    "has_drift": bool(plan.drift),
                    "drift": doc["drift"],
                    "summary": {
                        k: doc["summary"][k] for k in ("memory_drift", "configuration_drift")
                    },
                }
            )
        elif o.format == "markdown":
            o.out.write(plan_markdown(plan, origin.base_url))
        else:
            o.text(drift_text(plan, origin.base_url))
    return EXIT_CHANGES if plan.drift else EXIT_OK


def _cmd_show(args: argparse.Namespace, o: _Out) -> int:
    desired = _load(args, o)
    with o.connect() as client:
        live = read_live(client, desired)
        ids = matched_ids(desired.stack, live)
        if o.format == "json":
            o.json({"stack": desired.stack, "ids": dict(sorted(ids.items()))})
            return EXIT_OK
        lines = [f'stack "{desired.stack}" on {client.base_url}']
        # Dependents first: an agent, then the blocks and tools it uses.
        for k in reversed(KINDS):
            lines += [f"{address}  {rid}  {text}" for address, rid, text in k.show(desired, live)]
        lines += [f"{a}  (not on the server)" for a in desired.addresses if a not in ids]
        o.text("\n".join(lines))
    return EXIT_OK


def _cmd_force_unlock(args: argparse.Namespace, o: _Out) -> int:
    with o.connect() as client:
        info = force_unlock(client, args.lock_id)
    o.text(f'Removed lock {info.id} of stack "{info.stack}", held by {info.describe()}.')
    return EXIT_OK


COMMANDS = {
    "validate": _cmd_validate,
    "plan": _cmd_plan,
    "apply": _cmd_apply,
    "drift": _cmd_drift,
    "show": _cmd_show,
    "destroy": _cmd_destroy,
    "export": _cmd_export,
    "force-unlock": _cmd_force_unlock,
}


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the `letta-apply` command; returns the exit code."""
    masker = Masker()
    # Every byte written goes through the masker: sensitive values never reach the terminal.
    out = cast(TextIO, MaskedStream(out or sys.stdout, masker))
    err = cast(TextIO, MaskedStream(err or sys.stderr, masker))
    args = _parser().parse_args(argv)
    o = _Out(args, out, err, masker)
    try:
        return COMMANDS[args.command](args, o)
    except ManifestError as e:
        for d in e.diagnostics:
            print(str(d), file=err)
        n = len(e.diagnostics)
        print(
            f"{n} error{'s' if n > 1 else ''} in the manifest; nothing was sent to the server.",
            file=err,
        )
        return EXIT_ERROR
    except LettaApplyError as e:
        print(f"error: {e}", file=err)
        return EXIT_ERROR
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
