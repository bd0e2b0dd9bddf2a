"""The stack's *serial*: whether another run wrote to the stack since a plan read it.

It is a block labelled `letta-apply-stack`, tagged `letta-apply-serial:<stack>` only, whose
metadata holds a random token that every run that wrote to the stack replaces when it is done
(before it releases the stack lock, server.lock). A plan lists the stack's blocks by the stack's
tag or the serial's (Letta matches any of the tags given), the lock its records by the lock tag
or the serial's: both read it at no extra request, and neither the stack's resources nor its lock
records include it. When the two agree, no run wrote to the stack in between, and the plan made
before the lock is the plan under it. Edits by hand do not change it (nor were they ever held off
by the lock).

The serial record also holds the stack's *record*: the addresses of the resources the stack held
when a run last wrote to it (zlib-compressed JSON, base64, under `applied`: 33 KB for 10,000
numbered instances), which tells a resource deleted on the server from one the manifest adds
(see plan.record). A run that takes an address away writes the record without it first, so the
record never names what letta-apply itself removed, even when the run is killed. Runs that do
not know what the stack holds (a lock taken over, force-unlock) keep the record as it is.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..core.jsonish import JsonObject, items, obj
from ..core.model import LOCK_KEY
from ..errors import ApiError, is_rejection
from .client import LettaClient

STACK_LABEL = "letta-apply-stack"

RECORD_KEY = "applied"
"""Key of the stack's record in the serial record's metadata (under LOCK_KEY)."""

RECORD_MAX = 64 << 20
"""Bytes a record may unpack to (a record is anyone's to write: no zlib bomb)."""


def serial_tag(stack: str) -> str:
    """The tag of the stack's serial record (neither the stack's tag nor its lock tag)."""
    return f"letta-apply-serial:{stack}"


def _described(block: Mapping[str, object]) -> Mapping[str, object]:
    """What a serial record says of itself: its metadata under LOCK_KEY."""
    return obj(obj(block.get("metadata")).get(LOCK_KEY))


def _serial_records(
    blocks: Iterable[Mapping[str, object]], stack: str
) -> list[Mapping[str, object]]:
    return [
        b for b in blocks
        if b.get("label") == STACK_LABEL
        and serial_tag(stack) in items(b.get("tags"))
        and _described(b).get("stack") == stack
    ]  # fmt: skip


def stack_serial(blocks: Iterable[Mapping[str, object]], stack: str) -> str:
    """The stack's serial as `blocks` (a listing that takes the serial's tag in) show it:
    "" when no run wrote to the stack yet. Two runs that made the record at once made two:
    their tokens together are the serial."""
    return ",".join(str(_described(b).get("serial", "")) for b in _serial_records(blocks, stack))


def encode_record(addresses: Iterable[str]) -> str:
    """The stack's record as the serial record keeps it: sorted, JSON, zlib, base64."""
    text = json.dumps(sorted(set(addresses)), ensure_ascii=False, separators=(",", ":"))
    return base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def decode_record(text: object) -> frozenset[str] | None:
    """The addresses a record holds; None when it is not one (then the stack has none)."""
    if not isinstance(text, str):
        return None
    try:
        unpack = zlib.decompressobj()
        raw = unpack.decompress(base64.b64decode(text, validate=True), RECORD_MAX)
        if unpack.unconsumed_tail:
            return None
        found = json.loads(raw.decode("utf-8"))
    except (ValueError, zlib.error, binascii.Error):
        return None
    if not isinstance(found, list) or not all(isinstance(a, str) for a in found):
        return None
    return frozenset(found)


def stack_record(blocks: Iterable[Mapping[str, object]], stack: str) -> frozenset[str] | None:
    """The stack's record as `blocks` (a listing that takes the serial's tag in) show it: None
    when there is none (no run of this release wrote to the stack yet). Two records (two runs
    made one at once) hold together what either holds."""
    found = [decode_record(_described(b).get(RECORD_KEY)) for b in _serial_records(blocks, stack)]
    kept = [f for f in found if f is not None]
    return frozenset().union(*kept) if kept else None


Recording = Callable[[str, frozenset[str] | None], Iterable[str] | None]
"""The stack's new record, from its serial and its record as they are before the write (None:
keep the record as it is)."""


def bump_serial(
    client: LettaClient,
    stack: str,
    blocks: Sequence[Mapping[str, object]] = (),
    record: Recording | None = None,
) -> None:
    """Give the stack a new serial: a run wrote to it. `blocks`, when given, is a listing that
    took the serial's tag in, which saves looking the record up; without `record` the stack's
    record is kept as a fresh listing shows it. Like a lock's withdrawal, it is tried harder
    than other writes (a 500 is tried again): until it is written, the lock is not released."""
    token = uuid.uuid4().hex
    if record is None:
        blocks = ()  # what the record holds now, not what an older listing showed

    def meta(records: Sequence[Mapping[str, object]]) -> JsonObject:
        now = stack_record(records, stack)
        chosen = record(stack_serial(records, stack), now) if record else None
        kept = now if chosen is None else chosen
        mine = {"stack": stack, "serial": token}
        return {LOCK_KEY: mine if kept is None else {**mine, RECORD_KEY: encode_record(kept)}}

    def listed() -> list[Mapping[str, object]]:
        return _serial_records(client.list_blocks(serial_tag(stack)), stack)

    def find() -> JsonObject | None:
        # An ambiguous create that did land: its token says it is this one.
        return next((dict(b) for b in listed() if _described(b).get("serial") == token), None)

    for attempt in range(3):
        try:
            records = _serial_records(blocks, stack) if blocks else listed()
            if records:
                client.update_block(str(records[0]["id"]), {"metadata": meta(records)})
                for extra in records[1:]:  # two runs made one at once without the lock
                    client.delete_block(str(extra["id"]))
                return
            body = {
                "label": STACK_LABEL,
                "value": f"letta-apply: the serial of stack {stack!r}; every run that writes "
                "to the stack changes it. It is not memory and is attached to no agent.",
                "metadata": meta(()),
                "tags": [serial_tag(stack)],
            }
            client.create_block(body, find=find)
            return
        except ApiError as e:
            # 404 on a record the given listing showed: it is gone since; look again.
            stale = e.status == 404 and bool(blocks)
            if attempt == 2 or (is_rejection(e) and not stale):
                raise
            blocks = ()  # look again: the write may have landed
            if not stale:
                client.sleep(1.0)


def refresh_record(client: LettaClient, stack: str, serial: str, record: Iterable[str]) -> bool:
    """Write the stack's record when no run wrote to the stack since its serial was `serial`
    (a run with nothing else to write, whose plan found the record missing what the stack
    holds); False when another run did (its record stands)."""
    listing = client.list_blocks(serial_tag(stack))
    if stack_serial(listing, stack) != serial:
        return False
    kept = frozenset(record)
    bump_serial(client, stack, listing, lambda _serial, _now: kept)
    return True


def forget_serial(client: LettaClient, stack: str) -> None:
    """Delete the stack's serial record (the stack was destroyed)."""
    for b in _serial_records(client.list_blocks(serial_tag(stack)), stack):
        client.delete_block(str(b["id"]))
