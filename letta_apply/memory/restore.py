"""`letta-apply restore BACKUP`: bring back what a backup folder (or one record of it) holds, each
resource marked as its stack's again (or as another stack's, at another address).

Each record is brought back by its kind (kinds.holds_memory: `restore_memory`), kinds in the
registry's dependency order (memory.holders): what a resource attaches to is back before it (an
agent's blocks before the agent, an agent before the archives attached to it), and what is
restored later attaches to what was restored here (`ids`: old id -> new id).

Nothing is written when an address to restore is held by another resource of the stack: the
error names each. The stack's lock is held while restoring. Each restored resource's mark
records the backup it came from (`restored`): a restore killed half-way, run again, skips what it
made and finishes the rest, making nothing twice.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..core.jsonish import JsonObject
from ..errors import RestoreError
from ..kinds.holds_memory import AgentFiles, Holder, Record
from ..server.client import LettaClient
from ..server.lock import StackLock
from . import af_format
from .backup import FORMAT, RECORD_KEY
from .holders import Once, holder, holders, kind_at, owner_of

__all__ = ["Record", "Restored", "describe", "load_records", "restore_backup"]


@dataclass(frozen=True)
class Restored:
    """A resource brought back: where, its new id, from which file, and what to know."""

    address: str
    id: str
    source: str
    notes: tuple[str, ...] = ()
    resumed: bool = False


def _order() -> tuple[str, ...]:
    """The kinds a backup holds records of, in the order they are restored in."""
    return tuple(k.name for k in holders())


def load_records(
    path: str | Path, *, stack: str | None = None, address: str | None = None
) -> list[Record]:
    """The records of a backup folder (or one record file), in restore order, each with the
    stack and address it goes back to."""
    p = Path(path)
    files = sorted(p.glob("*.json")) if p.is_dir() else [p]
    if not p.exists():
        raise RestoreError(f"{path}: no such file or folder", code="LA810")
    kinds = _order()
    found: list[tuple[Path, JsonObject]] = []
    for f in files:
        try:
            data = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RestoreError(f"{f}: cannot read a backup record ({e})", code="LA811") from None
        if isinstance(data, dict) and data.get(RECORD_KEY) == FORMAT and data.get("kind") in kinds:
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
    return sorted(out, key=lambda r: (kinds.index(r.kind), r.address))


def _check_address(r: Record) -> None:
    """A record goes back to an address of its kind (`<kind>.<key>`, or one nested in an
    owner's: `agent.<key>.memory_blocks.<label>`)."""
    if not r.address.partition(".")[2] or kind_at(r.address) != r.kind:
        raise RestoreError(
            f"{r.path}: a {r.kind} cannot be restored at {r.address!r}", code="LA815"
        )


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
    restorer: _Restoring | None = None  # once nothing stands in the way
    try:
        restoring = _Restoring(client, target, frozenset(str(r.data["id"]) for r in records))
        restoring.read_holders()
        taken = [
            f"{r.address} is held by {found.id or 'a mark being made'}"
            for r in records
            if (found := restoring.holder(r.address)) is not None
            and found.mark.get("restored") != r.token
        ]
        if taken:
            raise RestoreError(
                f"nothing restored: in stack {target!r}, " + "; ".join(taken) + " (restore it "
                "at another --address, or into another --stack)",
                code="LA816",
            )
        restorer = restoring
        done: list[Restored] = []
        for r in records:
            done.append(restorer.restore(r))
            on_restored(done[-1])
        return done
    finally:
        if stack_lock is not None:
            # The stack's record (server.serial) holds what it holds now, what was restored too:
            # never more than it holds (a record made here names only what restore made).
            made = frozenset(a for a in (restorer.made if restorer else ()) if owner_of(a) is None)
            stack_lock.release(
                wrote=bool(made) or restorer is not None,
                record=lambda _serial, before: (before or frozenset()) | made,
            )


def describe(r: Restored) -> str:
    """One line for the terminal."""
    how = "already restored by an earlier run, finished" if r.resumed else "restored"
    notes = "".join(f"\n    {n}" for n in r.notes)
    return f"{r.address}: {how} as {r.id} (from {r.source}){notes}"


@dataclass
class _Restoring:
    """One restore (kinds.holds_memory.Restoring): what holds the target stack's addresses,
    read once at the start, and what it made (old id -> new id), so that what is restored
    later attaches to it."""

    client: LettaClient
    stack: str
    record_ids: frozenset[str]  # of every record of this restore
    agent_files: AgentFiles = af_format
    once: Once = field(default_factory=Once)
    ids: dict[str, str] = field(default_factory=dict)
    # The addresses restored (shared blocks that came back with an agent too).
    made: set[str] = field(default_factory=set)
    held: dict[str, Mapping[str, Holder]] = field(default_factory=dict)  # kind -> address ->

    def read_holders(self) -> None:
        for k in holders():
            self.held[k.name] = k.memory_holders(self)

    def in_backup(self, rid: str) -> bool:
        return rid in self.record_ids

    def holder(self, address: str) -> Holder | None:
        return self.held.get(kind_at(address) or "", {}).get(address)

    def restore(self, r: Record) -> Restored:
        kind = holder(r.kind)
        assert kind is not None  # load_records took only records of such kinds
        found = self.holder(r.address)
        rid, notes = kind.restore_memory(self, r, found.id if found is not None else None)
        self.ids[str(r.data["id"])] = rid
        self.made.add(r.address)
        return Restored(r.address, rid, r.path.name, tuple(notes), found is not None)
