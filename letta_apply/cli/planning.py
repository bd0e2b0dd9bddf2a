"""`letta-apply plan`, and what the commands that plan share: the manifest loaded with its secrets
masked, a plan narrowed to --target."""

from __future__ import annotations

import argparse
import os
import shlex
from pathlib import Path

from ..convert.files import write_output
from ..core.changes import Plan
from ..core.model import Desired
from ..core.sensitive import mask_plan
from ..pipeline import load_manifest, plan_for
from ..plan import planfile
from ..plan.planner import restrict
from ..plan.targets import TARGET_WARNING, expand_targets
from ..policy import Policies, check_plan, policies_for
from ..render.policy import sarif
from .arguments import EXIT_CHANGES, EXIT_ERROR, EXIT_OK, options_of
from .output import Out, plan_origin, show_plan


def load(args: argparse.Namespace, o: Out) -> Desired:
    """The manifest of `-f` with its variables; its secrets are masked in all output from now."""
    desired = load_manifest(args.file, options_of(args))
    o.masker.add(desired.secrets)
    return desired


def targeted(args: argparse.Namespace, desired: Desired, plan: Plan, o: Out) -> Plan:
    """The plan limited to `--target` (expanded to declared addresses once, in `args`)."""
    if not args.target:
        return plan
    if not o.targets_expanded:
        args.target = expand_targets(desired, args.target)
        o.targets_expanded = True
        print(TARGET_WARNING, file=o.err)
    return restrict(plan, desired, args.target)


def show_sarif(o: Out, plan: Plan, policies: Policies) -> None:
    o.json(sarif(plan.violations, [(r.id, r.description) for r in policies.rules]))


def cmd_plan(args: argparse.Namespace, o: Out) -> int:
    desired = load(args, o)
    policies = policies_for(args.policy, desired)  # a file in error: before any request
    # Where apply will save what this plan deletes: a folder of its own per run.
    folder = Path(args.backup_dir) / desired.stack
    o.backup_note = None if args.no_backup else f"{folder}{os.sep} (a folder per run)"
    with o.connect() as client:
        plan = plan_for(
            client, desired, destroy=args.destroy, detach_unmanaged=args.detach_unmanaged_blocks
        )
        plan = check_plan(targeted(args, desired, plan, o), desired, policies)
        origin = plan_origin(args, client, desired)
        if o.format == "sarif":
            show_sarif(o, plan, policies)
        else:
            show_plan(o, plan, origin, destroy=args.destroy, desired=desired)
        if args.out:
            # Saved without sensitive values: `apply FILE -f ...` takes them from the manifest.
            write_output(
                args.out, o.masker.text(planfile.dumps(mask_plan(plan, o.masker), origin))
            )
            print(f"Plan saved to {args.out}; apply it with {_apply_command(args)}.", file=o.err)
    if plan.problems or plan.refused_by_policy:
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
