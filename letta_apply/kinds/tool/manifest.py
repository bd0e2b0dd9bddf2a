"""Tools in the manifest: the rule the schema cannot say (tool names are unique: two entries
may not make tools of one name), and the declared tool an entry makes, named after the function
of its source (source.py)."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.jsonish import obj, strings
from ...errors import Diagnostic, define
from ...manifest.files import Document
from .model import CONFIG, DesiredTool
from .source import parse_source, source_at

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA471", "ManifestError", "tool name used twice",
       "Two tools of the manifest have the same name (their function's name); tool names are "
       "unique on a server.",
       "Rename one of the functions.")
# fmt: on


def check_tools(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Each tool's source (source.py), and no tool name declared twice."""
    errors: list[Diagnostic] = []
    names: dict[str, str] = {}  # tool name -> key
    tools = data.get("tools")
    for key, spec in (tools if isinstance(tools, dict) else {}).items():
        if not isinstance(spec, dict) or not isinstance(spec.get("source_file"), str):
            continue  # the schema reports it
        _, name, problems = parse_source(doc, key)
        errors += problems
        if name is None:
            continue
        if name in names:
            errors.append(
                doc.diag(
                    source_at(key),
                    f"tools.{key}: tool name {name!r} is already declared by "
                    f"tools.{names[name]}; tool names are unique on a Letta server",
                    code="LA471",
                )
            )
        names.setdefault(name, key)
    return errors


def declare_tools(doc: Document, data: Mapping[str, object]) -> dict[str, DesiredTool]:
    """The declared tools of `tools:`, by address (the manifest passed `check_tools`)."""
    out: dict[str, DesiredTool] = {}
    for key, entry in obj(data.get("tools")).items():
        spec = obj(entry)
        text, name, _ = parse_source(doc, key)
        assert text is not None and name is not None  # `check` passed
        address = f"tool.{key}"
        out[address] = DesiredTool(
            address=address,
            name=name,
            source_code=text,
            source_file=str(spec["source_file"]),
            config={k: spec[k] for k in CONFIG if k in spec},
            prevent_destroy=bool(spec.get("prevent_destroy", False)),
            ignore=frozenset(strings(spec.get("ignore_changes"))),
        )
    return out
