"""What a command reports besides plans: the changes an apply made, a stack's resources, and
`validate --format json`."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from ..apply.runner import Done
from ..apply.session import in_plan_order
from ..core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    FORGET,
    IMPORT,
    REPLACE,
    UPDATE,
    Violation,
)  # fmt: skip
from ..errors import Diagnostic
from ..plan.listing import Listing
from ..plan.planfile import violations_json
from .wording import shown

PAST = {
    CREATE: "created", UPDATE: "updated", ATTACH: "attached", DETACH: "detached",
    DELETE: "deleted", IMPORT: "imported", REPLACE: "replaced", FORGET: "forgotten",
}  # fmt: skip


def done_line(d: Done) -> str:
    c = d.change
    if c.action in (ATTACH, DETACH):
        return f"{c.address}: {PAST[c.action]} {c.target} ({d.remote_id})"
    if c.action == REPLACE:
        return f"{c.address}: replaced {c.remote_id} with {d.remote_id}"
    return f"{c.address}: {PAST[c.action]} ({d.remote_id})"


def ordered(done: Iterable[Done]) -> list[Done]:
    """Completed changes in the order of the plan."""
    return in_plan_order(done)


def done_text(done: Iterable[Done]) -> str:
    """One line per completed change, in a stable order."""
    return shown(done_line(d) for d in ordered(done))


def show_text(listing: Listing, base_url: str) -> str:
    """The stack's resources on the server with their ids, as `show` prints them."""
    lines = [f'stack "{listing.stack}" on {base_url}']
    lines += [f"{r.address}  {r.id}  {r.description}" for r in listing.found]
    lines += [f"{a}  (not on the server)" for a in listing.missing]
    return shown(lines)


def diagnostics_json(
    diagnostics: Sequence[Diagnostic],
    unknown: Sequence[str] = (),
    violations: Sequence[Violation] = (),
) -> str:
    """`validate --format json`: the problems, the references checked without a value, and the
    policy rules broken (those at error make the manifest invalid)."""
    doc: dict[str, object] = {
        "format_version": 1,
        "valid": not diagnostics and not any(v.severity == "error" for v in violations),
        "diagnostics": [
            {"file": d.file, "line": d.line, "column": d.col, "message": d.message, "code": d.code}
            for d in diagnostics
        ],
        "unknown": list(unknown),
    }
    if violations:
        doc["violations"] = violations_json(violations)
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
