"""Providers in the manifests export writes (kinds.writing): those the exported agents run on
(their model, or their embedding model) that no stack manages (a mark block names it), each
without its keys: a key is written as a reference to a sensitive variable the manifest declares
without a value, for the user to give before applying (the import compares it, and writes it
should it differ from the provider's)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...core.jsonish import JsonObject, obj
from ...server.routes import BLOCKS
from ..resource import mark_of
from ..writing import Export, Ref
from .model import MARK_LABEL, SECRETS, LiveProvider, uses
from .requests import ROUTE

if TYPE_CHECKING:
    from .kind import ProviderKind

# Letta's own embedding model (letta/letta-free) is served by no provider of the organization.
_LETTA = "letta/"


def _may_use_one(agent: Mapping[str, object]) -> bool:
    """Whether an agent (as listed) may run on a BYOK provider: its model is one's (Letta says
    so), or its embedding model is not Letta's own (only the listing tells whose it is)."""
    embedding = obj(agent.get("embedding_config")).get("handle")
    byok = obj(agent.get("llm_config")).get("provider_category") == "byok"
    return byok or (isinstance(embedding, str) and not embedding.startswith(_LETTA))


def export_providers(kind: ProviderKind, ex: Export) -> JsonObject:
    """Two listings (providers, mark blocks), only when an exported agent may run on one."""
    if not any(_may_use_one(a) for a in ex.selected):
        return {}
    found = [
        p for p in ROUTE.list(ex.client)
        if p.get("provider_category", "byok") == "byok"
        and any(uses(a, str(p.get("name") or "")) for a in ex.selected)
    ]  # fmt: skip
    if not found:
        return {}
    owned = {
        str(mark_of(b.get("metadata")).get("provider"))
        for b in BLOCKS.list(ex.client, {"label": MARK_LABEL})
    }
    out: JsonObject = {}
    for p in sorted(map(LiveProvider.from_api, found), key=lambda p: (p.name, p.id)):
        if p.id in owned:
            continue
        key = ex.key(kind.name, p.id, p.name)
        entry = kind.export(p)
        if entry.get("name") == key:
            del entry["name"]  # it defaults to the key
        for secret in SECRETS:
            if getattr(p, secret) is not None:
                entry[secret] = Ref(f"${{var.{_variable(ex, key, secret)}}}")
        out[key] = entry
    return out


def _variable(ex: Export, key: str, secret: str) -> str:
    """A sensitive variable without a value for a key export does not write, and a note."""
    var = re.sub(r"[^A-Za-z0-9_]", "_", f"{key}_{secret}")
    while var in ex.variables:
        var += "_"
    ex.variables[var] = {
        "sensitive": True,
        "description": f"The {secret} of providers.{key} (export writes no key)",
    }
    ex.note(
        f"providers.{key}: its {secret} is not exported: give var.{var} (--var {var}=... or "
        f"LETTA_APPLY_VAR_{var}) before apply, which writes it should it differ from the "
        "provider's"
    )
    return var
