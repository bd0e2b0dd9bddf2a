"""Identities in the manifests export writes (kinds.writing): those the exported agents act for,
that no stack manages (a resource has one owner)."""

from __future__ import annotations

from ...core.jsonish import JsonObject, items
from ..writing import Export
from .kind import ROUTE, IdentityKind, LiveIdentity


def export_identities(kind: IdentityKind, ex: Export) -> JsonObject:
    """One listing, only when an exported agent acts for some."""
    wanted = {i for agent in ex.selected for i in items(agent.get("identity_ids"))}
    if not wanted:
        return {}
    out: JsonObject = {}
    found = [LiveIdentity.from_api(r) for r in ROUTE.list(ex.client)]
    for identity in sorted(found, key=lambda i: (i.identifier_key, i.id)):
        if identity.id not in wanted or identity.mark:
            continue
        key = ex.key(kind.name, identity.id, identity.identifier_key)
        entry = kind.export(identity)
        if entry.get("identifier_key") == key:
            del entry["identifier_key"]  # it defaults to the key
        if entry.get("name") == key:
            del entry["name"]
        out[key] = entry
    return out
