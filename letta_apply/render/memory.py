"""How a plan shows the memory its deletes hold (memory.held) and where it is saved first
(memory.backup): a section of the text plan, a callout of the markdown plan."""

from __future__ import annotations

from ..core.changes import Held, Plan
from ..memory.holders import holder

MAX_SHOWN = 50
"""Resources listed one by one; the rest are counted in one line (a fleet's destroy)."""


def held_text(h: Held) -> str:
    """What one delete removes, in a line: worded by the kind that holds it."""
    kind = holder(h.kind)
    return kind.held_words(h) if kind else "memory not described"


def backups_text(backups: str | None) -> str:
    """Where it goes before the deletes: a folder, or nowhere (--no-backup)."""
    if backups is None:
        return "Backups are off (--no-backup): what these deletes remove is lost for good."
    return (
        f"Apply saves each before deleting it, in {backups}; `letta-apply restore` brings it back."
    )


def memory_lines(plan: Plan, backups: str | None = "") -> list[str]:
    """The text plan's section (empty when nothing deleted holds memory). `backups`: the
    backup folder, None when backups are off, "" when not said (a plan rendered alone)."""
    if not plan.memory:
        return []
    lines = ["Memory these deletes remove:"]
    lines += [f"  - {h.address} ({h.remote_id}): {held_text(h)}" for h in plan.memory[:MAX_SHOWN]]
    rest = plan.memory[MAX_SHOWN:]
    if rest:
        written = sum(1 for h in rest if h.written)
        lines.append(
            f"  - ... and {len(rest)} more ({written} with memory written by agents; see the "
            "JSON plan for each)"
        )
    if backups != "":
        lines.append(f"  {backups_text(backups)}")
    return [*lines, ""]


def memory_markdown(plan: Plan, backups: str | None = "") -> list[str]:
    """The markdown plan's callout: what would be lost, and where it is saved first."""
    if not plan.memory:
        return []
    kind = "CAUTION" if backups is None else "IMPORTANT"
    out = [f"> [!{kind}]", "> Memory these deletes remove:"]
    out += [f"> - `{h.address}`: {held_text(h)}" for h in plan.memory[:MAX_SHOWN]]
    if len(plan.memory) > MAX_SHOWN:
        out.append(f"> - ... and {len(plan.memory) - MAX_SHOWN} more")
    if backups != "":
        out += [">", f"> {backups_text(backups)}"]
    return [*out, ""]
