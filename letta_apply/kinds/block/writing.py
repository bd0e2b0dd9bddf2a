"""Blocks in the manifests letta-apply writes (kinds.writing): the shared blocks of exported agents
and of an Agent File's agents, declared as they are (server defaults left out). A block one agent
holds alone is that agent's own (`memory_blocks`: the agent kind writes it with
`export_block`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...core.jsonish import JsonObject, objs, strings, text
from ...core.marks import user_metadata
from ..agent.sleeptime_file import made_by_letta
from ..writing import Conversion, Export, metadata_of, tags_of
from .kind import BlockKind
from .model import DEFAULT_DESCRIPTIONS, DEFAULT_LIMIT, LiveBlock

# Above this many blocks, one listing of the server's multi-attached blocks is cheaper.
_BLOCK_LOOKUPS_MAX = 10


def export_block(b: LiveBlock, *, label: bool) -> JsonObject:
    """A block's fields as a manifest declares them (server defaults left out)."""
    out: JsonObject = {"label": b.label} if label else {}
    out["value"] = b.value
    if b.description and b.description != DEFAULT_DESCRIPTIONS.get(b.label):
        out["description"] = b.description
    if b.limit is not None and b.limit != DEFAULT_LIMIT:
        out["limit"] = b.limit
    if b.read_only:
        out["read_only"] = True
    if user_metadata(b.metadata):
        out["metadata"] = user_metadata(b.metadata)
    if b.tags:
        out["tags"] = sorted(b.tags)
    return out


def export_shared(ex: Export) -> JsonObject:
    """The blocks the selected agents share, with each other or with an agent not exported: a
    block only one exported agent uses is its own, unless another agent uses it too. For a few
    blocks, each is asked; for more, one listing of every block attached to more than one agent
    on the server says which, whatever the number of blocks exported."""
    blocks: dict[str, LiveBlock] = {}
    holders: dict[str, int] = {}
    for agent in ex.selected:
        for b in map(LiveBlock.from_api, objs(agent.get("blocks"))):
            blocks.setdefault(b.id, b)
            holders[b.id] = holders.get(b.id, 0) + 1
    shared_ids = {bid for bid, n in holders.items() if n > 1}
    single = sorted(bid for bid, n in holders.items() if n == 1)
    selected = {text(a["id"]) for a in ex.selected}
    if len(single) <= _BLOCK_LOOKUPS_MAX:
        shared_ids |= {
            bid
            for bid in single
            if any(text(u["id"]) not in selected for u in ex.client.block_agents(bid))
        }
    else:
        shared_ids |= set(single) & ex.client.list_block_ids(None, attached_more_than=1)
    out: JsonObject = {}
    for bid in sorted(shared_ids, key=lambda i: (blocks[i].label, i)):
        b = blocks[bid]
        key = ex.key(BlockKind.name, bid, b.label)
        out[key] = export_block(b, label=key != b.label)
    return out


def block_entry(b: Mapping[str, object], *, label: bool) -> JsonObject:
    """A block of an Agent File as a manifest declares it (Letta's defaults and letta-apply's
    marks left out)."""
    clean = {**b, "metadata": metadata_of(b.get("metadata")), "tags": tags_of(b.get("tags"))}
    return export_block(LiveBlock.from_api(clean), label=label)


def convert_shared(conv: Conversion) -> JsonObject:
    """The blocks two or more of the file's converted agents hold (Letta makes the sleep-time
    agents again, with the blocks they share: those are their agent's own)."""
    made = made_by_letta(conv)
    agents: Sequence[Mapping[str, object]] = conv.entities("agents")
    held = {b for a in agents for b in strings(a.get("block_ids"))}
    holders: dict[str, set[int]] = {}  # by the agents converted
    for i, agent in enumerate(agents):
        if agent["id"] not in made:
            for bid in strings(agent.get("block_ids")):
                holders.setdefault(bid, set()).add(i)
    out: JsonObject = {}
    blocks: Sequence[Mapping[str, object]] = conv.entities("blocks")
    for i, b in enumerate(blocks):
        bid, label = text(b["id"]), text(b["label"])
        if bid not in held:
            conv.note(f"blocks[{i}] ({label!r}): held by no agent; not converted")
        if len(holders.get(bid, ())) < 2:
            continue
        key = conv.key(BlockKind.name, bid, label)
        out[key] = block_entry(b, label=key != label)
    return out
