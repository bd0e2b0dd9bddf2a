"""What every kind's `declare` reads alike from a manifest that passed its checks: the entries of
its section, and how each entry is kept (`prevent_destroy`, `ignore_changes`)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ..core.jsonish import obj, strings


def entries(data: Mapping[str, object], section: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    """The entries of a manifest section, by key (none when the manifest has no such section)."""
    for key, spec in obj(data.get(section)).items():
        yield key, obj(spec)


def prevents_destroy(spec: Mapping[str, object]) -> bool:
    return bool(spec.get("prevent_destroy", False))


def ignored(spec: Mapping[str, object]) -> frozenset[str]:
    """The fields an entry's `ignore_changes` leaves to the server."""
    return frozenset(strings(spec.get("ignore_changes")))
