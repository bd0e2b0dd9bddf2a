"""Tools in the manifests convert writes from an Agent File (kinds.writing): its custom Python
tools as `tools:`, their sources written beside the manifest; the server's own tools an agent
asks for (`web_search`...) and tools of other types, named in the agents' `tools:`; Letta's base
tools and MCP tools (which follow their server) left to the server."""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ...core.jsonish import JsonObject, obj, objs, text
from ..mcp_server.kind import MCP_TOOL
from ..writing import Conversion, tags_of
from .kind import ToolKind
from .model import ON_REQUEST, is_base_tool_type
from .source import MAX_TOOL_NAME, function_name

RETURN_CHAR_LIMIT = 50000  # Letta 0.16.8's default return_char_limit of a tool


@dataclass
class ToolNames:
    """How agents name the file's tools: what an agent's `tools:` lists, by the file's id; the
    declared tools' keys, by tool name (what tool rules name)."""

    refs: dict[str, str] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def convert_tools(conv: Conversion) -> JsonObject:
    """The file's custom tools; how agents name every tool goes to `conv.extra`."""
    names = conv.extra[ToolKind.name] = ToolNames()
    out: JsonObject = {}
    tools: Sequence[Mapping[str, object]] = conv.entities("tools")
    for i, t in enumerate(tools):
        kind = text(t.get("tool_type")) or "custom"
        if kind in ON_REQUEST:
            names.refs[text(t["id"])] = text(t["name"])
        elif is_base_tool_type(kind) or kind == MCP_TOOL:
            continue  # the server adds its own; MCP tools follow their server
        elif kind != "custom":
            names.refs[text(t["id"])] = text(t["name"])
            conv.note(
                f"tools[{i}] ({text(t['name'])!r}): a {kind} tool, named in its agents' tools: "
                "it must be on the server apply runs on"
            )
        else:
            entry = _custom_tool(conv, names, i, t)
            if entry is not None:
                out[names.refs[text(t["id"])]] = entry
    return out


def _custom_tool(
    conv: Conversion, names: ToolNames, i: int, t: Mapping[str, object]
) -> JsonObject | None:
    tid, name = text(t["id"]), text(t["name"])
    where = f"tools[{i}] ({name!r})"
    source = text(t.get("source_code"))
    # Letta writes source_type "json" for Python sources made from their docstring too.
    if t.get("source_type") == "typescript" or not source:
        what = "has no source" if not source else "is TypeScript, not Python"
        conv.note(f"{where}: {what}; not converted, and its agents go without it")
        return None
    try:
        func = function_name(ast.parse(source))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        func = None
    if func is None or not ast.get_docstring(func) or len(func.name) > MAX_TOOL_NAME:
        conv.note(
            f"{where}: its source has no function with a docstring (letta-apply derives "
            "the tool's arguments from it); not converted, and its agents go without it"
        )
        return None
    if func.name != name:
        conv.note(f"{where}: its source makes the tool {func.name!r}; converted so")
    key = conv.key(ToolKind.name, tid, func.name)
    names.refs[tid] = names.keys[name] = key
    path = f"{conv.sources_dir or ToolKind.section}/{key}.py"  # tools/ by default
    conv.sources[path] = source if source.endswith("\n") else source + "\n"
    entry: JsonObject = {"source_file": path}
    derived = obj(t.get("json_schema")).get("description")
    if t.get("description") and t["description"] != derived:
        entry["description"] = t["description"]
    if tags_of(t.get("tags")):
        entry["tags"] = tags_of(t.get("tags"))
    limit = t.get("return_char_limit")
    if limit is not None and limit != RETURN_CHAR_LIMIT:
        entry["return_char_limit"] = limit
    pips = [_pip(p) for p in objs(t.get("pip_requirements")) if p.get("name")]
    if pips:
        entry["pip_requirements"] = pips
    if t.get("default_requires_approval"):
        entry["default_requires_approval"] = True
    return entry


def _pip(p: Mapping[str, object]) -> JsonObject:
    return {k: p[k] for k in ("name", "version") if p.get(k)}
