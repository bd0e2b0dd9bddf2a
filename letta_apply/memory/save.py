"""What a backup holds of each resource a run deletes, read from the server right before the
delete (backup.py writes it): an agent as Letta exports it, with what the export leaves out
(its archival passages, its blocks' ids and tags, its identities); a block's fields; an archive
with its passages and its mark.

Nothing saved holds the stack's sensitive values: secret values are emptied, fields the marks
name sensitive are replaced by "(sensitive)", and the text of every sensitive value the run
knows is masked wherever it appears (messages, passages, tool source). letta-apply's marks are
kept as they are (they never hold a secret), so a restored resource is the stack's again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..core.model import MARK_KEY, stack_tag
from ..core.sensitive import Masker
from ..server.client import LettaClient
from . import af_edit

FORMAT = 1
"""Version of a backup record (the `letta_apply_backup` key of each record file)."""
PASSAGE_PAGE = 100  # Letta's default page of an agent's archival memory
_PASSAGE_FIELDS = ("id", "archive_id", "text", "tags", "metadata", "created_at")
_BLOCK_FIELDS = ("label", "value", "description", "limit", "read_only", "metadata", "tags")
_ARCHIVE_FIELDS = ("name", "description", "embedding_config", "metadata")


@dataclass
class Saved:
    """One resource's backup: the record (letta-apply's JSON) and, for an agent, its Agent
    File; `masked` says what was masked."""

    kind: str
    address: str
    id: str
    record: dict[str, Any]
    agent_file: dict[str, Any] | None = None
    masked: list[str] = field(default_factory=list)


def _mark(metadata: Any) -> Mapping[str, Any]:
    m = metadata.get(MARK_KEY) if isinstance(metadata, Mapping) else None
    return m if isinstance(m, Mapping) else {}


def _sensitive(mark: Mapping[str, Any]) -> list[str]:
    """The fields a mark says hold sensitive values (names only)."""
    applied = mark.get("applied")
    names = applied.get("sensitive") if isinstance(applied, Mapping) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def _own_sensitive(agent_mark: Mapping[str, Any], label: str) -> list[str]:
    """What an agent's mark says is sensitive in one of its own blocks."""
    applied = agent_mark.get("applied")
    own = applied.get("memory_blocks") if isinstance(applied, Mapping) else None
    entry = own.get(label) if isinstance(own, Mapping) else None
    names = entry.get("sensitive") if isinstance(entry, Mapping) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def _plain_passage(p: Mapping[str, Any]) -> dict[str, Any]:
    """A passage without its embedding (made again from the text on restore)."""
    return {k: p.get(k) for k in _PASSAGE_FIELDS}


def agent_passages(client: LettaClient, agent_id: str) -> list[dict[str, Any]]:
    """Every passage of an agent's archival memory, oldest first (pages of PASSAGE_PAGE; a
    listing ends at an empty page, as every listing does: servers may cap pages)."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    params: dict[str, Any] = {"limit": PASSAGE_PAGE, "ascending": True}
    while True:
        page = client.request("GET", f"/v1/agents/{agent_id}/archival-memory", params=params)
        fresh = [p for p in page or () if p.get("id") not in seen]
        if not fresh:
            return out
        seen.update(str(p["id"]) for p in fresh)
        out.extend(_plain_passage(p) for p in fresh)
        params = {**params, "after": fresh[-1]["id"]}


def save_agent(
    client: LettaClient,
    agent_id: str,
    address: str,
    masker: Masker,
    tags_of: Callable[[str], list[str]] | None = None,
) -> Saved:
    """An agent as Letta exports it, with its blocks' ids, labels and tags (the export has no
    ids and no tags: tags are written into the file, so that its blocks come back tagged), its
    identities, its archival passages and the archives they are in. `tags_of` gives a block's
    tags (default: a read of the block)."""
    tags_of = tags_of or (lambda i: list(client.get_block(i).get("tags") or ()))
    doc = af_edit.export_agent(client, agent_id)
    live = client.get_agent(agent_id, ("agent.blocks", "agent.identities"))
    names = [a for a in doc["agents"] if a.get("name") == live.get("name")]
    entry = names[0] if len(names) == 1 else doc["agents"][0]
    agent_mark = _mark(live.get("metadata"))
    by_label = {b.get("label"): b for b in live.get("blocks") or ()}
    masked = [f"secrets['{n}']" for n in af_edit.blank_secrets(doc)]
    masked += af_edit.mask_fields(entry, _sensitive(agent_mark))
    blocks = []
    for fb in af_edit.blocks_of(doc, entry):
        lb = by_label.get(fb.get("label"))
        if lb is None:
            continue
        tags = tags_of(lb["id"])
        fb["tags"] = sorted(tags)  # not exported by Letta; imported when the file has them
        mark = _mark(lb.get("metadata"))
        hidden = _sensitive(mark) or _own_sensitive(agent_mark, str(fb.get("label")))
        masked += [f"blocks['{fb.get('label')}'].{n}" for n in af_edit.mask_fields(fb, hidden)]
        marked = str(mark.get("address", ""))
        shared = marked if marked.startswith("block.") else None  # a shared block's address
        own = shared is None and stack_tag(str(agent_mark.get("stack"))) in tags
        blocks.append({
            "file_id": fb.get("id"), "id": lb["id"], "label": fb.get("label"), "tags": fb["tags"],
            "shared": shared, "own": own,
        })  # fmt: skip
    passages = agent_passages(client, agent_id)
    archives = {
        aid: {k: a.get(k) for k in _ARCHIVE_FIELDS}
        for aid in sorted({str(p["archive_id"]) for p in passages if p.get("archive_id")})
        for a in [client.request("GET", f"/v1/archives/{aid}")]
    }
    doc, n_doc = af_edit.masked(doc, masker.text)
    passages, n_passages = af_edit.masked(passages, masker.text)
    if n_doc or n_passages:
        masked.append(f"{n_doc + n_passages} text(s) holding a sensitive value")
    entry = next(a for a in doc["agents"] if a.get("id") == entry.get("id"))
    record = {
        "kind": "agent", "address": address, "id": agent_id, "name": live.get("name"),
        "file_agent": entry.get("id"), "blocks": blocks,
        "identity_ids": list(live.get("identity_ids") or ()),
        "messages": len(entry.get("messages") or ()),
        "in_context": len(entry.get("in_context_message_ids") or ()),
        "passages": passages, "archives": archives,
    }  # fmt: skip
    return Saved("agent", address, agent_id, record, doc, masked)


def save_block(client: LettaClient, block_id: str, address: str, masker: Masker) -> Saved:
    """A block's fields (its value, configuration, marks and tags) and the agents it is
    attached to."""
    found = client.get_block(block_id)
    block = {k: found.get(k) for k in _BLOCK_FIELDS}
    masked = af_edit.mask_fields(block, _sensitive(_mark(found.get("metadata"))))
    block, n = af_edit.masked(block, masker.text)
    if n:
        masked.append(f"{n} text(s) holding a sensitive value")
    agents = [str(a["id"]) for a in client.block_agents(block_id)]
    record = {"kind": "block", "address": address, "id": block_id, "block": block,
              "agents": agents}  # fmt: skip
    return Saved("block", address, block_id, record, masked=masked)


def save_archive(
    client: LettaClient,
    archive_id: str,
    address: str,
    masker: Masker,
    mark_block: str | None,
    passages: Iterable[Mapping[str, Any]],
) -> Saved:
    """An archive (name, description, embedding), every passage in it, its mark (from its mark
    block) and the agents it is attached to."""
    found = client.request("GET", f"/v1/archives/{archive_id}")
    archive = {k: found.get(k) for k in _ARCHIVE_FIELDS}
    mark: Mapping[str, Any] = {}
    if mark_block:
        mark = _mark(client.get_block(mark_block).get("metadata"))
    agents = [str(a["id"]) for a in client.paginate(f"/v1/archives/{archive_id}/agents", {})]
    plain = [_plain_passage(p) for p in passages]
    (archive, plain), n = af_edit.masked([archive, plain], masker.text)
    masked = [f"{n} text(s) holding a sensitive value"] if n else []
    record = {"kind": "archive", "address": address, "id": archive_id, "archive": archive,
              "mark": dict(mark), "passages": plain, "agents": agents}  # fmt: skip
    return Saved("archive", address, archive_id, record, masked=masked)
