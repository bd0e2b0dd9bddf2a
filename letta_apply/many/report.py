"""One summary of a run over many stacks: a table (a row per stack, the failures and why under
it, totals last) or a JSON document with one entry per stack."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Literal

from ..core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    FORGET,
    IMPORT,
    REPLACE,
    UPDATE,
    Action,
)
from ..core.jsonish import JsonObject
from ..core.sensitive import Masker
from ..plan import planfile
from .run import StackRun

Operation = Literal["plan", "apply", "destroy"]
OTHER: tuple[Action, ...] = (ATTACH, DETACH, IMPORT, REPLACE, FORGET)  # one column


def status(run: StackRun, operation: Operation) -> str:
    """One word or two for what happened to the stack."""
    plan = run.plan
    if run.error or plan is None:
        return "failed"
    if run.result is None:  # planned only
        return "refused" if plan.problems else ("changes" if plan.has_changes else "no changes")
    if not run.result.ok:
        return "failed" if run.result.failure or run.result.blocked else "incomplete"
    if not plan.has_changes:
        return "no changes"
    return "destroyed" if operation == "destroy" else "applied"


def totals(runs: Sequence[StackRun], operation: Operation) -> dict[str, int]:
    """How many stacks ended each way (`ok` and not), and the changes planned in all."""
    out: Counter[str] = Counter(stacks=len(runs))
    for run in runs:
        out["ok" if run.ok else "failed"] += 1
        word = status(run, operation)
        if word != "failed":  # counted just above
            out[word.replace(" ", "_")] += 1
        actions: tuple[Action, ...] = (CREATE, UPDATE, DELETE, *OTHER)
        for action in actions:
            out[action] += run.plan.count(action) if run.plan else 0
        out["done"] += len(run.result.done) if run.result else 0
    return dict(out)


def stacks_text(runs: Sequence[StackRun], operation: Operation) -> str:
    """The table: a row per stack in order, then why each failed one did, then the totals."""
    name_width = max([len("STACK"), *(len(_name(r)) for r in runs)])
    lines = [f"{'STACK':<{name_width}}  CREATE  UPDATE  DELETE   OTHER  RESULT"]
    for run in runs:
        plan = run.plan
        if plan is None:
            counts = "       -" * 4
        else:
            n = [plan.count(CREATE), plan.count(UPDATE), plan.count(DELETE),
                 sum(plan.count(a) for a in OTHER)]  # fmt: skip
            counts = "".join(f"{x:>8}" for x in n)
        lines.append(f"{_name(run):<{name_width}}{counts}  {status(run, operation)}")
    failing = [r for r in runs if not r.ok]
    if failing:
        lines.append("")
        for run in failing:
            why = run.why or ["not applied in full"]
            lines.append(f"{_name(run)} ({run.origin}):" if run.stack else f"{run.origin}:")
            lines += [f"  {line}" for w in why for line in w.splitlines()]
    t = totals(runs, operation)
    words = {"plan": ("changes", "with changes"), "apply": ("applied", "applied"),
             "destroy": ("destroyed", "destroyed")}[operation]  # fmt: skip
    lines.append("")
    lines.append(
        f"{t['stacks']} stack{'s' if t['stacks'] != 1 else ''}: {t.get(words[0], 0)} "
        f"{words[1]}, {t.get('no_changes', 0)} without changes, {t.get('failed', 0)} failed."
    )
    return "\n".join(lines)


def _name(run: StackRun) -> str:
    return run.stack or run.origin


def stacks_document(runs: Sequence[StackRun], operation: Operation, masker: Masker) -> JsonObject:
    """The JSON document: `stacks`, one entry per stack in order, and `summary`; sensitive
    values masked."""
    entries: list[JsonObject] = []
    for run in runs:
        entry: JsonObject = {
            "stack": run.stack or None, "source": run.origin, "ok": run.ok,
            "status": status(run, operation), "errors": [masker.text(w) for w in run.why],
        }  # fmt: skip
        if run.plan is not None:
            entry["summary"] = dict(planfile.summary(run.plan))
            entry["changes"] = [{"action": c.action, "address": c.address}
                                for c in run.plan.changes]  # fmt: skip
        if run.result is not None:
            entry["done"] = len(run.result.done)
            if run.result.backup_folder:
                entry["backup_folder"] = run.result.backup_folder
        entries.append(entry)
    summary: JsonObject = dict(totals(runs, operation))
    return {"operation": operation, "stacks": entries, "summary": summary}
