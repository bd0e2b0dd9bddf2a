"""ServesModels: the optional capability of a kind whose declared resources serve models once the
server has made them (BYOK providers), beside the required `Kind`, as kinds.holds_memory is.

A kind whose resources run on a model (agents: `model`, `embedding`) names none of these kinds: it
asks the registry (`servers`) and goes through what is here.

- A manifest may name a model of such a resource by the resource's kind and key,
  `{<kind>: <key>, name: <model>}`: `check_ref` checks the key is declared (a located error, before
  any request), `resolved` makes it the handle the server will list the model under.
- A handle the server does not serve yet is not refused by a plan that makes (or changes) a
  declared resource that will serve it (`made_to_serve`): the server lists that resource's models
  when the change is applied, and such a kind depends on no other (level 0 of the registry's
  graph), so its creates run before, and its deletes after, those of every kind using models.
- What serves a handle (`serving`) is what the resource using it depends on: `--target` keeps it,
  `graph` links it.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..errors import Diagnostic, define
from ..manifest.files import Document, Path_, clip, where

if TYPE_CHECKING:
    from ..core.changes import Change
    from ..core.model import Desired
    from .context import Context

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA491", "ManifestError", "a model of no kind that serves models",
       "A `{<kind>: <key>, name: <model>}` model names no kind, several, or a kind whose "
       "resources serve no models.",
       "Name one resource of a kind that serves models (the message lists them), or write the "
       "model's handle.")
define("LA492", "ManifestError", "a model of an undeclared resource",
       "A `{<kind>: <key>, name: <model>}` model names a key its kind's section does not "
       "declare.",
       "Declare the resource, or fix the key (the message suggests a close one).")
# fmt: on


@runtime_checkable
class ServesModels(Protocol):
    """What a kind whose declared resources serve models says about them."""

    def model_handle(
        self, desired: Desired, address: str, model: str, *, embedding: bool
    ) -> str | None:
        """The handle the server lists the model `model` of the resource declared at `address`
        under once it is made (an embedding model with `embedding`); None when the kind
        declares nothing there."""
        ...

    def serving(self, desired: Desired, handle: str, *, embedding: bool) -> list[str]:
        """The addresses of the kind's declared resources the server names a model `handle`
        of."""
        ...

    def lists_models(self, change: Change) -> bool:
        """Whether applying `change` (of one of the kind's resources) has the server list that
        resource's models anew: a create, a new endpoint or key."""
        ...


@dataclass(frozen=True)
class Server:
    """A kind that serves models, as the registry holds it."""

    name: str  # the kind's name: what `{<kind>: <key>, ...}` names it by
    section: str
    kind: ServesModels


@cache
def servers() -> tuple[Server, ...]:
    """The kinds whose resources serve models."""
    from . import KINDS  # the registry imports every kind, and kinds import this module

    return tuple(Server(k.name, k.section, k) for k in KINDS if isinstance(k, ServesModels))


def _ref(value: object) -> tuple[str, object, str] | None:
    """(kind name, key, model) of a `{<kind>: <key>, name: <model>}` mapping, else None."""
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        return None
    others = [k for k in value if k != "name"]
    if len(others) != 1 or not isinstance(others[0], str):
        return None
    return others[0], value[others[0]], value["name"]


def _kinds_named(value: Mapping[object, object]) -> list[str]:
    return [str(k) for k in value if k != "name"]


def check_ref(
    doc: Document, path: Path_, value: object, data: Mapping[str, object]
) -> list[Diagnostic]:
    """Whether a model given as `{<kind>: <key>, name: <model>}` names a declared resource of a
    kind that serves models (run on manifests the schema rejected too: other shapes pass)."""
    if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
        return []  # a handle, or the schema says
    by_name = {s.name: s for s in servers()}
    known = ", ".join(sorted(by_name)) or "none"
    named = _kinds_named(value)
    if len(named) != 1:
        shape = f"{{{min(by_name, default='<kind>')}: <key>, name: <model>}}"
        message = f"{where(path)}: name one resource beside the model's name, as {shape}"
        return [doc.diag(path, message, code="LA491")]
    kind, key = named[0], value[named[0]]
    found = by_name.get(kind)
    if found is None:
        message = f"{where(path)}: {clip(kind)} is no kind whose resources serve models ({known})"
        return [doc.diag((*path, kind), message, code="LA491", key=True)]
    section = data.get(found.section)
    keys = sorted(section) if isinstance(section, dict) else []
    if not isinstance(key, str) or key in keys:
        return []  # a key of another type: the schema says
    close = difflib.get_close_matches(key, keys, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (declared: {', '.join(keys) or 'none'})"
    message = f"{where((*path, kind))}: {found.section} declares no {clip(key)}{hint}"
    return [doc.diag((*path, kind), message, code="LA492")]


def resolved(value: object, desired: Desired, *, embedding: bool) -> object:
    """A model given as `{<kind>: <key>, name: <model>}` as the handle the server will list it
    under (a manifest that passed `check_ref`); any other value as it is."""
    ref = _ref(value)
    by_name = {s.name: s for s in servers()}
    if ref is None or ref[0] not in by_name:
        return value
    kind, key, model = ref
    handle = by_name[kind].kind.model_handle(desired, f"{kind}.{key}", model, embedding=embedding)
    return value if handle is None else handle


def serving(desired: Desired, handle: object, *, embedding: bool) -> list[str]:
    """The addresses of the declared resources the server would serve `handle` from."""
    if not isinstance(handle, str):
        return []
    return [a for s in servers() for a in s.kind.serving(desired, handle, embedding=embedding)]


def made_to_serve(ctx: Context, handle: object, *, embedding: bool) -> bool:
    """Whether a change planned so far has the server list the models of a declared resource
    that will serve `handle` (it is made, or its endpoint or key change)."""
    addresses = set(serving(ctx.desired, handle, embedding=embedding))
    by_name = {s.name: s.kind for s in servers()}
    return any(
        c.address in addresses and c.kind in by_name and by_name[c.kind].lists_models(c)
        for c in ctx.changes
    )
