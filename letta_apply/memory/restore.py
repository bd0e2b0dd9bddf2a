"""`letta-apply restore BACKUP`: bring back what a backup folder (or one record of it) holds, each
resource marked as its stack's again (or as another stack's, at another address).

Order: blocks, then agents (which attach the blocks restored here or still on the server), then
archives (attached to the agents restored here or still there).

- **An agent** comes back through Letta's import of its Agent File, with its configuration,
  block values and the messages of its context window. Letta's import would create every block
  of the file anew, so a block that exists is taken out of the file and attached instead: one
  restored here, the block itself when it is still on the server, or, for a shared block gone
  since, the stack's block of that address if it has one. The rest come from the file, tagged
  and marked as they were. Its identities that still exist are set again; its archival
  passages go back to their archive when it still exists (or is restored here), else into a
  new archive attached to it.
- **A block** is created with its value, configuration, tags and marks, and attached again to
  the agents it was attached to that still exist (an agent's own block).
- **An archive** is created (its intent first, as apply does: kinds.mark_blocks), marked, its
  passages inserted again (embedded anew), and attached to its agents that exist.

Nothing is written when an address to restore is held by another resource of the stack: the
error names each. The stack's lock is held while restoring. Each restored resource's mark
records the backup it came from (`restored`): a restore killed half-way, run again, skips what it
made and finishes the rest, making nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..core.model import MARK_KEY, stack_tag
from ..errors import ApiError, RestoreError
from ..kinds.archive.kind import MARK_LABEL
from ..kinds.base import Run
from ..kinds.mark_blocks import intend, read_marks, write_mark
from ..server.client import LettaClient
from ..server.lock import StackLock
from . import af_edit
from .af_format import read_agent_file
from .backup import RECORD_KEY
from .save import FORMAT

KINDS = ("block", "agent", "archive")  # the order they are restored in


@dataclass(frozen=True)
class Record:
    """One backup record, and where it goes back to."""

    path: Path
    data: Mapping[str, Any]
    stack: str  # the stack it is restored into
    address: str  # ... at this address

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def token(self) -> str:
        """What the restored resource's mark records: the backup it came from."""
        return f"{self.data.get('run')}/{self.data['id']}"


@dataclass(frozen=True)
class Restored:
    """A resource brought back: where, its new id, from which file, and what to know."""

    address: str
    id: str
    source: str
    notes: tuple[str, ...] = ()
    resumed: bool = False


def load_records(
    path: str | Path, *, stack: str | None = None, address: str | None = None
) -> list[Record]:
    """The records of a backup folder (or one record file), in restore order, each with the
    stack and address it goes back to."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not p.exists():
        raise RestoreError(f"{path}: no such file or folder", code="LA810")
    found: list[tuple[Path, dict[str, Any]]] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RestoreError(f"{f}: cannot read a backup record ({e})", code="LA811") from None
        if isinstance(data, dict) and data.get(RECORD_KEY) == FORMAT and data.get("kind") in KINDS:
            found.append((f, data))
        elif not p.is_dir():
            raise RestoreError(
                f"{f}: not a letta-apply backup record (restore reads the .json records of a "
                "backup folder)",
                code="LA812",
            )
    if not found:
        raise RestoreError(f"{path}: no letta-apply backup record in it", code="LA813")
    if address is not None and len(found) != 1:
        raise RestoreError(
            f"--address names one resource; {path} holds {len(found)}: restore one record file",
            code="LA818",
        )
    stacks = {stack or str(d["stack"]) for _, d in found}
    if len(stacks) != 1:
        raise RestoreError(
            f"{path}: records of several stacks; restore one stack at a time", code="LA814"
        )
    out = [Record(f, d, stack or str(d["stack"]), address or str(d["address"]))
           for f, d in found]  # fmt: skip
    for r in out:
        _check_address(r)
    return sorted(out, key=lambda r: (KINDS.index(r.kind), r.address))


def _check_address(r: Record) -> None:
    prefix = r.address.split(".", 1)[0]
    own = ".memory_blocks." in r.address
    ok = (
        (r.kind == "agent" and prefix == "agent" and not own and r.address.count(".") == 1)
        or (r.kind == "block" and (prefix == "block" or (prefix == "agent" and own)))
        or (r.kind == "archive" and prefix == "archive")
    )
    if not ok:
        raise RestoreError(
            f"{r.path}: a {r.kind} cannot be restored at {r.address!r}", code="LA815"
        )


def _mark(metadata: Any) -> dict[str, Any]:
    m = metadata.get(MARK_KEY) if isinstance(metadata, Mapping) else None
    return dict(m) if isinstance(m, Mapping) else {}


def remarked(metadata: Any, r: Record, address: str | None = None) -> dict[str, Any]:
    """Metadata with the mark naming `r`'s stack and `address` (default: the record's), and
    recording the backup it was restored from."""
    out = dict(metadata) if isinstance(metadata, Mapping) else {}
    mark = _mark(out)
    mark.update(stack=r.stack, address=address or r.address, restored=r.token)
    out[MARK_KEY] = mark
    return out


def retagged(tags: Any, r: Record, *, always: bool = False) -> list[str]:
    """Tags with the old stack's tag replaced by the target stack's (added when `always`)."""
    have = set(tags or ())
    old = stack_tag(str(r.data["stack"]))
    if old in have or always:
        have = (have - {old}) | {stack_tag(r.stack)}
    return sorted(have)


def _exists(client: LettaClient, path: str) -> bool:
    try:
        client.request("GET", path)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


class _Held:
    """The target stack's resources by address (what a restore must not duplicate)."""

    def __init__(self, client: LettaClient, stack: str) -> None:
        tag = stack_tag(stack)
        self.agents = {
            str(_mark(a.get("metadata")).get("address")): a
            for a in client.list_agents(tag=tag, include=("agent.tags",))
            if _mark(a.get("metadata")).get("stack") == stack
        }
        listed = client.list_blocks(tag)
        self.blocks = {
            str(_mark(b.get("metadata")).get("address")): b
            for b in listed
            if _mark(b.get("metadata")).get("stack") == stack and b.get("label") != MARK_LABEL
        }
        self.archives = {
            str(m.mark.get("address")): m for m in read_marks(listed, stack, MARK_LABEL, "archive")
        }

    def holder(self, r: Record) -> tuple[str, Mapping[str, Any]] | None:
        """(id, mark) of what holds `r`'s address now, if anything."""
        if r.kind == "archive":
            m = self.archives.get(r.address)
            return (m.target, m.mark) if m is not None else None
        found = (self.agents if r.kind == "agent" else self.blocks).get(r.address)
        return (str(found["id"]), _mark(found.get("metadata"))) if found is not None else None


def restore_backup(
    client: LettaClient,
    path: str | Path,
    *,
    stack: str | None = None,
    address: str | None = None,
    lock: bool = True,
    lock_timeout: float = 60.0,
    on_restored: Callable[[Restored], None] = lambda r: None,
) -> list[Restored]:
    """Restore a backup folder or record (see the module's docstring). Raises LettaApplyError,
    with nothing written, when an address is held by another resource of the stack."""
    records = load_records(path, stack=stack, address=address)
    target = records[0].stack
    # Under the stack's lock from the first look: no apply makes an address in between.
    stack_lock = StackLock(client, target, "restore", timeout=lock_timeout) if lock else None
    if stack_lock is not None:
        stack_lock.acquire()
    restorer: _Restorer | None = None
    try:
        held = _Held(client, target)
        taken = [
            f"{r.address} is held by {found[0] or 'a mark being made'}"
            for r in records
            if (found := held.holder(r)) is not None and found[1].get("restored") != r.token
        ]
        if taken:
            raise RestoreError(
                f"nothing restored: in stack {target!r}, " + "; ".join(taken) + " (restore it "
                "at another --address, or into another --stack)",
                code="LA816",
            )
        restorer = _Restorer(client, records, held)
        done: list[Restored] = []
        for r in records:
            done.append(restorer.restore(r))
            on_restored(done[-1])
        return done
    finally:
        if stack_lock is not None:
            # The stack's record (server.serial) holds what it holds now, what was restored too:
            # never more than it holds (a record made here names only what restore made).
            made = frozenset(
                a for a in (restorer.made if restorer else ()) if ".memory_blocks." not in a
            )
            stack_lock.release(
                wrote=bool(made) or restorer is not None,
                record=lambda _serial, before: (before or frozenset()) | made,
            )


def describe(r: Restored) -> str:
    """One line for the terminal."""
    how = "already restored by an earlier run, finished" if r.resumed else "restored"
    notes = "".join(f"\n    {n}" for n in r.notes)
    return f"{r.address}: {how} as {r.id} (from {r.source}){notes}"


def agent_file_of(r: Record) -> dict[str, Any]:
    """The record's Agent File, with its agent alone (a group's export holds the others)."""
    name = r.data.get("agent_file")
    if not isinstance(name, str) or "/" in name or "\\" in name:
        raise RestoreError(f"{r.path}: the record names no Agent File", code="LA817")
    doc = read_agent_file(r.path.parent / name).data
    return af_edit.only(doc, str(r.data.get("file_agent") or doc["agents"][0]["id"]))


@dataclass(frozen=True)
class _Run:
    """What kinds.mark_blocks needs of a run."""

    client: LettaClient
    stack: str

    @property
    def tag(self) -> str:
        return stack_tag(self.stack)


def _masked_value(r: Record, label: str | None = None) -> bool:
    where = f"blocks['{label}'].value" if label else "value"
    return any(str(m) == where for m in r.data.get("masked") or ())


class _Restorer:
    """The requests of one restore; remembers what it made (old id -> new id), so that what is
    restored later attaches to it."""

    def __init__(self, client: LettaClient, records: list[Record], held: _Held) -> None:
        self.client = client
        self.held = held
        self.ids: dict[str, str] = {}
        self.archives = {str(r.data["id"]) for r in records if r.kind == "archive"}
        self.made: set[str] = set()  # the addresses restored (shared blocks that came back too)

    def restore(self, r: Record) -> Restored:
        found = self.held.holder(r)
        existing = found[0] if found is not None else None
        if r.kind == "block":
            rid, notes = self._block(r, existing)
        elif r.kind == "agent":
            rid, notes = self._agent(r, existing)
        else:
            rid, notes = self._archive(r, existing)
        self.ids[str(r.data["id"])] = rid
        self.made.add(r.address)
        return Restored(r.address, rid, r.path.name, tuple(notes), found is not None)

    def _attach(self, path: str, what: str, notes: list[str]) -> None:
        """An attach that may find its agent gone or its place taken: said, not fatal."""
        try:
            self.client.request("PATCH", path)
        except ApiError as e:
            if e.status not in (404, 409):
                raise
            notes.append(f"not attached to {what}: {e.detail}")

    # -- blocks ----------------------------------------------------------------------------

    def _block(self, r: Record, existing: str | None) -> tuple[str, list[str]]:
        b = r.data["block"]
        rid = existing
        if rid is None:
            body = {k: b[k] for k in ("label", "value", "description", "limit", "read_only")
                    if b.get(k) is not None}  # fmt: skip
            body["metadata"] = remarked(b.get("metadata"), r)
            body["tags"] = retagged(b.get("tags"), r, always=True)
            rid = str(self.client.request("POST", "/v1/blocks/", json=body)["id"])
        notes = []
        if _masked_value(r):
            notes.append("its value was masked in the backup (it held a sensitive value)")
        for aid in r.data.get("agents") or ():
            target = self.ids.get(aid, aid)
            self._attach(f"/v1/agents/{target}/core-memory/blocks/attach/{rid}", target, notes)
        return rid, notes

    # -- agents ----------------------------------------------------------------------------

    def _existing_blocks(self, r: Record) -> dict[str, tuple[str, str]]:
        """File block id -> (id of the block to attach instead, why) for the agent's blocks
        that exist, but its own: restored here, still on the server, or (a shared block gone
        since) the stack's block of that address."""
        out = {}
        for b in r.data.get("blocks") or ():
            old, shared = str(b["id"]), b.get("shared")
            if b.get("own"):
                continue  # the agent's alone: from the backup (the old one may be another's)
            if old in self.ids:
                out[str(b["file_id"])] = (self.ids[old], "restored here")
            elif _exists(self.client, f"/v1/blocks/{old}"):
                out[str(b["file_id"])] = (old, "still on the server")
            elif shared and shared in self.held.blocks:
                found = str(self.held.blocks[shared]["id"])
                out[str(b["file_id"])] = (found, f"the stack's {shared}")
        return out

    def _agent(self, r: Record, existing: str | None) -> tuple[str, list[str]]:
        doc = agent_file_of(r)
        entry = doc["agents"][0]
        labels = {str(b.get("id")): str(b.get("label")) for b in doc.get("blocks") or ()}
        attach = self._existing_blocks(r)
        rid = existing
        if rid is None:
            doc = af_edit.without_blocks(doc, attach)
            _remark_file(doc, r)
            rid = af_edit.import_agent_file(self.client, doc, name=entry.get("name"))[0]
            self._copied_shared(r, rid, attach)
        notes = [
            f"{len(entry.get('messages') or ())} message(s), "
            f"{len(entry.get('in_context_message_ids') or ())} in its context"
        ]
        kept = [labels[f] for f in labels if f not in attach]
        if kept:
            notes.append("blocks from the backup: " + ", ".join(sorted(kept)))
        for fid, (bid, why) in sorted(attach.items()):
            notes.append(f"block {labels.get(fid, fid)}: {bid} attached ({why})")
            self._attach(f"/v1/agents/{rid}/core-memory/blocks/attach/{bid}", bid, notes)
        for b in r.data.get("blocks") or ():
            if _masked_value(r, b.get("label")):
                notes.append(f"block {b.get('label')}: its value was masked in the backup")
        notes += self._identities(r, rid)
        notes += self._passages(r, rid, resumed=existing is not None)
        return rid, notes

    def _copied_shared(self, r: Record, rid: str, attached: Mapping[str, Any]) -> None:
        """A shared block gone from the server came back with the agent, as a copy carrying
        its marks: the agents restored after it attach that copy, not one each (one read)."""
        gone = {str(b["label"]): b for b in r.data.get("blocks") or ()
                if b.get("shared") and str(b["file_id"]) not in attached}  # fmt: skip
        if not gone:
            return
        made = self.client.get_agent(rid, ("agent.blocks",))
        for b in made.get("blocks") or ():
            if b.get("label") in gone:
                self.ids[str(gone[b["label"]]["id"])] = str(b["id"])
                self.made.add(str(gone[b["label"]]["shared"]))  # marked as the stack's

    def _identities(self, r: Record, rid: str) -> list[str]:
        """Its identities attached again (one gone since is said; Letta Cloud serves no other
        identity route than the attach, all others deprecated)."""
        notes: list[str] = []
        for iid in r.data.get("identity_ids") or ():
            self._attach(f"/v1/agents/{rid}/identities/attach/{iid}", str(iid), notes)
        return notes

    def _passages(self, r: Record, rid: str, *, resumed: bool) -> list[str]:
        """The agent's archival passages: their archive attached again when it exists (or is
        restored here: it attaches itself), else a new archive with them."""
        by_archive: dict[str, list[Mapping[str, Any]]] = {}
        for p in r.data.get("passages") or ():
            by_archive.setdefault(str(p.get("archive_id")), []).append(p)
        if not by_archive:
            return []
        if resumed and self.client.request(
            "GET", f"/v1/agents/{rid}/archival-memory", params={"limit": 1}
        ):
            return ["its archival passages were restored by the earlier run"]
        notes: list[str] = []
        for aid, passages in sorted(by_archive.items()):
            n = len(passages)
            if aid in self.archives:
                notes.append(f"{n} passage(s): with their archive, restored from this backup")
            elif _exists(self.client, f"/v1/archives/{aid}"):
                notes.append(f"{n} passage(s): their archive {aid} is still on the server")
                self._attach(f"/v1/agents/{rid}/archives/attach/{aid}", aid, notes)
            else:
                made = self._new_archive((r.data.get("archives") or {}).get(aid) or {}, passages)
                notes.append(f"{n} passage(s): inserted again into a new archive {made}")
                self._attach(f"/v1/agents/{rid}/archives/attach/{made}", made, notes)
        return notes

    def _new_archive(self, spec: Mapping[str, Any], passages: list[Mapping[str, Any]]) -> str:
        body = {k: spec[k] for k in ("name", "description", "embedding_config") if spec.get(k)}
        body.setdefault("name", "restored archive")
        made = str(self.client.request("POST", "/v1/archives/", json=body)["id"])
        self._insert(made, passages)
        return made

    def _insert(self, archive_id: str, passages: list[Mapping[str, Any]]) -> None:
        """Passages inserted again, each with its creation time (the passage search pages by
        it), embedded anew by the server."""
        keys = ("text", "tags", "metadata", "created_at")
        batch = [{k: p[k] for k in keys if p.get(k) is not None} for p in passages]
        if batch:
            self.client.request(
                "POST", f"/v1/archives/{archive_id}/passages/batch", json={"passages": batch}
            )

    # -- archives --------------------------------------------------------------------------

    def _archive(self, r: Record, existing: str | None) -> tuple[str, list[str]]:
        a = r.data["archive"]
        saved = r.data.get("mark") or {}
        mark = {k: v for k, v in saved.items() if k not in ("archive", "intent")}
        metadata = {MARK_KEY: {**mark, "stack": r.stack, "address": r.address,
                               "restored": r.token}}  # fmt: skip
        passages = list(r.data.get("passages") or ())
        rid = existing or ""
        if not rid:  # new, or an intent a killed restore wrote: made now
            # kinds.mark_blocks asks a run for its client, stack and tag only.
            run = cast(Run, _Run(self.client, r.stack))
            held = self.held.archives.get(r.address)
            named = [str(x["id"]) for x in self.client.paginate("/v1/archives/", {})
                     if x.get("name") == a.get("name")]  # fmt: skip
            claims = {"name": a.get("name"), "description": a.get("description")}
            block = intend(run, MARK_LABEL, "archive", r.address, metadata, claims, named,
                           held.id if held is not None else None)  # fmt: skip
            body = {k: a[k] for k in ("name", "description", "embedding_config") if a.get(k)}
            rid = str(self.client.request("POST", "/v1/archives/", json=body)["id"])
            write_mark(run, MARK_LABEL, "archive", r.address, rid, metadata, block)
            self._insert(rid, passages)
        elif passages and not self.client.request(
            "POST", "/v1/passages/search", json={"archive_id": rid, "limit": 1}, read=True
        ):
            self._insert(rid, passages)
        notes = [f"{len(passages)} passage(s)"]
        for aid in r.data.get("agents") or ():
            target = self.ids.get(aid, aid)
            self._attach(f"/v1/agents/{target}/archives/attach/{rid}", target, notes)
        return rid, notes


def _remark_file(doc: dict[str, Any], r: Record) -> None:
    """Mark the file's agent (and the blocks it keeps) as `r`'s stack and address, in place:
    what import makes is the stack's from its first instant."""
    entry = doc["agents"][0]
    old = str(r.data["address"])
    entry["metadata"] = remarked(entry.get("metadata"), r)
    entry["tags"] = retagged(entry.get("tags"), r, always=True)
    for b in doc.get("blocks") or ():
        mark = _mark(b.get("metadata"))
        if mark.get("stack") == r.data["stack"]:
            address = str(mark.get("address", ""))
            if address.startswith(old + ".memory_blocks."):
                address = r.address + address[len(old) :]
            b["metadata"] = {**b["metadata"], MARK_KEY: {**mark, "stack": r.stack,
                                                          "address": address}}  # fmt: skip
        b["tags"] = retagged(b.get("tags"), r)
