"""Entries of another kind that agents name by key in a list of their own (`agents.<key>.folders:
[docs]`, `archives: [facts]`): the checks and the users shared by the kinds attached that way."""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence

from ...core.jsonish import obj, strings
from ...errors import Diagnostic
from ...manifest.files import Document


def unknown_refs(
    doc: Document,
    key: str,
    field: str,
    refs: Sequence[object],
    declared: Mapping[str, object],
    noun: str,
    code: str,
) -> list[Diagnostic]:
    """Agent `key`'s `field` entries that name no declared entry, each with a did-you-mean."""
    errors: list[Diagnostic] = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, str) or ref in declared:
            continue
        hint = difflib.get_close_matches(ref, sorted(declared), n=1)
        known = (
            f"; did you mean '{hint[0]}'?" if hint
            else f" (declared: {', '.join(sorted(declared))})" if declared
            else f" (the manifest declares no {field} under '{field}')"
        )  # fmt: skip
        errors.append(
            doc.diag(
                ("agents", key, field, i),
                f"agents.{key}.{field}[{i}]: no {noun} {ref!r} is declared{known}",
                code=code,
            )
        )
    return errors


def agent_users(data: Mapping[str, object], field: str) -> dict[str, list[str]]:
    """The agents naming each entry in their `field`, by the entry's key."""
    users: dict[str, list[str]] = {}
    for akey, spec in obj(data.get("agents")).items():
        for ref in strings(obj(spec).get(field)):
            users.setdefault(ref, []).append(f"agent.{akey}")
    return users
