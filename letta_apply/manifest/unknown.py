"""Values not known yet: `validate` needs no variable values (as Terraform's validate), so a
variable given none, and an unset `${env.X}`, is *unknown* there. What depends on an unknown value
is checked as far as what is known tells, everything else as usual:

- A reference to it is an `Unknown` carrying what its declaration says: a type and whether it is
  sensitive. So a `string` variable where a number goes, a list interpolated into a string, or a
  sensitive value where a secret may not go are still errors.
- A string that interpolates an unknown value is an unknown string (a sensitive one when any
  part is): its text, and so its pattern, length or the key it names, waits for the values.
- `count:` or `for_each:` of unknown value makes one *representative* instance, `key["*"]`, with
  `${count.index}`, `${each.key}` and `${each.value}` unknown: the template's body is checked
  once, as every instance would be. References to instances of such a template (`w["eu"]`) wait
  for the values; `w[*]` names the representative.

Once the manifest is expanded, each unknown value is left empty (None) where the checks would
otherwise read it, with its place quiet (nothing is reported there, as for a value left empty by
a reported problem), and the schema check alone sees a placeholder of its type, whose type
errors (and those only) are reported.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

from ..core.jsonish import items
from .files import Path_, Place

REPRESENTATIVE = "*"
"""The instance key a template whose instances are not known is checked as: `worker["*"]`."""


def _placeholder(kind: str | None, n: int) -> object:
    """A value of type `kind`, the `n`th: placeholders differ from one another (and from what a
    manifest writes), so that no two look like a value listed twice."""
    if kind == "string":
        return f"(unknown {n})"
    if kind == "number":
        return -1_000_000_007 - n
    return {"bool": False, "list": [], "map": {}}.get(kind or "")


@dataclass(frozen=True)
class Unknown:
    """A value known once its variable has one: its type when known (`string`, `number`,
    `bool`, `list`, `map`), and whether it is sensitive."""

    type: str | None = None
    sensitive: bool = False


def field_of(value: Unknown) -> Unknown | None:
    """A field of an unknown value (`${each.value.field}`), or None when its type has none."""
    if value.type not in (None, "map"):
        return None
    return Unknown(None, value.sensitive)


def settle(data: object, where: Callable[[Path_], Place]) -> tuple[dict[Path_, object], set[Place]]:
    """Every Unknown in `data` (a mapping or list, changed in place) left empty (None): the paths
    of those of a known type, each with a placeholder of that type, and the places of all."""
    typed: dict[Path_, object] = {}
    places: set[Place] = set()
    stack: list[tuple[Path_, object]] = [((), data)] if isinstance(data, (dict, list)) else []
    while stack:
        path, value = stack.pop()
        entries: list[tuple[str | int, object]] = (
            list(value.items()) if isinstance(value, dict) else list(enumerate(items(value)))
        )
        for k, v in entries:
            at: Path_ = (*path, k)
            if isinstance(v, Unknown):
                _replace(value, k, None)
                places.add(where(at))
                if v.type is not None:
                    typed[at] = _placeholder(v.type, len(typed))
            elif isinstance(v, (dict, list)):
                stack.append((at, v))
    return typed, places


@contextmanager
def placeholders(data: object, typed: Mapping[Path_, object]) -> Iterator[None]:
    """`data` with the placeholders of `typed` in place of its empty unknown values, for the
    schema check; left empty again after."""
    for path, value in typed.items():
        _put(data, path, copy.copy(value))
    try:
        yield
    finally:
        for path in typed:
            _put(data, path, None)


def _put(data: object, path: Path_, value: object) -> None:
    for k in path[:-1]:
        data = _child(data, k)
    _replace(data, path[-1], value)


# The paths below come from `settle`, which found a mapping or a list at each: any other value
# there is a bug, raised as such.


def _child(data: object, key: str | int) -> object:
    if isinstance(data, dict):
        return data[key]
    if isinstance(data, list) and isinstance(key, int):
        return data[key]
    raise LookupError(key)


def _replace(data: object, key: str | int, value: object) -> None:
    if isinstance(data, dict):
        data[key] = value
        return
    if isinstance(data, list) and isinstance(key, int):
        data[key] = value
        return
    raise LookupError(key)
