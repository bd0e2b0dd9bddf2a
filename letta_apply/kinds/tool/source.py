"""A custom tool's Python source (kinds.tool): read once while the manifest is loaded, then
parsed, without running it, for the function Letta makes the tool from."""

from __future__ import annotations

import ast
from collections.abc import Mapping

from ...errors import Diagnostic, define
from ...manifest.files import Document, Path_, Unreadable, clip_path, read_regular

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA473", "ManifestError", "a tool's source not read",
       "A manifest document made other than by letta-apply's loader holds no tool source.",
       "Load manifests with load_manifest (or Stack.from_files, Stack.from_dict).")
define("LA474", "ManifestError", "a tool's source that is not valid Python",
       "A tool's `source_file` has a syntax error.",
       "Fix it at the line and column shown.")
define("LA475", "ManifestError", "a tool's source nested too deeply",
       "A tool's source nests too deeply for Python to read.",
       "Simplify the source.")
define("LA476", "ManifestError", "a tool's source without a function",
       "A tool's `source_file` defines no function; Letta names the tool after its last one.",
       "Define the tool's function in the file.")
define("LA477", "ManifestError", "a tool function without a docstring",
       "A tool's function has no docstring; Letta derives the tool's description and "
       "arguments from it.",
       "Write a docstring with an Args section.")
define("LA478", "ManifestError", "a tool name too long",
       "A tool's function name is over the 48 characters Letta accepts.",
       "Rename the function.")
# fmt: on

MAX_TOOL_NAME = 48  # Letta 0.16.8 MAX_TOOL_NAME_LENGTH
MAX_SOURCE_BYTES = 1024 * 1024


def function_name(tree: ast.AST) -> ast.FunctionDef | None:
    """The function Letta makes the tool from: the last `def` in `ast.walk` order."""
    found = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return found[-1] if found else None


def source_at(key: str) -> Path_:
    return ("tools", key, "source_file")


def parse_source(doc: Document, key: str) -> tuple[str | None, str | None, list[Diagnostic]]:
    """The source text of a declared tool (read while loading) and the tool's name, or the
    problems found."""
    read = doc.sources.get(source_at(key))
    if read is None:
        # The loader reads sources (and reports why one could not be read); a document made
        # some other way has none.
        message = f"tools.{key}.source_file: not read (load manifests with load_manifest)"
        return None, None, [doc.diag(source_at(key), message, code="LA473")]
    shown, text = read
    try:
        tree = ast.parse(text, filename=shown)
    except SyntaxError as e:
        line, col = e.lineno or 1, e.offset or 1
        return None, None, [Diagnostic(shown, line, col, f"tool.{key}: {e.msg}", code="LA474")]
    except (RecursionError, MemoryError):  # an expression of 100,000 terms, say
        message = f"tool.{key}: the source is nested too deeply for Python to read"
        return None, None, [Diagnostic(shown, 1, 1, message, code="LA475")]
    func = function_name(tree)
    if func is None:
        message = f"tool.{key}: no function in the file"
        return None, None, [Diagnostic(shown, 1, 1, message, code="LA476")]
    at = (shown, func.lineno, func.col_offset + 1)
    if not ast.get_docstring(func):
        message = (
            f"tool.{key}: function {func.name!r} has no docstring; Letta derives the tool's "
            "description and arguments from it"
        )
        return None, None, [Diagnostic(*at, message, code="LA477")]
    if len(func.name) > MAX_TOOL_NAME:
        message = f"tool.{key}: tool name {func.name!r} is over {MAX_TOOL_NAME} characters"
        return None, None, [Diagnostic(*at, message, code="LA478")]
    return text, func.name, []


def read_sources(doc: Document, data: Mapping[str, object]) -> tuple[list[str], list[Diagnostic]]:
    """Read every tool's source file, once, while the manifest is loaded."""
    read: list[str] = []
    errors: list[Diagnostic] = []
    tools = data.get("tools")
    for key, spec in (tools if isinstance(tools, dict) else {}).items():
        rel = spec.get("source_file") if isinstance(spec, dict) else None
        if not isinstance(rel, str) or not rel:
            continue  # the schema reports it
        at = source_at(key)
        path, refused = doc.referenced(at, rel)
        where = f"tools.{key}.source_file"
        if refused:
            errors.append(doc.diag(at, f"{where}: {refused}", code="LA120"))
            continue
        if not path.exists() and not path.is_symlink():
            message = f"{where}: no such file: {clip_path(str(path))}"
            errors.append(doc.diag(at, message, code="LA121"))
            continue
        try:
            raw = read_regular(path, MAX_SOURCE_BYTES)
        except Unreadable as e:
            errors.append(doc.diag(at, f"{where}: {clip_path(str(path))} {e}", code="LA122"))
            continue
        try:
            doc.sources[at] = (str(path), raw.decode("utf-8"))
        except UnicodeDecodeError:
            message = f"{where}: {clip_path(str(path))} is not valid UTF-8"
            errors.append(doc.diag(at, message, code="LA123"))
            continue
        read.append(str(path))
    return read, errors


def renamed(source: str, name: str) -> str | None:
    """`source` with the function Letta makes the tool from renamed to `name` (its `def` line
    only), or None when the source has no such function."""
    node = function_name(ast.parse(source))
    if node is None:
        return None
    lines = source.splitlines(keepends=True)
    line = lines[node.lineno - 1]
    at = line.find(f"def {node.name}", node.col_offset)
    if at < 0:
        return None
    start = at + len("def ")
    lines[node.lineno - 1] = line[:start] + name + line[start + len(node.name) :]
    return "".join(lines)
