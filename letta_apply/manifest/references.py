"""References between a manifest's entries, read alike: the fields that name shared blocks or
agents by key (each kind's `instance_refs`: an agent's `blocks:`, a group's members), where
`region[eu]` is `region["eu"]` and, in a list, `region[*]` every instance of `region`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import Diagnostic
from .addresses import INSTANCE, instance_example, instance_key, normalize_address
from .files import Path_, Place, Position
from .interpolate import spelled
from .unknown import REPRESENTATIVE

if TYPE_CHECKING:
    from .expand import Expander

# Each step reads the templates the expander `x` found and reports through it.


def resolve_references(x: Expander, data: dict[str, object]) -> None:
    """The fields that name shared blocks or agents by key (each kind's `instance_refs`:
    an agent's `blocks:`, a group's members), read alike: `region[eu]` is `region["eu"]`,
    and `region[*]`, in a list, every instance of `region`."""
    for k in x.kinds:
        section = data.get(k.section)
        if not k.instance_refs or not isinstance(section, dict):
            continue
        for key, spec in section.items():
            if not isinstance(spec, dict):
                continue
            for name, target in k.instance_refs.items():
                at: Path_ = (k.section, key, name)
                value = spec.get(name)
                if isinstance(value, str):
                    # One resource: a wrong name is reported, and left for no check to
                    # report again (the same place).
                    spec[name] = next(iter(_named(x, value, target, at, many=False)), value)
                elif isinstance(value, list):
                    _reference_list(x, value, target, at)


def _named(x: Expander, ref: str, target: str, at: Path_, *, many: bool) -> list[str]:
    """The keys of `target` (blocks, agents) that `ref`, at `at`, names: none, reported,
    for a template named without one instance (or, where one is named, with `[*]`)."""
    ref = normalize_address(ref)
    m = INSTANCE.match(ref)
    base = m.group("base") if m else ref
    templates = x.templates.get(target, {})
    if base not in templates or (m and m.group("index") != "*"):
        return [ref]
    if m and many:
        return list(x.instances[target].get(base, []))
    known = x.instances[target].get(base, []) if x.known(target, base) else []
    example = instance_example(base, templates[base], known)
    every = f", or every one, {base}[*]" if many else ""
    pos = x.out.where(at)
    x.errors.append(
        Diagnostic(
            pos.file or x.raw.file, pos.line, pos.col,
            f"{spelled(at)}: {x.sections[target].name}.{base} has {templates[base]}: "
            f"name one instance, {example}{every}", code="LA220",
        )
    )  # fmt: skip
    return []


def _reference_list(x: Expander, refs: list[object], target: str, at: Path_) -> None:
    """`refs` (the list at `at`) with each entry read by `named`, in place."""
    out: list[object] = []
    positions: list[Position] = []
    expanded = False  # whether an entry became other than one entry
    for i, ref in enumerate(refs):
        found = _named(x, ref, target, (*at, i), many=True) if isinstance(ref, str) else [ref]
        expanded = expanded or len(found) != 1
        out.extend(found)
        if x.positioned:
            pos = x.out.where((*at, i))
            positions.extend(pos for _ in found)
    refs[:] = out
    if not expanded or not x.positioned:
        return  # same entries, same places: the recorded positions stand (or none is)
    # Renumbering scans every recorded position: only worth it when entries moved (a scan
    # per agent made loading quadratic in the size of the manifest).
    n = len(at)
    for table in (x.out.values, x.out.keys):
        for p in [p for p in table if p[:n] == at and len(p) > n]:
            del table[p]
    for i, pos in enumerate(positions):
        x.out.values[(*at, i)] = pos


def broken_references(x: Expander, data: object) -> set[Place]:
    """Where the manifest names an instance of a template that made none for a reported
    problem (`block.w[0]` of a `count: -1`), or whose instances are not known yet (but the
    one standing for them): no check reports those names undeclared."""
    if not any(x.broken.values()) and not any(x.unknown_templates.values()):
        return set()
    prefixes = {s: f"{x.sections[s].name}." for s in x.templates}
    stands = instance_key("", REPRESENTATIVE)
    out: set[Place] = set()

    def names_broken(text: str) -> bool:
        m = INSTANCE.match(text)
        if not m:
            return False
        base = m.group("base")
        for section in x.templates:
            keys = x.broken[section]
            if m.group() != base + stands:
                keys = keys | x.unknown_templates[section]
            if base in keys or base.removeprefix(prefixes[section]) in keys:
                return True
        return False

    stack: list[tuple[Path_, object]] = [((), data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if names_broken(normalize_address(value)):
                pos = x.out.where(path)
                out.add((pos.file or x.raw.file, pos.line, pos.col))
        elif isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in enumerate(value))
    return out
