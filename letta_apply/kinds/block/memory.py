"""What a block holds of agents' memory (kinds.holds_memory): its value, which agents rewrite.

- Held: whether agents wrote it (its value's digest no longer the one letta-apply last wrote:
  the base of the three-way memory decision, kinds.block.plan.plan_value).
- Saved: its fields (value, configuration, marks, tags) and the agents it is attached to. An
  agent's own block whose agent goes too is saved with its agent (memory.backup).
- Restored: created with its value, configuration, tags and marks, and attached again to the
  agents it was attached to that still exist (or were restored before it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, ClassVar

from ...core.changes import Change, Held
from ...core.jsonish import JsonObject, obj, strings
from ...core.marks import digest
from ...core.model import Live
from ...server import routes
from ..holds_memory import (
    Holder,
    Record,
    Restoring,
    Saved,
    Saving,
    attach,
    mask_fields,
    masked,
    masked_text,
    remarked,
    retagged,
    sensitive_of,
    stack_blocks,
)
from ..resource import Resource, applied_of, mark_of
from .model import BLOCKS, LiveBlock

if TYPE_CHECKING:
    from ...server.client import LettaClient

FIELDS = ("label", "value", "description", "limit", "read_only", "metadata", "tags")
"""What a backup keeps of a block."""
_CREATED = ("label", "value", "description", "limit", "read_only")


def written(b: LiveBlock, base: object) -> str:
    """Whether agents wrote a block: "written", "same" or "unknown" (no base recorded: a
    sensitive value, or marks older than the base)."""
    if not isinstance(base, str):
        return "unknown"
    return "same" if digest(b.value) == base else "written"


def value_base(resource: Resource) -> object:
    """The digest of the value letta-apply last wrote, from a resource's mark."""
    return (applied_of(resource) or {}).get("value")


def is_block_address(address: str) -> bool:
    """A shared block's address, or an agent's own block's."""
    return address.startswith("block.") or ".memory_blocks." in address


class BlockMemory:
    """The block kind's HoldsMemory (kinds.holds_memory)."""

    counts_memory: ClassVar[bool] = False
    memory_readme: ClassVar[str] = (
        "  - of a block: its fields (value, configuration, marks, tags) and the agents it was\n"
        "    attached to. A value that held a sensitive value stays masked once restored, until\n"
        "    written again (`enforce_value: true`).\n"
    )

    def held_words(self, held: Held) -> str:
        if held.written:
            return "its value was written by agents"
        if held.unknown:
            return "its value: no record of what letta-apply wrote, so agents may have written it"
        return "its value is as letta-apply wrote it"

    def memory_held(self, change: Change, live: Live, stack: str) -> Held | None:
        blocks = BLOCKS.of(live)
        found = blocks.blocks.get(change.remote_id or "")
        if found is None:
            return None
        state = written(found, value_base(found))
        return Held(
            change.address, found.id, "block",
            written=("value",) if state == "written" else (),
            unknown=("value",) if state == "unknown" else (),
        )  # fmt: skip

    def count_memory(self, client: LettaClient, held: Held, cap: int) -> Held:
        return held  # all in the listing

    def save_memory(self, saving: Saving, change: Change, address: str, rid: str) -> Saved:
        client = saving.client
        found = client.get_block(rid)
        block: JsonObject = {k: found.get(k) for k in FIELDS}
        hidden = mask_fields(block, sensitive_of(mark_of(found.get("metadata"))))
        block, n = masked(block, saving.masker.text)
        agents = [str(a["id"]) for a in client.block_agents(rid)]
        record = {"kind": "block", "address": address, "id": rid, "block": block,
                  "agents": agents}  # fmt: skip
        return Saved("block", address, rid, record, masked=hidden + masked_text(n))

    def memory_holders(self, restoring: Restoring) -> Mapping[str, Holder]:
        out: dict[str, Holder] = {}
        for b in stack_blocks(restoring):
            mark = mark_of(b.get("metadata"))
            address = str(mark.get("address"))
            if mark.get("stack") == restoring.stack and is_block_address(address):
                out[address] = Holder(str(b["id"]), dict(mark))
        return out

    def restore_memory(
        self, restoring: Restoring, record: Record, existing: str | None
    ) -> tuple[str, list[str]]:
        client = restoring.client
        b = obj(record.data["block"])
        rid = existing
        if rid is None:
            body: JsonObject = {k: b[k] for k in _CREATED if b.get(k) is not None}
            body["metadata"] = remarked(b.get("metadata"), record)
            body["tags"] = retagged(b.get("tags"), record, always=True)
            rid = str(obj(routes.BLOCKS.post(client, body))["id"])
        notes = []
        if record.masked("value"):
            notes.append("its value was masked in the backup (it held a sensitive value)")
        for aid in strings(record.data.get("agents")):
            target = restoring.ids.get(aid, aid)
            route = routes.AGENTS.at(target, "core-memory/blocks", "attach", rid)
            attach(client, route, target, notes)
        return rid, notes
