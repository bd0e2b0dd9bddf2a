"""Check a loaded manifest against `schemas/manifest.schema.json`, then the rules a schema cannot
say, and turn it into the desired state. Every problem is reported at once, with its position:
schema errors and semantic errors together, one diagnostic per position."""

from __future__ import annotations

import copy
import difflib
import json
import re
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from ..core import jsonish
from ..core.model import LOCK_KEY, LOCK_LABEL, RESERVED_TAG_PREFIXES, Desired, Import
from ..errors import Diagnostic, ManifestError
from .files import Document, Path_, Place, clip
from .files import where as _where
from .sections import Section
from .unknown import placeholders

BASE_SCHEMA = Path(__file__).parent / "schemas" / "base.schema.json"

# Invalid in any string sent to Letta: PostgreSQL text and jsonb refuse NUL, and a lone surrogate
# cannot be encoded as UTF-8.
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


@cache
def base_schema() -> dict[str, Any]:
    """The shared part of the manifest's JSON Schema, without any kind's section."""
    with BASE_SCHEMA.open(encoding="utf-8") as f:
        out: dict[str, Any] = json.load(f)
    return out


def schema(kinds: Iterable[Section]) -> dict[str, Any]:
    """The manifest's JSON Schema (2020-12): the shared part, and each kind's section and
    definitions (see letta_apply.kinds)."""
    return _schema(tuple(kinds))


@cache
def _schema(kinds: tuple[Section, ...]) -> dict[str, Any]:
    out = copy.deepcopy(base_schema())
    for k in kinds:
        fragment = k.schema()
        out["properties"][k.section] = fragment["section"]
        out["$defs"].update(fragment["$defs"])
        # ignore_changes names the fields the kind manages in place: a field whose change
        # replaces the resource, or one never compared, cannot be ignored. A kind that lists the
        # fields it honours (a folder's embedding is never compared, its files are not
        # "changes") keeps its list.
        ignorable = [f.name for f in k.fields if f.policy not in ("replace", "create")]
        items = out["$defs"][k.name]["properties"]["ignore_changes"].setdefault("items", {})
        items.setdefault("enum", ignorable)
    # Addresses and ids name any kind: `(KINDS)` in the shared part stands for their names.
    names = "|".join(k.name for k in kinds)
    for where in (out["$defs"]["address"], out["$defs"]["import"]["properties"]["id"]):
        where["pattern"] = where["pattern"].replace("(KINDS)", f"({names})")
    return out


@cache
def _regex(pattern: str) -> re.Pattern[str]:
    # JSON Schema patterns are ECMA-262 regexes, where a final `$` matches only at the very end;
    # Python's `$` also matches before a final newline ("stack: 'prod\n'" would pass).
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def _pattern(
    validator: Any, patrn: str, instance: Any, _schema: dict[str, Any]
) -> Iterator[jsonschema.ValidationError]:
    if validator.is_type(instance, "string") and not _regex(patrn).search(instance):
        yield jsonschema.ValidationError(f"{clip(instance)} does not match {patrn!r}")


@cache
def _validator(kinds: tuple[Section, ...]) -> Any:
    cls = jsonschema.validators.extend(  # type: ignore[no-untyped-call]
        jsonschema.Draft202012Validator, {"pattern": _pattern}
    )
    return cls(_schema(kinds))


_TYPE_NAMES = {
    "string": "a string",
    "object": "a mapping",
    "array": "a list",
    "integer": "an integer",
    "boolean": "true or false",
    "number": "a number",
    "null": "null",
}


def _json_type(value: Any) -> str:
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


def _show(value: Any) -> str:
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
    for err in _validator(kinds).iter_errors(doc.data):
        if not unknown or _certain(err, unknown):
            out.extend(_explain(doc, err))
    return out


def _certain(err: jsonschema.ValidationError, unknown: Collection[Path_]) -> bool:
    """Whether `err` stands whatever the values at `unknown` turn out to be: there, only a type
    error does (their type is known); where one alternative of an anyOf or oneOf may hold,
    nothing does."""
    if err.validator in ("anyOf", "oneOf") and err.context:
        alternatives: dict[Any, list[jsonschema.ValidationError]] = {}
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
    err = _leaf(err)
    path: Path_ = tuple(err.absolute_path)
    where = _where(path)
    kind = err.validator
    inst = err.instance
    rule = err.validator_value
    if "propertyNames" in err.schema_path:
        # The instance is the offending key (jsonschema puts no key in the path): point at it.
        return [
            doc.diag(
                (*path, str(inst)),
                f"{where}: invalid key {clip(str(inst))}: keys use letters, digits, '_' and "
                "'-', start with a letter or '_', at most 100 characters",
                code="LA301",
                key=True,
            )
        ]
    if kind == "additionalProperties" and isinstance(inst, dict):
        props = err.schema.get("properties", {}) if isinstance(err.schema, dict) else {}
        allowed = sorted(props)
        out = []
        for key in inst:
            if key in allowed:
                continue
            hint = difflib.get_close_matches(key, allowed, n=1)
            suggestion = (
                f"; did you mean '{hint[0]}'?" if hint else f" (allowed: {', '.join(allowed)})"
            )
            out.append(
                doc.diag(
                    (*path, key),
                    f"{where}: unknown key {clip(key)}{suggestion}",
                    code="LA302",
                    key=True,
                )
            )
        return out
    if kind == "required" and isinstance(rule, list):
        missing = [k for k in rule if isinstance(inst, dict) and k not in inst]
        return [
            doc.diag(path, f"{where}: missing required key '{k}'", code="LA303", key=True)
            for k in missing
        ]
    if kind == "type":
        wanted = [str(t) for t in (rule if isinstance(rule, list) else [rule])]
        names = [_TYPE_NAMES.get(t, t) for t in wanted]
        message = f"{where}: expected {' or '.join(names)}, got {_json_type(inst)}"
        if "a string" in names and isinstance(inst, (bool, int, float)):
            message += "; quote it to make it a string"
        return [doc.diag(path, message, code="LA304")]
    if kind == "const":
        if path == ("version",):
            problem = (
                f"write it as a number: version: {rule}"
                if isinstance(inst, str)
                else f"unsupported manifest version {_show(inst)}; this letta-apply reads "
                f"version {rule}"
            )
            return [doc.diag(path, f"version: {problem}", code="LA305")]
        return [doc.diag(path, f"{where}: must be {_show(rule)}, got {_show(inst)}", code="LA306")]
    if kind == "pattern":
        field = path[-1] if path else ""
        code = "LA309"
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
        elif rule in (base_schema()["$defs"][k]["pattern"] for k in _KEY_PATTERNS):
            code = "LA301"
            what = (
                f"invalid key {clip(str(inst))}: keys use letters, digits, '_' and '-', start "
                "with a letter or '_', at most 100 characters"
            )
        else:
            what = f"invalid value {clip(str(inst))}: must match {rule}"
        return [doc.diag(path, f"{where}: {what}", code=code)]
    if kind == "minLength" and rule == 1:
        return [doc.diag(path, f"{where}: must not be empty", code="LA310")]
    if kind in ("minLength", "maxLength") and isinstance(rule, int):
        bound = "at least" if kind == "minLength" else "at most"
        size = len(inst) if isinstance(inst, str) else 0
        message = f"{where}: must be {bound} {_characters(rule)}, got {size}"
        return [doc.diag(path, message, code="LA311")]
    if kind in ("minimum", "maximum"):
        bound = "at least" if kind == "minimum" else "at most"
        return [doc.diag(path, f"{where}: must be {bound} {rule}, got {_show(inst)}", code="LA312")]
    if kind == "uniqueItems" and isinstance(inst, list):
        firsts: dict[str, int] = {}  # each item's JSON, typed: linear in the list's length
        for i, item in enumerate(inst):
            first = firsts.setdefault(_identity(item), i)
            if first != i:
                line = doc.where((*path, first)).line
                return [
                    doc.diag(
                        (*path, i),
                        f"{where}[{i}]: {_show(item)} is listed twice (first at line {line})",
                        code="LA313",
                    )
                ]
        return [doc.diag(path, f"{where}: items must be unique", code="LA313")]
    if kind == "not" and path and path[-1] in ("metadata", "properties") and isinstance(inst, dict):
        return [
            doc.diag(
                (*path, "letta_apply"),
                f"{where}: the key 'letta_apply' is reserved for letta-apply's ownership marks",
                code="LA314",
                key=True,
            )
        ]
    message = err.message if len(err.message) <= 200 else err.message[:197] + "..."
    return [doc.diag(path, f"{where}: {message}", code="LA315")]


def _identity(value: Any) -> str:
    """A text equal for two values exactly when JSON says they are equal (true is not 1, 1 is
    1.0, keys in any order)."""

    def typed(v: Any) -> Any:
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


def _strings(value: Any, path: Path_) -> Iterator[tuple[Path_, str, bool]]:
    """Every string in `value`, keys included: (path, text, is_key)."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k), k, True
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _semantic(doc: Document, kinds: Sequence[Section]) -> list[Diagnostic]:
    """The rules a schema cannot say. Written to run on manifests the schema rejected too (parts
    of the wrong shape are skipped), so that every problem is reported in one run."""
    data = _mapping(doc.data)
    errors: list[Diagnostic] = []

    for at, text, is_key in _strings(data, ()):
        m = _BAD_CHAR.search(text)
        if m:
            nul = m.group() == "\x00"
            what = "a NUL character" if nul else "a lone surrogate (invalid Unicode)"
            errors.append(
                doc.diag(
                    at,
                    f"{_where(at)}: {'key ' if is_key else ''}contains {what}; Letta cannot "
                    "store it",
                    code="LA320",
                    key=is_key,
                )
            )

    errors += _lifecycle(doc, data, kinds)
    errors += _reserved(doc, data, kinds)
    for k in kinds:
        errors += k.check(doc, data)
    return errors


def _reserved(doc: Document, data: dict[str, Any], kinds: Sequence[Section]) -> list[Diagnostic]:
    """Tags, labels and metadata keys letta-apply reserves for its marks and its lock, in the
    entries of the kinds whose resources carry the stack's tag; and the keys of its own blocks'
    addresses."""
    labels = {LOCK_LABEL, *(label for k in kinds for label in k.reserved_labels)}
    addresses = {a for k in kinds for a in k.reserved_addresses}
    tagged = {k.section for k in kinds if k.tagged}
    errors: list[Diagnostic] = []
    for at, text, is_key in _strings(data, ()):
        fields = [p for p in at if isinstance(p, str)]
        if len(fields) < 3 or fields[0] not in tagged:
            continue
        what = code = None
        if not is_key and "tags" in fields[2:] and text.startswith(RESERVED_TAG_PREFIXES):
            what = f"tag {clip(text)} is reserved for letta-apply's marks and stack lock"
            code = "LA325"
        elif not is_key and fields[-1] == "label" and text in labels:
            what = f"label {clip(text)} is reserved for letta-apply's stack lock"
            code = "LA326"
        elif is_key and fields[-2] == "metadata" and text == LOCK_KEY:  # MARK_KEY: the schema
            what = f"the key {clip(text)} is reserved for letta-apply's stack lock"
            code = "LA327"
        if what and code:
            errors.append(doc.diag(at, f"{_where(at)}: {what}", code=code, key=is_key))
    for k in kinds:
        for key, spec in _mapping(data.get(k.section)).items():
            entry: Path_ = (k.section, key)
            if "label" in k.key_fields and "label" not in _mapping(spec) and key in labels:
                errors.append(
                    doc.diag(
                        entry,
                        f"{_where(entry)}: label {clip(key)} (the key) is reserved for "
                        "letta-apply's stack lock; set another 'label'",
                        code="LA329",
                        key=True,
                    )
                )
            elif f"{k.name}.{key}" in addresses:
                errors.append(
                    doc.diag(
                        entry,
                        f"{_where(entry)}: the key {clip(key)} is reserved for letta-apply's own "
                        "bookkeeping block of that name; use another key",
                        code="LA328",
                        key=True,
                    )
                )
    return errors


def _lifecycle(doc: Document, data: dict[str, Any], kinds: Sequence[Section]) -> list[Diagnostic]:
    """`imports:` and `moved:` name declared addresses, each at most once; `removed:` names
    addresses no longer declared."""
    errors: list[Diagnostic] = []

    def err(path: Path_, message: str, code: str) -> None:
        errors.append(doc.diag(path, f"{_where(path)}: {message}", code=code))

    by_name = {k.name: k for k in kinds}
    declared = {f"{k.name}.{key}" for k in kinds for key in _mapping(data.get(k.section))}
    targets: dict[str, Path_] = {}

    def claim(address: str, at: Path_, what: str) -> None:
        if address in targets:
            first = targets[address]
            err(
                at,
                f"{address} is already the target of {_where(first)} ({doc.at(first, at)}); {what}",
                "LA331",
            )
        else:
            targets[address] = at

    for i, imp in enumerate(_list(data.get("imports"))):
        if not isinstance(imp, dict) or not isinstance(imp.get("to"), str):
            continue
        to = imp["to"]
        if to not in declared:
            err(("imports", i, "to"), f"{to} is not declared in the manifest", "LA330")
            continue
        claim(to, ("imports", i, "to"), "import it once")
        k = by_name[to.split(".", 1)[0]]
        rid = imp.get("id")
        if isinstance(rid, str) and not rid.startswith(k.id_prefix):
            prefix = f"{to} is a {k.name}: its id starts with '{k.id_prefix}'"
            err(("imports", i, "id"), prefix, "LA332")
        if "name" in imp and not k.import_by_name:
            err(("imports", i, "name"), f"{k.section} are imported by id, not by name", "LA333")

    moved_from: set[str] = set()
    for i, mv in enumerate(_list(data.get("moved"))):
        if not isinstance(mv, dict):
            continue
        src, dst = mv.get("from"), mv.get("to")
        if not isinstance(src, str) or not isinstance(dst, str):
            continue
        if src.split(".", 1)[0] != dst.split(".", 1)[0]:
            kept = f"cannot move {src} to {dst}: a move keeps the kind of resource"
            err(("moved", i), kept, "LA334")
            continue
        if src in declared:
            gone = f"{src} is still declared; a move renames a key that is gone"
            err(("moved", i, "from"), gone, "LA335")
        if dst not in declared:
            err(("moved", i, "to"), f"{dst} is not declared in the manifest", "LA330")
        if src in moved_from:
            err(("moved", i, "from"), f"{src} is moved twice", "LA336")
        moved_from.add(src)
        claim(dst, ("moved", i, "to"), "a resource is imported or moved into it once")

    removed: set[str] = set()
    for i, rm in enumerate(_list(data.get("removed"))):
        src = rm.get("from") if isinstance(rm, dict) else None
        if not isinstance(src, str):
            continue
        at: Path_ = ("removed", i, "from")
        if src in declared:
            err(at, f"{src} is still declared; `removed:` lets go of a key the manifest no "
                "longer declares (delete its entry, or this one)", "LA337")  # fmt: skip
        elif src in moved_from:
            err(at, f"{src} is also moved; a resource is either moved or removed", "LA338")
        elif src in removed:
            err(at, f"{src} is removed twice", "LA339")
        removed.add(src)
    return errors


def _desired(doc: Document, kinds: Sequence[Section]) -> Desired:
    """The desired state of a manifest that passed every check: each kind declares its own."""
    data = jsonish.obj(doc.data)
    desired = Desired(
        stack=jsonish.text(data["stack"]),
        resources={k.name: k.declare(doc, data) for k in kinds},
        imports=tuple(
            Import(
                jsonish.text(i["to"]),
                jsonish.opt_text(i.get("id")),
                jsonish.opt_text(i.get("name")),
            )
            for i in jsonish.objs(data.get("imports"))
        ),
        moved={
            jsonish.text(m["from"]): jsonish.text(m["to"]) for m in jsonish.objs(data.get("moved"))
        },
        removed=tuple(
            dict.fromkeys(jsonish.text(r["from"]) for r in jsonish.objs(data.get("removed")))
        ),
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
    unknown: Mapping[Path_, Any] | None = None,
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
    errors += [d for d in _semantic(doc, kinds) if (d.file, d.line, d.col) not in taken]
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
