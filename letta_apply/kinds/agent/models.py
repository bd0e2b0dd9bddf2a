"""An agent's model and embedding when they are models of resources the manifest declares (BYOK
providers), through kinds.serves_models: named by the resource's key in the manifest, checked
there, written as the handle the server will list; what serves them is what the agent depends
on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from ...errors import Diagnostic
from ...manifest.files import Document
from ..serves_models import check_ref, resolved, serving
from .plan import HANDLES

if TYPE_CHECKING:  # kinds.agent.kind imports this module
    from ...core.model import Desired
    from .model import DesiredAgent


def check_models(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Models named by a declared resource's key name a declared one."""
    agents = data.get("agents")
    return [
        d
        for key, spec in (agents if isinstance(agents, dict) else {}).items()
        if isinstance(spec, dict)
        for name in HANDLES
        for d in check_ref(doc, ("agents", key, name), spec.get(name), data)
    ]


def resolve_models(agents: Mapping[str, DesiredAgent], desired: Desired) -> dict[str, DesiredAgent]:
    """The agents, models named by a declared resource's key written as their handles."""
    out: dict[str, DesiredAgent] = {}
    for address, da in agents.items():
        config = dict(da.config)
        for name in HANDLES:
            if name in config:
                config[name] = resolved(config[name], desired, embedding=name == "embedding")
        out[address] = replace(da, config=config) if config != da.config else da
    return out


def models_from(da: DesiredAgent, desired: Desired) -> list[str]:
    """The declared resources serving the agent's model and embedding."""
    found = {
        a
        for name in HANDLES
        for a in serving(desired, da.config.get(name), embedding=name == "embedding")
    }
    return sorted(found)
