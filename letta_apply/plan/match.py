"""Find a stack's resources among the live ones, by their marks only (never by name or label)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..model import Desired, Live, LiveAgent, LiveBlock, LiveTool, owned_block_address


@dataclass(frozen=True)
class Matched:
    """The stack's live resources by address: shared blocks, agents, agents' own blocks, and
    agents superseded by an interrupted replacement."""

    blocks: Mapping[str, LiveBlock]
    agents: Mapping[str, LiveAgent]
    owned: Mapping[str, LiveBlock]
    superseded: tuple[tuple[str, LiveAgent], ...] = ()
    notes: tuple[str, ...] = ()
    tools: Mapping[str, LiveTool] = field(default_factory=dict)
    # Tools with the stack's tag but no marks yet: created by an apply interrupted before it
    # could mark them. Matched to the declared tool of the same name.
    unmarked_tools: tuple[LiveTool, ...] = ()

    def ids(self) -> dict[str, str]:
        out = {a: r.id for a, r in self.tools.items()}
        out.update({a: r.id for a, r in self.blocks.items()})
        out.update({a: r.id for a, r in self.agents.items()})
        out.update({a: r.id for a, r in self.owned.items()})
        return out


def match(stack: str, tag: str, live: Live) -> Matched:
    """Find the stack's resources in `live`. Should two agents carry one address, the one that
    replaces the other wins (an interrupted replacement), else the oldest; should two blocks,
    the one the stack's agents use. The others are reported and left alone."""
    notes: list[str] = []
    candidates: dict[str, list[LiveAgent]] = {}
    for a in live.agents:
        address = a.mark.get("address")
        ours = tag in a.tags and a.mark.get("stack") == stack
        if ours and isinstance(address, str) and address.startswith("agent."):
            candidates.setdefault(address, []).append(a)
    agents: dict[str, LiveAgent] = {}
    superseded: list[tuple[str, LiveAgent]] = []
    for address, found in candidates.items():
        replaced = {a.mark.get("replaces") for a in found}
        winner = next((a for a in found if a.mark.get("replaces")), found[0])
        agents[address] = winner
        for a in found:
            if a is winner:
                continue
            if a.id in replaced:
                superseded.append((address, a))
            else:
                notes.append(
                    f"{address}: more than one agent carries this address ({winner.id}, {a.id}); "
                    f"using {winner.id}, the other is left alone"
                )

    in_use = {i for a in agents.values() for i in a.block_ids}
    by_address: dict[str, list[LiveBlock]] = {}
    for b in live.blocks.values():
        address = b.mark.get("address")
        if (
            b.id in live.tagged_block_ids
            and b.mark.get("stack") == stack
            and isinstance(address, str)
            and address.startswith("block.")
        ):
            by_address.setdefault(address, []).append(b)
    blocks: dict[str, LiveBlock] = {}
    for address, found_blocks in by_address.items():
        found_blocks.sort(key=lambda b: (b.id not in in_use, b.id))
        blocks[address] = found_blocks[0]
        if len(found_blocks) > 1:
            others = ", ".join(b.id for b in found_blocks[1:])
            notes.append(
                f"{address}: more than one block carries this address; using "
                f"{found_blocks[0].id}, the other ({others}) is left alone"
            )

    shared_ids = {b.id for b in blocks.values()}
    owned: dict[str, LiveBlock] = {}
    for address, a in agents.items():
        for i in a.block_ids:
            own = live.blocks.get(i)
            if own is not None and i in live.tagged_block_ids and i not in shared_ids:
                owned[owned_block_address(address, own.label)] = own
    tools, unmarked, tool_notes = _match_tools(stack, tag, live)
    return Matched(blocks, agents, owned, tuple(superseded), (*notes, *tool_notes), tools, unmarked)


def _match_tools(
    stack: str, tag: str, live: Live
) -> tuple[dict[str, LiveTool], tuple[LiveTool, ...], list[str]]:
    tools: dict[str, LiveTool] = {}
    unmarked: list[LiveTool] = []
    notes: list[str] = []
    for t in sorted(live.custom_tools, key=lambda t: t.id):
        if tag not in t.tags or t.is_base:
            continue
        address = t.mark.get("address")
        if not t.mark:
            unmarked.append(t)
        elif (
            t.mark.get("stack") != stack
            or not isinstance(address, str)
            or not address.startswith("tool.")
        ):
            continue
        elif address in tools:
            notes.append(
                f"{address}: more than one tool carries this address ({tools[address].id}, "
                f"{t.id}); using {tools[address].id}, the other is left alone"
            )
        else:
            tools[address] = t
    return tools, tuple(unmarked), notes


def owned_of(agent: LiveAgent, live: Live, shared_ids: set[str]) -> list[LiveBlock]:
    """An agent's own blocks: attached, carrying the stack's tag, not a shared block."""
    return [
        live.blocks[i]
        for i in agent.block_ids
        if i in live.blocks and i in live.tagged_block_ids and i not in shared_ids
    ]


def deletion_candidates(desired: Desired, live: Live, *, destroy: bool = False) -> list[str]:
    """Ids of the blocks and tools a plan may delete: shared blocks, agents' own blocks and
    tools of this stack that the manifest no longer declares (all of them, for `destroy`)."""
    m = match(desired.stack, desired.tag, live)
    keep = set() if destroy else {*desired.blocks, *desired.agents, *desired.moved}
    shared_ids = {b.id for b in m.blocks.values()}
    out = [b.id for a, b in m.blocks.items() if a not in keep]
    out += [
        t.id for a, t in m.tools.items() if destroy or (a not in desired.tools and a not in keep)
    ]
    for address, agent in [*m.agents.items(), *m.superseded]:
        declared = desired.agents.get(desired.moved.get(address, address))
        labels = (
            {b.label for b in declared.memory_blocks} if declared and address in keep else set()
        )
        if declared and address in keep and "memory_blocks" in declared.ignore:
            continue
        out += [b.id for b in owned_of(agent, live, shared_ids) if b.label not in labels]
    return sorted(set(out))
