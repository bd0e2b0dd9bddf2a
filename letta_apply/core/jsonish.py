"""JSON as the server sends it and as a manifest holds it, read with its types checked.

Letta's responses and a manifest's data are trees of dicts, lists and scalars whose shape the
code expects but the type checker cannot know. Rather than an unchecked type (which turns
checking off for whatever touches it), such data is `object` (`JsonObject` for a JSON object),
and it is read through these accessors: each returns the type the caller needs, or an empty
value when the data is not of that shape, so a response missing a field or holding a field of
another type reads as absent instead of raising deep inside a kind.
"""

from __future__ import annotations

from collections.abc import Mapping

JsonObject = dict[str, object]
"""A JSON object (a response, a request body, a manifest entry)."""


def obj(value: object) -> Mapping[str, object]:
    """`value` as a JSON object (empty when it is not one)."""
    return value if isinstance(value, Mapping) else {}


def objs(value: object) -> list[Mapping[str, object]]:
    """The JSON objects in a list (empty when `value` is not a list; other items left out)."""
    if not isinstance(value, list | tuple):
        return []
    return [v for v in value if isinstance(v, Mapping)]


def items(value: object) -> list[object]:
    """`value` as a list (empty when it is not a list or a tuple)."""
    return list(value) if isinstance(value, list | tuple) else []


def text(value: object, default: str = "") -> str:
    """`value` as a string (`default` when it is not one)."""
    return value if isinstance(value, str) else default


def opt_text(value: object) -> str | None:
    """`value` as a string, or None when it is not one."""
    return value if isinstance(value, str) else None


def strings(value: object) -> list[str]:
    """The strings in a list (empty when `value` is not a list; other items left out)."""
    return [v for v in items(value) if isinstance(v, str)]


def integer(value: object) -> int | None:
    """`value` as an int (None when it is not one; a bool is not an int here)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def number(value: object) -> float | None:
    """`value` as a number (None when it is not one; a bool is not a number here)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def flag(value: object) -> bool:
    """`value` as a bool (false when it is not one)."""
    return value is True
