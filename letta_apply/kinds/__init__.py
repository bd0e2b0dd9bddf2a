"""The resource kinds letta-apply manages, one folder each, and their dependency graph.

A kind is a folder here whose `kind.py` defines one subclass of `Kind`: the registry finds the
folders itself, so a new kind is its folder and nothing else (no list here names one).

`KINDS` lists them in dependency order (a kind after every kind it depends on); `level` is a
kind's depth in that graph: apply creates and updates level by level (in parallel within a
level) and deletes in the reverse order.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from functools import cache

from ..core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    FORGET,
    IMPORT,
    REPLACE,
    UPDATE,
    Change,
)
from .base import AnyKind, Kind
from .flags import flag_address

__all__ = ["KINDS", "AnyKind", "Kind", "apply_order", "flag_of", "kind", "kind_of_address", "level"]


def _ordered(kinds: list[AnyKind]) -> tuple[AnyKind, ...]:
    """Kinds in dependency order (Kahn's algorithm, ties by name); a cycle is a bug here."""
    by_name = {k.name: k for k in kinds}
    done: list[AnyKind] = []
    pending = dict(by_name)
    while pending:
        ready = sorted(n for n, k in pending.items() if all(d not in pending for d in k.depends_on))
        if not ready:
            raise RuntimeError(f"resource kinds depend on each other in a cycle: {sorted(pending)}")
        for name in ready:
            done.append(pending.pop(name))
    return tuple(done)


def _found() -> list[AnyKind]:
    """One instance of the Kind each kind folder's `kind.py` defines."""
    found: list[AnyKind] = []
    for folder in pkgutil.iter_modules(__path__):
        if not folder.ispkg:
            continue
        module = importlib.import_module(f"{__name__}.{folder.name}.kind")
        classes = [
            c for c in vars(module).values()
            if inspect.isclass(c) and issubclass(c, Kind) and c.__module__ == module.__name__
        ]  # fmt: skip
        if len(classes) != 1:
            raise RuntimeError(f"{module.__name__} defines {len(classes)} kinds, not one")
        found.append(classes[0]())
    return found


KINDS: tuple[AnyKind, ...] = _ordered(_found())
_BY_NAME = {k.name: k for k in KINDS}
_FLAGS = {flag_address(k): k for k in KINDS if k.listing == "flag"}


def kind(name: str) -> AnyKind:
    return _BY_NAME[name]


@cache
def level(name: str) -> int:
    """How deep a kind sits in the dependency graph: 0 for a kind that depends on none."""
    return 1 + max((level(d) for d in kind(name).depends_on), default=-1)


def flag_of(change: Change) -> AnyKind | None:
    """The kind whose flag a change writes or deletes (kinds.flags), None for any other."""
    return _FLAGS.get(change.address)


def kind_of_address(address: str) -> str:
    """The kind of what an address names: agent.x is an agent, agent.x.memory_blocks.y a block
    (the segment is one the owning kind declares as `nested`)."""
    parts = address.split(".")
    owner = kind(parts[0])
    if len(parts) > 2 and parts[2] in owner.nested:
        return owner.nested[parts[2]]
    return owner.name


# A forget goes with the deletes: an agent's own blocks let go before it (stopped in between,
# they are not left marked for an agent the stack no longer sees, as leftovers to delete).
_PHASE = {
    CREATE: 0, UPDATE: 0, IMPORT: 0, REPLACE: 0, DETACH: 1, ATTACH: 2, DELETE: 3, FORGET: 3,
}  # fmt: skip
_TOP = max(level(k.name) for k in KINDS)


def apply_order(change: Change) -> tuple[int, int]:
    """When a change runs: creates and updates level by level (a resource nested under another
    is made with its owner, never before it), then detaches (which free labels), then
    attaches, then deletes and forgets, dependents first. Changes of one (phase, level) run
    in parallel.

    A resource nested under another (an agent's own blocks) is deleted in a stage of its own
    right before its owner's: Letta leaves an agent's blocks behind it, and a run stopped in
    between then leaves an agent the next run still sees, not blocks no agent holds.

    A kind's flag (kinds.flags) is written before anything else and deleted after everything
    else: the stack never holds a resource of the kind without it."""
    phase = _PHASE[change.action]
    if change.address in _FLAGS:
        return (phase, -1) if phase == 0 else (phase, 2 * _TOP + 1)
    name = change.kind or kind_of_address(change.address)
    owner = change.address.split(".", 1)[0]
    if phase == 0:
        return phase, max(level(name), level(owner))
    if phase == 3:
        if owner != name and owner in _BY_NAME:
            return phase, 2 * (_TOP - level(owner)) - 1
        return phase, 2 * (_TOP - level(name))
    return phase, 0
