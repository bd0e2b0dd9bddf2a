"""What kinds read alike from a manifest: the entries of a section and how each is kept
(`prevent_destroy`, `ignore_changes`), as `declare` reads them once the manifest passed its
checks; and, as `check` reads them, names the server keeps unique that two entries share."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

from ..core.jsonish import obj, strings
from ..errors import Diagnostic

if TYPE_CHECKING:
    from ..manifest.files import Document


def entries(data: Mapping[str, object], section: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    """The entries of a manifest section, by key (none when the manifest has no such section)."""
    for key, spec in obj(data.get(section)).items():
        yield key, obj(spec)


def prevents_destroy(spec: Mapping[str, object]) -> bool:
    return bool(spec.get("prevent_destroy", False))


def ignored(spec: Mapping[str, object]) -> frozenset[str]:
    """The fields an entry's `ignore_changes` leaves to the server."""
    return frozenset(strings(spec.get("ignore_changes")))


def same_names(
    doc: Document,
    section: str,
    names: Iterable[tuple[str, object, bool]],
    field: str,
    code: str,
    unique: str,
) -> list[Diagnostic]:
    """A problem for each entry of `section` whose `field` another entry took first: `names`
    holds (key, the name, whether the entry sets `field` or defaults it to its key), `unique`
    says where such names are unique."""
    errors: list[Diagnostic] = []
    seen: dict[str, str] = {}
    for key, name, given in names:
        if isinstance(name, str) and name in seen:
            errors.append(
                doc.diag(
                    (section, key, field) if given else (section, key),
                    f"{section}.{key}: {field} {name!r} is already used by {section}.{seen[name]}; "
                    f"{unique}",
                    code=code,
                    key=not given,
                )
            )
        elif isinstance(name, str):
            seen[name] = key
    return errors
