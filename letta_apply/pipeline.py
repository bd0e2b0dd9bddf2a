"""The pipeline end to end, for the CLI and for programs that embed letta-apply."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace

from .errors import Diagnostic, ManifestError
from .manifest.language import load_source
from .manifest.validate import validate
from .manifest.variables import Options
from .model import Desired
from .plan.planner import Plan, make_plan
from .sensitive import Masker
from .server.client import LettaClient
from .server.live import read_live


def load_manifest(paths: str | Sequence[str], options: Options | None = None) -> Desired:
    """Load the manifest files and folders `paths` names, resolve variables and templates, and
    validate the result; raises ManifestError with every problem found (sensitive values
    masked)."""
    source = load_source(paths, options)
    try:
        desired = validate(source.doc)
    except ManifestError as e:
        masker = Masker(source.secrets)
        raise ManifestError(
            [Diagnostic(d.file, d.line, d.col, masker.text(d.message)) for d in e.diagnostics]
        ) from None
    # Tools' source files are read by validate: their text is part of what a saved plan is
    # checked against too.
    h = hashlib.sha256(source.digest.encode())
    for address, tool in sorted(desired.tools.items()):
        h.update(f"\0{address}\0{tool.source_code}".encode())
    digest = "sha256:" + h.hexdigest()
    return replace(desired, files=source.files, digest=digest, secrets=source.secrets)


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
