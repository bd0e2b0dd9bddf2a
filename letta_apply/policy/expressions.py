"""A rule's CEL expressions, compiled with the checks that keep their evaluation bounded.

The CEL library (common-expression-language, Rust) holds the GIL while it evaluates, so a slow
expression cannot be stopped from the outside: every expression is bounded before it is
compiled. It may be at most MAX_CHARS long and nest at most MAX_NESTING brackets, and no
comprehension (all, exists, exists_one, map, filter) may sit inside another: one evaluation then
costs at most the size of the expression times the size of the data it reads, and the data is a
manifest's, bounded by the manifest's own limits. The evaluator adds a time budget per rule and
per run (policy.evaluate).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import cel


MAX_CHARS = 4096
MAX_NESTING = 24

VARIABLES = ("resource", "change", "stack", "address", "kind", "template", "sensitive")
"""What a rule's expressions are given (policy.inputs)."""

MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
FUNCTIONS = frozenset(
    {
        "has", "size", "contains", "startsWith", "endsWith", "matches", "int", "uint",
        "double", "string", "bytes", "type", "dyn", "duration", "timestamp",
        "getFullYear", "getMonth", "getDayOfMonth", "getDayOfYear", "getDayOfWeek",
        "getHours", "getMinutes", "getSeconds", "getMilliseconds",
    }
)  # fmt: skip
"""The functions of CEL's standard library the Rust implementation has natively (its Python
extension functions are not given: a Python callback could run unbounded)."""

# A string literal (quotes of either kind, raw or not, triple-quoted), a bracket, or a name with
# the `.` or `(` around it: enough to find nesting and comprehensions without a parser.
_TOKEN = re.compile(
    r"""(?P<str>[rRbB]{0,2}(?:'''(?:\\.|[^\\])*?'''|\"\"\"(?:\\.|[^\\])*?\"\"\"|'(?:\\.|[^'\\\n])*'|"(?:\\.|[^"\\\n])*"))"""
    r"""|(?P<open>[(\[{])|(?P<close>[)\]}])|(?P<name>\.?[A-Za-z_][A-Za-z0-9_]*)(?P<call>\s*\()?"""
)


class ExpressionError(Exception):
    """An expression refused: `message`, with `line` and `col` inside the expression (1-based)
    and its code (LA652 to LA654)."""

    def __init__(self, message: str, line: int, col: int, code: str) -> None:
        super().__init__(message)
        self.message, self.line, self.col, self.code = message, line, col, code


def _line_col(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _tokens(text: str) -> Iterator[re.Match[str]]:
    return _TOKEN.finditer(text)


def check_shape(text: str) -> set[str]:
    """Refuse an expression whose evaluation would not stay bounded, or that calls a function
    CEL here has not. Raises ExpressionError; returns the names its comprehensions bind."""
    if len(text) > MAX_CHARS:
        raise ExpressionError(
            f"expression of {len(text)} characters, over the limit of {MAX_CHARS}", 1, 1, "LA653"
        )
    depth = 0
    opened: list[bool] = []  # per open bracket: whether it opens a comprehension's arguments
    bound: set[str] = set()  # names comprehensions bind (their first argument)
    for m in _tokens(text):
        if m.group("open"):
            depth += 1
            opened.append(False)
            if depth > MAX_NESTING:
                raise ExpressionError(
                    f"nested over {MAX_NESTING} levels deep", *_line_col(text, m.start()), "LA653"
                )
        elif m.group("close"):
            depth = max(0, depth - 1)
            if opened:
                opened.pop()
        elif m.group("name"):
            name = m.group("name")
            method = name.startswith(".")
            name = name.lstrip(".")
            if m.group("call") is None:
                continue
            depth += 1
            if method and name in MACROS:
                if any(opened):
                    raise ExpressionError(
                        f"'{name}' inside another comprehension: comprehensions may not nest "
                        "(evaluation would not stay bounded)",
                        *_line_col(text, m.start() + 1), "LA653",
                    )  # fmt: skip
                opened.append(True)
                after = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*,", text[m.end() :])
                if after:
                    bound.add(after.group(1))
            else:
                opened.append(False)
                if name not in FUNCTIONS and name not in MACROS:
                    raise ExpressionError(
                        f"unknown function '{name}' (CEL here has: "
                        f"{', '.join(sorted(FUNCTIONS))})",
                        *_line_col(text, m.start() + (1 if method else 0)), "LA654",
                    )  # fmt: skip
    return bound


def _check_names(text: str, program: cel.Program, bound: set[str]) -> None:
    """Every name an expression reads is given to it, or bound by one of its comprehensions."""
    for name in program.variables():
        if name in VARIABLES or name in bound:
            continue
        at = re.search(rf"(?<![.\w]){re.escape(name)}\b", text)
        raise ExpressionError(
            f"unknown name '{name}' (rules are given: {', '.join(VARIABLES)})",
            *_line_col(text, at.start() if at else 0), "LA654",
        )  # fmt: skip


_PARSE_AT = re.compile(r"<input>:(\d+):(\d+): (.*?)(?:\n|$)")


def compile_expression(text: str) -> cel.Program:
    """The compiled program of `text`, after check_shape. Raises ExpressionError, located."""
    bound = check_shape(text)
    try:
        import cel
    except ImportError:  # its wheels need Python 3.11 or later
        raise ExpressionError(
            "policy rules need the CEL library (common-expression-language, Python 3.11 or "
            "later): install it", 1, 1, "LA650",
        ) from None  # fmt: skip
    try:
        program = cel.compile(text)
    except (ValueError, RuntimeError) as e:  # the library's parse errors
        m = _PARSE_AT.search(str(e))
        if m is None:
            first = str(e).splitlines()[0] if str(e) else "syntax error"
            raise ExpressionError(f"not valid CEL: {first}", 1, 1, "LA652") from None
        message = m.group(3).strip() or "syntax error"
        raise ExpressionError(
            f"not valid CEL: {message}", int(m.group(1)), int(m.group(2)), "LA652"
        ) from None
    _check_names(text, program, bound)
    return program
