"""The Agent File commands: `export --format af` (the stack's agents as one Letta Agent File)
and `convert` (a manifest from one). The work is letta_apply.memory's; this prints."""

from __future__ import annotations

import argparse

from ..convert.fields import stack_name
from ..convert.files import check_converted, write_converted, write_output
from ..convert.manifest import convert
from ..errors import UsageError, escape_controls
from ..memory.af_export import export_agent_file
from ..memory.af_format import read_agent_file
from ..pipeline import load_manifest
from .arguments import EXIT_OK, options_of
from .output import Out


def export_agent_file_command(args: argparse.Namespace, o: Out) -> int:
    """The stack's agents as one Agent File; the manifest of -f names the stack and its
    sensitive values, masked in the file."""
    chosen = [f"--{n}" for n in ("id", "name", "tag") if getattr(args, n)]
    chosen += [f"--{n.replace('_', '-')}" for n in ("all", "include_system") if getattr(args, n)]
    if chosen:
        raise UsageError(
            f"export --format af writes the agents of the stack of -f; {chosen[0]} selects "
            "agents to adopt into a manifest (--format yaml or json)",
            code="LA903",
        )
    if not args.file:
        raise UsageError("export --format af: name the stack's manifest with -f FILE", code="LA902")
    desired = load_manifest(args.file, options_of(args))
    o.masker.add(desired.secrets)  # masked in the file and in all output from now
    if args.stack and args.stack != desired.stack:
        raise UsageError(
            f"--stack {args.stack!r} is not the stack of the manifest ({desired.stack!r})",
            code="LA903",
        )
    with o.connect() as client:
        result = export_agent_file(client, desired.stack, mask=o.masker.text)
    if result.masked:
        print(
            f"{result.masked} value(s) held sensitive values of the manifest: written as "
            "(sensitive) in the Agent File",
            file=o.err,
        )
    if args.output:
        write_output(args.output, o.masker.text(result.text()))
        print(
            f"Wrote {args.output}: {result.agents} agent(s), {result.blocks} block(s) of stack "
            f'"{desired.stack}". `letta-apply convert {args.output}` makes a manifest of it.',
            file=o.err,
        )
    else:
        o.out.write(result.text())
    return EXIT_OK


def convert_command(args: argparse.Namespace, o: Out) -> int:
    """A manifest from an Agent File, its tools' sources beside it; notes on stderr."""
    af = read_agent_file(args.agent_file)
    stack = args.stack or stack_name(args.agent_file)
    if not stack:
        raise UsageError(
            f"{af.name}: no stack name can be made of the file's name: give --stack", code="LA902"
        )
    converted = convert(af, stack, messages=args.messages)
    if converted.sources and not args.output:
        raise UsageError(
            f"{af.name} holds {len(converted.sources)} custom tool(s): give -o FILE, and their "
            "sources are written beside it, in tools/",
            code="LA902",
        )
    check_converted(converted, args.output)
    for note in converted.notes:
        print(f"note: {escape_controls(note)}", file=o.err)
    if not args.output:
        o.out.write(converted.text())
        return EXIT_OK
    written = write_converted(converted, args.output)
    print(
        f'Wrote {", ".join(written)}: stack "{stack}", {converted.selected} agent(s). '
        f"`letta-apply apply -f {args.output}` creates it.",
        file=o.err,
    )
    return EXIT_OK
