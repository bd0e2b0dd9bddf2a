"""Turn plans, apply results and diagnostics into text, markdown and JSON. Nothing here decides or
does I/O."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from ..apply.report import done_document
from ..apply.runner import Done
from ..apply.session import in_plan_order
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
from ..core.model import SHOWN
from ..core.sensitive import Masked
from ..errors import Diagnostic, escape_controls, with_code
from ..plan.graph import Graph, changed_graph
from ..plan.listing import Listing
from ..version import __version__
from .diagram import mermaid
from .memory import memory_lines, memory_markdown

SYMBOL = {
    CREATE: "+", UPDATE: "~", ATTACH: "+", DETACH: "-", DELETE: "-", IMPORT: "=", REPLACE: "-/+",
    FORGET: "-",
}  # fmt: skip
PAST = {
    CREATE: "created", UPDATE: "updated", ATTACH: "attached", DETACH: "detached",
    DELETE: "deleted", IMPORT: "imported", REPLACE: "replaced", FORGET: "forgotten",
}  # fmt: skip
_INLINE_MAX = 72
WHY_TEXT = {
    "new": "not on the server",
    "manifest": "manifest changed",
    "drift": "changed on the server",
    "memory": "agent-written memory, enforce_value",
    "destroy": "destroy",
    "adopt": "imports:",
    "replace": "superseded by its replacement",
    "resume": "made by a run that stopped before marking it",
    "leftover": "marks nothing: left by a run that stopped, or its resource is gone",
    "removed": "removed:",
}


def _shown(lines: Iterable[str], keep: str = "\t") -> str:
    """Lines joined for a terminal, a log or a file, each with its control and format characters
    (a terminal escape, a carriage return, a bidirectional override) written as escapes: values
    come from manifests and from what agents wrote, and must neither drive the reader's terminal
    nor fake or hide a line of the plan. Tabs (`keep`) drive nothing and stay."""
    return "\n".join(escape_controls(piece, keep) for line in lines for piece in line.split("\n"))


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


def _secret(d: FieldDiff, *, create: bool) -> str | None:
    """How a sensitive field is shown: never its value, on either side."""
    if not (isinstance(d.after, Masked) or isinstance(d.before, Masked)):
        return None
    if create or d.before is None:
        return SHOWN
    return "(sensitive value changed)" if d.after is not None else "(sensitive value removed)"


def _field(d: FieldDiff, indent: str, *, create: bool) -> list[str]:
    note = "  (changed on the server)" if d.why == DRIFT else ""
    secret = _secret(d, create=create)
    if secret:
        return [f"{indent}{d.field}: {secret}{note}"]
    if create:
        if _is_long(d.after):
            lines = str(d.after).splitlines()
            return [
                f"{indent}{d.field}: <<",
                *(indent + "    " + ln for ln in lines),
                indent + ">>",
            ]
        return [f"{indent}{d.field}: {_value(d.after)}"]
    if _is_long(d.before) or _is_long(d.after):
        return [
            f"{indent}{d.field}:{note}",
            *_unified(
                str(d.before or ""), str(d.after or ""), indent + "    ", ("live", "declared")
            ),
        ]
    if d.field == "address":  # a moved resource: addresses are shown as the manifest writes them
        return [f"{indent}address: {d.before} -> {d.after}"]
    return [f"{indent}{d.field}: {_value(d.before)} -> {_value(d.after)}{note}"]


def _attachment(c: Change) -> str:
    if c.block and not c.block.startswith(("block.", "agent.")):
        return " (not managed by this stack; --detach-unmanaged-blocks)"
    if DRIFT in c.why:
        return " (detached on the server)" if c.action == ATTACH else " (attached on the server)"
    return ""


def change_lines(c: Change) -> list[str]:
    sym = SYMBOL[c.action]
    if c.action in (ATTACH, DETACH):
        return [f"  {sym} {c.address}: {c.action} {c.block}{_attachment(c)}"]
    rid = f" ({c.remote_id})" if c.remote_id else ""
    lines = [f"  {sym} {c.address}{rid}: {c.action}"]
    if LEFTOVER in c.why:
        lines[0] += " (only its mark is left: the resource is gone, or was never made)"
    if c.action == CREATE and DRIFT in c.why:
        lines[0] += " (deleted on the server; made again)"
    if c.action == FORGET:
        lines[0] += " (kept on the server, no longer managed)"
    if c.action == REPLACE:
        old = "the old agent and its own blocks are" if c.kind == "agent" else "the old one is"
        lines[0] += f" (created first, then {old} deleted)"
    for i, d in enumerate(c.diffs):
        create = c.action == CREATE or (c.action == REPLACE and i > 0)
        lines.extend(_field(d, "      ", create=create))
        if c.action == REPLACE and i == 0:
            lines[-1] += "  (forces replacement)"
    return lines


def _block_drift(d: Drift) -> str:
    """What happened to an agent's attachment on the server, and what apply does about it."""
    block = d.field[len("blocks[") : -1]
    if d.label:  # named by id: a block the stack does not manage
        fix = (
            "apply detaches it (--detach-unmanaged-blocks)"
            if d.restored
            else "left alone (apply --detach-unmanaged-blocks detaches it)"
        )
        what = f"block '{d.label}' ({block}, not managed by this stack)"
        return f"{what} was {d.live} on the server; {fix}"
    fix = "detaches it" if d.live == "attached" else "attaches it again"
    return f"{block} was {d.live} on the server; apply {fix}"


def _deleted_drift(d: Drift) -> str:
    fix = "apply makes it again" if d.restored else "apply refuses to make it (see the plan)"
    return f"was deleted on the server (letta-apply had made it); {fix}"


def drift_lines(d: Drift) -> list[str]:
    if d.kind == DELETED:
        return [f"  {'+' if d.restored else '!'} {d.address} {_deleted_drift(d)}"]
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
        return [f"  {'~' if d.restored else '!'} {d.address}: {_block_drift(d)}"]
    else:
        head = (
            f"  ~ {d.address}.{d.field} was changed on the server; "
            "apply restores the declared value"
        )
    if isinstance(d.live, Masked) or isinstance(d.declared, Masked):
        return [head, "      (sensitive value changed)"]
    if _is_long(d.live) or _is_long(d.declared):
        return [head, *_unified(str(d.declared), str(d.live), "      ", ("declared", "live"))]
    return [head, f"      declared: {_value(d.declared)}", f"      live:     {_value(d.live)}"]


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
    return _shown(lines)


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
    last: tuple[Any, ...] | None = None
    for c in changes:
        key = (_INDEX.sub("[*]", c.address), c.action, c.block, tuple(d.field for d in c.diffs))
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
    return _shown(lines)


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


# -- markdown ---------------------------------------------------------------------------------

MD_VALUE_MAX = 1000
MD_TOTAL_MAX = 60000  # GitHub refuses comments over 65536 characters
_MD_SYMBOL = {
    CREATE: "🟢 create", UPDATE: "🟡 update", ATTACH: "🔗 attach", DETACH: "⛔ detach",
    DELETE: "🗑️ **delete**", IMPORT: "📥 import", REPLACE: "♻️ **replace**",
    FORGET: "👋 forget",
}  # fmt: skip


def _truncate(text: str) -> str:
    if len(text) <= MD_VALUE_MAX:
        return text
    return text[:MD_VALUE_MAX] + f"\n… ({len(text) - MD_VALUE_MAX} more characters not shown)"


_FENCE_BREAK = "\u200b"


def _fence(lines: Sequence[str], lang: str = "diff") -> list[str]:
    # A zero-width space keeps a value's ``` from closing the fence; the value's own format
    # characters are escaped first, so that this one is the only one left (plan_markdown).
    body = _shown(lines).replace("```", f"`{_FENCE_BREAK}``")
    return [f"```{lang}", body, "```"]


def _md_field(d: FieldDiff, create: bool) -> list[str]:
    """One field as diff lines, so that GitHub colors them."""
    note = "  (changed on the server)" if d.why == DRIFT else ""
    secret = _secret(d, create=create)
    if secret:
        return [f"{'+' if create else '!'} {d.field}: {secret}{note}"]
    if create:
        if _is_long(d.after):
            lines = _truncate(str(d.after)).splitlines()
            return [f"+ {d.field}:", *("+     " + ln for ln in lines)]
        return [f"+ {d.field}: {_truncate(_value(d.after))}"]
    if _is_long(d.before) or _is_long(d.after):
        body = _unified(_truncate(str(d.before or "")), _truncate(str(d.after or "")), "", ("", ""))
        return [f"@@ {d.field}{note} @@", *body[3:]]  # the ---/+++/@@ header says nothing here
    return [f"- {d.field}: {_value(d.before)}{note}", f"+ {d.field}: {_value(d.after)}"]


def _md_change_detail(c: Change) -> list[str]:
    return _fence([ln for d in c.diffs for ln in _md_field(d, c.action == CREATE)])


MD_GRAPH_NODES = 40
MD_GRAPH_EDGES = 120
"""The diagram in a markdown plan draws at most this many resources and lines (the changed ones
first, then their neighbours) and says how many changes it left out: GitHub renders no diagram
past 500 lines, and a pull-request comment has 65,536 characters."""


def _md_diagram(graph: Graph) -> list[str]:
    shown = changed_graph(graph, max_nodes=MD_GRAPH_NODES, max_edges=MD_GRAPH_EDGES)
    if not shown.nodes:
        return []
    # Blank lines around the fence: GitHub renders it inside <details> only then.
    return [
        "<details open><summary>Diagram of the changes</summary>",
        "",
        *_fence(mermaid(shown), "mermaid"),
        "",
        "</details>",
        "",
    ]


def plan_markdown(
    plan: Plan, base_url: str, graph: Graph | None = None, backups: str | None = ""
) -> str:
    """The plan as a pull-request comment: summary first, a diagram of what changes (with
    `graph`, the stack's graph marked with this plan), details collapsed, detaches, refusals
    and the memory deletes remove (`backups` as for plan_text) called out."""
    out = [f"### letta-apply plan: `{plan.stack}`", "", f"**{summary(plan)}**", ""]
    fatal = [p for p in plan.problems if p.fatal]
    if fatal:
        out += ["> [!CAUTION]", "> **Blocked by prevent_destroy: apply will write nothing.**"]
        out += [f"> - `{p.address}`: {with_code(p.message, p.code)}" for p in fatal]
        out.append("")
    gone = [c for c in plan.changes if c.action in (DELETE, REPLACE)]
    if gone:
        out += ["> [!CAUTION]", "> This plan **deletes**:"]
        for c in gone:
            how = " (replaced by a new agent)" if c.action == REPLACE else ""
            out.append(f"> - `{c.address}` ({c.remote_id}){how}")
        out.append("")
    out += memory_markdown(plan, backups)
    # An agent's own blocks go with it: named once, by their agent.
    forgets = [
        c for c in plan.changes
        if c.action == FORGET and not any(c.address.startswith(o.address + ".")
                                          for o in plan.changes if o.action == FORGET)
    ]  # fmt: skip
    if forgets:
        out += ["> [!NOTE]", "> This plan **stops managing** (kept on the server, unmarked):"]
        out += [f"> - `{c.address}` ({c.remote_id})" for c in forgets]
        out.append("")
    detaches = [c for c in plan.changes if c.action == DETACH]
    if detaches:
        out += ["> [!WARNING]", "> This plan **detaches** shared blocks from agents:"]
        out += [f"> - `{c.block}` from `{c.address}`" for c in detaches]
        out.append("")
    refused = [p for p in plan.problems if not p.fatal]
    if refused:
        out += ["> [!CAUTION]", "> Apply refuses these resources:"]
        out += [f"> - `{p.address}`: {with_code(p.message, p.code)}" for p in refused]
        out.append("")
    if graph is not None and (plan.changes or plan.problems):
        diagram = _md_diagram(graph)
        if sum(len(line) + 1 for line in (*out, *diagram)) < MD_TOTAL_MAX:
            out += diagram  # never cut in the middle: a broken diagram renders as an error
    if plan.changes:
        out += ["| | Resource | Why |", "|---|---|---|"]
        for c in plan.changes:
            what = f"`{c.address}`" + (f" ← `{c.block}`" if c.block else "")
            why = ", ".join(WHY_TEXT.get(w, w) for w in c.why)
            if c.action == CREATE and DRIFT in c.why:
                why = "deleted on the server"
            out.append(f"| {_MD_SYMBOL[c.action]} | {what} | {why} |")
        out.append("")
        for c in plan.changes:
            if not c.diffs:
                continue
            out += [f"<details><summary><code>{c.address}</code>: {c.action}</summary>", ""]
            out += _md_change_detail(c)
            out += ["", "</details>", ""]
    if plan.drift:
        out += ["#### Drift", ""]
        for d in plan.drift:
            out.append(f"- {_md_drift(d)}")
        out.append("")
    if plan.notes:
        out += ["<details><summary>Notes</summary>", ""]
        out += [f"- {n}" for n in plan.notes]
        out += ["", "</details>", ""]
    out.append(f"<sub>letta-apply {__version__} · {base_url}</sub>")
    # The zero-width spaces left are those _fence put there itself.
    text = _shown(out, keep=f"\t{_FENCE_BREAK}") + "\n"
    if len(text) > MD_TOTAL_MAX:
        cut = text[:MD_TOTAL_MAX].rsplit("\n", 1)[0]
        text = (
            cut
            + "\n```\n\n</details>\n\n… (plan truncated: run `letta-apply plan` for all of it)\n"
        )
    return text


def _md_drift(d: Drift) -> str:
    if d.kind == MEMORY:
        if d.conflict:
            state = "the manifest's written (enforce_value)" if d.restored else "the server's kept"
            return (
                f"`{d.address}.{d.field}`: a conflict, changed both in the manifest and on the "
                f"server; {state}"
            )
        state = "restored (enforce_value)" if d.restored else "kept"
        return f"`{d.address}.{d.field}`: written by an agent or by hand; {state}"
    if d.kind == DELETED:
        return f"`{d.address}` {_deleted_drift(d)}"
    if d.field.startswith("blocks["):
        return f"`{d.address}`: " + _block_drift(d)
    return f"`{d.address}.{d.field}`: changed on the server; apply restores the manifest's value"


# -- results and diagnostics ------------------------------------------------------------------


def done_line(d: Done) -> str:
    c = d.change
    if c.action in (ATTACH, DETACH):
        return f"{c.address}: {PAST[c.action]} {c.block} ({d.remote_id})"
    if c.action == REPLACE:
        return f"{c.address}: replaced {c.remote_id} with {d.remote_id}"
    return f"{c.address}: {PAST[c.action]} ({d.remote_id})"


def ordered(done: Iterable[Done]) -> list[Done]:
    """Completed changes in the order of the plan."""
    return in_plan_order(done)


def done_text(done: Iterable[Done]) -> str:
    """One line per completed change, in a stable order."""
    return _shown(done_line(d) for d in ordered(done))


def done_json(done: Iterable[Done]) -> list[dict[str, Any]]:
    """Completed changes in a stable order (they complete in parallel, in any order)."""
    return done_document(done)


def show_text(listing: Listing, base_url: str) -> str:
    """The stack's resources on the server with their ids, as `show` prints them."""
    lines = [f'stack "{listing.stack}" on {base_url}']
    lines += [f"{r.address}  {r.id}  {r.description}" for r in listing.found]
    lines += [f"{a}  (not on the server)" for a in listing.missing]
    return _shown(lines)


def diagnostics_json(diagnostics: Sequence[Diagnostic], unknown: Sequence[str] = ()) -> str:
    """`validate --format json`: the problems, and the references checked without a value."""
    doc = {
        "format_version": 1,
        "valid": not diagnostics,
        "diagnostics": [
            {"file": d.file, "line": d.line, "column": d.col, "message": d.message, "code": d.code}
            for d in diagnostics
        ],
        "unknown": list(unknown),
    }
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False)
