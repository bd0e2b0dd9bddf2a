"""What an agent holds of agents' memory (kinds.holds_memory): its messages, its archival
passages, its own blocks' values.

- Held: the messages in its context window (what its backup holds: Letta's export keeps those)
  and which of its own blocks agents wrote, from the listing; its archival passages counted on
  the server up to a cap (Letta counts them nowhere for free): one read when it has none, a page
  and the empty page that ends it otherwise (more pages on a server that caps them).
- Saved: as Letta exports it (`GET /v1/agents/{id}/export`, an Agent File: memory.af_format),
  with what the export leaves out: its blocks' ids and tags (the tags written into the file, so
  its blocks come back tagged), its identities, its archival passages and the archives they
  are in. Its own blocks are saved with it.
- Restored: through Letta's import of its Agent File (`POST /v1/agents/import`), with its
  configuration, block values and the messages of its context window. Letta's import would
  create every block of the file anew, so a block that exists is taken out of the file and
  attached instead: one restored here, the block itself when it is still on the server, or,
  for a shared block gone since, the stack's block of that address if it has one. The rest come
  from the file, tagged and marked as they were. Its identities that still exist are set again;
  its archival passages go back to their archive when it still exists (or is restored here),
  else into a new archive attached to it.

What Letta 0.16.8 does with a file (letta/services/agent_serialization_manager.py): export writes
an agent's secrets with empty values, no block tags and no identities, the messages of its
context window (`in_context_message_ids`), not the older ones, and no archival passages; the
manager of a group comes with the group's other agents. Import creates every block of the file
anew (with the file's tags and metadata), upserts tools by name (`override_existing_tools`
decides whether an existing tool's source is overwritten), creates each agent without messages,
then gives it the file's messages. It appends `_copy` to the name unless `name` is given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from ...core.changes import Change, Held
from ...core.jsonish import JsonObject, items, objs, opt_text, strings
from ...core.model import MARK_KEY, Live, stack_tag
from ...errors import ApiError, RestoreError, ServerStateError, define
from ...server import routes
from ..archive.memory import archive_fields, new_archive, plain_passage
from ..archive.passages import ROUTE as ARCHIVES
from ..block.kind import BLOCKS, owned_of
from ..block.memory import value_base, written
from ..holds_memory import (
    AGENT_FILE,
    AgentFiles,
    Exported,
    Holder,
    Record,
    Restoring,
    Saved,
    Saving,
    attach,
    counted,
    exists,
    mask_fields,
    masked,
    remarked,
    retagged,
    sensitive_of,
    stack_blocks,
)
from ..resource import applied_of, mark_of
from .model import AGENTS

if TYPE_CHECKING:
    from ...server.client import LettaClient

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA817", "RestoreError", "a record without its Agent File",
       "A record names no Agent File beside it.",
       "Restore from the backup folder as apply wrote it.")
define("LA820", "ServerStateError", "the server's import made no agent",
       "Letta's import of an Agent File answered without an agent.",
       "Look at the server's logs; check the Agent File.")
# fmt: on

PASSAGE_PAGE = 100  # Letta's default page of an agent's archival memory
_CANNOT_EXPORT = " (an agent Letta cannot export is deleted only with --no-backup)"


def _own_sensitive(agent_mark: Mapping[str, object], label: str) -> list[str]:
    """What an agent's mark says is sensitive in one of its own blocks."""
    applied = agent_mark.get("applied")
    own = applied.get("memory_blocks") if isinstance(applied, Mapping) else None
    entry = own.get(label) if isinstance(own, Mapping) else None
    names = entry.get("sensitive") if isinstance(entry, Mapping) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def _passage_pages(
    client: LettaClient, agent_id: str, limit: int, cap: int | None
) -> list[Mapping[str, object]]:
    """An agent's archival passages, oldest first, in pages of `limit` until an empty page (a
    server may cap its pages below what was asked, as Letta Cloud does: a short page is no
    end), or until `cap` are seen."""
    out: list[Mapping[str, object]] = []
    seen: set[str] = set()
    params: dict[str, int | bool | str] = {"limit": limit, "ascending": True}
    while cap is None or len(seen) < cap:
        page = routes.AGENTS.at(agent_id, "archival-memory").get(client, params)
        fresh = [p for p in objs(page) if str(p.get("id")) not in seen]
        if not fresh:
            break
        seen.update(str(p["id"]) for p in fresh)
        out.extend(fresh)
        params = {**params, "after": str(fresh[-1]["id"])}
    return out


def _export(client: LettaClient, agent_id: str) -> object:
    return routes.AGENTS.at(agent_id, "export").get(client)


def export_agent(client: LettaClient, files: AgentFiles, agent_id: str) -> JsonObject:
    """The agent as Letta exports it, checked (a group's manager brings its members)."""
    try:
        found = _export(client, agent_id)
    except ApiError as e:
        if (e.status or 0) < 500:
            raise
        # Letta 0.16.8 cannot export some agents (a voice_convo_agent fails its own checks).
        raise ApiError(
            e.detail + _CANNOT_EXPORT, status=e.status, method=e.method, path=e.path, code=e.code
        ) from e
    # Described as answering the file as a JSON string; Letta 0.16.8 answers the object.
    return files.checked(found, f"Letta's export of {agent_id}")


def import_agent_file(client: LettaClient, doc: Mapping[str, object], *, name: str | None) -> str:
    """Import an Agent File of one agent, keeping its name (without it Letta appends `_copy`);
    tools of the same name already on the server are kept. Returns the id of the agent made."""
    data = {"override_existing_tools": "false"}
    if name is not None:
        data["name"] = name
    body = json.dumps(doc, ensure_ascii=False).encode("utf-8")
    answer = routes.AGENTS.at("import").post(
        client, files={"file": ("agent.af", body, "application/json")}, data=data
    )
    ids = answer.get("agent_ids") if isinstance(answer, Mapping) else None
    if not isinstance(ids, list) or not ids:
        raise ServerStateError(
            f"the server's import made no agent (it answered {answer!r:.200})", code="LA820"
        )
    return str(ids[0])


class AgentMemory:
    """The agent kind's HoldsMemory and ExportsAgentFiles (kinds.holds_memory)."""

    counts_memory: ClassVar[bool] = True
    memory_readme: ClassVar[str] = (
        "  - of an agent: its blocks' ids and tags, identities, archival passages and the\n"
        "    archives they were in; beside it, `*.af`: the agent as Letta exports it\n"
        "    (`GET /v1/agents/{id}/export`: configuration, memory blocks, tools, the messages of\n"
        "    its context window), with its blocks' tags written in and its secret values empty\n"
        "    (`secrets`, `tool_exec_environment_variables`). Letta imports it as it is\n"
        "    (`POST /v1/agents/import`), but without letta-apply's extra steps.\n"
    )

    # -- export --format af -------------------------------------------------------------------

    def agent_file_sources(self, client: LettaClient, stack: str) -> list[Exported]:
        listed = client.list_agents(tag=stack_tag(stack), include=("agent.blocks",))
        return [
            Exported(
                str(a["id"]),
                opt_text(a.get("name")),
                mark_of(a.get("metadata")),
                {str(b.get("label")): str(b["id"]) for b in objs(a.get("blocks"))},
            )
            for a in listed
            if mark_of(a.get("metadata")).get("stack") == stack
        ]

    def agent_file_export(self, client: LettaClient, rid: str) -> object:
        return _export(client, rid)

    # -- what a delete holds -----------------------------------------------------------------

    def held_words(self, held: Held) -> str:
        h = held
        parts = [
            counted(h.messages, "message", False) + " in its context",
            counted(h.passages, "passage", "passages" in h.capped),
        ]
        if h.written:
            parts.append("own blocks written by agents: " + ", ".join(h.written))
        else:
            parts.append("no own block written by agents")
        if h.unknown:
            parts.append("not known for: " + ", ".join(h.unknown))
        return ", ".join(parts)

    def memory_held(self, change: Change, live: Live, stack: str) -> Held | None:
        agent = AGENTS.of(live).by_id.get(change.remote_id or "")
        if agent is None:
            return None
        blocks = BLOCKS.of(live)
        own = (applied_of(agent) or {}).get("memory_blocks")
        own = own if isinstance(own, Mapping) else {}
        wrote, unknown = [], []
        for b in owned_of(agent, blocks, set()):
            entry = own.get(b.label)
            base = value_base(b) or (entry.get("value") if isinstance(entry, Mapping) else None)
            state = written(b, base)
            if state == "written":
                wrote.append(b.label)
            elif state == "unknown":
                unknown.append(b.label)
        return Held(change.address, agent.id, "agent", messages=agent.in_context,
                    written=tuple(sorted(wrote)), unknown=tuple(sorted(unknown)))  # fmt: skip

    def count_memory(self, client: LettaClient, held: Held, cap: int) -> Held:
        try:
            n = min(len(_passage_pages(client, held.remote_id, cap, cap)), cap)
        except ApiError:
            return held
        return replace(held, passages=n, capped=("passages",) if n == cap else ())

    # -- backups -----------------------------------------------------------------------------

    def save_memory(self, saving: Saving, change: Change, address: str, rid: str) -> Saved:
        client, files = saving.client, saving.agent_files
        doc = export_agent(client, files, rid)
        live = client.get_agent(rid, ("agent.blocks", "agent.identities"))
        entries = files.agents(doc)
        names = [a for a in entries if a.get("name") == live.get("name")]
        entry = names[0] if len(names) == 1 else entries[0]
        agent_mark = mark_of(live.get("metadata"))
        by_label = {b.get("label"): b for b in objs(live.get("blocks"))}
        hidden = [f"secrets['{n}']" for n in files.blank_secrets(doc)]
        hidden += mask_fields(entry, sensitive_of(agent_mark))
        blocks = []
        for fb in files.blocks_of(doc, entry):
            lb = by_label.get(fb.get("label"))
            if lb is None:
                continue
            tags = _tags_of(saving, str(lb["id"]))
            fb["tags"] = sorted(tags)  # not exported by Letta; imported when the file has them
            mark = mark_of(lb.get("metadata"))
            secret = sensitive_of(mark) or _own_sensitive(agent_mark, str(fb.get("label")))
            hidden += [f"blocks['{fb.get('label')}'].{n}" for n in mask_fields(fb, secret)]
            marked = str(mark.get("address", ""))
            shared = marked if marked.startswith("block.") else None  # a shared block's address
            own = shared is None and stack_tag(str(agent_mark.get("stack"))) in tags
            blocks.append({
                "file_id": fb.get("id"), "id": lb["id"], "label": fb.get("label"),
                "tags": fb["tags"], "shared": shared, "own": own,
            })  # fmt: skip
        passages = [plain_passage(p) for p in _passage_pages(client, rid, PASSAGE_PAGE, None)]
        archives = {
            aid: archive_fields(client, aid)
            for aid in sorted({str(p["archive_id"]) for p in passages if p.get("archive_id")})
        }
        doc, n_doc = masked(doc, saving.masker.text)
        passages, n_passages = masked(passages, saving.masker.text)
        if n_doc or n_passages:
            hidden.append(f"{n_doc + n_passages} text(s) holding a sensitive value")
        entry = next(a for a in files.agents(doc) if a.get("id") == entry.get("id"))
        messages, in_context = files.message_counts(entry)
        record = {
            "kind": "agent", "address": address, "id": rid, "name": live.get("name"),
            "file_agent": entry.get("id"), "blocks": blocks,
            "identity_ids": items(live.get("identity_ids")),
            "messages": messages, "in_context": in_context,
            "passages": passages, "archives": archives,
        }  # fmt: skip
        return Saved("agent", address, rid, record, doc, hidden)

    # -- restore -----------------------------------------------------------------------------

    def memory_holders(self, restoring: Restoring) -> Mapping[str, Holder]:
        tag, stack = stack_tag(restoring.stack), restoring.stack
        out: dict[str, Holder] = {}
        for a in restoring.client.list_agents(tag=tag, include=("agent.tags",)):
            mark = mark_of(a.get("metadata"))
            if mark.get("stack") == stack:
                out[str(mark.get("address"))] = Holder(str(a["id"]), dict(mark))
        return out

    def restore_memory(
        self, restoring: Restoring, record: Record, existing: str | None
    ) -> tuple[str, list[str]]:
        client, files, r = restoring.client, restoring.agent_files, record
        doc = _agent_file_of(files, r)
        entry = files.agents(doc)[0]
        labels = {str(b.get("id")): str(b.get("label")) for b in files.blocks(doc)}
        messages, in_context = files.message_counts(entry)
        attach_instead = _existing_blocks(restoring, r)
        rid = existing
        if rid is None:
            doc = files.without_blocks(doc, attach_instead)
            _remark_file(files, doc, r)
            rid = import_agent_file(client, doc, name=entry.get("name"))
            _copied_shared(restoring, r, rid, attach_instead)
        notes = [f"{messages} message(s), {in_context} in its context"]
        kept = [labels[f] for f in labels if f not in attach_instead]
        if kept:
            notes.append("blocks from the backup: " + ", ".join(sorted(kept)))
        for fid, (bid, why) in sorted(attach_instead.items()):
            notes.append(f"block {labels.get(fid, fid)}: {bid} attached ({why})")
            attach(client, routes.AGENTS.at(rid, "core-memory/blocks", "attach", bid), bid, notes)
        for b in r.data.get("blocks") or ():
            if r.masked(f"blocks['{b.get('label')}'].value"):
                notes.append(f"block {b.get('label')}: its value was masked in the backup")
        for iid in r.data.get("identity_ids") or ():
            # One by one (one gone since is said): Letta Cloud serves no other identity route.
            attach(client, routes.AGENTS.at(rid, "identities", "attach", str(iid)), str(iid), notes)
        notes += _passages(restoring, r, rid, resumed=existing is not None)
        return rid, notes


def _tags_of(saving: Saving, block_id: str) -> list[str]:
    """A block's tags (Letta exports none): from one listing of the stack's blocks for the
    whole run, or a read of a block the stack does not tag."""
    tags = saving.once(
        "the stack's blocks' tags",
        lambda: {str(b["id"]): list(b.get("tags") or ()) for b in stack_blocks(saving)},
    )
    found = tags.get(block_id)
    return found if found is not None else strings(saving.client.get_block(block_id).get("tags"))


def _agent_file_of(files: AgentFiles, r: Record) -> JsonObject:
    """The record's Agent File, with its agent alone (a group's export holds the others)."""
    name = r.data.get(AGENT_FILE)
    if not isinstance(name, str) or "/" in name or "\\" in name:
        raise RestoreError(f"{r.path}: the record names no Agent File", code="LA817")
    doc = files.load(r.path.parent / name)
    return files.only(doc, str(r.data.get("file_agent") or files.agents(doc)[0]["id"]))


def _existing_blocks(restoring: Restoring, r: Record) -> dict[str, tuple[str, str]]:
    """File block id -> (id of the block to attach instead, why) for the agent's blocks that
    exist, but its own: restored here, still on the server, or (a shared block gone since) the
    stack's block of that address."""
    out = {}
    for b in r.data.get("blocks") or ():
        old, shared = str(b["id"]), b.get("shared")
        if b.get("own"):
            continue  # the agent's alone: from the backup (the old one may be another's)
        if old in restoring.ids:
            out[str(b["file_id"])] = (restoring.ids[old], "restored here")
        elif exists(restoring.client, routes.BLOCKS.at(old)):
            out[str(b["file_id"])] = (old, "still on the server")
        elif shared and (held := restoring.holder(shared)) is not None:
            out[str(b["file_id"])] = (held.id, f"the stack's {shared}")
    return out


def _copied_shared(
    restoring: Restoring, r: Record, rid: str, attached: Mapping[str, object]
) -> None:
    """A shared block gone from the server came back with the agent, as a copy carrying its
    marks: the agents restored after it attach that copy, not one each (one read)."""
    gone = {str(b["label"]): b for b in r.data.get("blocks") or ()
            if b.get("shared") and str(b["file_id"]) not in attached}  # fmt: skip
    if not gone:
        return
    made = restoring.client.get_agent(rid, ("agent.blocks",))
    for b in objs(made.get("blocks")):
        if b.get("label") in gone:
            restoring.ids[str(gone[str(b["label"])]["id"])] = str(b["id"])
            restoring.made.add(str(gone[str(b["label"])]["shared"]))  # marked as the stack's


def _passages(restoring: Restoring, r: Record, rid: str, *, resumed: bool) -> list[str]:
    """The agent's archival passages: their archive attached again when it exists (or is
    restored here: it attaches itself), else a new archive with them."""
    client = restoring.client
    by_archive: dict[str, list[Mapping[str, object]]] = {}
    for p in objs(r.data.get("passages")):
        by_archive.setdefault(str(p.get("archive_id")), []).append(p)
    if not by_archive:
        return []
    if resumed and routes.AGENTS.at(rid, "archival-memory").get(client, {"limit": 1}):
        return ["its archival passages were restored by the earlier run"]
    notes: list[str] = []
    for aid, passages in sorted(by_archive.items()):
        n = len(passages)
        if restoring.in_backup(aid):
            notes.append(f"{n} passage(s): with their archive, restored from this backup")
        elif exists(client, ARCHIVES.at(aid)):
            notes.append(f"{n} passage(s): their archive {aid} is still on the server")
            attach(client, routes.AGENTS.at(rid, "archives", "attach", aid), aid, notes)
        else:
            made = new_archive(client, (r.data.get("archives") or {}).get(aid) or {}, passages)
            notes.append(f"{n} passage(s): inserted again into a new archive {made}")
            attach(client, routes.AGENTS.at(rid, "archives", "attach", made), made, notes)
    return notes


def _remark_file(files: AgentFiles, doc: JsonObject, r: Record) -> None:
    """Mark the file's agent (and the blocks it keeps) as `r`'s stack and address, in place:
    what import makes is the stack's from its first instant."""
    entry = files.agents(doc)[0]
    old = str(r.data["address"])
    entry["metadata"] = remarked(entry.get("metadata"), r)
    entry["tags"] = retagged(entry.get("tags"), r, always=True)
    for b in files.blocks(doc):
        mark = dict(mark_of(b.get("metadata")))
        if mark.get("stack") == r.data["stack"]:
            address = str(mark.get("address", ""))
            if address.startswith(old + ".memory_blocks."):
                address = r.address + address[len(old) :]
            b["metadata"] = {**b["metadata"], MARK_KEY: {**mark, "stack": r.stack,
                                                          "address": address}}  # fmt: skip
        b["tags"] = retagged(b.get("tags"), r)
