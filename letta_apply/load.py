"""Read a manifest file into plain data, remembering where every value and key came from.

YAML is parsed to nodes first so that positions survive; duplicate keys, non-UTF-8 bytes and YAML
types that have no JSON equivalent (dates, binary) are reported as `file:line:col` diagnostics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, ManifestError

# A manifest is text a person reviews; anything larger is a mistake, not a manifest.
MAX_FILE_BYTES = 64 * 1024 * 1024

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int
    col: int


@dataclass
class Document:
    """A loaded manifest: its data plus the position of each value and each mapping key."""

    file: str
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> Position:
        """Best position for `path`: the key itself when asked and known, else the value,
        else the nearest enclosing value."""
        if key and path in self.keys:
            return self.keys[path]
        p = path
        while p not in self.values and p:
            p = p[:-1]
        return self.values.get(p, Position(1, 1))

    def diag(self, path: Path_, message: str, *, key: bool = False) -> Diagnostic:
        pos = self.where(path, key=key)
        return Diagnostic(self.file, pos.line, pos.col, message)


def _pos(mark: yaml.Mark) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _decode(raw: bytes, file: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        before = raw[: e.start]
        line = before.count(b"\n") + 1
        col = e.start - (before.rfind(b"\n") + 1) + 1
        raise ManifestError(
            [Diagnostic(file, line, col, f"not valid UTF-8 (byte 0x{raw[e.start]:02x})")]
        ) from None


class _Builder:
    def __init__(self, doc: Document, loader: yaml.SafeLoader) -> None:
        self.doc = doc
        self.loader = loader
        self.errors: list[Diagnostic] = []

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.values[path] = _pos(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<` merge keys
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node)
                if not isinstance(key, str):
                    self.errors.append(
                        Diagnostic(
                            self.doc.file,
                            *_astuple(_pos(key_node.start_mark)),
                            f"keys must be strings, got {key_node.value!r}; quote it",
                        )
                    )
                    continue
                if key in out:
                    first = self.doc.keys[(*path, key)]
                    self.errors.append(
                        Diagnostic(
                            self.doc.file,
                            *_astuple(_pos(key_node.start_mark)),
                            f"duplicate key '{key}' (first defined at line {first.line})",
                        )
                    )
                    continue
                self.doc.keys[(*path, key)] = _pos(key_node.start_mark)
                out[key] = self.build(value_node, (*path, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node)
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        self.errors.append(
            Diagnostic(
                self.doc.file,
                *_astuple(_pos(node.start_mark)),
                f"unsupported YAML value {node.value!r} ({type(value).__name__}); quote it to make it a string",
            )
        )
        return None


def _astuple(p: Position) -> tuple[int, int]:
    return p.line, p.col


def load_text(text: str, file: str) -> Document:
    """Parse YAML text into a Document; raises ManifestError with positions."""
    doc = Document(file=file, data=None)
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ManifestError([Diagnostic(file, 1, 1, "the manifest is empty")])
        builder = _Builder(doc, loader)
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = e.problem or e.context or "invalid YAML"
        if "expected a single document" in str(e):
            problem = "the manifest must be one YAML document (found a second '---')"
        raise ManifestError([Diagnostic(file, line, col, f"invalid YAML: {problem}")]) from None
    except yaml.YAMLError as e:  # reader errors: control characters and the like
        pos = getattr(e, "position", 0) or 0
        before = text[:pos]
        line = before.count("\n") + 1
        col = pos - (before.rfind("\n") + 1) + 1
        reason = getattr(e, "reason", None) or "invalid YAML"
        raise ManifestError([Diagnostic(file, line, col, f"invalid YAML: {reason}")]) from None
    finally:
        loader.dispose()
    if builder.errors:
        raise ManifestError(builder.errors)
    return doc


def load_file(path: str | Path) -> Document:
    """Read and parse one manifest file."""
    file = str(path)
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ManifestError(
                [Diagnostic(file, 1, 1, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}")]
            )
        raw = p.read_bytes()
    except IsADirectoryError:
        raise ManifestError([Diagnostic(file, 1, 1, "is a directory, not a manifest file")]) from None
    except OSError as e:
        raise ManifestError([Diagnostic(file, 1, 1, f"cannot read: {e.strerror}")]) from None
    return load_text(_decode(raw, file), file)
