"""letta-apply: declarative, GitOps-style provisioning for Letta agents and shared memory blocks.

Programs use `Stack` (api.py): load a manifest from files or from a dict, plan, render, apply,
destroy; `Stacks`: many stacks at once (many/). The pipeline underneath, a folder per phase,
bottom to top: core/ (shared vocabulary), manifest/, server/ (HTTP), kinds/, read/ (live state),
plan/, memory/, apply/, then render/, convert/, many/, cli/ (README, Development).
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .version import __version__

if TYPE_CHECKING:
    from .api import ApplyFailed, Format, Stack, Stacks, StacksResult, render_plan
    from .apply.runner import Done, apply_plan
    from .apply.session import ApplyResult
    from .core.changes import Change, Drift, Plan, Problem
    from .core.model import Desired, Live
    from .errors import (
        ApiError,
        ApplyError,
        DestroyPrevented,
        Diagnostic,
        ExportError,
        LettaApplyError,
        ManifestError,
        PlanFileError,
        PolicyFileError,
        PolicyViolated,
        Rejected,
        RestoreError,
        RouteGone,
        ServerStateError,
        ServerUnreachable,
        StalePlanError,
        UsageError,
    )
    from .many.run import StackRun
    from .memory.af_format import AgentFileError
    from .memory.backup import BackupFailed
    from .memory.restore import Restored, restore_backup
    from .pipeline import Validated, load_manifest, load_manifest_data, plan_for, validate_manifest
    from .plan.graph import Graph
    from .plan.listing import Listed, Listing
    from .plan.planner import make_plan
    from .read.live import read_live
    from .render.diagram import GraphFormat, render_graph
    from .server.client import LettaClient
    from .server.lock_records import LockError
    from .server.retry import RetryPolicy

# Each public name and the module that defines it, imported when first used: a command that
# needs little of the package (`validate`) does not pay for importing all of it.
_WHERE = {
    "ApplyFailed": ".api",
    "Format": ".api",
    "Stack": ".api",
    "Stacks": ".api",
    "StacksResult": ".api",
    "StackRun": ".many.run",
    "render_plan": ".api",
    "Done": ".apply.runner",
    "apply_plan": ".apply.runner",
    "ApplyResult": ".apply.session",
    "Change": ".core.changes",
    "Drift": ".core.changes",
    "Plan": ".core.changes",
    "Problem": ".core.changes",
    "Desired": ".core.model",
    "Live": ".core.model",
    "ApiError": ".errors",
    "ApplyError": ".errors",
    "DestroyPrevented": ".errors",
    "Diagnostic": ".errors",
    "ExportError": ".errors",
    "LettaApplyError": ".errors",
    "ManifestError": ".errors",
    "PlanFileError": ".errors",
    "PolicyFileError": ".errors",
    "PolicyViolated": ".errors",
    "Rejected": ".errors",
    "RestoreError": ".errors",
    "RouteGone": ".errors",
    "ServerStateError": ".errors",
    "ServerUnreachable": ".errors",
    "StalePlanError": ".errors",
    "UsageError": ".errors",
    "AgentFileError": ".memory.af_format",
    "BackupFailed": ".memory.backup",
    "Restored": ".memory.restore",
    "restore_backup": ".memory.restore",
    "Validated": ".pipeline",
    "load_manifest": ".pipeline",
    "load_manifest_data": ".pipeline",
    "plan_for": ".pipeline",
    "validate_manifest": ".pipeline",
    "Graph": ".plan.graph",
    "Listed": ".plan.listing",
    "Listing": ".plan.listing",
    "make_plan": ".plan.planner",
    "read_live": ".read.live",
    "GraphFormat": ".render.diagram",
    "render_graph": ".render.diagram",
    "LettaClient": ".server.client",
    "LockError": ".server.lock_records",
    "RetryPolicy": ".server.retry",
}


def __getattr__(name: str) -> object:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "AgentFileError",
    "ApiError",
    "ApplyError",
    "ApplyFailed",
    "ApplyResult",
    "BackupFailed",
    "Change",
    "Desired",
    "DestroyPrevented",
    "Diagnostic",
    "Done",
    "Drift",
    "ExportError",
    "Format",
    "Graph",
    "GraphFormat",
    "LettaApplyError",
    "LettaClient",
    "Listed",
    "Listing",
    "Live",
    "LockError",
    "ManifestError",
    "Plan",
    "PlanFileError",
    "PolicyFileError",
    "PolicyViolated",
    "Problem",
    "Rejected",
    "RestoreError",
    "Restored",
    "RetryPolicy",
    "RouteGone",
    "ServerStateError",
    "ServerUnreachable",
    "Stack",
    "StackRun",
    "Stacks",
    "StacksResult",
    "StalePlanError",
    "UsageError",
    "Validated",
    "__version__",
    "apply_plan",
    "load_manifest",
    "load_manifest_data",
    "make_plan",
    "plan_for",
    "read_live",
    "render_graph",
    "render_plan",
    "restore_backup",
    "validate_manifest",
]
