"""What a schema error means for the person who wrote the manifest: each error jsonschema
reports becomes one located diagnostic in plain words (an unknown key with a did-you-mean, a
missing field, a wrong type, a value out of bounds...)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING

from ..core.jsonish import obj
from ..errors import Diagnostic
from .files import Document, Path_, clip
from .files import where as _where

if TYPE_CHECKING:  # imported where a schema error is explained: a valid manifest has none
    import jsonschema

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


def certain(err: jsonschema.ValidationError, unknown: Collection[Path_]) -> bool:
    """Whether `err` stands whatever the values at `unknown` turn out to be: there, only a type
    error does (their type is known); where one alternative of an anyOf or oneOf may hold,
    nothing does."""
    if err.validator in ("anyOf", "oneOf") and err.context:
        alternatives: dict[str | int, list[jsonschema.ValidationError]] = {}
        for sub in err.context:
            alternatives.setdefault(sub.relative_schema_path[0], []).append(sub)
        return all(any(certain(s, unknown) for s in subs) for subs in alternatives.values())
    path = tuple(err.absolute_path)
    if any(path[: len(u)] == u for u in unknown):
        return err.validator == "type" and path in unknown
    return True


def _leaf(err: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """The most specific error under `err`: the one reported rather than "is not valid under
    any of the schemas"."""
    if err.validator in ("anyOf", "oneOf", "allOf") and err.context:
        from jsonschema.exceptions import best_match

        return _leaf(best_match(err.context))
    return err


def explain(doc: Document, err: jsonschema.ValidationError) -> list[Diagnostic]:
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
    step = _EXPLAIN.get(str(err.validator))
    found = step(doc, err, path) if step else None
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
    from .validate import base_schema  # validate builds on this module

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


_Explain = Callable[[Document, "jsonschema.ValidationError", Path_], list[Diagnostic] | None]
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
