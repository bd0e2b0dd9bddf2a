"""Rules evaluated over resources: the violations they find, in bounded time.

A rule's condition says what must hold: a resource for which it is false breaks the rule. A
rule that cannot be evaluated on a resource (a missing key, a wrong type, a result that is not
true or false) stops there and is reported once (LA657) at its own severity: a rule at `error`
that fails refuses the plan, as a broken one does. Each rule has RULE_SECONDS, all rules
together RUN_SECONDS: past them what is left is reported as not evaluated (LA657).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from ..core.changes import Violation
from ..core.sensitive import Masker
from ..errors import escape_controls
from .inputs import Subject
from .rules import Rule

RULE_SECONDS = 2.0
RUN_SECONDS = 10.0
MAX_SHOWN = 300  # characters of a value a message quotes
BROKEN, WARNED, FAILED = "LA655", "LA656", "LA657"

if TYPE_CHECKING:  # the CEL library is imported where rules are compiled (expressions)
    import cel


@dataclass(frozen=True)
class Budget:
    """Seconds a rule, and a run's rules together, may take (tests lower them)."""

    rule: float = RULE_SECONDS
    run: float = RUN_SECONDS


def applies(rule: Rule, s: Subject) -> bool:
    a = rule.applies_to
    return (
        (not a.kinds or s.kind in a.kinds)
        and (not a.addresses or any(fnmatchcase(s.address, p) for p in a.addresses))
        and (not a.tags or any(fnmatchcase(t, p) for t in s.tags for p in a.tags))
        and (not a.actions or s.action in a.actions)
        and not any(fnmatchcase(s.address, p) for p in a.exceptions)
    )


def evaluate(
    rules: Sequence[Rule],
    subjects: Sequence[Subject],
    masker: Masker,
    budget: Budget | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[Violation, ...]:
    """What `rules` find over `subjects`, in rule order, then resource order."""
    budget = budget or Budget()
    out: list[Violation] = []
    start = clock()
    for rule in rules:
        if clock() - start > budget.run:
            out.append(_failed(rule, "", f"not evaluated: the rules used up {budget.run:g} s"))
            continue
        out.extend(_rule(rule, subjects, masker, budget, clock))
    return tuple(out)


def _rule(
    rule: Rule,
    subjects: Sequence[Subject],
    masker: Masker,
    budget: Budget,
    clock: Callable[[], float],
) -> list[Violation]:
    out: list[Violation] = []
    start = clock()
    code = BROKEN if rule.severity == "error" else WARNED
    for n, s in enumerate(subjects):
        if not applies(rule, s):
            continue
        if clock() - start > budget.rule:
            why = f"stopped after {budget.rule:g} s, at {n} of {len(subjects)} resources"
            return [*out, _failed(rule, s.address, why, s)]
        try:
            result = rule.condition.execute(s.context)
        except Exception as e:  # the library raises KeyError, TypeError, RuntimeError...
            return [*out, _failed(rule, s.address, _why(e), s)]
        if result is True:
            continue
        if result is not False:
            why = f"the condition gave {_shown(result)}, not true or false"
            return [*out, _failed(rule, s.address, why, s)]
        message = escape_controls(masker.text(_message(rule, s.context)))
        out.append(
            Violation(rule.id, rule.severity, s.address, message, code, s.file, s.line, s.col)
        )
    return out


def _why(e: Exception) -> str:
    text = str(e).splitlines()[0] if str(e) else type(e).__name__
    if isinstance(e, KeyError):
        return f"no such key {text} (test it first with has())"
    return text.split(". ")[0]


def _failed(rule: Rule, address: str, why: str, s: Subject | None = None) -> Violation:
    return Violation(
        rule.id, rule.severity, address, f"rule {rule.id} could not be evaluated: {why}",
        FAILED, *((s.file, s.line, s.col) if s else (rule.file, rule.line, rule.col)),
    )  # fmt: skip


def _message(rule: Rule, context: cel.Context) -> str:
    parts = []
    for p in rule.message:
        if isinstance(p, str):
            parts.append(p)
            continue
        try:
            parts.append(_shown(p.execute(context)))
        except Exception:  # a message never fails its rule: the part shows as unknown
            parts.append("?")
    return "".join(parts)


def _shown(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."
