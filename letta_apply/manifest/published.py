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

from ..core.jsonish import JsonObject, items, objs, text
from .sections import Section
from .validate import base_schema, node, schema

# A string holding a reference: precise enough for an editor, which only needs to know that the
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


def published_schema(kinds: Iterable[Section]) -> JsonObject:
    """The manifest's schema of `kinds` (letta_apply.kinds.KINDS) for files as written:
    references accepted in every value."""
    return _published(tuple(kinds))


@cache
def _published(kinds: tuple[Section, ...]) -> JsonObject:
    resolved: JsonObject = schema(kinds)
    out = copy.deepcopy(resolved)
    properties = node(out, "properties")
    for name, prop in properties.items():
        if name not in _AS_WRITTEN:
            _walk(prop, resolved)
            properties[name] = _with_references(node(prop), resolved)
    definitions = node(out, "$defs")
    for name, definition in definitions.items():
        if name != "variable":
            _walk(definition, resolved)
    definitions["reference"] = REFERENCE
    return out


def _walk(schema_node: object, resolved: JsonObject) -> None:
    """Accept references in every value position below `schema_node` (in place)."""
    if not isinstance(schema_node, dict):
        return
    for key in ("properties", "patternProperties"):
        children = schema_node.get(key)
        if not isinstance(children, dict):
            continue
        for name, sub in children.items():
            _walk(sub, resolved)
            children[name] = _with_references(node(sub), resolved)
    for key in ("additionalProperties", "items"):
        sub = schema_node.get(key)
        if isinstance(sub, dict):
            _walk(sub, resolved)
            schema_node[key] = _with_references(sub, resolved)
    prefix = schema_node.get("prefixItems")
    if isinstance(prefix, list):
        for i, sub in enumerate(prefix):
            _walk(sub, resolved)
            prefix[i] = _with_references(node(sub), resolved)
    # Alternatives hold value positions too; `if` and `not` do not: a reference there would
    # change which rule applies.
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in items(schema_node.get(key)):
            _walk(sub, resolved)
    for key in ("then", "else"):
        _walk(schema_node.get(key), resolved)


def _with_references(sub: JsonObject, resolved: JsonObject) -> JsonObject:
    """`sub`, or a reference."""
    if _takes_any_string(sub) or _takes_references(sub, resolved):
        return sub
    inner = {k: v for k, v in sub.items() if k not in _ANNOTATIONS}
    outer = {k: v for k, v in sub.items() if k in _ANNOTATIONS}
    return {**outer, "anyOf": [inner, _REFERENCE_REF]}


def _takes_any_string(sub: JsonObject) -> bool:
    if sub.get("type") == "string":
        return not any(k in sub for k in _STRING_LIMITS) and not any(
            k in sub for k in _CONSTRAINTS if k != "type"
        )
    return not any(k in sub for k in _CONSTRAINTS)  # no constraint at all: anything goes


def _takes_references(sub: JsonObject, resolved: JsonObject) -> bool:
    """Whether `sub` already has an alternative for a reference (for_each, count)."""
    definition = sub
    ref = text(sub.get("$ref"))
    if ref.startswith("#/$defs/"):
        definition = node(resolved, "$defs", ref.removeprefix("#/$defs/"))
    return any(
        alt.get("type") == "string" and str(alt.get("pattern", "")).startswith("^\\$\\{")
        for alt in objs(definition.get("anyOf"))
    )
