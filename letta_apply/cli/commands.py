"""Command line: parse arguments, run the pipeline, print, return an exit code.

Exit codes, the same for every command: 0 success / no changes, 2 changes present (plan with
--detailed-exitcode) or drift found (drift), 1 error (including usage errors).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import TextIO

from ..convert.files import write_output
from ..core.sensitive import MaskedStream, Masker, mask_plan
from ..errors import ExportError, LettaApplyError, ManifestError, UsageError, with_code
from ..kinds import KINDS
from ..pipeline import plan_for, validate_manifest
from ..plan import planfile
from ..plan.graph import changed_graph, stack_graph
from ..plan.listing import list_stack
from ..policy import check_declared, check_plan, policies_for
from ..read.export import ExportFormat, Selection, export_manifest
from ..read.live import read_live
from ..render.diagram import render_graph
from ..render.markdown import plan_markdown
from ..render.policy import sarif, violation_lines
from ..render.results import diagnostics_json, show_text
from ..render.text import drift_text
from ..server.client import LettaClient
from ..server.lock_records import force_unlock
from .agentfile import convert_command, export_agent_file_command
from .applying import Interrupted, cmd_apply, cmd_destroy
from .arguments import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, names_stacks, options_of
from .arguments import parser as _parser
from .completion import script as completion_script
from .completion.addresses import ADDRESSES_COMMAND, complete_addresses
from .output import ClientFactory, Out, plan_origin
from .planning import cmd_plan, load, show_sarif
from .restoring import cmd_restore
from .stacks import cmd_stacks


def _cmd_validate(args: argparse.Namespace, o: Out) -> int:
    # Needs no variable values: one not given is unknown, and checked as far as its
    # declaration tells (plan and apply need them all).
    try:
        found = validate_manifest(args.file, options_of(args))
        policies = policies_for(args.policy, found.desired)
    except ManifestError as e:
        if o.format != "json":
            raise
        print(diagnostics_json(e.diagnostics), file=o.out)
        return EXIT_ERROR
    desired = found.desired
    # Rules that read no plan, over the manifest (one whose values are not all known: none).
    violations = check_declared(desired, policies) if desired is not None else ()
    refused = sum(1 for v in violations if v.severity == "error")
    if o.format == "sarif":
        o.json(sarif(violations, [(r.id, r.description) for r in policies.rules]))
        return EXIT_ERROR if refused else EXIT_OK
    if violations and o.format != "json":
        print("\n".join(violation_lines(violations)).rstrip(), file=o.out)
    if refused and o.format != "json":
        o.text(f"{', '.join(args.file)}: refused by policy: {refused} violation(s) at error")
        return EXIT_ERROR
    checked = ", ".join(args.file)
    if args.var_file:
        checked += f" with {', '.join(args.var_file)}"
    if o.format == "json":
        print(diagnostics_json([], found.unknown, violations), file=o.out)
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
            + (f"; {len(policies.rules)} policy rule(s) checked" if policies.rules else "")
        )
    return EXIT_ERROR if refused else EXIT_OK


def _cmd_export(args: argparse.Namespace, o: Out) -> int:
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


def _cmd_drift(args: argparse.Namespace, o: Out) -> int:
    desired = load(args, o)
    policies = policies_for(args.policy, desired)  # a file in error: before any request
    with o.connect() as client:
        plan = plan_for(
            client, desired, detach_unmanaged=args.detach_unmanaged_blocks, memory=False
        )
        plan = mask_plan(check_plan(plan, desired, policies, drift=True), o.masker)
        origin = plan_origin(args, client, desired)
        if o.format == "sarif":
            show_sarif(o, plan, policies)
        elif o.format == "json":
            o.json(planfile.drift_document(plan, origin))
        elif o.format == "markdown":
            o.out.write(plan_markdown(plan, origin.base_url))
        else:
            o.text("\n".join(violation_lines(plan.violations)) + drift_text(plan, origin.base_url))
    if plan.refused_by_policy:
        return EXIT_ERROR
    return EXIT_CHANGES if plan.drift else EXIT_OK


def _cmd_show(args: argparse.Namespace, o: Out) -> int:
    desired = load(args, o)
    with o.connect() as client:
        listing = list_stack(desired, read_live(client, desired))
        if o.format == "json":
            o.json({"stack": listing.stack, "ids": listing.ids})
        else:
            o.text(show_text(listing, client.base_url))
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace, o: Out) -> int:
    desired = load(args, o)
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


def _cmd_force_unlock(args: argparse.Namespace, o: Out) -> int:
    with o.connect() as client:
        info = force_unlock(client, args.lock_id)
    o.text(f'Removed lock {info.id} of stack "{info.stack}", held by {info.describe()}.')
    return EXIT_OK


def _cmd_completion(args: argparse.Namespace, o: Out) -> int:
    o.out.write(completion_script(args.shell, _parser()))
    return EXIT_OK


COMMANDS = {
    "validate": _cmd_validate,
    "plan": cmd_plan,
    "apply": cmd_apply,
    "drift": _cmd_drift,
    "show": _cmd_show,
    "destroy": cmd_destroy,
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
    out: MaskedStream,
    err: MaskedStream,
    masker: Masker,
    client_factory: ClientFactory | None,
    stdin: TextIO | None,
) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [ADDRESSES_COMMAND]:  # hidden: what shell completion asks on each Tab
        return complete_addresses(argv[1:], out)
    args = _parser(stacks=names_stacks(argv)).parse_args(argv)
    o = Out(args, out, err, masker, client_factory=client_factory or LettaClient, stdin=stdin)
    try:
        if getattr(args, "stacks", None):
            return cmd_stacks(args, o)
        return COMMANDS[args.command](args, o)
    except ManifestError as e:
        for d in e.diagnostics:
            print(with_code(str(d), d.code), file=err)
        n = len(e.diagnostics)
        print(
            f"{n} error{'s' if n > 1 else ''} in {e.what}; nothing was sent to the server.",
            file=err,
        )
        return EXIT_ERROR
    except LettaApplyError as e:
        print(f"error: {with_code(str(e), e.code)}", file=err)
        return EXIT_ERROR
    except Interrupted as e:
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
