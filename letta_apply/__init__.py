"""letta-apply: declarative, GitOps-style provisioning for Letta agents and shared memory blocks.

The pipeline: `load` (YAML with positions) -> `validate` (JSON Schema, then semantic checks) ->
desired state -> `live` (reads the server) -> `plan` (pure) -> `render` / `apply`.
"""

__version__ = "0.1.0"

from .apply.runner import Done, apply_plan
from .errors import (
    ApiError,
    ApplyError,
    Diagnostic,
    LettaApplyError,
    ManifestError,
    ServerUnreachable,
)
from .model import Desired, Live
from .pipeline import load_manifest, plan_for
from .plan.changes import Change, Drift, Plan, Problem
from .plan.planner import make_plan
from .server.client import LettaClient
from .server.live import read_live

__all__ = [
    "ApiError",
    "ApplyError",
    "Change",
    "Desired",
    "Diagnostic",
    "Done",
    "Drift",
    "LettaApplyError",
    "LettaClient",
    "Live",
    "ManifestError",
    "Plan",
    "Problem",
    "ServerUnreachable",
    "__version__",
    "apply_plan",
    "load_manifest",
    "make_plan",
    "plan_for",
    "read_live",
]
