"""A stack lock's records (server.lock): blocks tagged `letta-apply-lock:<stack>` whose metadata
says who holds the lock; how they are read, and how `force-unlock` removes one."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from ..core.jsonish import JsonObject, items, obj
from ..core.model import LOCK_KEY, LOCK_LABEL, LOCK_TAG
from ..errors import ApiError, LettaApplyError
from .client import LettaClient
from .serial import bump_serial, serial_tag


def lock_tag(stack: str) -> str:
    """The tag every lock record of `stack` carries (never the stack's own tag)."""
    return f"{LOCK_TAG}{stack}"


def described(block: Mapping[str, object]) -> object:
    """What a lock record says of its holder: its metadata under LOCK_KEY (a mapping, in a
    lock record)."""
    return obj(block.get("metadata")).get(LOCK_KEY)


def is_lock_record(block: Mapping[str, object]) -> bool:
    return isinstance(described(block), Mapping)


class LockError(LettaApplyError):
    """The stack is locked by another run (or a lock record is not what it should be)."""


@dataclass(frozen=True)
class LockInfo:
    """One lock record: its block id and who wrote it."""

    id: str
    stack: str
    holder: str
    host: str
    pid: int
    time: str
    operation: str
    token: str
    lease: float = 0.0  # seconds; 0: a record of an older release, never taken over
    renewals: int = 0
    renewed: str = ""  # the holder's clock at its last renewal (UTC)
    machine: str = ""  # boot and process namespace: what makes `host` one machine

    @classmethod
    def from_block(cls, block: Mapping[str, object]) -> LockInfo | None:
        if not is_lock_record(block):
            return None
        md = obj(described(block))
        try:
            lease, renewals = _float(md.get("lease") or 0), _int(md.get("renewals") or 0)
            pid = _int(md.get("pid") or 0)
        except (TypeError, ValueError):
            lease, renewals, pid = 0.0, 0, 0
        return cls(
            id=str(block["id"]),
            stack=str(md.get("stack", "")),
            holder=str(md.get("holder", "?")),
            host=str(md.get("host", "?")),
            pid=pid,
            time=str(md.get("time", "?")),
            operation=str(md.get("operation", "?")),
            token=str(md.get("token", "")),
            lease=lease,
            renewals=renewals,
            renewed=str(md.get("renewed") or ""),
            machine=str(md.get("machine") or ""),
        )

    def describe(self) -> str:
        return (
            f"{self.holder}@{self.host} (pid {self.pid}, {self.operation} since {self.time}; "
            f"lock id {self.id})"
        )


def _float(value: object) -> float:
    """float(value) for what a record's writer wrote: a number or its text (else TypeError,
    as float() raises for anything else)."""
    if isinstance(value, str | int | float):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def _int(value: object) -> int:
    """int(value) for what a record's writer wrote: a number or its text (else TypeError)."""
    if isinstance(value, str | int | float):
        return int(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def list_locks(client: LettaClient, stack: str) -> list[LockInfo]:
    """Every lock record of `stack`, oldest first."""
    return records(client.list_blocks(lock_tag(stack)), stack)


def lock_listing(client: LettaClient, stack: str) -> list[JsonObject]:
    """The stack's lock records and its serial record, in one listing."""
    return client.list_blocks(lock_tag(stack), serial_tag(stack))


def records(blocks: Iterable[Mapping[str, object]], stack: str) -> list[LockInfo]:
    """The lock records of `stack` among `blocks`, in their order."""
    found = (LockInfo.from_block(b) for b in blocks if b.get("label") == LOCK_LABEL)
    return [lock for lock in found if lock is not None and lock.stack == stack]


_LOCK_ID = re.compile(r"block-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def force_unlock(client: LettaClient, lock_id: str) -> LockInfo:
    """Delete the lock record `lock_id`, whoever holds it; refuses any block that is not one."""
    if not _LOCK_ID.fullmatch(lock_id):
        raise LockError(
            f"force-unlock: {lock_id!r} is not a lock id: lock ids look like block-<uuid>, as "
            "the error that named the lock wrote it",
            code="LA711",
        )
    try:
        block = client.get_block(lock_id)
    except ApiError as e:
        if e.status == 404:
            raise LockError(
                f"force-unlock: no lock {lock_id} on the server", code="LA712"
            ) from None
        raise
    info = LockInfo.from_block(block) if block.get("label") == LOCK_LABEL else None
    if info is None or lock_tag(info.stack) not in items(block.get("tags")):
        raise LockError(
            f"force-unlock: {lock_id} is not a letta-apply lock record; not deleted", code="LA713"
        )
    # The run that held it may have written to the stack before it died.
    bump_serial(client, info.stack)
    client.delete_block(lock_id)
    return info
