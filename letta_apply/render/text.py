"""A plan and drift as a person reads them in a terminal or a CI log, and their colors. Nothing
here decides or does I/O (the markdown plan: render.markdown; other reports: render.results)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..core.changes import (
    ATTACH,
    CONFIGURATION,
    CREATE,
    DELETE,
    DELETED,
    DETACH,
    DRIFT,
    FORGET,
    IMPORT,
    LEFTOVER,
    MEMORY,
    REPLACE,
    UPDATE,
    Change,
    Drift,
    FieldDiff,
    Plan,
)
from ..core.sensitive import Masked
from ..errors import with_code
from ..kinds import kind
from .memory import memory_lines
from .policy import violation_lines
from .wording import block_drift, deleted_drift, is_long, secret_text, shown, unified, value_text

SYMBOL = {
    CREATE: "+", UPDATE: "~", ATTACH: "+", DETACH: "-", DELETE: "-", IMPORT: "=", REPLACE: "-/+",
    FORGET: "-",
}  # fmt: skip


def _field(d: FieldDiff, indent: str, *, create: bool) -> list[str]:
    note = "  (changed on the server)" if d.why == DRIFT else ""
    secret = secret_text(d, create=create)
    if secret:
        return [f"{indent}{d.field}: {secret}{note}"]
    if create:
        if is_long(d.after):
            lines = str(d.after).splitlines()
            return [
                f"{indent}{d.field}: <<",
                *(indent + "    " + ln for ln in lines),
                indent + ">>",
            ]
        return [f"{indent}{d.field}: {value_text(d.after)}"]
    if is_long(d.before) or is_long(d.after):
        return [
            f"{indent}{d.field}:{note}",
            *unified(
                str(d.before or ""), str(d.after or ""), indent + "    ", ("live", "declared")
            ),
        ]
    if d.field == "address":  # a moved resource: addresses are shown as the manifest writes them
        return [f"{indent}address: {d.before} -> {d.after}"]
    return [f"{indent}{d.field}: {value_text(d.before)} -> {value_text(d.after)}{note}"]


def _attachment(c: Change) -> str:
    if c.target and not c.target.startswith(("block.", "agent.")):
        return " (not managed by this stack; --detach-unmanaged-blocks)"
    if DRIFT in c.why:
        return " (detached on the server)" if c.action == ATTACH else " (attached on the server)"
    return ""


def _replaced(c: Change) -> str:
    """What a replacement deletes once the new one is made: the old one, with what it owns
    (the resources its kind declares `nested`, which go with it)."""
    try:
        k = kind(c.kind)
    except KeyError:  # no kind said (a plan file's change of another version)
        return "the old one is"
    owned = sorted({n.replace("_", " ") for n in k.nested.values()})
    if not owned:
        return "the old one is"
    return f"the old {k.noun or k.name.replace('_', ' ')} and its own {'s, '.join(owned)}s are"


def change_lines(c: Change) -> list[str]:
    sym = SYMBOL[c.action]
    if c.action in (ATTACH, DETACH):
        return [f"  {sym} {c.address}: {c.action} {c.target}{_attachment(c)}"]
    rid = f" ({c.remote_id})" if c.remote_id else ""
    lines = [f"  {sym} {c.address}{rid}: {c.action}"]
    if LEFTOVER in c.why:
        lines[0] += " (only its mark is left: the resource is gone, or was never made)"
    if c.action == CREATE and DRIFT in c.why:
        lines[0] += " (deleted on the server; made again)"
    if c.action == FORGET:
        lines[0] += " (kept on the server, no longer managed)"
    if c.action == REPLACE:
        lines[0] += f" (created first, then {_replaced(c)} deleted)"
    for i, d in enumerate(c.diffs):
        create = c.action == CREATE or (c.action == REPLACE and i > 0)
        lines.extend(_field(d, "      ", create=create))
        if c.action == REPLACE and i == 0:
            lines[-1] += "  (forces replacement)"
    return lines


def drift_lines(d: Drift) -> list[str]:
    if d.kind == DELETED:
        return [f"  {'+' if d.restored else '!'} {d.address} {deleted_drift(d)}"]
    if d.kind == MEMORY and d.conflict:
        head = (
            f"  ! {d.address}.{d.field} changed both in the manifest and on the server (by an "
            "agent or by hand): a conflict; "
            + ("enforce_value writes the manifest's" if d.restored else "the server's is kept")
        )
    elif d.kind == MEMORY and not d.restored:
        head = f"  ! {d.address}.{d.field} was written on the server (by an agent or by hand); kept"
    elif d.kind == MEMORY:
        head = f"  ~ {d.address}.{d.field} was changed on the server; enforce_value restores it"
    elif d.field.startswith("blocks["):
        return [f"  {'~' if d.restored else '!'} {d.address}: {block_drift(d)}"]
    else:
        head = (
            f"  ~ {d.address}.{d.field} was changed on the server; "
            "apply restores the declared value"
        )
    if isinstance(d.live, Masked) or isinstance(d.declared, Masked):
        return [head, "      (sensitive value changed)"]
    if is_long(d.live) or is_long(d.declared):
        return [head, *unified(str(d.declared), str(d.live), "      ", ("declared", "live"))]
    declared, live = value_text(d.declared), value_text(d.live)
    return [head, f"      declared: {declared}", f"      live:     {live}"]


def summary(plan: Plan, *, destroy: bool = False) -> str:
    if not plan.changes and destroy:
        text = "Nothing to destroy: the stack owns nothing on the server."
    elif not plan.changes:
        clean = not plan.drift and not plan.problems
        text = "No changes." + (" The server matches the manifest." if clean else "")
    else:
        parts = [
            f"{plan.count(CREATE)} to create",
            f"{plan.count(UPDATE)} to update",
            f"{plan.count(ATTACH)} to attach",
            f"{plan.count(DETACH)} to detach",
            f"{plan.count(DELETE)} to delete",
        ]
        parts += [f"{plan.count(a)} to {a}" for a in (IMPORT, REPLACE, FORGET) if plan.count(a)]
        text = "Plan: " + ", ".join(parts) + "."
    kept = sum(1 for d in plan.drift if d.kind == MEMORY and not d.restored and not d.conflict)
    if kept:
        text += f" {kept} agent-written value{'s' if kept > 1 else ''} kept."
    conflicts = sum(1 for d in plan.drift if d.kind == MEMORY and d.conflict)
    if conflicts:
        text += f" {conflicts} memory conflict{'s' if conflicts > 1 else ''}."
    deleted = sum(1 for d in plan.drift if d.kind == DELETED and d.restored)
    if deleted:
        text += f" {deleted} deleted on the server, made again."
    config = sum(1 for d in plan.drift if d.kind == CONFIGURATION and d.restored)
    if config:
        text += f" {config} change{'s' if config > 1 else ''} made on the server reverted."
    alone = sum(1 for d in plan.drift if d.kind == CONFIGURATION and not d.restored)
    if alone:
        text += f" {alone} change{'s' if alone > 1 else ''} made on the server left alone."
    if plan.blocked:
        text += " Blocked by prevent_destroy: apply writes nothing."
    elif plan.problems:
        text += f" {len({p.address for p in plan.problems})} refused."
    return text


def plan_text(plan: Plan, base_url: str, *, destroy: bool = False, backups: str | None = "") -> str:
    """The plan as a person reads it in a terminal or a CI log (`destroy`: a plan that deletes
    the whole stack; `backups`: where its deletes are saved first, None for nowhere, "" when
    not said)."""
    lines = [f'letta-apply plan: stack "{plan.stack}" on {base_url}', ""]
    lines += violation_lines(plan.violations)
    if len(plan.changes) > LONG_PLAN:  # the totals first: the details run for pages
        lines += [summary(plan), ""]
    if plan.changes:
        lines.append("Changes:")
        for run in _runs(plan.changes):
            lines.extend(change_lines(run[0]))
            if len(run) > 1:
                sym = SYMBOL[run[0].action]
                lines.append(
                    f"  {sym} {run[1].address} ... {run[-1].address}: {run[0].action}, "
                    f"{len(run) - 1} more like {run[0].address} (the same fields; see the JSON "
                    "plan for each)"
                )
        lines.append("")
    lines += memory_lines(plan, backups)
    if plan.drift:
        lines.append("Drift (changed on the server since letta-apply wrote it):")
        for d in plan.drift:
            lines.extend(drift_lines(d))
        if any(d.kind == MEMORY and not d.restored for d in plan.drift):
            lines.append(
                "  Agent-written memory is kept; set `enforce_value: true` on a block "
                "to write the manifest's value."
            )
        lines.append("")
    if plan.problems:
        lines.append("Refused:")
        for p in plan.problems:
            fatal = " (blocks the whole apply)" if p.fatal else ""
            lines.append(f"  x {with_code(f'{p.address}: {p.message}{fatal}', p.code)}")
            if p.hint:
                lines.append(f"      hint: {p.hint}")
        lines.append("")
    if plan.notes:
        lines.append("Notes:")
        lines.extend(f"  - {n}" for n in plan.notes)
        lines.append("")
    lines.append(summary(plan, destroy=destroy))
    return shown(lines)


LONG_PLAN = 50
"""More changes than this, and the text plan gives its totals first."""
SAME_MIN = 5
"""More changes than this alike (one template's instances, the same action and fields) are
shown as the first in full and one line for the rest: a fleet of 10,000 stays readable."""
_INDEX = re.compile(r"\[[^\]]*\]")


def _runs(changes: Iterable[Change]) -> list[list[Change]]:
    """Consecutive changes grouped when alike: instances of one template (or their own blocks)
    with the same action and the same changed fields. Small groups are left one by one."""
    runs: list[list[Change]] = []
    last: tuple[str, str, str | None, tuple[str, ...]] | None = None
    for c in changes:
        key = (_INDEX.sub("[*]", c.address), c.action, c.target, tuple(d.field for d in c.diffs))
        if runs and key == last and "[" in c.address:
            runs[-1].append(c)
        else:
            runs.append([c])
        last = key
    out: list[list[Change]] = []
    for run in runs:
        out += [run] if len(run) > SAME_MIN else [[c] for c in run]
    return out


def drift_text(plan: Plan, base_url: str) -> str:
    """What changed on the server outside the manifest, agent-written memory apart."""
    lines = [f'letta-apply drift: stack "{plan.stack}" on {base_url}', ""]
    memory = [d for d in plan.drift if d.kind == MEMORY]
    config = [d for d in plan.drift if d.kind == CONFIGURATION]
    deleted = [d for d in plan.drift if d.kind == DELETED]
    if deleted:
        lines.append("Deleted on the server, outside the manifest:")
        for d in deleted:
            lines.extend(drift_lines(d))
        lines.append("")
    if memory:
        lines.append("Memory written by agents (or by hand):")
        for d in memory:
            lines.extend(drift_lines(d))
        lines.append("")
    if config:
        lines.append("Configuration changed on the server, outside the manifest:")
        for d in config:
            lines.extend(drift_lines(d))
        lines.append("")
    record = plan.record
    if record is not None and record.before is None and record.held:
        lines += [
            "Note: the stack has no record yet of what letta-apply made (it was last applied by "
            "an older release): a resource deleted on the server shows as new, not as drift, "
            "until the next `apply` writes the record.",
            "",
        ]
    if not plan.drift:
        lines.append("No drift: nothing changed on the server outside the manifest.")
    else:
        gone = f"{len(deleted)} deleted resource{'s' if len(deleted) != 1 else ''}, "
        lines.append(
            f"Drift: {gone if deleted else ''}"
            f"{len(memory)} agent-written value{'s' if len(memory) != 1 else ''}, "
            f"{len(config)} configuration change{'s' if len(config) != 1 else ''}."
        )
    return shown(lines)


# -- color ------------------------------------------------------------------------------------

_COLORS = [
    (re.compile(r"^  \+ "), "32"),  # green: create, attach
    (re.compile(r"^  ~ "), "33"),  # yellow: update
    (re.compile(r"^  (- |-/\+ )"), "31"),  # red: detach, delete, replace
    (re.compile(r"^  = "), "36"),  # cyan: import
    (re.compile(r"^  ! "), "36"),  # cyan: memory kept
    (re.compile(r"^  x "), "1;31"),  # bold red: refused
    (re.compile(r"^ {6,}\+(?!\+\+ )"), "32"),
    (re.compile(r"^ {6,}-(?!-- )"), "31"),
    (re.compile(r"^(Plan:|No changes|Apply complete|Drift:|No drift)"), "1"),
]


def colorize(text: str) -> str:
    """ANSI colors for a terminal, by the meaning of each line."""
    out = []
    for line in text.split("\n"):
        for pattern, code in _COLORS:
            if pattern.search(line):
                line = f"\x1b[{code}m{line}\x1b[0m"
                break
        out.append(line)
    return "\n".join(out)
