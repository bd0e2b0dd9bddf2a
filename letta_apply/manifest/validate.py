"""Check a loaded manifest against `schemas/manifest.schema.json`, then the rules a schema cannot
say, and turn it into the desired state. Every problem is reported at once, with its position:
schema errors and semantic errors together, one diagnostic per position."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

try:  # a compiled validator, when installed: it only says whether a manifest is valid, fast
    import jsonschema_rs
except ImportError:  # pragma: no cover - a dependency; without it every check takes the long way
    jsonschema_rs = None  # type: ignore[assignment]

from ..core.jsonish import JsonObject, obj, objs, opt_text, text
from ..core.model import Desired, Entry, Import
from ..errors import Diagnostic, ManifestError
from .explain import certain, explain
from .files import Document, Path_, Place, clip
from .sections import Section
from .semantic import semantic
from .unknown import placeholders

if TYPE_CHECKING:  # imported where the slow check runs: a valid manifest skips it
    import jsonschema

BASE_SCHEMA = Path(__file__).parent / "schemas" / "base.schema.json"


@cache
def base_schema() -> JsonObject:
    """The shared part of the manifest's JSON Schema, without any kind's section."""
    with BASE_SCHEMA.open(encoding="utf-8") as f:
        return node(json.load(f))


def schema(kinds: Iterable[Section]) -> JsonObject:
    """The manifest's JSON Schema (2020-12): the shared part, and each kind's section and
    definitions (see letta_apply.kinds). Typed loosely for the kinds' reference pages, which
    read into it as the JSON they know it to be."""
    return _schema(tuple(kinds))


def node(value: object, *path: str) -> JsonObject:
    """The object at `path` in a JSON Schema letta-apply writes itself (its own file, the
    kinds' fragments): not an object there is a bug in letta-apply, raised as such."""
    for key in path:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        raise TypeError(f"the manifest schema has no object at {'/'.join(path)}")
    return value


@cache
def _schema(kinds: tuple[Section, ...]) -> JsonObject:
    out = copy.deepcopy(base_schema())
    defs = node(out, "$defs")
    for k in kinds:
        fragment = k.schema()
        node(out, "properties")[k.section] = fragment["section"]
        defs.update(node(fragment, "$defs"))
        # ignore_changes names the fields the kind manages in place: a field whose change
        # replaces the resource, or one never compared, cannot be ignored. A kind that lists the
        # fields it honours (a folder's embedding is never compared, its files are not
        # "changes") keeps its list.
        ignorable = [f.name for f in k.fields if f.policy not in ("replace", "create")]
        ignore_changes = node(defs, k.name, "properties", "ignore_changes")
        node(ignore_changes.setdefault("items", {})).setdefault("enum", ignorable)
    # Addresses and ids name any kind: `(KINDS)` in the shared part stands for their names.
    names = "|".join(k.name for k in kinds)
    for where in (node(defs, "address"), node(defs, "import", "properties", "id")):
        where["pattern"] = text(where["pattern"]).replace("(KINDS)", f"({names})")
    return out


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regexes, where a final `$` matches only at the very end;
    # Python's `$` also matches before a final newline ("stack: 'prod\n'" would pass).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: object, patrn: str, instance: object, _schema: Mapping[str, object]
) -> Iterator[jsonschema.ValidationError]:
    # The "string" type of Draft 2020-12 is a Python str: checked as such.
    if isinstance(instance, str) and not _regex(patrn).search(instance):
        from jsonschema import ValidationError

        yield ValidationError(f"{clip(instance)} does not match {patrn!r}")


class _Checker(Protocol):
    """What is used of a jsonschema validator: it checks any data (a manifest of the wrong
    shape is reported, not refused)."""

    def iter_errors(self, instance: object) -> Iterator[jsonschema.ValidationError]: ...


@cache
def _validator(kinds: tuple[Section, ...]) -> _Checker:
    import jsonschema

    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"pattern": _pattern}
    )
    checker: _Checker = cls(_schema(kinds))  # extend() is untyped: typed here by its use
    return checker


class _RsPattern:
    """`pattern` for the compiled validator, as `_pattern` says it: Python's regexes (its own
    differ, in what `\\s` matches for one), so that both validators agree on every string."""

    def __init__(self, parent: object, value: str, path: object) -> None:
        self.regex = _regex(value)

    def validate(self, instance: object) -> None:
        if isinstance(instance, str) and not self.regex.search(instance):
            raise ValueError("does not match")


@cache
def _fast_validator(kinds: tuple[Section, ...]) -> Callable[[object], bool] | None:
    if jsonschema_rs is None:
        return None
    checker = jsonschema_rs.Draft202012Validator(_schema(kinds), keywords={"pattern": _RsPattern})
    return checker.is_valid


def _surely_valid(data: object, kinds: tuple[Section, ...]) -> bool:
    """Whether the compiled validator finds no error in `data`: then jsonschema finds none
    either, and its much slower walk is skipped. When it finds one (or cannot read the data),
    jsonschema's walk finds and words every error, as it always has."""
    fast = _fast_validator(kinds)
    if fast is None:
        return False
    try:
        return fast(data)
    except Exception:  # data it cannot convert (a lone surrogate, a huge integer): the long way
        return False


def schema_diagnostics(
    doc: Document, kinds: tuple[Section, ...], unknown: Collection[Path_] = ()
) -> list[Diagnostic]:
    """The schema's errors, but those that values not known yet may turn out not to have (a
    placeholder of its type stands at each path of `unknown`)."""
    out: list[Diagnostic] = []
    if _surely_valid(doc.data, kinds):
        return out
    for err in _validator(kinds).iter_errors(doc.data):
        if not unknown or certain(err, unknown):
            out.extend(explain(doc, err))
    return out


def _entries(doc: Document, kinds: Sequence[Section]) -> dict[str, Entry]:
    """Each declared resource as written, and where (policy rules read them)."""
    data = obj(doc.data)
    out: dict[str, Entry] = {}
    for k in kinds:
        section = data.get(k.section)
        for key, value in section.items() if isinstance(section, dict) else ():
            if isinstance(value, dict):
                pos = doc.where((k.section, key), key=True)
                out[f"{k.name}.{key}"] = Entry(value, pos.file or doc.file, pos.line, pos.col)
    return out


def _policy(doc: Document) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """`policy:`: its files resolved against the manifest file naming them, and the addresses
    whose deletion may lose agent-written memory."""
    policy = obj(doc.data).get("policy")
    if not isinstance(policy, dict):
        return (), ()
    files, allowed = policy.get("files"), policy.get("allow_memory_loss")
    base = Path(doc.file_of(("policy",))).resolve().parent
    return (
        tuple(str(base / f) for f in files if isinstance(f, str))
        if isinstance(files, list)
        else (),
        tuple(a for a in allowed if isinstance(a, str)) if isinstance(allowed, list) else (),
    )


def _desired(doc: Document, kinds: Sequence[Section]) -> Desired:
    """The desired state of a manifest that passed every check: each kind declares its own."""
    data = obj(doc.data)
    policies, allow_memory_loss = _policy(doc)
    desired = Desired(
        stack=text(data["stack"]),
        resources={k.name: k.declare(doc, data) for k in kinds},
        imports=tuple(
            Import(text(i["to"]), opt_text(i.get("id")), opt_text(i.get("name")))
            for i in objs(data.get("imports"))
        ),
        moved={text(m["from"]): text(m["to"]) for m in objs(data.get("moved"))},
        removed=tuple(dict.fromkeys(text(r["from"]) for r in objs(data.get("removed")))),
        entries=_entries(doc, kinds),
        policies=policies,
        allow_memory_loss=allow_memory_loss,
    )
    for k in kinds:
        desired = k.resolve(desired)
    return desired


def validate(
    doc: Document,
    kinds: Iterable[Section],
    reported: Sequence[Diagnostic] = (),
    quiet: Collection[Place] = (),
) -> Desired:
    """Validate a loaded manifest of `kinds` (letta_apply.kinds.KINDS) and return its desired
    state, or raise ManifestError with every problem found (see `check`)."""
    kinds = tuple(kinds)
    check(doc, kinds, reported, quiet)
    return _desired(doc, kinds)


def check(
    doc: Document,
    kinds: Iterable[Section],
    reported: Sequence[Diagnostic] = (),
    quiet: Collection[Place] = (),
    unknown: Mapping[Path_, object] | None = None,
) -> None:
    """Raise ManifestError with every problem found in a loaded manifest: `reported`, those found
    while loading it, and the checks' own. A check's problem at a place `reported` already
    names, or at a place in `quiet` (a value loading left empty for a problem reported
    elsewhere, or not known yet), is the same problem seen again, or one that cannot be told
    yet: left out. `unknown` gives the paths of values not known yet whose type is
    (manifest.unknown), each with a placeholder of that type: the schema check sees those,
    and reports their type errors."""
    unknown = unknown or {}
    typed = {(p.file or doc.file, p.line, p.col) for p in map(doc.where, unknown)}
    named = {(d.file, d.line, d.col) for d in reported}
    kinds = tuple(kinds)
    with placeholders(doc.data, unknown):
        found = schema_diagnostics(doc, kinds, set(unknown))
    errors = [d for d in found if (d.file, d.line, d.col) not in named | (set(quiet) - typed)]
    taken = named | set(quiet)
    # A semantic error where the schema already reported one is the same problem seen twice
    # (a label that is too long for both, say): keep the schema's.
    taken |= {(d.file, d.line, d.col) for d in errors}
    errors += [d for d in semantic(doc, kinds) if (d.file, d.line, d.col) not in taken]
    if errors or reported:
        raise ManifestError([*dict.fromkeys(reported), *_once(errors)])


_INSTANCE_INDEX = re.compile(r'\[(?:\d+|"(?:[^"\\]|\\.)*")\]')


def _once(errors: list[Diagnostic]) -> list[Diagnostic]:
    """Each problem once: the instances of a `for_each` or `count` template share the positions
    of the template, so the same mistake would otherwise be reported once per instance."""
    seen: set[tuple[str, int, int, str]] = set()
    out = []
    for d in errors:
        key = (d.file, d.line, d.col, _INSTANCE_INDEX.sub("[*]", d.message))
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out
