"""A manifest's plain values without their positions, fast, for the common shape of YAML only.

Reading a large manifest with positions (parse.py) builds a node per value in libyaml and a
position per value in Python: most of what `validate` spends on a fleet of thousands of agents.
Positions are only ever read to say where a problem is, so a manifest is first read here, without
them; the pipeline reads it again the slow way as soon as any problem is found (pipeline.py).

This reader gives the values the slow one would (PyYAML's YAML 1.1 resolver and constructors decide
what each plain scalar is) or declines (None) whenever it cannot be sure: it takes block mappings
and sequences, one-line flow collections, one-line plain and quoted scalars and comments, and
declines everything else (block scalars, anchors and aliases, merge keys, tags, multi-line
scalars, complex or non-string keys, duplicate keys, documents markers, tabs, values the slow
reader reports) rather than guess.
"""

from __future__ import annotations

import math
import re

import yaml

from .files import MAX_DEPTH, MAX_VALUES


class _Declined(Exception):
    """The text uses something this reader does not take: the slow reader decides."""


# Characters that end a line or mean something this reader leaves to the slow one anywhere in the
# text (YAML 1.1 line breaks besides \n, tabs, a byte order mark past the start).
_DECLINE_ANYWHERE = re.compile("[\r\t\x85\u2028\u2029\ufeff]")
_KEY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-]*):(?: +|$)")
# Scalars on one line. Quoted ones are strings as written ('' is a quote; no backslash escapes).
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_DOUBLE = re.compile(r'"([^"\\]*)"')
# A plain scalar in a flow collection: no character that could end it or mean something else.
_FLOW_PLAIN = re.compile(r"(?:-(?=[^ ,\[\]{}])|[^ ,\[\]{}:#'\"&*!|>%@`?\-])[^,\[\]{}:#]*")
# What cannot start a plain scalar in a block (YAML's indicators; '-' only before a space).
_NOT_PLAIN_START = frozenset("-?:,[]{}#&*!|>'\"%@`")
_FLOW_SCALAR = re.compile(r"'((?:[^']|'')*)'|\"([^\"\\]*)\"|(" + _FLOW_PLAIN.pattern + ")")
# A flow collection of plain scalars only, and an entry of such a mapping.
_FLAT = re.compile(r"\[([^\[\]{}'\"#]*)\]|\{([^\[\]{}'\"#]*)\}")
_FLAT_ENTRY = re.compile(r"([A-Za-z0-9_][A-Za-z0-9_.\-]*): +(.*)")
_SPACES = re.compile(" *")
_SEPARATOR = re.compile(" *(,)? *")
_TAIL = re.compile(r" *(?: #.*)?")  # what may follow a value on its line: a comment
# Values read at most: far from the slow reader's limit, which it reports.
_MOST = MAX_VALUES // 2

_STR = "tag:yaml.org,2002:str"
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
# The first characters of the plain scalars PyYAML's resolver may make other than strings.
_IMPLICIT = yaml.resolver.Resolver.yaml_implicit_resolvers
_RESOLVED_FIRST = frozenset(k for k in _IMPLICIT if k) if None not in _IMPLICIT else frozenset()
_TYPED = frozenset(
    "tag:yaml.org,2002:" + t for t in ("null", "bool", "int", "float")
)  # what plain scalars may be besides strings, of what the slow reader takes


def _past(pattern: re.Pattern[str], text: str, at: int) -> int:
    """Where `pattern`, which matches anywhere (even nothing), ends from `at`."""
    m = pattern.match(text, at)
    return at if m is None else m.end()


def _resolved(text: str) -> str:
    """The tag PyYAML's resolver gives a plain scalar."""
    tag: str = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _plain(text: str, cache: dict[str, object]) -> object:
    """A plain scalar's value, as PyYAML's resolver and constructors make it (parse._scalar):
    declined when the slow reader would report it (a date, an infinite number)."""
    if _RESOLVED_FIRST and text[0] not in _RESOLVED_FIRST:  # a string, as most are
        return text
    try:
        return cache[text]
    except KeyError:
        pass
    tag = _resolved(text)
    if tag == _STR:
        value: object = text
    else:
        if tag not in _TYPED:  # a date, `<<`, `=`: reported or handled by the slow reader
            raise _Declined
        make = yaml.constructor.SafeConstructor.yaml_constructors[tag]
        try:
            value = make(_CONSTRUCTOR, yaml.ScalarNode(tag, text))
        except Exception:  # an integer past Python's digit limit...: the slow reader reports it
            raise _Declined from None
        if isinstance(value, float) and not math.isfinite(value):
            raise _Declined
    cache[text] = value
    return value


class _Reader:
    def __init__(self, lines: list[tuple[int, str]]) -> None:
        self.lines = lines  # (indentation, the rest) of each line that holds something
        self.i = 0
        self.count = 0
        self.cache: dict[str, object] = {}
        self.keys: dict[str, bool] = {}

    def key(self, text: str) -> str:
        ok = self.keys.get(text)
        if ok is None:
            ok = self.keys[text] = _resolved(text) == _STR
        if not ok:  # `true:`, `1:`, `null:`: not a string, which the slow reader reports
            raise _Declined
        return text

    def block(self, indent: int, depth: int) -> object:
        """The collection whose first line is the current one, at `indent`."""
        self.count += 1
        if depth > MAX_DEPTH // 2:
            raise _Declined  # the slow reader says where the limit was passed
        if _entry(self.lines[self.i][1]):
            return self.sequence(indent, depth)
        return self.mapping(indent, depth)

    def mapping(self, indent: int, depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        lines, i = self.lines, self.i
        while True:
            ind, rest = lines[i]
            if ind < indent:  # the end of the mapping (the last line's indentation is -1)
                break
            m = _KEY.match(rest)
            if ind > indent or m is None:
                raise _Declined  # a continued scalar, a bad indentation, not a `key:` line
            key = self.key(m.group(1))
            if key in out:
                raise _Declined  # reported by the slow reader
            value_text = rest[m.end() :]
            i += 1
            if value_text and value_text[0] != "#":
                out[key] = self.inline(value_text, depth + 1)
            elif lines[i][0] > indent or (lines[i][0] == indent and _entry(lines[i][1])):
                self.i = i
                out[key] = self.block(lines[i][0], depth + 1)
                i = self.i
            else:
                self.count += 1
                out[key] = None
            if lines[i][0] > indent:
                raise _Declined  # the value goes on (or is wrongly indented)
        self.i = i
        return out

    def sequence(self, indent: int, depth: int) -> list[object]:
        out: list[object] = []
        lines = self.lines
        while True:
            ind, rest = lines[self.i]
            if ind < indent or (ind == indent and not _entry(rest)):
                break
            if ind > indent:
                raise _Declined
            item = rest[1:].lstrip(" ")
            if not item or item[0] == "#":
                self.i += 1
                if lines[self.i][0] > indent:
                    out.append(self.block(lines[self.i][0], depth + 1))
                else:
                    self.count += 1
                    out.append(None)
            elif item[0] == "-" or item[0] == "?":
                raise _Declined  # a sequence in a sequence on one line, a complex key
            elif _KEY.match(item):  # `- key: value`: a mapping whose keys line up with `key`
                column = ind + len(rest) - len(item)
                lines[self.i] = (column, item)
                self.count += 1
                out.append(self.mapping(column, depth + 1))
            else:
                self.i += 1
                out.append(self.inline(item, depth + 1))
            if lines[self.i][0] > indent:
                raise _Declined
        return out

    def inline(self, text: str, depth: int) -> object:
        """The value that `text` (the rest of a line, not empty) holds, with its comment."""
        self.count += 1
        first = text[0]
        if first in "[{":
            value, end = self.flow(text, 0, depth)
        elif first == "'" or first == '"':
            m = (_SINGLE if first == "'" else _DOUBLE).match(text)
            if m is None:
                raise _Declined  # a quote that goes on past the line, or an escape
            value = m.group(1).replace("''", "'") if first == "'" else m.group(1)
            end = m.end()
        else:
            if first in _NOT_PLAIN_START and not (first == "-" and text[1:2] not in ("", " ")):
                raise _Declined
            cut = text.find(" #")
            plain = (text if cut < 0 else text[:cut]).rstrip(" ")
            if ": " in plain or plain.endswith(":") or plain.startswith("---"):
                raise _Declined
            return _plain(plain, self.cache)
        if not _TAIL.fullmatch(text, end):
            raise _Declined
        return value

    def flow(self, text: str, at: int, depth: int) -> tuple[object, int]:
        """The flow collection or scalar at `text[at]`, and where it ends."""
        first = text[at : at + 1]
        if first != "[" and first != "{":
            m = _FLOW_SCALAR.match(text, at)
            if m is None:
                raise _Declined
            plain = m.group(3)
            if plain is not None:
                return _plain(plain.rstrip(" "), self.cache), m.end()
            single = m.group(1)
            return (m.group(2) if single is None else single.replace("''", "'")), m.end()
        if depth > MAX_DEPTH // 2:
            raise _Declined
        flat = self.flat(text, at)
        if flat is not None:
            return flat
        close = "]" if first == "[" else "}"
        items: list[object] = []
        out: dict[str, object] = {}
        at = _past(_SPACES, text, at + 1)
        while text[at : at + 1] != close:
            if close == "}":
                m = _KEY.match(text, at)
                if m is None or m.end() == len(text):
                    raise _Declined  # not `key: value` (a key alone, a quoted key)
                key = self.key(m.group(1))
                if key in out:
                    raise _Declined
                out[key], at = self.flow(text, m.end(), depth + 1)
            else:
                value, at = self.flow(text, at, depth + 1)
                items.append(value)
            self.count += 1
            # Past the separator: at the next entry or at `close`; anything else (a `:` in a
            # list, the line's end, an empty entry) is declined.
            comma = text[at:].lstrip(" ").startswith(",")
            at = _past(_SEPARATOR, text, at)
            nxt = text[at : at + 1]
            if nxt == "," or (not comma and nxt != close):
                raise _Declined
        if self.count > _MOST:
            raise _Declined
        return (items if close == "]" else out), at + 1

    def flat(self, text: str, at: int) -> tuple[object, int] | None:
        """The flow collection at `text[at]` when it holds plain scalars only (`[a, b]`,
        `{k: v}`), read in one match and a split; None for any other (flow() reads it)."""
        m = _FLAT.match(text, at)
        if m is None:
            return None
        body = m.group(1) if m.group(1) is not None else m.group(2)
        items: list[object] = []
        out: dict[str, object] = {}
        pieces = body.split(",") if body.strip(" ") else []
        if len(pieces) > 1 and not pieces[-1].strip(" "):
            pieces.pop()  # a trailing comma
        for piece in pieces:
            piece = piece.strip(" ")
            if m.group(1) is not None:
                if not _FLOW_PLAIN.fullmatch(piece):
                    return None
                items.append(_plain(piece, self.cache))
                continue
            entry = _FLAT_ENTRY.fullmatch(piece)
            if entry is None or not _FLOW_PLAIN.fullmatch(entry.group(2)):
                return None
            key = self.key(entry.group(1))
            if key in out:
                return None
            out[key] = _plain(entry.group(2), self.cache)
        self.count += len(pieces)
        return (items if m.group(1) is not None else out), m.end()


def quick_values(text: str) -> object | None:
    """The manifest's values, as parse.parse_text would read them when it finds no problem, or
    None when this reader cannot be sure of that (the slow reader then reads it)."""
    if _DECLINE_ANYWHERE.search(text):
        return None
    lines: list[tuple[int, str]] = []
    for line in text.split("\n"):
        rest = line.lstrip(" ")
        if not rest or rest[0] == "#":
            continue
        if line[:3] in ("---", "...") or line[:1] == "%":
            return None  # documents and directives
        lines.append((len(line) - len(rest), rest))
    if not lines or lines[0][0] != 0 or _entry(lines[0][1]):
        return None  # empty, or not a mapping: the slow reader reports it
    lines.append((-1, ""))  # ends every collection: no line after it to check for
    reader = _Reader(lines)
    try:
        data = reader.mapping(0, 0)
    except (_Declined, RecursionError):
        return None
    except Exception:  # a case this reader did not foresee: the slow reader knows what to say
        return None
    if reader.count >= _MOST:
        return None
    return data


def _entry(rest: str) -> bool:
    """Whether a line (without its indentation) is an entry of a block sequence."""
    return rest[:1] == "-" and rest[1:2] in ("", " ")
