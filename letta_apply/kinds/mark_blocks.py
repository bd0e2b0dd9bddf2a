"""Mark blocks: where kinds whose resources carry no tags and no metadata keep their ownership
marks (groups, MCP servers).

A mark block is a memory block labelled for its kind (`letta-apply-group`, ...), tagged with the
stack's tag, attached to no agent, whose `metadata` holds the mark: stack, address, the id of
the resource it marks (under the kind's name) and field digests. The block kind lists the
stack's tagged blocks anyway, so reading the marks costs no request; it ignores these blocks
(their address is not block.<key>), and the manifest may not declare their labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..model import MARK_KEY, stack_tag
from .base import Run, mark_of


@dataclass(frozen=True)
class MarkBlock:
    """A mark block as the stack's block listing shows it: its id, the id of the resource it
    marks, and the mark."""

    id: str
    target: str
    mark: Mapping[str, Any]


def read_marks(
    blocks: Iterable[Mapping[str, Any]], stack: str, label: str, prefix: str
) -> tuple[MarkBlock, ...]:
    """The stack's mark blocks labelled `label` for addresses of `prefix` (a kind's name, which
    is also the key of the marked resource's id in the mark), oldest first."""
    out = []
    for b in blocks:
        m = mark_of(b.get("metadata"))
        address, target = m.get("address"), m.get(prefix)
        if (
            b.get("label") == label
            and stack_tag(stack) in (b.get("tags") or [stack_tag(stack)])
            and m.get("stack") == stack
            and isinstance(address, str)
            and address.startswith(prefix + ".")
            and isinstance(target, str)
        ):
            out.append(MarkBlock(str(b["id"]), target, m))
    return tuple(out)


def write_mark(
    run: Run,
    label: str,
    prefix: str,
    address: str,
    target: str,
    metadata: Mapping[str, Any],
    block: str | None,
) -> None:
    """Write the mark of resource `target` at `address`: into its mark block `block`, or a new
    one. `metadata` is the mark block's metadata without the target's id."""
    meta = {MARK_KEY: {**metadata[MARK_KEY], prefix: target}}
    if block:
        run.client.request("PATCH", f"/v1/blocks/{block}", json={"metadata": meta})
        return
    value = (
        f"letta-apply: this block marks {target} as {address} of stack '{run.stack}'. "
        f"It is not memory and is attached to no agent; deleting it releases the {prefix}."
    )
    run.client.request(
        "POST",
        "/v1/blocks/",
        json={"label": label, "value": value, "tags": [run.tag], "metadata": meta},
    )
