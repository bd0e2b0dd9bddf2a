"""The folder flag: how a plan knows whether a stack holds folders without listing them.

Folders carry no tag to list a stack's by, so a stack that declares none would have to list
every folder on the server to find those it still owns (to prune them). Instead, a stack that
holds folders has a *folder flag*: a block labelled `letta-apply-folders`, tagged with the
stack, attached to no agent, written before the stack's first folder is created and deleted
once the stack keeps no folder (a block delete of its own, `FLAG_ADDRESS` in a plan, which runs
after the folder deletes). The stack's block listing reads it for free; without it and without
declared folders, folders are not listed at all (see kinds.folder).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from ..model import MARK_KEY, stack_tag
from .base import Run, mark_of

FLAG_LABEL = "letta-apply-folders"
FLAG = "folder flag"  # what the run records the flag's id under
# The flag has no address of its own: its delete is shown under this one (a block, by its label).
FLAG_ADDRESS = f"block.{FLAG_LABEL}"

# The flag is written once per run, however many folder creates run at once.
_flag_lock = threading.Lock()


def folder_flag(blocks: Iterable[Mapping[str, Any]], stack: str) -> str | None:
    """The id of the stack's folder flag among its tagged blocks, if any."""
    for b in blocks:
        if (
            b.get("label") == FLAG_LABEL
            and stack_tag(stack) in (b.get("tags") or ())
            and mark_of(b.get("metadata")).get("stack") == stack
        ):
            return str(b["id"])
    return None


def raise_flag(run: Run) -> None:
    """Write the stack's folder flag, once per run, before the folder that needs it."""
    with _flag_lock:
        if run.id_of(FLAG) != FLAG:
            return

        def find() -> dict[str, Any] | None:
            return next(iter(run.client.list_blocks(run.tag, label=FLAG_LABEL)), None)

        value = (
            f"letta-apply: stack '{run.stack}' holds folders. This block is not memory and is "
            "attached to no agent; it is deleted with the stack's last folder."
        )
        made = run.client.request(
            "POST",
            "/v1/blocks/",
            json={
                "label": FLAG_LABEL,
                "value": value,
                "tags": [run.tag],
                "metadata": {MARK_KEY: {"stack": run.stack}},
            },
            find=find,
        )
        run.record(FLAG, str(made["id"]))
