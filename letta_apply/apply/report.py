"""What an apply run did, as the JSON documents `apply --format json` prints. Sensitive values
are masked here, so that a document is safe to print or store."""

from __future__ import annotations

from collections.abc import Iterable

from ..core.jsonish import JsonObject
from ..core.sensitive import Masker, mask_plan
from ..plan import planfile
from .runner import Done
from .session import ApplyResult, in_plan_order


def done_document(done: Iterable[Done]) -> list[JsonObject]:
    """Completed changes in the order of the plan (they complete in parallel, in any order)."""
    return [
        {"address": c.address, "action": c.action, "block": c.target, "remote_id": d.remote_id}
        for d in in_plan_order(done)
        for c in [d.change]
    ]


def apply_document(
    result: ApplyResult, origin: planfile.Origin, masker: Masker | None = None
) -> JsonObject:
    """The plan applied, the changes made, the errors and what was not attempted."""
    plan = planfile.to_document(mask_plan(result.plan, masker), origin)
    if result.blocked:  # nothing was attempted: prevent_destroy refused the whole plan
        return {"plan": plan, "applied": [], "errors": []}
    failure = result.failure
    return {
        "format_version": planfile.FORMAT_VERSION,
        "plan": plan,
        "applied": done_document(result.done),
        "errors": result.errors,
        "not_attempted": failure.not_attempted if failure else 0,
        "interrupted": bool(failure and failure.interrupted),
        "rejected": bool(failure and failure.rejected),
        "not_attempted_changes": failure.skipped if failure else [],
    }
