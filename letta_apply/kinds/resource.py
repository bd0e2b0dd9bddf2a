"""What every live and declared resource has, and how a live one's marks say whose it is.

Letta keeps no owner on what letta-apply makes, so a resource's owner is what letta-apply wrote
on it: the stack's tag and a mark (stack, address, the digests of the fields as last written) in
its metadata, or, for a kind with neither, in a mark block (kinds.mark_blocks). These helpers
read those marks; nothing here guesses an owner from a name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, TypeVar

from ..core.jsonish import obj
from ..core.model import MARK_KEY, stack_tag
from ..core.model import Resource as Resource  # the kinds name it here


class Declared(Protocol):
    """What every declared resource has."""

    @property
    def address(self) -> str: ...

    @property
    def config(self) -> Mapping[str, object]: ...

    @property
    def prevent_destroy(self) -> bool: ...

    @property
    def ignore(self) -> frozenset[str]: ...


INTENT = "intent"
"""The key of a write-ahead intent in a mark (kinds.mark_blocks)."""


def pending(mark: Mapping[str, object]) -> bool:
    """Whether a resource was matched by the intent a run wrote before making it, and stopped
    before completing: its mark is still to write."""
    return isinstance(mark.get(INTENT), Mapping)


def mark_of(metadata: object) -> Mapping[str, object]:
    """The letta-apply mark in a metadata mapping (empty when there is none)."""
    return obj(obj(metadata).get(MARK_KEY))


def applied_of(resource: Resource) -> Mapping[str, object] | None:
    """Digests of the fields as letta-apply last wrote them, from a resource's mark."""
    applied = resource.mark.get("applied")
    return applied if isinstance(applied, Mapping) else None


def owned_by(resource: Resource, stack: str, prefix: str) -> str | None:
    """The address `resource` carries when its marks say it is `stack`'s, else None."""
    address = resource.mark.get("address")
    if resource.mark.get("stack") == stack and isinstance(address, str):
        return address if address.startswith(prefix + ".") else None
    return None


def carries(resource: Mapping[str, object], stack: str, address: str) -> bool:
    """Whether a resource, as the server lists it, carries the stack's mark for `address`."""
    mark = mark_of(resource.get("metadata"))
    return (mark.get("stack"), mark.get("address")) == (stack, address)


def tagged(tags: Iterable[str], stack: str) -> list[str]:
    """A tag set with the stack's tag added (the server replaces tags whole)."""
    return sorted({*tags, stack_tag(stack)})


Listed = TypeVar("Listed", bound=Mapping[str, object])


def settle(created: Listed, candidates: Sequence[Listed]) -> Listed:
    """The resource to keep when more than one carries an address (two applies at once): the
    oldest (list order). Every run that made one computes the same winner, so each deletes
    only its own."""
    if not candidates or candidates[0]["id"] == created["id"]:
        return created
    return candidates[0]
