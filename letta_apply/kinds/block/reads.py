"""Reading blocks from the server: the blocks' state from the listings (the stack's tagged blocks
and the blocks its agents hold), and the agents using the blocks a plan may delete."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from ...core.jsonish import objs, text
from ...core.model import Desired, Live
from ...server.client import LettaClient
from ...server.lock_records import is_lock_record
from ..context import Users
from .model import AGENTS, BLOCKS, BlockState, LiveBlock, stack_of


def block_state(raw: Mapping[str, object], seen: Mapping[str, object]) -> BlockState:
    """Every block the listings (`raw`) and the imports (`seen`) read, the stack's tagged ones
    apart: an agent's view of a block omits tags, so the tagged copy wins."""
    # Lock records never carry the stack's tag; the filter keeps them out regardless.
    tagged = [LiveBlock.from_api(b) for b in objs(raw["block"]) if not is_lock_record(b)]
    blocks = {b.id: b for b in tagged}
    for agent in [*objs(raw.get("agent", ())), *objs(seen.get("agent"))]:
        for b in objs(agent.get("blocks")):
            if text(b["id"]) not in blocks:  # shared blocks recur on every agent: read once
                blocks[text(b["id"])] = LiveBlock.from_api(b)
    for b in objs(seen.get("block")):
        blocks.setdefault(text(b["id"]), LiveBlock.from_api(b))
    return BlockState(blocks, frozenset(b.id for b in tagged))


def block_users(
    client: LettaClient, desired: Desired, live: Live, candidates: list[str]
) -> dict[str, Users]:
    """The agents using each of `candidates` (blocks the plan may delete), read only for the
    blocks that may have users outside the stack.

    The stack's agents were listed with their blocks, so how many of them use each block is
    known; a block whose attachment count on the server is higher has another user. Letta
    filters a list of blocks by attachment count, so the check costs one tag-filtered listing
    per distinct count instead of one request per block; only the blocks it flags (or that lack
    the stack's tag, which those listings would miss) are looked up one by one.
    """
    if not candidates:
        return {}
    state = BLOCKS.of(live)
    ours = AGENTS.of(live).ours(desired.stack)
    known = Counter(i for a in ours for i in set(a.block_ids))
    suspect = {i for i in candidates if i not in state.tagged}
    groups: dict[int, set[str]] = {}
    for i in candidates:
        if i in state.tagged:
            groups.setdefault(known[i], set()).add(i)
    tagged_known = [known[i] for i in state.tagged]
    for count, ids in sorted(groups.items()):
        # Ask for the smaller side: the blocks used more than `count` times (suspects), or those
        # used at most `count` times (cleared). The known counts are lower bounds of the real
        # ones, so they estimate the size of each answer.
        above = sum(1 for k in tagged_known if k > count)
        if above <= len(tagged_known) - above:
            flagged = client.list_block_ids(desired.tag, attached_more_than=count)
            suspect |= ids & flagged
        else:
            cleared = client.list_block_ids(desired.tag, attached_fewer_than=count + 1)
            suspect |= ids - cleared
    return {bid: agents_of(client, bid) for bid in sorted(suspect)}


def agents_of(client: LettaClient, block_id: str) -> Users:
    """The agents a block is attached to, as (id, name, their stack)."""
    agents = client.block_agents(block_id)
    return tuple((text(u["id"]), text(u.get("name")), stack_of(u)) for u in agents)
