"""What an archive holds of agents' memory (kinds.holds_memory): its passages, those seeded from
the manifest and those agents wrote.

- Held: its passages, and how many agents wrote (without the stack's seed mark).
- Saved: name, description, embedding, every passage (without its embedding, made again from
  the text), its mark (from its mark block) and the agents it is attached to.
- Restored: created as apply creates one (its intent first, kinds.mark_blocks), marked, its
  passages inserted again (embedded anew), and attached to its agents that exist.

An agent's passages in an archive that is gone come back in a new archive (`new_archive`,
kinds.agent.memory).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from ...core.changes import Change, Held
from ...core.jsonish import JsonObject, obj, objs, strings
from ...core.model import MARK_KEY, Live, stack_tag
from ...server.routes import AGENTS
from ..holds_memory import (
    Holder,
    Record,
    Restoring,
    Saved,
    Saving,
    attach,
    counted,
    masked,
    masked_text,
    stack_blocks,
)
from ..mark_blocks import MarkBlock, intend, read_marks, write_mark
from .passages import PASSAGES, ROUTE, list_passages, ours

if TYPE_CHECKING:
    from ...server.client import LettaClient

FIELDS = ("name", "description", "embedding_config", "metadata")
"""What a backup keeps of an archive."""
_PASSAGE_FIELDS = ("id", "archive_id", "text", "tags", "metadata", "created_at")
_CREATED = ("name", "description", "embedding_config")


def plain_passage(p: Mapping[str, object]) -> JsonObject:
    """A passage without its embedding (made again from the text on restore)."""
    return {k: p.get(k) for k in _PASSAGE_FIELDS}


def archive_fields(client: LettaClient, archive_id: str) -> JsonObject:
    """What a backup keeps of an archive (one read)."""
    found = obj(ROUTE.at(archive_id).get(client))
    return {k: found.get(k) for k in FIELDS}


def insert_passages(
    client: LettaClient, archive_id: str, passages: list[Mapping[str, object]]
) -> None:
    """Passages inserted again, each with its creation time (the passage search pages by it),
    embedded anew by the server."""
    keys = ("text", "tags", "metadata", "created_at")
    batch = [{k: p[k] for k in keys if p.get(k) is not None} for p in passages]
    if batch:
        ROUTE.at(archive_id, "passages", "batch").post(client, {"passages": batch})


def new_archive(
    client: LettaClient, spec: Mapping[str, object], passages: list[Mapping[str, object]]
) -> str:
    """A new archive as `spec` (a backup's archive fields) says, holding `passages`."""
    body = {k: spec[k] for k in _CREATED if spec.get(k)}
    body.setdefault("name", "restored archive")
    made = str(obj(ROUTE.post(client, body))["id"])
    insert_passages(client, made, passages)
    return made


@dataclass(frozen=True)
class _Run:
    """What kinds.mark_blocks needs of a run."""

    client: LettaClient
    stack: str

    @property
    def tag(self) -> str:
        return stack_tag(self.stack)


def _marks(restoring: Restoring, label: str) -> dict[str, MarkBlock]:
    """The target stack's archive marks by address (the latest of an address wins)."""

    def read() -> dict[str, MarkBlock]:
        found = read_marks(stack_blocks(restoring), restoring.stack, label, "archive")
        return {str(m.mark.get("address")): m for m in found}

    return restoring.once("the stack's archive marks", read)


class ArchiveMemory:
    """The archive kind's HoldsMemory (kinds.holds_memory)."""

    mark_label: ClassVar[str]  # its mark blocks' (kinds.archive.kind)
    counts_memory: ClassVar[bool] = False
    memory_readme: ClassVar[str] = (
        "  - of an archive: its fields, mark, passages and the agents it was attached to.\n"
    )

    def held_words(self, held: Held) -> str:
        agents = f", {held.agent_passages} written by agents" if held.agent_passages else ""
        return counted(held.passages, "passage", False) + agents

    def memory_held(self, change: Change, live: Live, stack: str) -> Held | None:
        rid = change.remote_id or ""
        archives = live.of("archive")
        passages = list(getattr(archives, "passages", {}).get(rid, ()))
        seeded = len(ours(passages, stack, change.address))
        return Held(change.address, rid, "archive", passages=len(passages),
                    agent_passages=len(passages) - seeded)  # fmt: skip

    def count_memory(self, client: LettaClient, held: Held, cap: int) -> Held:
        return held  # all in the listing

    def save_memory(self, saving: Saving, change: Change, address: str, rid: str) -> Saved:
        client = saving.client
        passages = list_passages(client, rid)
        archive = archive_fields(client, rid)
        mark_block = change.body.get("mark_block")
        mark: Mapping[str, object] = {}
        if mark_block:
            metadata = client.get_block(str(mark_block)).get("metadata")
            mark = obj(obj(metadata).get(MARK_KEY))
        agents = [str(a["id"]) for a in ROUTE.at(rid, "agents").list(client)]
        plain = [plain_passage(p) for p in passages]
        archive, n_archive = masked(archive, saving.masker.text)
        plain, n = masked(plain, saving.masker.text)
        n += n_archive
        record = {"kind": "archive", "address": address, "id": rid, "archive": archive,
                  "mark": dict(mark), "passages": plain, "agents": agents}  # fmt: skip
        return Saved("archive", address, rid, record, masked=masked_text(n))

    def memory_holders(self, restoring: Restoring) -> Mapping[str, Holder]:
        return {a: Holder(m.target, m.mark) for a, m in _marks(restoring, self.mark_label).items()}

    def restore_memory(
        self, restoring: Restoring, record: Record, existing: str | None
    ) -> tuple[str, list[str]]:
        client, r = restoring.client, record
        a = obj(r.data["archive"])
        saved = obj(r.data.get("mark"))
        mark = {k: v for k, v in saved.items() if k not in ("archive", "intent")}
        metadata = {MARK_KEY: {**mark, "stack": r.stack, "address": r.address,
                               "restored": r.token}}  # fmt: skip
        passages = objs(r.data.get("passages"))
        rid = existing or ""
        if not rid:  # new, or an intent a killed restore wrote: made now
            run = _Run(client, r.stack)
            held = _marks(restoring, self.mark_label).get(r.address)
            named = [str(x["id"]) for x in ROUTE.list(client)
                     if x.get("name") == a.get("name")]  # fmt: skip
            claims = {"name": a.get("name"), "description": a.get("description")}
            block = intend(run, self.mark_label, "archive", r.address, metadata, claims, named,
                           held.id if held is not None else None)  # fmt: skip
            body = {k: a[k] for k in _CREATED if a.get(k)}
            rid = str(obj(ROUTE.post(client, body))["id"])
            write_mark(run, self.mark_label, "archive", r.address, rid, metadata, block)
            insert_passages(client, rid, passages)
        elif passages and not PASSAGES.at("search").post(
            client, {"archive_id": rid, "limit": 1}, read=True
        ):
            insert_passages(client, rid, passages)
        notes = [f"{len(passages)} passage(s)"]
        for aid in strings(r.data.get("agents")):
            target = restoring.ids.get(aid, aid)
            attach(client, AGENTS.at(target, "archives", "attach", rid), target, notes)
        return rid, notes
