"""The manifest's JSON Schema as published for editors (`schemas/manifest.schema.json`).

letta-apply checks a manifest after its variables are resolved (`validate.schema`), but an
editor sees the files as written, where any value may still be a reference: `stack:
support-${var.env}`, `limit: ${var.limit}`, `tags: ${var.tags}`. The published schema is the same
schema with a reference accepted wherever the language resolves one (every value outside
`variables:` and `version`; never in keys), so that an editor flags real mistakes only.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from functools import cache
from typing import Any

from .sections import Section
from .validate import base_schema, schema

# Any string holding a reference: precise enough for an editor, which only needs to know that the
# value is resolved later (letta-apply itself checks the resolved value).
REFERENCE = {
    "type": "string",
    "pattern": r"\$\{",
    "description": "A reference (${var.NAME}, ${env.NAME}, ${each.key}, ${each.value}, "
    "${count.index}), resolved before the manifest is checked.",
}
_REFERENCE_REF = {"$ref": "#/$defs/reference"}
# Annotations an editor shows on hover: kept on the outside of a wrapped value.
_ANNOTATIONS = ("title", "description", "markdownDescription", "default", "examples")
# Constraints a string holding a reference could fail.
_STRING_LIMITS = ("pattern", "enum", "const", "format", "maxLength")
_CONSTRAINTS = ("type", "$ref", "enum", "const", "anyOf", "oneOf", "allOf", "not")
# Not interpolated: the format version, and the variables themselves.
_AS_WRITTEN = ("version", "variables")


def manifest_schema_id() -> str:
    """The published schema's stable `$id`, the URL editors and the modeline
    `# yaml-language-server: $schema=...` name."""
    return str(base_schema()["$id"])


def published_schema(kinds: Iterable[Section]) -> dict[str, Any]:
    """The manifest's schema of `kinds` (letta_apply.kinds.KINDS) for files as written:
    references accepted in every value."""
    return _published(tuple(kinds))


@cache
def _published(kinds: tuple[Section, ...]) -> dict[str, Any]:
    resolved = schema(kinds)
    out = copy.deepcopy(resolved)
    for name, prop in out["properties"].items():
        if name not in _AS_WRITTEN:
            _walk(prop, resolved)
            out["properties"][name] = _with_references(prop, resolved)
    for name, definition in out["$defs"].items():
        if name != "variable":
            _walk(definition, resolved)
    out["$defs"]["reference"] = REFERENCE
    return out


def _walk(node: Any, resolved: dict[str, Any]) -> None:
    """Accept references in every value position below `node` (in place)."""
    if not isinstance(node, dict):
        return
    for key in ("properties", "patternProperties"):
        for name, sub in node.get(key, {}).items():
            _walk(sub, resolved)
            node[key][name] = _with_references(sub, resolved)
    for key in ("additionalProperties", "items"):
        if isinstance(node.get(key), dict):
            _walk(node[key], resolved)
            node[key] = _with_references(node[key], resolved)
    for i, sub in enumerate(node.get("prefixItems", ())):
        _walk(sub, resolved)
        node["prefixItems"][i] = _with_references(sub, resolved)
    # Alternatives hold value positions too; `if` and `not` do not: a reference there would
    # change which rule applies.
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in node.get(key, ()):
            _walk(sub, resolved)
    for key in ("then", "else"):
        _walk(node.get(key), resolved)


def _with_references(sub: dict[str, Any], resolved: dict[str, Any]) -> dict[str, Any]:
    """`sub`, or a reference."""
    if _takes_any_string(sub) or _takes_references(sub, resolved):
        return sub
    inner = {k: v for k, v in sub.items() if k not in _ANNOTATIONS}
    outer = {k: v for k, v in sub.items() if k in _ANNOTATIONS}
    return {**outer, "anyOf": [inner, _REFERENCE_REF]}


def _takes_any_string(sub: dict[str, Any]) -> bool:
    if sub.get("type") == "string":
        return not any(k in sub for k in _STRING_LIMITS) and not any(
            k in sub for k in _CONSTRAINTS if k != "type"
        )
    return not any(k in sub for k in _CONSTRAINTS)  # no constraint at all: anything goes


def _takes_references(sub: dict[str, Any], resolved: dict[str, Any]) -> bool:
    """Whether `sub` already has an alternative for a reference (for_each, count)."""
    definition = sub
    ref = sub.get("$ref", "")
    if ref.startswith("#/$defs/"):
        definition = resolved["$defs"][ref.removeprefix("#/$defs/")]
    return any(
        alt.get("type") == "string" and str(alt.get("pattern", "")).startswith("^\\$\\{")
        for alt in definition.get("anyOf", ())
    )
