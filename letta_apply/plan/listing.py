"""What `show` lists: the stack's resources on the server, by address, with their ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..model import Desired, Live, LiveAgent
from .match import match

Kind = Literal["agent", "block", "tool"]


@dataclass(frozen=True)
class Listed:
    """One resource the stack owns on the server. `name` is an agent's or a tool's name, a
    block's label; `blocks` are an agent's attached blocks as (label, id)."""

    address: str
    kind: Kind
    id: str
    name: str
    value: str = ""
    blocks: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Listing:
    """The stack's resources found on the server (agents, blocks, tools, each sorted by
    address), the declared ones not found, and every found id by address."""

    stack: str
    found: tuple[Listed, ...]
    missing: tuple[str, ...]
    ids: dict[str, str] = field(default_factory=dict)


def _attached(agent: LiveAgent, live: Live) -> tuple[tuple[str, str], ...]:
    return tuple((live.blocks[i].label, i) for i in agent.block_ids if i in live.blocks)


def list_stack(desired: Desired, live: Live) -> Listing:
    """The stack's resources in `live`, found by their marks."""
    matched = match(desired.stack, desired.tag, live)
    found = [
        Listed(address, "agent", agent.id, agent.name, blocks=_attached(agent, live))
        for address, agent in sorted(matched.agents.items())
    ]
    found += [
        Listed(address, "block", block.id, block.label, block.value)
        for address, block in sorted([*matched.blocks.items(), *matched.owned.items()])
    ]
    found += [
        Listed(address, "tool", tool.id, tool.name)
        for address, tool in sorted(matched.tools.items())
    ]
    ids = matched.ids()
    missing = [a for a in [*desired.blocks, *desired.agents, *desired.tools] if a not in ids]
    return Listing(desired.stack, tuple(found), tuple(missing), dict(sorted(ids.items())))
