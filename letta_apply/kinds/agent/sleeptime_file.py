"""The sleep-time agents and groups Letta makes itself for an agent with `enable_sleeptime`, as an
Agent File holds them: convert declares `enable_sleeptime: true` on the agent and converts
neither (Letta makes them again, with the blocks they share with their agent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..writing import Conversion

SLEEPTIME = {"sleeptime": "sleeptime_agent", "voice_sleeptime": "voice_sleeptime_agent"}
"""The groups Letta makes for `enable_sleeptime`, and the type of the agents it puts in them."""


def sleeptime_groups(conv: Conversion) -> dict[str, list[str]]:
    """The groups Letta makes itself for an agent with `enable_sleeptime` (a sleep-time group
    of its own sleep-time agents): their members by manager."""
    agents = conv.by_id("agents")
    out: dict[str, list[str]] = {}
    for g in conv.entities("groups"):
        mc = g.get("manager_config") or {}
        kind = mc.get("manager_type")
        manager = mc.get("manager_agent_id")
        members = g["agent_ids"]
        own = SLEEPTIME.get(kind) if isinstance(kind, str) else None
        if (
            own
            and isinstance(manager, str)
            and manager not in out
            and members
            and all(agents[a].get("agent_type") == own and a != manager for a in members)
        ):
            out[manager] = list(members)
    return out


def made_by_letta(conv: Conversion) -> dict[str, str]:
    """The file's sleep-time agents Letta makes itself: the agent each is made for, by id."""
    return {a: m for m, members in sleeptime_groups(conv).items() for a in members}
