"""The kinds whose resources hold agents' memory, as the kinds' registry lists them: those with
the HoldsMemory capability (kinds.holds_memory), in the registry's dependency order (the order a
restore brings them back in). The memory package finds them here and names none.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from functools import cache
from typing import TypeVar

from ..kinds import KINDS, kind, kind_of_address
from ..kinds.holds_memory import HoldsMemory

T = TypeVar("T")


@cache
def holders() -> tuple[HoldsMemory, ...]:
    """Every kind with the capability, in dependency order."""
    return tuple(k for k in KINDS if isinstance(k, HoldsMemory))


def holder(name: str) -> HoldsMemory | None:
    """The kind `name` when it has the capability."""
    return next((k for k in holders() if k.name == name), None)


def kind_at(address: str) -> str | None:
    """The kind of what an address names (None: no kind's address)."""
    try:
        return kind_of_address(address)
    except KeyError:
        return None


def owner_of(address: str) -> str | None:
    """The address of the resource that owns what `address` names (`agent.x` for
    `agent.x.memory_blocks.y`: a segment its kind declares `nested`), None for a resource
    that stands alone."""
    parts = address.split(".")
    try:
        owner = kind(parts[0])
    except KeyError:
        return None
    return ".".join(parts[:2]) if len(parts) > 2 and parts[2] in owner.nested else None


class Once:
    """Reads made once per backup run or restore, whichever kind asks first (the stack's block
    listing serves several kinds): kinds.holds_memory.Session.once."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a read may ask for another
        self._made: dict[str, object] = {}

    def __call__(self, key: str, read: Callable[[], T]) -> T:
        with self._lock:
            if key not in self._made:
                self._made[key] = read()
            return self._made[key]  # type: ignore[return-value]
