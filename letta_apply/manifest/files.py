"""Read a manifest file into plain data, remembering where every value and key came from.

YAML is parsed to nodes first so that positions survive; duplicate keys, non-UTF-8 bytes, control
characters and YAML types that have no JSON equivalent (dates, binary, sets) are reported as
`file:line:col` diagnostics. Parsing uses libyaml when PyYAML was built with it (a 10 MB value takes
a fraction of a second instead of several seconds with the pure-Python parser).
"""

from __future__ import annotations

import math
import os
import re
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import Diagnostic, ManifestError

# A manifest is text a person reviews; anything larger is a mistake, not a manifest.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Guards against YAML that is small on disk but huge or endless once aliases are expanded.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000

Path_ = tuple[str | int, ...]
Place = tuple[str, int, int]
"""A position in a manifest file: file, line, column."""
if TYPE_CHECKING:  # yaml.CSafeLoader exists only when PyYAML was built with libyaml
    Loader = yaml.SafeLoader | yaml.CSafeLoader

# The C parser when PyYAML has it: same nodes, same marks (1 per character), much faster.
YAML_LOADER: type[Loader] = (
    yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
)


@dataclass(frozen=True)
class Parsing:
    """How YAML is read: the parser, and the limits that guard against huge or endless input.
    Tests choose the parser (positions must not depend on it) and lower the limits."""

    loader: type[Loader] = YAML_LOADER
    max_values: int = MAX_VALUES
    max_bytes: int = MAX_FILE_BYTES


_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"
# What YAML 1.1 accepts in a stream (PyYAML's Reader.NON_PRINTABLE, negated).
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)
# Line breaks as YAML counts them, so that our positions agree with the parser's marks.
_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_TYPE_NAMES = {
    "tag:yaml.org,2002:int": "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "true or false",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:binary": "binary data",
}


@dataclass(frozen=True)
class Position:
    line: int
    col: int
    file: str = ""  # set when a document is made of several files: the file this came from


@dataclass
class Document:
    """A loaded manifest: its data plus the position of each value and each mapping key."""

    file: str
    data: Any
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)
    # Files a manifest names (value_file, source_file...) must stay inside these folders, one per
    # manifest file (the folder given to -f), unless `allow_outside_files`.
    roots: dict[str, Path] = field(default_factory=dict)
    allow_outside_files: bool = False
    # Text of the files the manifest names that kinds read while loading (a tool's source):
    # path of the naming value -> (the file's path, its text).
    sources: dict[Path_, tuple[str, str]] = field(default_factory=dict)
    # Bytes of the files kinds upload as they are (a folder's documents, PDFs among them):
    # path of the naming value plus the file's name there -> (the file's path, its bytes).
    blobs: dict[Path_, tuple[str, bytes]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> Position:
        """Best position for `path`: the key itself when asked and known, else the value,
        else the nearest enclosing value."""
        if key and path in self.keys:
            return self.keys[path]
        p = path
        while p not in self.values and p:
            p = p[:-1]
        return self.values.get(p, Position(1, 1))

    def diag(self, path: Path_, message: str, *, code: str, key: bool = False) -> Diagnostic:
        pos = self.where(path, key=key)
        return Diagnostic(pos.file or self.file, pos.line, pos.col, message, code=code)

    def file_of(self, path: Path_) -> str:
        """The file the value at `path` was written in."""
        return self.where(path).file or self.file

    def referenced(self, path: Path_, name: str) -> tuple[Path, str | None]:
        """The file that the value at `path` names (relative to the manifest file that names
        it), and why it may not be read, or None when it may."""
        manifest = self.file_of(path)
        base = Path(manifest).resolve().parent
        too_long = _too_long(name)
        if too_long:
            return base, f"{clip(name)} cannot be read: {too_long}"
        try:
            target = (base / name).resolve()  # symlinks resolved: one pointing outside is outside
        except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL in the name
            return base / name, f"{clip(name)} cannot be read: {e}"
        root = self.roots.get(manifest, base)
        if not self.allow_outside_files and not target.is_relative_to(root):
            return target, (
                f"{clip(name)} is outside {root} (the folder given to -f); "
                "pass --allow-outside-files to read it"
            )
        return target, None

    def at(self, path: Path_, here: Path_ = ()) -> str:
        """Where `path` is, for a message about `here`: "line N" in the same file, else
        "FILE:LINE:COL"."""
        pos = self.where(path, key=True)
        if self.file_of(here) == (pos.file or self.file):
            return f"line {pos.line}"
        return f"{pos.file or self.file}:{pos.line}:{pos.col}"


# What file systems take (NAME_MAX and PATH_MAX on Linux and macOS): past them the system
# refuses the name in every call, and Python raises where it would answer "no such file".
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def _too_long(name: str) -> str | None:
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        return f"the path is over {MAX_PATH_BYTES} bytes"
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in name.split("/")):
        return f"a file or folder name in it is over {MAX_NAME_BYTES} bytes"
    return None


def where(path: Path_) -> str:
    """A path in a manifest as messages write it: agents.bot.memory_blocks[0].label."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if len(p) <= 40 else p[:37] + "..."
            out += f".{part}" if out else part
    return out or "manifest"


def clip(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut short: a message never echoes a huge value."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


def _pos(mark: Any) -> Position:
    return Position(mark.line + 1, mark.column + 1)


def _line_col(text: str) -> Position:
    """Position just after `text` (the part of a file before some offset)."""
    lines = _BREAK.split(text)
    return Position(len(lines), len(lines[-1]) + 1)


def _tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def _decode(raw: bytes, file: str) -> str:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ManifestError(
            [Diagnostic(file, 1, 1, "the file is UTF-16 encoded; save it as UTF-8", code="LA103")]
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # a UTF-8 byte order mark: allowed, and not part of line 1's columns
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        # Everything before the bad byte decoded fine: count lines and characters in it.
        pos = _line_col(raw[: e.start].decode("utf-8"))
        message = f"not valid UTF-8 (byte 0x{raw[e.start]:02x}); save the file as UTF-8"
        raise ManifestError([Diagnostic(file, pos.line, pos.col, message, code="LA103")]) from None


def _check_characters(text: str, file: str) -> None:
    """Reject characters YAML does not allow in a stream, before the parser sees them."""
    m = _NON_PRINTABLE.search(text)
    if m is None:
        return
    pos = _line_col(text[: m.start()])
    ch = ord(m.group())
    what = "a NUL character (U+0000)" if ch == 0 else f"control character U+{ch:04X}"
    if 0xD800 <= ch <= 0xDFFF:
        what = f"invalid character U+{ch:04X} (a lone surrogate)"
    raise ManifestError(
        [Diagnostic(file, pos.line, pos.col, f"{what} is not allowed in a YAML file", code="LA104")]
    )


class _Builder:
    """Turns a node tree into plain data, recording positions and collecting every problem."""

    def __init__(self, doc: Document, loader: Loader, max_values: int) -> None:
        self.doc = doc
        self.loader = loader
        self.max_values = max_values
        self.errors: list[Diagnostic] = []
        self.count = 0
        self.active: set[int] = set()  # collection nodes being built: an alias back is a cycle

    def error(self, mark: Any, message: str, code: str) -> None:
        pos = _pos(mark)
        self.errors.append(Diagnostic(self.doc.file, pos.line, pos.col, message, code=code))

    def build(self, node: yaml.Node, path: Path_, depth: int = 0) -> Any:
        self.count += 1
        if self.count > self.max_values:
            pos = _pos(node.start_mark)
            raise ManifestError(
                [
                    *self.errors,
                    Diagnostic(
                        self.doc.file,
                        pos.line,
                        pos.col,
                        f"the manifest has more than {self.max_values} values once aliases are "
                        "expanded; stopped reading here",
                        code="LA107",
                    ),
                ]
            )
        self.doc.values[path] = _pos(node.start_mark)
        if isinstance(node, yaml.ScalarNode):
            return self._scalar(node)
        if id(node) in self.active:
            self.error(node.start_mark, "this alias refers to a value that contains it", "LA108")
            return None
        if depth >= MAX_DEPTH:
            self.error(node.start_mark, f"nested more than {MAX_DEPTH} levels deep", "LA107")
            return None
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, path, depth)
            return self._sequence(node, path, depth)
        finally:
            self.active.discard(id(node))

    def _sequence(self, node: yaml.Node, path: Path_, depth: int) -> Any:
        if node.tag != _SEQ_TAG:
            self.error(
                node.start_mark, f"unsupported YAML tag '{_tag(node.tag)}' on a list", "LA109"
            )
            return None
        return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> Any:
        if node.tag != _MAP_TAG:
            self.error(
                node.start_mark, f"unsupported YAML tag '{_tag(node.tag)}' on a mapping", "LA109"
            )
            return None
        out: dict[str, Any] = {}
        for key, key_node, value_node in self._pairs(node, depth):
            self.doc.keys[(*path, key)] = _pos(key_node.start_mark)
            out[key] = self.build(value_node, (*path, key), depth + 1)
        return out

    def _pairs(self, node: yaml.MappingNode, depth: int) -> list[tuple[str, yaml.Node, yaml.Node]]:
        """The mapping's entries with `<<` merge keys resolved: explicit keys win over merged
        ones, and an earlier merged mapping wins over a later one. Duplicate explicit keys are
        errors; a merged key that an explicit one overrides is not."""
        explicit: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        merged: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                sources = (
                    value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
                )
                for source in sources:
                    if not isinstance(source, yaml.MappingNode) or source.tag != _MAP_TAG:
                        self.error(source.start_mark, "'<<' can only merge mappings", "LA110")
                        continue
                    if id(source) in self.active or depth >= MAX_DEPTH:
                        self.error(
                            key_node.start_mark,
                            "this merge refers to a mapping that contains it",
                            "LA108",
                        )
                        continue
                    self.active.add(id(source))
                    try:
                        for name, k, v in self._pairs(source, depth + 1):
                            merged.setdefault(name, (k, v))
                    finally:
                        self.active.discard(id(source))
                continue
            key = self._key(key_node)
            if key is None:
                continue
            if key in explicit:
                first = _pos(explicit[key][0].start_mark)
                self.error(
                    key_node.start_mark,
                    f"duplicate key {clip(key)} (first defined at line {first.line}, "
                    f"column {first.col})",
                    "LA111",
                )
                continue
            explicit[key] = (key_node, value_node)
        entries = {**merged, **explicit}
        return [(key, k, v) for key, (k, v) in entries.items()]

    def _key(self, node: yaml.Node) -> str | None:
        if not isinstance(node, yaml.ScalarNode):
            kind = "a mapping" if isinstance(node, yaml.MappingNode) else "a list"
            self.error(node.start_mark, f"keys must be strings, got {kind}", "LA112")
            return None
        try:
            key = self.loader.construct_object(node)
        except Exception:  # as in _scalar
            key = None
        if isinstance(key, str):
            return key
        kind = _TYPE_NAMES.get(node.tag) or (
            "null" if node.tag == _NULL_TAG else f"tag '{_tag(node.tag)}'"
        )
        self.error(
            node.start_mark,
            f"keys must be strings, got {clip(node.value)} ({kind}); quote it",
            "LA112",
        )
        return None

    def _scalar(self, node: yaml.ScalarNode) -> Any:
        try:
            value = self.loader.construct_object(node)
        except Exception:  # the constructors raise whatever their parsing raised on bad input
            want = _TYPE_NAMES.get(node.tag)
            problem = (
                f"cannot read {clip(node.value)} as {want}"
                if want
                else f"unsupported YAML tag '{_tag(node.tag)}'"
            )
            self.error(node.start_mark, f"{problem}; quote it to make it a string", "LA109")
            return None
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        what = _TYPE_NAMES.get(node.tag, type(value).__name__)
        if isinstance(value, float):
            what = "not a finite number"
        self.error(
            node.start_mark,
            f"unsupported YAML value {clip(node.value)} ({what}); quote it to make it a string",
            "LA109",
        )
        return None


_FLOW_CONTEXTS = (
    "while parsing a flow node",
    "while parsing a flow sequence",
    "while parsing a flow mapping",
)


def _unclosed_flow(text: str, parser: type[Loader]) -> Any:
    """The innermost '[' or '{' still open where the text ends, if any (a token)."""
    scanner = parser(text)
    stack: list[Any] = []
    try:
        while (token := scanner.get_token()) is not None:
            if isinstance(token, (yaml.FlowSequenceStartToken, yaml.FlowMappingStartToken)):
                stack.append(token)
            elif isinstance(token, (yaml.FlowSequenceEndToken, yaml.FlowMappingEndToken)):
                if stack:
                    stack.pop()
            elif isinstance(token, yaml.StreamEndToken):
                break
    except yaml.YAMLError:
        pass
    finally:
        scanner.dispose()
    return stack[-1] if stack else None


def _char_at(lines: list[str], mark: Any) -> str:
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column] if mark.column < len(line) else ""


def _only_comments_after(lines: list[str], mark: Any) -> bool:
    rest = [lines[mark.line][mark.column :] if mark.line < len(lines) else ""]
    rest += lines[mark.line + 1 :]
    return all(not r.strip() or r.lstrip().startswith("#") for r in rest)


def _syntax_error(
    e: yaml.MarkedYAMLError, text: str, file: str, parser: type[Loader]
) -> Diagnostic:
    """One clear line for a YAML syntax error, at the place to fix. The pure-Python parser and
    libyaml word their errors differently; both are handled."""
    lines = _BREAK.split(text)
    mark = e.problem_mark or e.context_mark
    problem = e.problem or e.context or "invalid YAML"
    context, cmark = e.context or "", e.context_mark
    at_end = mark is not None and _only_comments_after(lines, mark)
    opened = _unclosed_flow(text, parser) if at_end and context in _FLOW_CONTEXTS else None
    if "expected a single document" in str(e):
        problem = "the manifest must be one YAML document, but a second one starts here"
    elif at_end and context == "while scanning a quoted scalar" and cmark is not None:
        # The string swallowed the rest of the file: point at where it was opened.
        mark, problem = cmark, "unclosed quote: this string never ends"
    elif opened is not None:
        bracket = "[]" if isinstance(opened, yaml.FlowSequenceStartToken) else "{}"
        mark, problem = opened.start_mark, f"unclosed '{bracket[0]}': no matching '{bracket[1]}'"
    elif problem.startswith("found undefined alias") and mark is not None:
        alias = re.match(r"\*([^\s,\[\]{}]+)", lines[mark.line][mark.column :])
        name = alias.group(1) if alias else "?"
        problem = f"alias '*{name}' refers to no anchor '&{name}' defined before it"
    elif mark is not None and _char_at(lines, mark) == "\t":
        problem = "tab character: YAML indents with spaces only"
    else:
        if context and cmark is not None and (mark is None or _pos(cmark) != _pos(mark)):
            c = _pos(cmark)
            problem = f"{problem} ({context} at line {c.line}, column {c.col})"
        if context.startswith("while parsing a block"):
            problem += "; check the indentation"
        elif problem.startswith("mapping values are not allowed"):
            problem += "; check the indentation, or quote a value that contains ': '"
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    return Diagnostic(file, line, col, f"invalid YAML: {problem}", code="LA105")


def load_text(text: str, file: str, parsing: Parsing | None = None) -> Document:
    """Parse YAML text into a Document; raises ManifestError with positions."""
    doc, errors = parse_text(text, file, parsing)
    if errors:
        raise ManifestError(errors)
    return doc


def parse_text(
    text: str, file: str, parsing: Parsing | None = None
) -> tuple[Document, list[Diagnostic]]:
    """Parse YAML text into a Document, and the problems that left parts of it out (a duplicate
    key, an unsupported tag: the rest is read, so that later checks report their problems too).
    Raises ManifestError when nothing can be read (invalid YAML, an empty file)."""
    parsing = parsing or Parsing()
    _check_characters(text, file)
    doc = Document(file=file, data=None)
    loader = parsing.loader(text)
    try:
        node = loader.get_single_node()
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
            raise ManifestError(
                [
                    Diagnostic(
                        file,
                        1,
                        1,
                        "the manifest is empty; it needs at least 'version: 1' and 'stack'",
                        code="LA106",
                    )
                ]
            )
        builder = _Builder(doc, loader, parsing.max_values)
        doc.data = builder.build(node, ())
    except yaml.MarkedYAMLError as e:
        raise ManifestError([_syntax_error(e, text, file, parsing.loader)]) from None
    except yaml.YAMLError as e:  # reader errors; _check_characters leaves none in practice
        message = f"invalid YAML: {e}".splitlines()[0]
        raise ManifestError([Diagnostic(file, 1, 1, message, code="LA105")]) from None
    except RecursionError:  # the pure-Python parser recurses once per nesting level
        message = f"invalid YAML: nested more than {MAX_DEPTH} levels deep"
        raise ManifestError([Diagnostic(file, 1, 1, message, code="LA107")]) from None
    finally:
        loader.dispose()
    return doc, list(dict.fromkeys(builder.errors))


class Unreadable(Exception):
    """A file letta-apply will not read, and why (`str(e)`: "cannot read: ...", ...)."""


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Anything else is Unreadable: a
    pipe or a device would block or never end, a symlink loop or a bad name cannot be opened."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise Unreadable("is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable("is not a regular file (a pipe or a device?); only files are read")
        if st.st_size > limit:
            raise Unreadable(f"is {st.st_size} bytes; the limit is {limit}")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, ValueError, RuntimeError) as e:  # a NUL in the name; a symlink loop
        raise Unreadable(f"cannot read: {_reason(e)}") from None
    if len(data) > limit:  # it grew while being read
        raise Unreadable(f"is over {limit} bytes")
    return data


def load_file(path: str | Path, parsing: Parsing | None = None) -> Document:
    """Read and parse one manifest file."""
    doc, errors = parse_file(path, parsing)
    if errors:
        raise ManifestError(errors)
    return doc


def parse_file(
    path: str | Path, parsing: Parsing | None = None
) -> tuple[Document, list[Diagnostic]]:
    """Read and parse one manifest file, as parse_text."""
    parsing = parsing or Parsing()
    file = str(path)
    try:
        raw = read_regular(path, parsing.max_bytes)
    except Unreadable as e:
        raise ManifestError([Diagnostic(clip_path(file), 1, 1, str(e), code="LA101")]) from None
    return parse_text(_decode(raw, file), file, parsing)


def _reason(e: Exception) -> str:
    """Why a file could not be read, without echoing its (maybe very long) name."""
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(": '")[0]


def clip_path(name: str, limit: int = 200) -> str:
    """A path for a message: a very long one (a name over the system's limit) cut short."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Several files: `-f` may name files and folders; the manifest is their union


def manifest_files(paths: Sequence[str]) -> tuple[list[tuple[str, Path]], list[Diagnostic]]:
    """The files `-f` names, each with the folder its references must stay in."""
    out: list[tuple[str, Path]] = []
    errors: list[Diagnostic] = []
    seen: set[Path] = set()
    for arg in paths:
        p = Path(arg)
        try:
            is_dir = p.is_dir()
            p.resolve()
        except (OSError, RuntimeError, ValueError) as e:  # a name too long, a symlink loop
            errors.append(
                Diagnostic(clip_path(arg), 1, 1, f"cannot read: {_reason(e)}", code="LA101")
            )
            continue
        if is_dir:
            found = sorted(
                (f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file()),
                key=lambda f: f.name,
            )
            if not found:
                errors.append(
                    Diagnostic(arg, 1, 1, "no *.yaml or *.yml file in this directory", code="LA102")
                )
            items = [(str(f), p) for f in found]
        else:
            items = [(arg, p.parent)]
        for file, root in items:
            real = Path(file).resolve()
            if real in seen:
                continue
            seen.add(real)
            out.append((file, root.resolve()))
    return out, errors


def _with_file(pos: Position, file: str) -> Position:
    return pos if pos.file else Position(pos.line, pos.col, file)


def _copy_positions(src: Document, src_path: Path_, dst: Document, dst_path: Path_) -> None:
    """Positions of `src_path` and everything under it, filed under `dst_path` in `dst`."""
    n = len(src_path)
    for table, out in ((src.values, dst.values), (src.keys, dst.keys)):
        for path, pos in table.items():
            if path[:n] == src_path:
                out[(*dst_path, *path[n:])] = _with_file(pos, src.file)


def merge(docs: Sequence[Document]) -> tuple[Document, list[Diagnostic]]:
    """The union of several manifest files, with the file of every position, and the problems
    found. Mappings are merged key by key (a key in two files is an error naming both; the first
    is kept), lists are concatenated and scalars must be equal wherever they are set. Raises
    ManifestError when a file is not a mapping: what it holds cannot be merged."""
    if len(docs) == 1:
        doc = docs[0]
        return Document(
            doc.file,
            doc.data,
            {p: _with_file(v, doc.file) for p, v in doc.values.items()},
            {p: _with_file(v, doc.file) for p, v in doc.keys.items()},
        ), []
    out = Document(docs[0].file, {})
    out.values[()] = Position(1, 1, docs[0].file)
    errors: list[Diagnostic] = []
    data: dict[str, Any] = out.data
    for doc in docs:
        if not isinstance(doc.data, dict):
            errors.append(
                doc.diag((), "a manifest file must be a mapping of sections", code="LA113")
            )
            continue
        for section, value in doc.data.items():
            here = doc.where((section,), key=True)
            if section not in data:
                data[section] = (
                    dict(value) if isinstance(value, dict)
                    else list(value) if isinstance(value, list) else value
                )  # fmt: skip
                _copy_positions(doc, (section,), out, (section,))
                out.keys[(section,)] = _with_file(here, doc.file)
                continue
            first = out.where((section,), key=True)
            first_at = f"{first.file}:{first.line}:{first.col}"
            have = data[section]
            if isinstance(have, dict) and isinstance(value, dict):
                for key, item in value.items():
                    if key in have:
                        other = out.where((section, key), key=True)
                        errors.append(
                            doc.diag(
                                (section, key),
                                f"{section}.{key} is declared twice: here and at "
                                f"{other.file}:{other.line}:{other.col}",
                                code="LA114",
                                key=True,
                            )
                        )
                        continue
                    have[key] = item
                    _copy_positions(doc, (section, key), out, (section, key))
            elif isinstance(have, list) and isinstance(value, list):
                start = len(have)
                have.extend(value)
                for i in range(len(value)):
                    _copy_positions(doc, (section, i), out, (section, start + i))
            elif have != value or type(have) is not type(value):
                errors.append(
                    doc.diag(
                        (section,),
                        f"{section}: {clip(str(value))} here, but {clip(str(have))} at "
                        f"{first_at}; every file of a manifest must agree",
                        code="LA115",
                    )
                )
    if any(not isinstance(doc.data, dict) for doc in docs):
        raise ManifestError(errors)
    return out, errors
