"""Command line: parse arguments, run the pipeline, print, return an exit code.

Exit codes: 0 success / no changes, 2 changes present (plan with --detailed-exitcode), 1 error
(including usage errors).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn, TextIO

from . import __version__
from .apply import Done, apply_plan
from .client import DEFAULT_BASE_URL, LettaClient
from .errors import ApplyError, LettaApplyError, ManifestError
from .live import read_live
from .pipeline import load_manifest, plan_for
from .plan import Plan, make_plan
from .render import done_line, plan_text

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse exits 2 on usage errors; 2 means "changes present" to pipelines.
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"letta-apply: error: {message}\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="letta-apply",
        description="Declarative provisioning for Letta agents and memory blocks.",
    )
    p.add_argument("--version", action="version", version=f"letta-apply {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp: argparse.ArgumentParser, *, server: bool = True) -> None:
        sp.add_argument("-f", "--file", required=True, help="manifest file (YAML)")
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
        sp.add_argument("-v", "--verbose", action="store_true", help="print request counts")

    common(sub.add_parser("validate", help="check a manifest; sends no request"), server=False)
    sp = sub.add_parser("plan", help="show what apply would change; writes nothing")
    common(sp)
    sp.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when there are changes"
    )
    sp = sub.add_parser("apply", help="converge the server to the manifest")
    common(sp)
    sp.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    sp.add_argument("--parallelism", type=int, default=8, help="concurrent writes (default 8)")
    common(sub.add_parser("show", help="list the stack's resources on the server with their ids"))
    return p


def _client(args: argparse.Namespace) -> LettaClient:
    return LettaClient(
        args.base_url, api_key=args.api_key, project=args.project, timeout=args.timeout
    )


def _stats(args: argparse.Namespace, client: LettaClient, err: TextIO) -> None:
    if getattr(args, "verbose", False):
        print(f"requests: {client.reads} reads, {client.writes} writes", file=err)


def _confirm(plan: Plan, out: TextIO) -> bool:
    if not sys.stdin.isatty():
        raise LettaApplyError(
            "refusing to ask for confirmation: standard input is not a terminal; "
            "review the plan and pass --auto-approve"
        )
    out.write(f'\nApply these changes to stack "{plan.stack}"? Only "yes" is accepted: ')
    out.flush()
    return sys.stdin.readline().strip() == "yes"


def _cmd_validate(args: argparse.Namespace, out: TextIO) -> int:
    desired = load_manifest(args.file)
    print(
        f'{args.file}: valid: stack "{desired.stack}", {len(desired.blocks)} shared '
        f"block(s), {len(desired.agents)} agent(s)",
        file=out,
    )
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    desired = load_manifest(args.file)
    with _client(args) as client:
        plan = plan_for(client, desired)
        print(plan_text(plan, client.base_url), file=out)
        _stats(args, client, err)
    if plan.problems:
        return EXIT_ERROR
    return EXIT_CHANGES if args.detailed_exitcode and plan.has_changes else EXIT_OK


def _cmd_apply(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    desired = load_manifest(args.file)
    with _client(args) as client:
        plan = plan_for(client, desired)
        print(plan_text(plan, client.base_url), file=out)
        if not plan.has_changes:
            _stats(args, client, err)
            return EXIT_ERROR if plan.problems else EXIT_OK
        if not args.auto_approve and not _confirm(plan, out):
            print("Apply cancelled; nothing was changed.", file=out)
            return EXIT_ERROR
        print("", file=out)

        def report(d: Done) -> None:
            print(done_line(d), file=out, flush=True)

        try:
            done = apply_plan(client, plan, parallelism=args.parallelism, on_done=report)
        except ApplyError as e:
            for f in e.failures:
                print(f"error: {f}", file=err)
            print(
                f"Apply stopped: {e.done} change(s) done, {len(e.failures)} failed, "
                f"{e.not_attempted} not attempted. Run apply again to converge.",
                file=err,
            )
            _stats(args, client, err)
            return EXIT_ERROR
        print(f"\nApply complete: {len(done)} change(s) made.", file=out)
        _stats(args, client, err)
    if plan.problems:
        for p in plan.problems:
            print(f"error: {p.address}: {p.message}", file=err)
        return EXIT_ERROR
    return EXIT_OK


def _cmd_show(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    desired = load_manifest(args.file)
    with _client(args) as client:
        live = read_live(client, desired)
        plan = make_plan(desired, live)
        print(f'stack "{desired.stack}" on {client.base_url}', file=out)
        agents = {a.id: a for a in live.agents}
        for address, rid in plan.ids.items():
            if rid in agents:
                agent = agents[rid]
                labels = ", ".join(
                    f"{live.blocks[i].label} ({i})" for i in agent.block_ids if i in live.blocks
                )
                print(f"{address}  {rid}  name={agent.name!r}  blocks: {labels}", file=out)
            elif rid in live.blocks:
                block = live.blocks[rid]
                print(f"{address}  {rid}  label={block.label!r}  value={block.value!r}", file=out)
        for address in [*desired.blocks, *desired.agents]:
            if address not in plan.ids:
                print(f"{address}  (not on the server)", file=out)
        _stats(args, client, err)
    return EXIT_OK


def main(
    argv: Sequence[str] | None = None, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the `letta-apply` command; returns the exit code."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _cmd_validate(args, out)
        if args.command == "plan":
            return _cmd_plan(args, out, err)
        if args.command == "apply":
            return _cmd_apply(args, out, err)
        return _cmd_show(args, out, err)
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


if __name__ == "__main__":
    sys.exit(main())
