"""Policy files: YAML a platform team owns, each a list of rules checked at validate, plan,
apply and drift (README, Policies). Every problem in them is reported at once, located
(`policy.yaml:12:15: ...`), before anything is sent to the server.

    rules:
      - id: approved-models
        description: Agents use approved model handles only.
        applies_to: {kinds: [agent], addresses: ["agent.*"], tags: [], except: [], actions: []}
        condition: resource.model in ["openai/gpt-4o-mini"]
        severity: error
        message: "uses {{resource.model}}, not an approved model"
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..core.changes import ERROR, WARNING, Severity
from ..errors import Diagnostic, ManifestError, PolicyFileError
from ..manifest.files import Document, Path_, Position
from ..manifest.parse import parse_file
from .expressions import ExpressionError, compile_expression

MAX_RULES = 1000
MAX_MESSAGE_CHARS = 1000
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,99}")
_FIELDS = ("id", "description", "applies_to", "condition", "severity", "message")
_APPLIES = ("kinds", "addresses", "tags", "except", "actions")
_LISTED, _IN = ", ".join(_FIELDS), ", ".join(_APPLIES)
_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}", re.S)

if TYPE_CHECKING:  # the CEL library is imported where rules are compiled (expressions)
    import cel


@dataclass(frozen=True)
class AppliesTo:
    """Which resources a rule reads: all of these that are given must match (kinds by name;
    addresses and exceptions as shell patterns, `agent.worker*`; any one of the tags; the
    planned change's action). Empty: any."""

    kinds: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    exceptions: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    description: str
    applies_to: AppliesTo
    condition: cel.Program
    severity: Severity
    # The message in pieces: literal text, and the programs of its `{{...}}` in between.
    message: tuple[str | cel.Program, ...]
    file: str
    line: int
    col: int
    needs_plan: bool  # it reads `change`: validate, which has no plan, leaves it out


@dataclass(frozen=True)
class Policies:
    rules: tuple[Rule, ...] = ()
    files: tuple[str, ...] = ()


def policy_files(paths: Sequence[str]) -> tuple[list[str], list[Diagnostic]]:
    """The files `paths` name, a folder standing for the .yaml and .yml files in it (sorted)."""
    files: list[str] = []
    errors: list[Diagnostic] = []
    for given in paths:
        p = Path(given)
        if p.is_dir():
            found = sorted(str(f) for f in p.iterdir() if f.suffix in (".yaml", ".yml"))
            if not found:
                errors.append(Diagnostic(given, 0, 0, "no .yaml policy file in it", code="LA650"))
            files.extend(found)
        elif p.is_file():
            files.append(given)
        else:
            errors.append(Diagnostic(given, 0, 0, "no such policy file", code="LA650"))
    return list(dict.fromkeys(files)), errors


def load_policies(paths: Sequence[str]) -> Policies:
    """The rules of the policy files and folders `paths` names, compiled. Raises
    PolicyFileError with every problem found in them, located."""
    files, errors = policy_files(paths)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for file in files:
        try:
            doc, found = parse_file(file)
        except ManifestError as e:
            errors.extend(e.diagnostics)
            continue
        errors.extend(found)
        if found:
            continue
        reader = _Reader(doc, seen)
        rules.extend(reader.rules())
        errors.extend(reader.errors)
    if len(rules) > MAX_RULES:
        errors.append(Diagnostic(files[-1], 1, 1, f"over {MAX_RULES} rules", code="LA651"))
    if errors:
        raise PolicyFileError(errors)
    return Policies(tuple(rules), tuple(files))


class _Reader:
    """Reads one policy file's rules, collecting every problem found."""

    def __init__(self, doc: Document, seen: dict[str, str]) -> None:
        self.doc, self.seen = doc, seen
        self.errors: list[Diagnostic] = []

    def err(self, path: Path_, message: str, code: str = "LA651", *, key: int = 0) -> None:
        self.errors.append(self.doc.diag(path, message, code=code, key=bool(key)))

    def rules(self) -> list[Rule]:
        data = self.doc.data
        if not isinstance(data, dict) or not isinstance(data.get("rules"), list):
            self.err((), "a policy file is a mapping with `rules:`, a list of rules", "LA650")
            return []
        for key in data:
            if key not in ("rules", "version"):
                self.err(
                    (key,), f"unknown key '{key}' (a policy file has: version, rules)", key=True
                )
        if data.get("version", 1) != 1:
            self.err(("version",), "version: only 1 is known")
        out = []
        for i, item in enumerate(data["rules"]):
            rule = self.rule(("rules", i), item)
            if rule is not None:
                out.append(rule)
        return out

    def rule(self, at: Path_, item: object) -> Rule | None:
        if not isinstance(item, dict):
            self.err(at, "a rule is a mapping (id, condition, severity, message...)")
            return None
        before = len(self.errors)
        for key in item:
            if key not in _FIELDS:
                self.err(
                    (*at, key), f"unknown key '{key}' (a rule has: {', '.join(_FIELDS)})", key=True
                )
        rid = self.text(at, item, "id")
        if rid and not _ID.fullmatch(rid):
            self.err((*at, "id"), "id: letters, digits, '_', '.', ':' and '-', at most 100")
        elif rid in self.seen:
            self.err((*at, "id"), f"id '{rid}' is already the id of a rule ({self.seen[rid]})")
        elif rid:
            pos = self.doc.where((*at, "id"))
            self.seen[rid] = f"{pos.file or self.doc.file}:{pos.line}"
        written = self.text(at, item, "severity")
        severity: Severity = ERROR if written == ERROR else WARNING
        if written and written not in (ERROR, WARNING):
            self.err((*at, "severity"), f"severity: error or warning, not {written!r}")
        description = self.text(at, item, "description", required=False)
        applies = self.applies(at, item.get("applies_to"))
        condition = self.program(at, item, "condition")
        message = self.message(at, item)
        if len(self.errors) > before or condition is None or message is None:
            return None
        pos = self.doc.where(at)
        reads = set(condition.variables()) | {
            v for p in message if not isinstance(p, str) for v in p.variables()
        }
        return Rule(
            rid, description, applies, condition, severity,
            message, pos.file or self.doc.file, pos.line, pos.col, "change" in reads,
        )  # fmt: skip

    def text(self, at: Path_, item: dict[str, object], key: str, *, required: bool = True) -> str:
        value = item.get(key)
        if value is None:
            if required:
                self.err(at, f"the rule has no `{key}`")
            return ""
        if not isinstance(value, str) or not value.strip():
            self.err((*at, key), f"{key}: a non-empty string")
            return ""
        return value

    def applies(self, at: Path_, value: object) -> AppliesTo:
        at = (*at, "applies_to")
        if value is None:
            return AppliesTo()
        if not isinstance(value, dict):
            self.err(at, f"applies_to: a mapping with any of {', '.join(_APPLIES)}")
            return AppliesTo()
        lists: dict[str, tuple[str, ...]] = {}
        for key, items in value.items():
            if key not in _APPLIES:
                self.err(
                    (*at, key),
                    f"unknown key '{key}' (applies_to has: {', '.join(_APPLIES)})",
                    key=True,
                )
            elif not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                self.err((*at, key), f"applies_to.{key}: a list of strings")
            else:
                lists[key] = tuple(items)
        return AppliesTo(
            lists.get("kinds", ()), lists.get("addresses", ()), lists.get("tags", ()),
            lists.get("except", ()), lists.get("actions", ()),
        )  # fmt: skip

    def program(self, at: Path_, item: dict[str, object], key: str) -> cel.Program | None:
        text = self.text(at, item, key)
        return self.compiled((*at, key), text, 0) if text else None

    def compiled(self, at: Path_, text: str, offset: int) -> cel.Program | None:
        """`text` compiled; a problem is reported where it is in the file (`offset`: where the
        text starts in the YAML value)."""
        try:
            return compile_expression(text[offset:] if offset else text)
        except ExpressionError as e:
            line, col = _in_file(self.doc, at, text, offset, e.line, e.col)
            pos = self.doc.where(at)
            self.errors.append(
                Diagnostic(pos.file or self.doc.file, line, col, e.message, code=e.code)
            )
            return None

    def message(self, at: Path_, item: dict[str, object]) -> tuple[str | cel.Program, ...] | None:
        text = self.text(at, item, "message")
        if not text:
            return None
        if len(text) > MAX_MESSAGE_CHARS:
            self.err((*at, "message"), f"message: over {MAX_MESSAGE_CHARS} characters")
            return None
        out: list[str | cel.Program] = []
        last, ok = 0, True
        for m in _PLACEHOLDER.finditer(text):
            out.append(text[last : m.start()])
            program = self.compiled((*at, "message"), text[: m.end(1)], m.start(1))
            ok = ok and program is not None
            if program is not None:
                out.append(program)
            last = m.end()
        out.append(text[last:])
        return tuple(p for p in out if p != "") if ok else None


def _in_file(
    doc: Document, at: Path_, text: str, offset: int, line: int, col: int
) -> tuple[int, int]:
    """Where, in the policy file, is the position `line`:`col` of an expression that starts at
    `offset` of the YAML string at `at`: plain and quoted scalars start where their value does,
    block scalars (`|`, `>`) on the line after, indented."""
    before = text[:offset]
    first, start_col = before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1
    line, col = (first, start_col + col - 1) if line == 1 else (first + line - 1, col)
    pos: Position = doc.where(at)
    try:
        lines = Path(pos.file or doc.file).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return pos.line, pos.col
    start = lines[pos.line - 1][pos.col - 1 :] if pos.line <= len(lines) else ""
    if start[:1] in ("|", ">"):
        body = next((s for s in lines[pos.line :] if s.strip()), "")
        return pos.line + line, len(body) - len(body.lstrip()) + col
    quoted = 1 if start[:1] in ("'", '"') else 0
    if line == 1:
        return pos.line, pos.col + quoted + col - 1
    return pos.line + line - 1, col
