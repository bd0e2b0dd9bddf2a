"""How a plan shows the memory its deletes hold (memory.held) and where it is saved first
(memory.backup): a section of the text plan, a callout of the markdown plan."""

from __future__ import annotations

from ..core.changes import Held, Plan

MAX_SHOWN = 50
"""Resources listed one by one; the rest are counted in one line (a fleet's destroy)."""


def _count(n: int | None, noun: str, capped: bool) -> str:
    if n is None:
        return f"{noun}s not counted"
    return f"{n}{'+' if capped else ''} {noun}{'' if n == 1 and not capped else 's'}"


def held_text(h: Held) -> str:
    """What one delete removes, in a line."""
    if h.kind == "agent":
        parts = [
            _count(h.messages, "message", False) + " in its context",
            _count(h.passages, "passage", "passages" in h.capped),
        ]
        if h.written:
            parts.append("own blocks written by agents: " + ", ".join(h.written))
        else:
            parts.append("no own block written by agents")
        if h.unknown:
            parts.append("not known for: " + ", ".join(h.unknown))
        return ", ".join(parts)
    if h.kind == "archive":
        agents = f", {h.agent_passages} written by agents" if h.agent_passages else ""
        return _count(h.passages, "passage", False) + agents
    if h.written:
        return "its value was written by agents"
    if h.unknown:
        return "its value: no record of what letta-apply wrote, so agents may have written it"
    return "its value is as letta-apply wrote it"


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
