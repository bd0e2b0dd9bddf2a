"""A plan as a pull-request comment (`plan --format markdown`): GitHub's markdown, within the
size a comment may have."""

from __future__ import annotations

from collections.abc import Sequence

from ..core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DELETED,
    DETACH,
    DRIFT,
    FORGET,
    IMPORT,
    MEMORY,
    REPLACE,
    UPDATE,
    Change,
    Drift,
    FieldDiff,
    Plan,
)
from ..errors import with_code
from ..plan.graph import Graph, changed_graph
from ..version import __version__
from .diagram import mermaid
from .memory import memory_markdown
from .policy import violation_markdown
from .text import summary
from .wording import block_drift, deleted_drift, is_long, secret_text, shown, unified, value_text

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
    body = shown(lines).replace("```", f"`{_FENCE_BREAK}``")
    return [f"```{lang}", body, "```"]


def _md_field(d: FieldDiff, create: bool) -> list[str]:
    """One field as diff lines, so that GitHub colors them."""
    note = "  (changed on the server)" if d.why == DRIFT else ""
    secret = secret_text(d, create=create)
    if secret:
        return [f"{'+' if create else '!'} {d.field}: {secret}{note}"]
    if create:
        if is_long(d.after):
            lines = _truncate(str(d.after)).splitlines()
            return [f"+ {d.field}:", *("+     " + ln for ln in lines)]
        return [f"+ {d.field}: {_truncate(value_text(d.after))}"]
    if is_long(d.before) or is_long(d.after):
        body = unified(_truncate(str(d.before or "")), _truncate(str(d.after or "")), "", ("", ""))
        return [f"@@ {d.field}{note} @@", *body[3:]]  # the ---/+++/@@ header says nothing here
    return [f"- {d.field}: {value_text(d.before)}{note}", f"+ {d.field}: {value_text(d.after)}"]


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


def _callouts(plan: Plan, backups: str | None) -> list[str]:
    """What a reviewer must not miss, each in a callout: a blocked apply, deletes and the memory
    they remove, resources no longer managed, detaches, refusals."""
    out: list[str] = violation_markdown(plan.violations)
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
        out += [f"> - `{c.target}` from `{c.address}`" for c in detaches]
        out.append("")
    refused = [p for p in plan.problems if not p.fatal]
    if refused:
        out += ["> [!CAUTION]", "> Apply refuses these resources:"]
        out += [f"> - `{p.address}`: {with_code(p.message, p.code)}" for p in refused]
        out.append("")
    return out


def plan_markdown(
    plan: Plan, base_url: str, graph: Graph | None = None, backups: str | None = ""
) -> str:
    """The plan as a pull-request comment: summary first, a diagram of what changes (with
    `graph`, the stack's graph marked with this plan), details collapsed, detaches, refusals
    and the memory deletes remove (`backups` as for plan_text) called out."""
    out = [f"### letta-apply plan: `{plan.stack}`", "", f"**{summary(plan)}**", ""]
    out += _callouts(plan, backups)
    if graph is not None and (plan.changes or plan.problems):
        diagram = _md_diagram(graph)
        if sum(len(line) + 1 for line in (*out, *diagram)) < MD_TOTAL_MAX:
            out += diagram  # never cut in the middle: a broken diagram renders as an error
    if plan.changes:
        out += ["| | Resource | Why |", "|---|---|---|"]
        for c in plan.changes:
            what = f"`{c.address}`" + (f" ← `{c.target}`" if c.target else "")
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
    text = shown(out, keep=f"\t{_FENCE_BREAK}") + "\n"
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
        return f"`{d.address}` {deleted_drift(d)}"
    if d.field.startswith("blocks["):
        return f"`{d.address}`: " + block_drift(d)
    return f"`{d.address}.{d.field}`: changed on the server; apply restores the manifest's value"
