"""Turn plans and apply results into text for people. Nothing here decides or does I/O."""

from __future__ import annotations

import difflib
import json
from typing import Any

from .apply import Done
from .plan import ATTACH, CREATE, DETACH, UPDATE, Change, Drift, FieldDiff, Plan

SYMBOL = {CREATE: "+", UPDATE: "~", ATTACH: "+", DETACH: "-"}
_INLINE_MAX = 72


def _value(v: Any) -> str:
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict) and set(v) == {"$ref"}:
        return f"(id of {v['$ref']})"
    if isinstance(v, list) and all(isinstance(x, str) for x in v):
        return "[" + ", ".join(v) + "]"
    return json.dumps(v, ensure_ascii=False, sort_keys=True)


def _is_long(v: Any) -> bool:
    return isinstance(v, str) and ("\n" in v or len(v) > _INLINE_MAX)


def _unified(before: str, after: str, indent: str, names: tuple[str, str]) -> list[str]:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), *names, lineterm="", n=2)
    return [indent + line for line in lines]


def _field(d: FieldDiff, indent: str, *, create: bool) -> list[str]:
    if create:
        if _is_long(d.after):
            head = f"{indent}{d.field}: <<"
            return [
                head,
                *(indent + "    " + line for line in str(d.after).splitlines()),
                indent + ">>",
            ]
        return [f"{indent}{d.field}: {_value(d.after)}"]
    if _is_long(d.before) or _is_long(d.after):
        return [
            f"{indent}{d.field}:",
            *_unified(
                str(d.before or ""), str(d.after or ""), indent + "    ", ("live", "declared")
            ),
        ]
    return [f"{indent}{d.field}: {_value(d.before)} -> {_value(d.after)}"]


def change_lines(c: Change) -> list[str]:
    sym = SYMBOL[c.action]
    if c.action in (ATTACH, DETACH):
        return [f"  {sym} {c.address}: {c.action} {c.block}  ({c.reason})"]
    rid = f" ({c.remote_id})" if c.remote_id else ""
    verb = "create" if c.action == CREATE else "update"
    lines = [f"  {sym} {c.address}{rid}: {verb}"]
    for d in c.diffs:
        lines.extend(_field(d, "      ", create=c.action == CREATE))
    return lines


def drift_lines(d: Drift) -> list[str]:
    if d.restored:
        head = f"  ~ {d.address}.{d.field} was changed on the server; enforce_value restores it"
    else:
        head = f"  ! {d.address}.{d.field} was written on the server (by an agent or by hand); kept"
    if _is_long(d.live) or _is_long(d.declared):
        return [head, *_unified(str(d.declared), str(d.live), "      ", ("declared", "live"))]
    return [head, f"      declared: {_value(d.declared)}", f"      live:     {_value(d.live)}"]


def summary(plan: Plan) -> str:
    if not plan.changes:
        clean = not plan.drift and not plan.problems
        text = "No changes." + (" The server matches the manifest." if clean else "")
    else:
        parts = [
            f"{plan.count(CREATE)} to create",
            f"{plan.count(UPDATE)} to update",
            f"{plan.count(ATTACH)} to attach",
            f"{plan.count(DETACH)} to detach",
        ]
        text = "Plan: " + ", ".join(parts) + "."
    kept = sum(1 for d in plan.drift if not d.restored)
    if kept:
        text += f" {kept} agent-written value{'s' if kept > 1 else ''} kept."
    if plan.problems:
        text += f" {len(plan.problems)} refused."
    return text


def plan_text(plan: Plan, base_url: str) -> str:
    """The plan as a person reads it in a terminal or a CI log."""
    lines = [f'letta-apply plan: stack "{plan.stack}" on {base_url}', ""]
    if plan.changes:
        lines.append("Changes:")
        for c in plan.changes:
            lines.extend(change_lines(c))
        lines.append("")
    if plan.drift:
        lines.append("Drift (changed on the server since it was created):")
        for d in plan.drift:
            lines.extend(drift_lines(d))
        kept = [d for d in plan.drift if not d.restored]
        if kept:
            lines.append(
                "  Agent-written memory is kept; set `enforce_value: true` on a block "
                "to restore it."
            )
        lines.append("")
    if plan.problems:
        lines.append("Refused:")
        for p in plan.problems:
            lines.append(f"  x {p.address}: {p.message}")
            if p.hint:
                lines.append(f"      hint: {p.hint}")
        lines.append("")
    if plan.notes:
        lines.append("Notes:")
        lines.extend(f"  - {n}" for n in plan.notes)
        lines.append("")
    lines.append(summary(plan))
    return "\n".join(lines)


def done_line(d: Done) -> str:
    c = d.change
    if c.action in (ATTACH, DETACH):
        past = "attached" if c.action == ATTACH else "detached"
        return f"{c.address}: {past} {c.block} ({d.remote_id})"
    past = "created" if c.action == CREATE else "updated"
    return f"{c.address}: {past} ({d.remote_id})"
