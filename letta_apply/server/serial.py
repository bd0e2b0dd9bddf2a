"""The stack's *serial*: whether another run wrote to the stack since a plan read it.

It is a block labelled `letta-apply-stack`, tagged `letta-apply-serial:<stack>` only, whose
metadata holds a random token that every run that wrote to the stack replaces when it is done
(before it releases the stack lock, server.lock). A plan lists the stack's blocks by the stack's
tag or the serial's (Letta matches any of the tags given), the lock its records by the lock tag
or the serial's: both read it at no extra request, and neither the stack's resources nor its lock
records include it. When the two agree, no run wrote to the stack in between, and the plan made
before the lock is the plan under it. Edits by hand do not change it (nor were they ever held off
by the lock).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..errors import ApiError, is_rejection
from .client import LettaClient

LOCK_KEY = "letta_apply_lock"
"""Key in a lock or serial record's `metadata` under which it is described."""

STACK_LABEL = "letta-apply-stack"


def serial_tag(stack: str) -> str:
    """The tag of the stack's serial record (neither the stack's tag nor its lock tag)."""
    return f"letta-apply-serial:{stack}"


def _serial_records(blocks: Iterable[Mapping[str, Any]], stack: str) -> list[Mapping[str, Any]]:
    return [
        b for b in blocks
        if b.get("label") == STACK_LABEL
        and serial_tag(stack) in (b.get("tags") or ())
        and isinstance((b.get("metadata") or {}).get(LOCK_KEY), Mapping)
        and b["metadata"][LOCK_KEY].get("stack") == stack
    ]  # fmt: skip


def stack_serial(blocks: Iterable[Mapping[str, Any]], stack: str) -> str:
    """The stack's serial as `blocks` (a listing that takes the serial's tag in) show it:
    "" when no run wrote to the stack yet. Two runs that made the record at once made two:
    their tokens together are the serial."""
    return ",".join(
        str(b["metadata"][LOCK_KEY].get("serial", "")) for b in _serial_records(blocks, stack)
    )


def bump_serial(client: LettaClient, stack: str, blocks: Sequence[Mapping[str, Any]] = ()) -> None:
    """Give the stack a new serial: a run wrote to it. `blocks`, when given, is a listing that
    took the serial's tag in, which saves looking the record up. Like a lock's withdrawal, it
    is tried harder than other writes (a 500 is tried again): until it is written, the lock
    is not released."""
    token = uuid.uuid4().hex
    meta = {LOCK_KEY: {"stack": stack, "serial": token}}

    def listed() -> list[Mapping[str, Any]]:
        return _serial_records(client.list_blocks(serial_tag(stack)), stack)

    def find() -> dict[str, Any] | None:
        # An ambiguous create that did land: its token says it is this one.
        return next(
            (dict(b) for b in listed() if b["metadata"][LOCK_KEY].get("serial") == token), None
        )

    for attempt in range(3):
        try:
            records = _serial_records(blocks, stack) if blocks else listed()
            if records:
                client.update_block(str(records[0]["id"]), {"metadata": meta})
                for extra in records[1:]:  # two runs made one at once without the lock
                    client.delete_block(str(extra["id"]))
                return
            body = {
                "label": STACK_LABEL,
                "value": f"letta-apply: the serial of stack {stack!r}; every run that writes "
                "to the stack changes it. It is not memory and is attached to no agent.",
                "metadata": meta,
                "tags": [serial_tag(stack)],
            }
            client.create_block(body, find=find)
            return
        except ApiError as e:
            if attempt == 2 or is_rejection(e):
                raise
            blocks = ()  # look again: the write may have landed
            client.sleep(1.0)


def forget_serial(client: LettaClient, stack: str) -> None:
    """Delete the stack's serial record (the stack was destroyed)."""
    for b in _serial_records(client.list_blocks(serial_tag(stack)), stack):
        client.delete_block(str(b["id"]))
