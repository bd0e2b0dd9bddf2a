"""What the kinds share when letta-apply writes a manifest itself: `export` (from resources made by
hand on the server, read.export) and `convert` (from an Agent File, letta_apply.convert).

Both are written around the resources of one kind, the `root` (agents): export selects them, an
Agent File holds them. Each other kind writes its own section: what the root's resources use
(their blocks, identities, tools, MCP servers) or what is made of them (groups). A kind writes
its section through a hook (`Kind.export_section`, `Kind.from_agent_file`) from what is here: the
root's resources, and the manifest keys the kinds before it gave theirs, to name them by. The
sections are written in `writing_order`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..core.jsonish import JsonObject, items, obj, strings
from ..core.model import MARK_KEY, RESERVED_TAG_PREFIXES

if TYPE_CHECKING:
    from ..server.client import LettaClient
    from .base import AnyKind


def writing_order(kinds: Iterable[AnyKind]) -> tuple[AnyKind, ...]:
    """The kinds in the order a written manifest lists their sections: each right after the
    kinds it depends on, in the order it names them (depth first, from the kinds that depend
    on most): identities, then the blocks that name them; blocks, tools and MCP servers, then
    the agents that use them; then the groups made of those."""
    by_name = {k.name: k for k in kinds}
    out: dict[str, AnyKind] = {}

    def visit(k: AnyKind) -> None:
        if k.name in out:
            return
        for d in k.depends_on:
            visit(by_name[d])
        out[k.name] = k

    for k in reversed(tuple(by_name.values())):
        visit(k)
    return tuple(out.values())


class Ref(str):
    """A `${var.NAME}` reference a writer makes itself (for a value it leaves to the user):
    never escaped as text from the server or a file is (`literal`)."""


def literal(value: object) -> object:
    """Every string from the server or a file written so the manifest language takes it as it
    is: `${` would be read as a reference (`${env.HOME}` in a prompt would pull the environment
    in, `${each.key}` would not load at all)."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def tags_of(tags: object) -> list[str]:
    """Tags without letta-apply's marks (an Agent File exported from a stack)."""
    kept = {t for t in strings(tags) if not t.startswith(RESERVED_TAG_PREFIXES)}
    return sorted(kept)


def metadata_of(metadata: object) -> JsonObject:
    """Metadata without letta-apply's mark (an Agent File exported from a stack)."""
    return {k: v for k, v in obj(metadata).items() if k != MARK_KEY}


def manifest_key(text: str, taken: set[str]) -> str:
    """A manifest key made from a name or label, unlike any in `taken` (it joins them)."""
    key = re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_-").lower()[:60] or "x"
    if not re.match(r"[A-Za-z_]", key):
        key = "_" + key
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


@dataclass
class Selection:
    """Which of the root kind's resources (agents) export writes: by id, name or tag, or all."""

    ids: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    everything: bool = False


@dataclass(frozen=True)
class Selected:
    """The root's resources a selection names, as the server lists them, that no stack manages;
    and why the others are left out."""

    found: Sequence[Mapping[str, object]]
    skipped: Sequence[str] = ()


@dataclass
class Written:
    """What the kinds share while a manifest is written: the manifest keys each kind gave its
    entries (kind -> the resource's id -> key), what a kind found that a kind after it uses
    (`extra`, by kind), the notes on what was not written, and the sensitive variables made,
    without values, for secrets a manifest is never written with (`${var.NAME}` in their place)."""

    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    # Values unchecked (each kind puts and takes its own, the agent kind reading them as typed
    # as the kind that put them): a typed key per kind once the agent kind's files take one.
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    variables: dict[str, object] = field(default_factory=dict)
    _taken: dict[str, set[str]] = field(default_factory=dict, repr=False)

    def key(self, kind: str, rid: str, text: str) -> str:
        """A key for the entry of `kind` that writes the resource `rid`, made from `text` (its
        name or label), unlike the kind's other keys; recorded in `keys`."""
        key = manifest_key(text, self._taken.setdefault(kind, set()))
        self.keys.setdefault(kind, {})[rid] = key
        return key

    def note(self, text: str) -> None:
        self.notes.append(text)


@dataclass(kw_only=True)
class Export(Written):
    """A manifest being exported: the server, and the selected resources of the root kind as
    it lists them (`selected`), that every kind exports around."""

    client: LettaClient
    # Values unchecked: the kinds' export hooks read them without core.jsonish yet (their files
    # are typed apart); Mapping[str, object] once they do.
    selected: Sequence[Mapping[str, object]]
    include_system: bool = False


@dataclass(kw_only=True)
class Conversion(Written):
    """An Agent File being converted: its entity lists as read (`data`: `agents`, `blocks`...,
    each entity with an id of the file's own, which `keys` are by), and the files to write
    beside the manifest (tool sources, by path relative to it, under `sources_dir`). The file
    blanks agent secrets: they become `variables`."""

    data: Mapping[str, object]
    messages: bool = False  # keep the agents' messages as their first ones
    sources_dir: str | None = None  # where `sources` go; None: each kind's own folder
    sources: dict[str, str] = field(default_factory=dict)

    # Values unchecked: the kinds' convert hooks read them without core.jsonish yet (their
    # files are typed apart); JsonObject once they do. (The file was checked: each is a dict.)

    def entities(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in items(self.data.get(kind)) if isinstance(e, dict)]

    def by_id(self, kind: str) -> dict[str, dict[str, Any]]:
        return {e["id"]: e for e in self.entities(kind)}
