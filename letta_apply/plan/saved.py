"""Applying a saved plan: refused unless the server, the stack, the manifest and every resource
it touches are as they were when it was made. Sensitive values, left out of a saved plan, are
taken from the manifest and its variables."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..core.changes import DELETED, Plan
from ..core.model import Desired
from ..core.record import record_of
from ..core.sensitive import Masker, has_masked, mask_plan, masked_paths
from ..errors import PlanFileError, StalePlanError
from ..kinds import KINDS
from ..read.live import read_live, read_saved
from ..server.client import LettaClient
from . import planfile
from .planner import make_plan, stale, stale_secrets


@dataclass(frozen=True)
class SavedPlan:
    """A plan read back from `path`, with what it was made from."""

    path: str
    plan: Plan
    origin: planfile.Origin


def read_saved_plan(path: str) -> SavedPlan:
    """Load a plan file saved by `plan --out`; raises PlanFileError when it is not one."""
    plan, origin = planfile.read(path)
    return SavedPlan(path, plan, origin)


def check_server(saved: SavedPlan, base_url: str, project: str | None) -> None:
    """Refuse a plan made against another server or project."""
    origin = saved.origin
    if (origin.base_url, origin.project) != (base_url, project):
        raise PlanFileError(
            f"{saved.path}: the plan was made against {origin.base_url} "
            f"(project {origin.project}), not {base_url} (project {project})",
            code="LA605",
        )


def verify_saved_plan(
    client: LettaClient,
    saved: SavedPlan,
    desired: Desired | None = None,
    *,
    project: str | None = None,
    masker: Masker | None = None,
    manifest: str = "the manifest",
) -> Plan:
    """The saved plan, ready to apply: checked against the server, against `desired` (the
    manifest it was made from, named `manifest` in messages) and against every resource it
    touches, with its sensitive values filled in from `desired`. Raises PlanFileError, or
    StalePlanError when it no longer holds."""
    check_server(saved, client.base_url, project)
    plan, origin = saved.plan, saved.origin
    if has_masked(plan) and desired is None:
        raise PlanFileError(
            f"{saved.path}: the plan holds sensitive values, which are not saved in it: "
            "pass the manifest with -f and the same variables",
            code="LA606",
        )
    if desired is not None:
        if desired.stack != plan.stack:
            raise PlanFileError(
                f"{saved.path}: the plan is for stack '{plan.stack}', the manifest declares "
                f"'{desired.stack}'",
                code="LA607",
            )
        if desired.digest != origin.manifest_digest:
            raise StalePlanError(
                f"stale plan: {manifest} changed since {saved.path} was made "
                "(a manifest file, a file it reads or a variable); plan again",
                code="LA611",
            )
    live = read_saved(client, plan)
    changed = stale(plan, live)
    if changed:
        raise StalePlanError(
            "stale plan: changed on the server since the plan was made: "
            + ", ".join(changed)
            + "; nothing was applied, plan again",
            code="LA610",
        )
    sealed = stale_secrets(plan, live, desired.secrets, client.api_key) if desired else []
    if sealed:
        # The seal is keyed with the API key too: a plan made with another key cannot tell.
        other_key = " (or the plan was made with another API key)" if client.api_key else ""
        raise StalePlanError(
            "stale plan: a sensitive value it overwrites was changed on the server since the "
            f"plan was made{other_key}: " + ", ".join(sealed) + "; nothing was applied, plan again",
            code="LA612",
        )
    if desired is not None and has_masked(plan):
        plan = fill_sensitive(plan, make_plan(desired, read_live(client, desired)), masker)
    # What it does to the stack's record, from the server as it is now (plan.record).
    held = {a for k in KINDS for a in k.match(plan.stack, live).pool}
    gone = {d.address for d in plan.drift if d.kind == DELETED}
    return replace(plan, record=record_of(live.recorded, held, plan.changes, gone))


def fill_sensitive(saved: Plan, fresh: Plan, masker: Masker | None = None) -> Plan:
    """The saved plan with its sensitive values taken from a plan made now from the manifest.
    The two must agree on every change that carries one: the fields it changes, and where the
    sensitive values go (a sensitive field the server changed since counts as stale)."""
    by_key = {(c.address, c.action, c.target): c for c in fresh.changes}
    masked_fresh = {
        k: mask_plan(Plan(fresh.stack, (c,)), masker).changes[0] for k, c in by_key.items()
    }
    changes = []
    for c in saved.changes:
        paths = masked_paths(dict(c.body))
        if not paths:
            changes.append(c)
            continue
        key = (c.address, c.action, c.target)
        now = by_key.get(key)
        if (
            now is None
            or [d.field for d in now.diffs] != [d.field for d in c.diffs]
            or sorted(map(str, masked_paths(dict(masked_fresh[key].body))))
            != sorted(map(str, paths))
        ):
            raise StalePlanError(
                f"stale plan: {c.address} would not change the same way now (the server or a "
                "sensitive variable changed since the plan was made); nothing was applied, "
                "plan again",
                code="LA613",
            )
        changes.append(replace(c, body=now.body))
    return replace(saved, changes=tuple(changes))
