"""The command line's side of backups: what an apply saved, and `letta-apply restore`."""

from __future__ import annotations

import argparse

from ..core.jsonish import JsonObject
from ..memory.backup import Backups
from ..memory.restore import Restored, describe, restore_backup
from .arguments import EXIT_OK
from .output import Out


def saved_text(backups: Backups) -> str:
    """What an apply or destroy saved before deleting, and how to bring it back."""
    n = len(backups.saved)
    return (
        f"Backups: {n} resource(s) saved in {backups.folder} before they were deleted; "
        f"`letta-apply restore {backups.folder}` brings them back."
    )


def saved_document(backups: Backups | None) -> JsonObject:
    """The `backups` entry of `apply --format json` (none when nothing was saved)."""
    if backups is None or not backups.saved:
        return {}
    saved = sorted(backups.saved, key=lambda s: (s.address, s.id))
    return {
        "backups": {
            "folder": str(backups.folder),
            "saved": [{"address": s.address, "id": s.id, "kind": s.kind} for s in saved],
        }
    }


def cmd_restore(args: argparse.Namespace, o: Out) -> int:
    restored: list[Restored] = []

    def told(r: Restored) -> None:
        restored.append(r)
        if o.format == "text":
            o.text(describe(r))

    with o.connect() as client:
        restore_backup(
            client, args.backup, stack=args.stack, address=args.address, lock=args.lock,
            lock_timeout=args.lock_timeout, on_restored=told,
        )  # fmt: skip
    if o.format == "json":
        o.json({
            "restored": [
                {"address": r.address, "id": r.id, "source": r.source, "notes": list(r.notes),
                 "resumed": r.resumed}
                for r in restored
            ]
        })  # fmt: skip
    else:
        o.text(
            f"\nRestore complete: {len(restored)} resource(s). `letta-apply plan` shows where "
            "the stack stands against its manifest."
        )
    return EXIT_OK
