"""The `letta-apply` command line: its commands, options and their checks."""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import NoReturn, TypeAlias

from ..errors import with_code
from ..manifest.variables import Options
from ..memory.backup import ROOT_VARIABLE, default_root
from ..render.diagram import GRAPH_FORMATS
from ..server.client import DEFAULT_BASE_URL
from ..server.retry import RetryPolicy
from ..version import __version__

EXIT_OK, EXIT_ERROR, EXIT_CHANGES = 0, 1, 2
FORMATS = ("text", "json", "markdown")
# SARIF: the policy violations alone, for GitHub code scanning (README, Policies).
POLICY_FORMATS = (*FORMATS, "sarif")
# export writes a manifest (both load with -f), or the stack's agents as an Agent File (af).
EXPORT_FORMATS = ("yaml", "json", "af")
SHELLS = ("bash", "zsh", "fish")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        # argparse exits 2 on usage errors; 2 means "changes present" to pipelines.
        self.print_usage(sys.stderr)
        self.exit(EXIT_ERROR, f"letta-apply: error: {with_code(message, 'LA901')}\n")


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return n


def _common(
    sp: argparse.ArgumentParser,
    *,
    server: bool = True,
    file: bool = True,
    formats: tuple[str, ...] = FORMATS,
    format_default: str | None = "text",
    format_help: str = "output format",
    manifest: bool = True,
) -> None:
    if manifest:
        load_options(sp, file=file)
    sp.add_argument("--format", choices=formats, default=format_default, help=format_help)
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
        help="Letta Cloud project (its id, slug or name; env LETTA_PROJECT): every request is "
        "scoped to it",
    )
    sp.add_argument(
        "--timeout", type=_timeout, default=60.0, metavar="SECONDS", help="seconds per request"
    )
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


def options_of(args: argparse.Namespace) -> Options:
    """How the manifest of `-f` is loaded, from the options `load_options` added."""
    return Options(
        vars=args.var, var_files=args.var_file, env=dict(os.environ),
        allow_outside_files=args.allow_outside_files, max_instances=args.max_instances,
        positions=bool(getattr(args, "policy", None)),  # what rules find is placed
    )  # fmt: skip


def load_options(sp: argparse.ArgumentParser, *, file: bool = False) -> None:
    """The options that say which manifest to load, and with which variables."""
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
    sp.add_argument(
        "--max-instances", type=_positive, default=10_000, metavar="N",
        help="most instances one count/for_each template may make (default %(default)s)",
    )  # fmt: skip


def _locking(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--lock", type=_boolean, default=True, metavar="true|false",
        help="hold the stack's lock on the server while writing (default true)",
    )  # fmt: skip
    sp.add_argument(
        "--lock-timeout", type=_seconds, default=60.0, metavar="SECONDS",
        help="how long to wait for a stack locked by another run (default %(default)s); a "
        "holder that does not renew its lease is waited for until the lease runs out, then its "
        "lock is taken over",
    )  # fmt: skip


def _lifecycle(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--detach-unmanaged-blocks", action="store_true",
        help="detach blocks this stack does not manage from its agents (left alone otherwise)",
    )  # fmt: skip


def _backups(sp: argparse.ArgumentParser) -> None:
    given = sp.add_mutually_exclusive_group()
    given.add_argument(
        "--backup-dir", default=str(default_root()), metavar="DIR",
        help="before deleting an agent, a shared block or an archive, save it here (a folder "
        f"per stack and run; env {ROOT_VARIABLE}; default %(default)s): `letta-apply restore` "
        "brings it back",
    )  # fmt: skip
    given.add_argument(
        "--no-backup", action="store_true",
        help="delete without saving first: memory agents wrote is lost for good",
    )  # fmt: skip


def _many(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--stacks", metavar="DIR",
        help="many stacks at once, the server read once for all: each *.yaml/*.yml file of DIR, "
        "and each folder in it, is one stack (in place of -f; one summary table)",
    )  # fmt: skip
    sp.add_argument(
        "--concurrency", type=_positive, default=8, metavar="N",
        help="with --stacks: stacks planned and applied at once (default %(default)s)",
    )  # fmt: skip


def _target(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--target", action="append", default=[], metavar="ADDRESS",
        help="limit to this resource and what it depends on (repeatable; exceptional use)",
    )  # fmt: skip


# A string: argparse's class takes no type argument at run time.
_Commands: TypeAlias = "argparse._SubParsersAction[_Parser]"


def parser(*, stacks: bool = False) -> argparse.ArgumentParser:
    """The `letta-apply` command line; with `stacks` (the command line names --stacks), plan
    and destroy do not ask for -f."""
    p = _Parser(
        prog="letta-apply",
        description="Declarative provisioning for Letta agents and memory blocks.",
    )
    p.add_argument("--version", action="version", version=f"letta-apply {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    # In the order help and completion list them.
    for add in (
        _validate, _plan, _apply, _destroy, _restore, _force_unlock, _export, _convert, _drift,
        _show, _graph, _completion,
    ):  # fmt: skip
        if add in (_plan, _destroy):
            add(sub, file=not stacks)
        else:
            add(sub)
    return p


def names_stacks(argv: list[str]) -> bool:
    """Whether a command line gives --stacks (then -f is not asked for)."""
    return any(a == "--stacks" or a.startswith("--stacks=") for a in argv)


def _policy(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--policy", action="append", default=[], metavar="FILE",
        help="policy rules to check (a YAML file or a folder of them; repeatable): see README, "
        "Policies",
    )  # fmt: skip


def _validate(sub: _Commands) -> None:
    sp = sub.add_parser("validate", help="check a manifest; sends no request")
    _common(sp, server=False, formats=POLICY_FORMATS)
    _policy(sp)


def _plan(sub: _Commands, *, file: bool = True) -> None:
    sp = sub.add_parser("plan", help="show what apply would change; writes nothing")
    _common(sp, file=file, formats=POLICY_FORMATS)
    _policy(sp)
    _many(sp)
    _target(sp)
    _lifecycle(sp)
    sp.add_argument("--destroy", action="store_true", help="plan the deletion of the whole stack")
    _backups(sp)
    sp.add_argument("--out", metavar="FILE", help="also save the plan, for `apply FILE`")
    sp.add_argument(
        "--detailed-exitcode", action="store_true", help="exit 2 when there are changes"
    )


def _apply(sub: _Commands) -> None:
    sp = sub.add_parser("apply", help="converge the server to the manifest, or apply a saved plan")
    _common(sp, file=False)
    _policy(sp)
    _target(sp)
    _lifecycle(sp)
    _many(sp)
    sp.add_argument("plan_file", nargs="?", metavar="PLAN", help="a plan saved by `plan --out`")
    sp.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    sp.add_argument(
        "--parallelism", type=_positive, default=8, help="concurrent writes (default 8)"
    )
    sp.add_argument(
        "--wait-timeout", type=_seconds, default=600.0, metavar="SECONDS",
        help="how long to wait for Letta to process uploaded files (default %(default)s)",
    )  # fmt: skip
    _backups(sp)
    _locking(sp)


def _destroy(sub: _Commands, *, file: bool = True) -> None:
    sp = sub.add_parser("destroy", help="delete everything the stack owns (and nothing else)")
    _common(sp, file=file)
    _many(sp)
    sp.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    sp.add_argument(
        "--parallelism", type=_positive, default=8, help="concurrent writes (default 8)"
    )
    _backups(sp)
    _locking(sp)


def _restore(sub: _Commands) -> None:
    sp = sub.add_parser(
        "restore", help="bring back what apply or destroy deleted, from its backup folder",
        description="Restore the agents (with their memory blocks, messages and archival "
        "passages), blocks and archives a backup folder holds, each marked as its stack's "
        "again, or one record of it into another stack or address.",
    )  # fmt: skip
    _common(sp, manifest=False, formats=("text", "json"))
    sp.add_argument("backup", metavar="BACKUP", help="a backup folder, or one .json record in it")
    sp.add_argument("--stack", type=_stack, help="restore into this stack (default: its own)")
    sp.add_argument("--address", help="restore the one record at this address (default: its own)")
    _locking(sp)


def _force_unlock(sub: _Commands) -> None:
    sp = sub.add_parser("force-unlock", help="remove a stack lock left behind by a run that died")
    _common(sp, file=False)
    sp.add_argument("lock_id", metavar="ID", help="the lock id named by the error message")


def _export(sub: _Commands) -> None:
    sp = sub.add_parser(
        "export",
        help="write a manifest from existing agents, to adopt them; or, with --format af and "
        "-f, the stack's agents as one Agent File",
    )  # fmt: skip
    _common(
        sp, file=False, formats=EXPORT_FORMATS, format_default=None,
        format_help="manifest format (default: json for an -o FILE ending in .json, else yaml); "
        "af: the agents of the stack of -f FILE as one Letta Agent File",
    )  # fmt: skip
    sp.add_argument("--stack", help="stack name for the manifest (required but with --format af)")
    sp.add_argument("--id", action="append", default=[], help="agent id (repeatable)")
    sp.add_argument("--name", action="append", default=[], help="agent name (repeatable)")
    sp.add_argument("--tag", action="append", default=[], help="agents with this tag (repeatable)")
    sp.add_argument("--all", action="store_true", help="every agent no stack manages")
    sp.add_argument("--include-system", action="store_true", help="also export system prompts")
    sp.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")


def _drift(sub: _Commands) -> None:
    sp = sub.add_parser("drift", help="report what changed on the server outside the manifest")
    _common(sp, formats=POLICY_FORMATS)
    _policy(sp)
    _lifecycle(sp)  # what apply will do about it, as apply would be run
    sp.add_argument(
        "--detailed-exitcode", action="store_true",
        help="accepted for symmetry with plan: drift always exits 2 when it finds drift",
    )  # fmt: skip


def _show(sub: _Commands) -> None:
    _common(sub.add_parser("show", help="list the stack's resources on the server with their ids"))


def _completion(sub: _Commands) -> None:
    sp = sub.add_parser("completion", help="print the shell completion script (see README)")
    sp.add_argument("shell", choices=SHELLS, help="the shell to complete in")


def _convert(sub: _Commands) -> None:
    sp = sub.add_parser(
        "convert", help="write a manifest from a Letta Agent File (.af); sends no request",
        description="Write a manifest declaring what an Agent File holds, for `apply` to create. "
        "What the file holds that a manifest does not manage is reported on stderr, one line "
        "each; agent secrets become sensitive variables without values.",
    )  # fmt: skip
    sp.add_argument("agent_file", metavar="FILE", help="the Agent File (.af) to convert")
    sp.add_argument("--stack", help="stack name for the manifest (default: from the file's name)")
    sp.add_argument(
        "-o", "--output", metavar="FILE",
        help="write the manifest here instead of stdout (custom tools' sources go in a tools/ "
        "folder beside it)",
    )  # fmt: skip
    sp.add_argument(
        "--messages", action="store_true",
        help="keep the agents' user and assistant messages as their initial_message_sequence",
    )  # fmt: skip


def _graph(sub: _Commands) -> None:
    # `--format` here is the diagram's language: it replaces the common one ("resolve").
    sp = sub.add_parser(
        "graph", conflict_handler="resolve",
        help="draw the stack as a Mermaid or DOT diagram; sends no request unless --plan",
        description="Draw the manifest's stack: agents with their own blocks, shared blocks "
        "linked to every agent using them, tools and identities. Without --plan it reads no "
        "server; with --plan it plans against the server and marks what apply would create, "
        "update, replace, import or delete (deleted resources drawn too).",
    )  # fmt: skip
    _common(sp)
    _lifecycle(sp)
    sp.add_argument(
        "--format", choices=GRAPH_FORMATS, default="mermaid",
        help="mermaid (a flowchart, default) or dot (Graphviz)",
    )  # fmt: skip
    sp.add_argument(
        "--plan", action="store_true",
        help="read the server and mark what the plan would change",
    )  # fmt: skip
    sp.add_argument(
        "--destroy", action="store_true", help="mark what destroy would delete (implies --plan)"
    )
    sp.add_argument(
        "--only-changes", action="store_true",
        help="draw only what the plan changes and the resources next to it (implies --plan)",
    )  # fmt: skip


def _stack(text: str) -> str:
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", text):
        raise argparse.ArgumentTypeError(
            f"not a stack name (lower-case letters, digits, '_', '.', '-'): {text!r}"
        )
    return text


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


def _timeout(text: str) -> float:
    # 0 would fail every request at once, reported as a server that cannot be reached.
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text}")
    return value


def _boolean(text: str) -> bool:
    if text.lower() in ("true", "yes", "1", "on"):
        return True
    if text.lower() in ("false", "no", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false: {text}")
