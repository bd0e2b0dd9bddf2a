"""Check a loaded manifest against `schemas/manifest.schema.json`, then the rules a schema cannot
say, and turn it into the desired state. Every problem is reported at once, with its position:
schema errors and semantic errors together, one diagnostic per position."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Protocol

import jsonschema

try:  # a compiled validator, when installed: it only says whether a manifest is valid, fast
    import jsonschema_rs
except ImportError:  # pragma: no cover - a dependency; without it every check takes the long way
    jsonschema_rs = None  # type: ignore[assignment]

from ..core.jsonish import JsonObject, obj, objs, opt_text, text
from ..core.model import Desired, Import
from ..errors import Diagnostic, ManifestError
from .files import Document, Path_, Place, clip
from .files import where as _where
from .sections import Section
from .semantic import semantic
from .unknown import placeholders

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
        yield jsonschema.ValidationError(f"{clip(instance)} does not match {patrn!r}")


class _Checker(Protocol):
    """What is used of a jsonschema validator: it checks any data (a manifest of the wrong
    shape is reported, not refused)."""

    def iter_errors(self, instance: object) -> Iterator[jsonschema.ValidationError]: ...


@cache
def _validator(kinds: tuple[Section, ...]) -> _Checker:
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


_TYPE_NAMES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
    "null": "null",
}


def _json_type(value: object) -> str:
    if value is None:
        return "null (an empty value)"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    return "a mapping"


def _show(value: object) -> str:
    """A value for a message, cut short."""
    if isinstance(value, str):
        return clip(value)
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _characters(n: int) -> str:
    return f"{n} character" + ("" if n == 1 else "s")


_KEY_PATTERNS = ("key", "instanceKey", "instanceRef")  # reported as an invalid key


def _schema_diagnostics(
    doc: Document, kinds: tuple[Section, ...], unknown: Collection[Path_] = ()
) -> list[Diagnostic]:
    """The schema's errors, but those that values not known yet may turn out not to have (a
    placeholder of its type stands at each path of `unknown`)."""
    out: list[Diagnostic] = []
    if _surely_valid(doc.data, kinds):
        return out
    for err in _validator(kinds).iter_errors(doc.data):
        if not unknown or _certain(err, unknown):
            out.extend(_explain(doc, err))
    return out


def _certain(err: jsonschema.ValidationError, unknown: Collection[Path_]) -> bool:
    """Whether `err` stands whatever the values at `unknown` turn out to be: there, only a type
    error does (their type is known); where one alternative of an anyOf or oneOf may hold,
    nothing does."""
    if err.validator in ("anyOf", "oneOf") and err.context:
        alternatives: dict[str | int, list[jsonschema.ValidationError]] = {}
        for sub in err.context:
            alternatives.setdefault(sub.relative_schema_path[0], []).append(sub)
        return all(any(_certain(s, unknown) for s in subs) for subs in alternatives.values())
    path = tuple(err.absolute_path)
    if any(path[: len(u)] == u for u in unknown):
        return err.validator == "type" and path in unknown
    return True


def _leaf(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific error under `err`: the one reported rather than "is not valid under
    any of the schemas"."""
    if err.validator in ("anyOf", "oneOf", "allOf") and err.context:
        return _leaf(jsonschema.exceptions.best_match(err.context))
    return err


def _explain(doc: Document, err: jsonschema.ValidationError) -> list[Diagnostic]:
    """The diagnostics for one schema error, worded for the rule it breaks (a generic one,
    LA315, where no wording fits)."""
    err = _leaf(err)
    path: Path_ = tuple(err.absolute_path)
    if "propertyNames" in err.schema_path:
        # The instance is the offending key (jsonschema puts no key in the path): point at it.
        return [
            doc.diag(
                (*path, str(err.instance)),
                f"{_where(path)}: invalid key {clip(str(err.instance))}: keys use letters, "
                "digits, '_' and '-', start with a letter or '_', at most 100 characters",
                code="LA301",
                key=True,
            )
        ]
    explain = _EXPLAIN.get(str(err.validator))
    found = explain(doc, err, path) if explain else None
    if found is not None:
        return found
    message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    return [doc.diag(path, f"{_where(path)}: {message}", code="LA315")]


def _unknown_keys(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    if not isinstance(inst, dict):
        return None
    allowed = sorted(obj(obj(err.schema).get("properties")))
    out = []
    for key in inst:
        if key in allowed:
            continue
        hint = difflib.get_close_matches(key, allowed, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
        out.append(
            doc.diag(
                (*path, key),
                f"{_where(path)}: unknown key {clip(key)}{suggestion}",
                code="LA302",
                key=True,
            )
        )
    return out


def _required(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    rule: object = err.validator_value
    if not isinstance(rule, list):
        return None
    missing = [k for k in rule if isinstance(inst, dict) and k not in inst]
    return [
        doc.diag(path, f"{_where(path)}: missing required key '{k}'", code="LA303", key=True)
        for k in missing
    ]


def _wrong_type(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    rule: object = err.validator_value
    wanted = [str(t) for t in (rule if isinstance(rule, list) else [rule])]
    names = [_TYPE_NAMES.get(t, t) for t in wanted]
    message = f"{_where(path)}: expected {' or '.join(names)}, got {_json_type(inst)}"
    if "a string" in names and isinstance(inst, (bool, int, float)):
        message += "; quote it to make it a string"
    return [doc.diag(path, message, code="LA304")]


def _not_const(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    rule: object = err.validator_value
    if path == ("version",):
        problem = (
            f"write it as a number: version: {rule}"
            if isinstance(inst, str)
            else f"unsupported manifest version {_show(inst)}; this letta-apply reads "
            f"version {rule}"
        )
        return [doc.diag(path, f"version: {problem}", code="LA305")]
    message = f"{_where(path)}: must be {_show(rule)}, got {_show(inst)}"
    return [doc.diag(path, message, code="LA306")]


def _no_match(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    rule: object = err.validator_value
    field = path[-1] if path else ""
    code = "LA309"
    key_patterns = [obj(obj(base_schema()["$defs"]).get(k)).get("pattern") for k in _KEY_PATTERNS]
    if field == "stack":
        code = "LA307"
        what = (
            f"invalid stack name {clip(str(inst))}: use lowercase letters, digits, '_', '.' "
            "and '-', starting with a letter or digit, at most 63 characters"
        )
    elif field in ("model", "embedding"):
        code = "LA308"
        what = (
            f"invalid {field} handle {clip(str(inst))}: write it as provider/model, e.g. "
            "letta/letta-free"
        )
    elif rule in key_patterns:
        code = "LA301"
        what = (
            f"invalid key {clip(str(inst))}: keys use letters, digits, '_' and '-', start "
            "with a letter or '_', at most 100 characters"
        )
    else:
        what = f"invalid value {clip(str(inst))}: must match {rule}"
    return [doc.diag(path, f"{_where(path)}: {what}", code=code)]


def _length(doc: Document, err: jsonschema.ValidationError, path: Path_) -> list[Diagnostic] | None:
    inst: object = err.instance
    rule: object = err.validator_value
    if err.validator == "minLength" and rule == 1:
        return [doc.diag(path, f"{_where(path)}: must not be empty", code="LA310")]
    if not isinstance(rule, int):
        return None
    bound = "at least" if err.validator == "minLength" else "at most"
    size = len(inst) if isinstance(inst, str) else 0
    message = f"{_where(path)}: must be {bound} {_characters(rule)}, got {size}"
    return [doc.diag(path, message, code="LA311")]


def _bound(doc: Document, err: jsonschema.ValidationError, path: Path_) -> list[Diagnostic] | None:
    bound = "at least" if err.validator == "minimum" else "at most"
    message = f"{_where(path)}: must be {bound} {err.validator_value}, got {_show(err.instance)}"
    return [doc.diag(path, message, code="LA312")]


def _not_unique(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    inst: object = err.instance
    if not isinstance(inst, list):
        return None
    firsts: dict[str, int] = {}  # each item's JSON, typed: linear in the list's length
    for i, item in enumerate(inst):
        first = firsts.setdefault(_identity(item), i)
        if first != i:
            line = doc.where((*path, first)).line
            return [
                doc.diag(
                    (*path, i),
                    f"{_where(path)}[{i}]: {_show(item)} is listed twice (first at line {line})",
                    code="LA313",
                )
            ]
    return [doc.diag(path, f"{_where(path)}: items must be unique", code="LA313")]


def _reserved_key(
    doc: Document, err: jsonschema.ValidationError, path: Path_
) -> list[Diagnostic] | None:
    if not (path and path[-1] in ("metadata", "properties") and isinstance(err.instance, dict)):
        return None
    return [
        doc.diag(
            (*path, "letta_apply"),
            f"{_where(path)}: the key 'letta_apply' is reserved for letta-apply's ownership marks",
            code="LA314",
            key=True,
        )
    ]


_Explain = Callable[[Document, jsonschema.ValidationError, Path_], list[Diagnostic] | None]
# By the schema keyword an error breaks; None from one: no wording fits, the generic one is used.
_EXPLAIN: dict[str, _Explain] = {
    "additionalProperties": _unknown_keys,
    "required": _required,
    "type": _wrong_type,
    "const": _not_const,
    "pattern": _no_match,
    "minLength": _length,
    "maxLength": _length,
    "minimum": _bound,
    "maximum": _bound,
    "uniqueItems": _not_unique,
    "not": _reserved_key,
}


def _identity(value: object) -> str:
    """A text equal for two values exactly when JSON says they are equal (true is not 1, 1 is
    1.0, keys in any order)."""

    def typed(v: object) -> object:
        if isinstance(v, bool) or v is None or isinstance(v, str):
            return [type(v).__name__, v]
        if isinstance(v, (int, float)):
            return ["number", v if isinstance(v, int) or not v.is_integer() else int(v)]
        if isinstance(v, list):
            return ["list", [typed(x) for x in v]]
        if isinstance(v, dict):
            return ["map", sorted([k, typed(x)] for k, x in v.items())]
        return ["other", repr(v)]

    return json.dumps(typed(value), ensure_ascii=False)


def _desired(doc: Document, kinds: Sequence[Section]) -> Desired:
    """The desired state of a manifest that passed every check: each kind declares its own."""
    data = obj(doc.data)
    desired = Desired(
        stack=text(data["stack"]),
        resources={k.name: k.declare(doc, data) for k in kinds},
        imports=tuple(
            Import(text(i["to"]), opt_text(i.get("id")), opt_text(i.get("name")))
            for i in objs(data.get("imports"))
        ),
        moved={text(m["from"]): text(m["to"]) for m in objs(data.get("moved"))},
        removed=tuple(dict.fromkeys(text(r["from"]) for r in objs(data.get("removed")))),
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
        found = _schema_diagnostics(doc, kinds, set(unknown))
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
