"""The pipeline end to end, for the CLI and for programs that embed letta-apply."""

from __future__ import annotations

from .client import LettaClient
from .live import read_live
from .load import load_file
from .model import Desired
from .plan import Plan, make_plan
from .validate import validate


def load_manifest(path: str) -> Desired:
    """Load and validate one manifest file; raises ManifestError with every problem found."""
    return validate(load_file(path))


def plan_for(
    client: LettaClient,
    desired: Desired,
    *,
    destroy: bool = False,
    detach_unmanaged: bool = False,
) -> Plan:
    """Read the live state of `desired`'s stack and plan against it (with `destroy`, plan the
    deletion of everything the stack owns)."""
    live = read_live(client, desired, destroy=destroy)
    return make_plan(desired, live, destroy=destroy, detach_unmanaged=detach_unmanaged)
