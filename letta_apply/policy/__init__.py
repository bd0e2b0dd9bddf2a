"""Policy rules in CEL, owned by a platform team, checked by validate, plan, apply and drift
(README, Policies): rules.py reads their files, expressions.py bounds and compiles their
expressions, inputs.py gives them the resources, evaluate.py finds the violations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from ..core.changes import Plan, Violation
from ..core.model import Desired
from ..core.sensitive import Masker
from .evaluate import Budget, evaluate
from .inputs import subjects
from .rules import Policies, Rule, load_policies

__all__ = [
    "Budget",
    "Policies",
    "Rule",
    "check_declared",
    "check_plan",
    "load_policies",
    "policies_for",
    "stack_policies",
]


def policies_for(given: Sequence[str], desired: Desired | None) -> Policies:
    """The rules of the files given (--policy) and of those the manifest names (`policy:`).
    Raises PolicyFileError (a ManifestError), located, when one is not a valid policy file."""
    paths = [*given, *(desired.policies if desired else ())]
    return load_policies(paths) if paths else Policies()


def stack_policies(given: Policies, desired: Desired, extra: Sequence[str] = ()) -> Policies:
    """The rules one stack is checked against: those `given` (loaded once for many stacks),
    with the stack's own files (`extra`, and the manifest's `policy:`) when it names any, loaded
    together so that an id is unique across them all. Raises PolicyFileError like
    policies_for."""
    own = [*extra, *desired.policies]
    return load_policies([*given.files, *own]) if own else given


def check_declared(
    desired: Desired, policies: Policies, budget: Budget | None = None
) -> tuple[Violation, ...]:
    """What the rules that need no plan (those that do not read `change`) find in the manifest:
    what validate reports."""
    rules = [r for r in policies.rules if not r.needs_plan]
    if not rules:
        return ()
    return evaluate(rules, subjects(desired), Masker(desired.secrets), budget)


def check_plan(
    plan: Plan,
    desired: Desired,
    policies: Policies,
    *,
    drift: bool = False,
    budget: Budget | None = None,
) -> Plan:
    """`plan` with what the rules find in it (with `drift`, in the resources as the server now
    holds them). A violation at `error` makes the plan blocked: apply writes nothing."""
    if not policies.rules:
        return plan
    found = evaluate(
        policies.rules, subjects(desired, plan, drift=drift), Masker(desired.secrets), budget
    )
    return replace(plan, violations=found)
