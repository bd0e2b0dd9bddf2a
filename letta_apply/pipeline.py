"""The pipeline end to end, for the CLI and for programs that embed letta-apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from .errors import Diagnostic, ManifestError
from .manifest.language import load_source
from .manifest.validate import validate
from .manifest.variables import Options
from .model import Desired
from .plan.changes import Plan
from .plan.planner import make_plan
from .sensitive import Masker
from .server.client import LettaClient
from .server.live import read_live


def load_manifest(paths: str | Sequence[str], options: Options | None = None) -> Desired:
    """Load the manifest files and folders `paths` names (and the files they name), resolve
    variables and templates, and validate the result; raises ManifestError with every problem
    found (sensitive values masked)."""
    source = load_source(paths, options)
    try:
        desired = validate(source.doc)
    except ManifestError as e:
        masker = Masker(source.secrets)
        raise ManifestError(
            [Diagnostic(d.file, d.line, d.col, masker.text(d.message)) for d in e.diagnostics]
        ) from None
    return replace(desired, files=source.files, digest=source.digest, secrets=source.secrets)


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
