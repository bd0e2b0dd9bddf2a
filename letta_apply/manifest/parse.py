"""Read a manifest file's YAML into a Document, remembering where every value and key came from.

YAML is parsed to nodes first so that positions survive; duplicate keys, non-UTF-8 bytes, control
characters and YAML types that have no JSON equivalent (dates, binary, sets) are reported as
`file:line:col` diagnostics. Parsing uses libyaml when PyYAML was built with it (a 10 MB value takes
a fraction of a second instead of several seconds with the pure-Python parser).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import yaml

from ..errors import Diagnostic, ManifestError
from .files import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_VALUES,
    Document,
    Path_,
    Position,
    Unreadable,
    clip,
    clip_path,
    read_regular,
)

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
_STR_TAG = "tag:yaml.org,2002:str"
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


class _Mark(Protocol):
    """Where a node or token starts (PyYAML's Mark, and libyaml's, which is another class)."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


def _pos(mark: _Mark) -> Position:
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

    def error(self, mark: _Mark, message: str, code: str) -> None:
        pos = _pos(mark)
        self.errors.append(Diagnostic(self.doc.file, pos.line, pos.col, message, code=code))

    def build(self, node: yaml.Node, path: Path_, depth: int = 0) -> object:
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

    def _sequence(self, node: yaml.Node, path: Path_, depth: int) -> list[object] | None:
        if node.tag != _SEQ_TAG:
            self.error(
                node.start_mark, f"unsupported YAML tag '{_tag(node.tag)}' on a list", "LA109"
            )
            return None
        return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]

    def _mapping(self, node: yaml.MappingNode, path: Path_, depth: int) -> dict[str, object] | None:
        if node.tag != _MAP_TAG:
            self.error(
                node.start_mark, f"unsupported YAML tag '{_tag(node.tag)}' on a mapping", "LA109"
            )
            return None
        out: dict[str, object] = {}
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
        if node.tag == _STR_TAG:  # what the constructor would return: most keys are strings
            return str(node.value)
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

    def _scalar(self, node: yaml.ScalarNode) -> object:
        if node.tag == _STR_TAG:  # as the constructor makes it, without its per-node bookkeeping
            return str(node.value)
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


def _unclosed_flow(text: str, parser: type[Loader]) -> yaml.Token | None:
    """The innermost '[' or '{' still open where the text ends, if any (a token)."""
    scanner = parser(text)
    stack: list[yaml.Token] = []
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


def _char_at(lines: list[str], mark: _Mark) -> str:
    line = lines[mark.line] if mark.line < len(lines) else ""
    return line[mark.column] if mark.column < len(line) else ""


def _only_comments_after(lines: list[str], mark: _Mark) -> bool:
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
    return parse_text(read_text(path, parsing.max_bytes), str(path), parsing)


def read_text(path: str | Path, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of one manifest file, checked for what parse_text reports before parsing;
    raises ManifestError with its position."""
    file = str(path)
    try:
        raw = read_regular(path, max_bytes)
    except Unreadable as e:
        raise ManifestError([Diagnostic(clip_path(file), 1, 1, str(e), code="LA101")]) from None
    text = _decode(raw, file)
    _check_characters(text, file)
    return text
