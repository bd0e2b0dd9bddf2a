"""Mark blocks: where kinds whose resources carry no tags and no metadata keep their ownership
marks (groups, MCP servers, archives), and the write-ahead intents that make their creates
crash-safe.

A mark block is a memory block labelled for its kind (`letta-apply-group`, ...), tagged with the
stack's tag, attached to no agent, whose `metadata` holds the mark: stack, address, the id of
the resource it marks (under the kind's name) and field digests. The block kind lists the
stack's tagged blocks anyway, so reading the marks costs no request; it ignores these blocks
(their address is not block.<key>), and the manifest may not declare their labels.

**Intents.** Such a resource's mark cannot travel in its create request, so a run killed between
the create and the mark would leave a resource that is nobody's (and, where names are unique,
that blocks the stack for good). So the mark block is written *first*, as an intent: the mark
without the resource's id, plus what will identify the resource (`claims`: the fields the create
sends, such as an MCP server's name) and the ids of the resources that already answered those
claims when the plan was made (`exclude`). Then the create; then the mark block gets the id and
loses the intent. A later run that finds an intent and exactly one resource that answers its
claims, is named by no mark, and is not among `exclude` (so it was made after the plan that wrote
the intent) adopts it, saying so. An intent that nothing answers is reused by the next create of
its address, or deleted. A resource that answers no intent is still never touched.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from ..core.changes import DELETE, LEFTOVER, REPLACED, Change
from ..core.jsonish import JsonObject, items, obj
from ..core.model import MARK_KEY, stack_tag
from ..server.routes import BLOCKS
from .context import Context, ExtraOf, Matched
from .resource import INTENT, Resource, mark_of

if TYPE_CHECKING:
    from ..server.client import LettaClient

RUN = uuid.uuid4().hex
"""This process's run token, recorded in the intents it writes."""

Claims = Callable[[Mapping[str, object], Mapping[str, object]], bool]
"""Whether a resource, as the server lists it, answers an intent's claims."""


@dataclass(frozen=True)
class MarkBlock:
    """A mark block as the stack's block listing shows it: its id, the id of the resource it
    marks ("" for an intent no resource answers), and the mark."""

    id: str
    target: str
    mark: Mapping[str, object]

    @property
    def intent(self) -> Mapping[str, object] | None:
        """The intent when the mark is not complete yet (see the module's docstring)."""
        found = self.mark.get(INTENT)
        return found if isinstance(found, Mapping) else None


Found = TypeVar("Found")
F = TypeVar("F", bound=Resource)
T = TypeVar("T")


@dataclass(frozen=True)
class MarkedLeft(Generic[Found]):
    """What a match by mark blocks leaves for planning (`Matched.extra`): the mark blocks that
    mark nothing (`unanswered`), and the resources an interrupted replacement left behind
    carrying an address another resource now holds (address, resource)."""

    stale: tuple[MarkBlock, ...] = ()
    leftovers: tuple[tuple[str, Found], ...] = ()


def left_of(matched: Matched[F]) -> MarkedLeft[F]:
    """What a kind's match by mark blocks left (nothing, for a match that left nothing)."""
    left = matched.extra
    return left if isinstance(left, MarkedLeft) else MarkedLeft()


def same(key: str) -> Claims:
    """Claims a resource answers by holding the same `key` as sent (a name the server keeps
    unique identifies what a create made)."""
    return lambda claims, raw: raw.get(key) == claims.get(key)


def with_marks(
    listing: Iterable[Mapping[str, object]],
    marks: Iterable[MarkBlock],
    make: Callable[[Mapping[str, object], MarkBlock | None], T],
) -> list[T]:
    """Each listed resource made with the first mark block naming it (None: no mark names it,
    so it is not the stack's)."""
    by_target: dict[str, MarkBlock] = {}
    for m in marks:
        by_target.setdefault(m.target, m)
    return [make(r, by_target.get(str(r.get("id")))) for r in listing]


def read_marks(
    blocks: Iterable[Mapping[str, object]], stack: str, label: str, prefix: str
) -> tuple[MarkBlock, ...]:
    """The stack's mark blocks labelled `label` for addresses of `prefix` (a kind's name, which
    is also the key of the marked resource's id in the mark), intents included, oldest first."""
    out = []
    for b in blocks:
        m = mark_of(b.get("metadata"))
        address, target = m.get("address"), m.get(prefix)
        if (
            b.get("label") == label
            and stack_tag(stack) in items(b.get("tags") or [stack_tag(stack)])
            and m.get("stack") == stack
            and isinstance(address, str)
            and address.startswith(prefix + ".")
            and (isinstance(target, str) or isinstance(m.get(INTENT), Mapping))
        ):
            out.append(MarkBlock(str(b["id"]), target if isinstance(target, str) else "", m))
    return tuple(out)


def resolve(
    marks: Iterable[MarkBlock], resources: Iterable[Mapping[str, object]], claims: Claims
) -> tuple[MarkBlock, ...]:
    """`marks`, each intent that exactly one unmarked resource answers given that resource as
    its target (its mark keeps the intent: it is still to write). An intent that several
    resources answer proves nothing and stays unresolved."""
    marks = tuple(marks)
    listed = tuple(resources)
    taken = {m.target for m in marks if m.target}
    out = []
    for m in marks:
        intent = m.intent
        if m.target or intent is None:
            out.append(m)
            continue
        wanted = intent.get("claims")
        skip = taken | {str(i) for i in items(intent.get("exclude"))}
        found = [
            str(r["id"])
            for r in listed
            if str(r["id"]) not in skip and isinstance(wanted, Mapping) and claims(wanted, r)
        ]
        if len(found) == 1:
            taken.add(found[0])
            out.append(MarkBlock(m.id, found[0], m.mark))
        else:
            out.append(m)
    return tuple(out)


def unanswered(marks: Iterable[MarkBlock], live_ids: Iterable[str]) -> tuple[MarkBlock, ...]:
    """Mark blocks that mark nothing: intents no resource answers, and marks whose resource
    is gone (deleted by hand, or by a run that stopped before deleting its mark)."""
    ids = set(live_ids)
    return tuple(m for m in marks if m.target not in ids)


def stale(ctx: Context, kind: str) -> tuple[MarkBlock, ...]:
    """The mark blocks of `kind` that mark nothing (`unanswered`), as the kind's match left
    them for planning (`MarkedLeft`)."""
    left = ctx.extra.get(kind)
    return left.stale if isinstance(left, MarkedLeft) else ()


def reuse(ctx: Context, kind: str, address: str) -> JsonObject:
    """What a create at `address` does with the mark blocks of that address that mark nothing:
    the first carries its intent, the others are deleted once it is made."""
    ids = [m.id for m in stale(ctx, kind) if m.mark.get("address") == address]
    return {"intent_block": ids[0] if ids else None, "stale": ids[1:]}


class Marking(Protocol):
    """What writing and dropping mark blocks needs of a run (the applier's `Run`, or restore's):
    the server, the stack and its tag."""

    @property
    def client(self) -> LettaClient: ...

    @property
    def stack(self) -> str: ...

    @property
    def tag(self) -> str: ...


class Blocked(Protocol):
    """A live resource marked by a mark block (`mark_block`: its id, None when none names it)."""

    @property
    def id(self) -> str: ...

    @property
    def mark_block(self) -> str | None: ...


def prune_leftovers(ctx: Context, kind: str) -> None:
    """Delete the resources of `kind` an interrupted replacement left behind (kinds.matching
    .replacement_wins, as the kind's match left them in `MarkedLeft`), with their mark blocks."""
    left = ExtraOf[MarkedLeft[Blocked]](kind).of(ctx)
    for address, r in left.leftovers if left else ():
        body: JsonObject = {"mark_block": r.mark_block}
        ctx.changes.append(Change(address, DELETE, r.id, body=body, why=(REPLACED,), kind=kind))


def drop_marks(run: Marking, label: str, prefix: str, address: str) -> None:
    """`Kind.unmark` for a kind whose marks are mark blocks: every mark block of `address`
    (an intent too) is deleted, one narrow listing to find them; the resource stays, nobody's."""
    for m in read_marks(run.client.list_blocks(run.tag, label=label), run.stack, label, prefix):
        if m.mark.get("address") == address:
            BLOCKS.at(m.id).delete(run.client)


def prune_marks(ctx: Context, kind: str) -> None:
    """Delete the mark blocks of `kind` that mark nothing and that no create in the plan reuses
    (after a destroy, nothing of the stack is left)."""
    reused: set[object] = set()
    for c in ctx.changes:
        if c.kind == kind:
            reused |= {c.body.get("intent_block"), *items(c.body.get("stale", ()))}
    for m in stale(ctx, kind):
        if m.id not in reused:
            address = str(m.mark.get("address"))
            body = {"mark_block": m.id}
            ctx.changes.append(Change(address, DELETE, None, body=body, why=(LEFTOVER,), kind=kind))


def intend(
    run: Marking,
    label: str,
    prefix: str,
    address: str,
    metadata: Mapping[str, object],
    claims: Mapping[str, object],
    exclude: Iterable[str] = (),
    block: str | None = None,
) -> str:
    """Record the intent to create the resource at `address` before creating it: into mark
    block `block` (an intent nothing answered, reused), or a new one. Returns the block's id.
    `metadata` is the mark block's metadata as `write_mark` takes it."""
    intent = {
        "run": RUN,
        "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "claims": dict(claims),
        "exclude": sorted(exclude),
    }
    mark = {k: v for k, v in obj(metadata.get(MARK_KEY)).items() if k != prefix}
    meta = {MARK_KEY: {**mark, INTENT: intent}}
    if block:
        BLOCKS.at(block).patch(run.client, {"metadata": meta})
        return block
    value = (
        f"letta-apply: this block marks the {prefix} at {address} of stack '{run.stack}' "
        f"(while it is being made, what will identify it). It is not memory and is attached "
        f"to no agent; deleting it releases the {prefix}."
    )
    made = BLOCKS.post(
        run.client, {"label": label, "value": value, "tags": [run.tag], "metadata": meta}
    )
    return str(obj(made)["id"])


def write_mark(
    run: Marking,
    label: str,
    prefix: str,
    address: str,
    target: str,
    metadata: Mapping[str, object],
    block: str | None,
) -> None:
    """Write the mark of resource `target` at `address`: into its mark block `block` (its
    intent, if it was one, goes), or a new one. `metadata` is the mark block's metadata without
    the target's id."""
    mark = {k: v for k, v in obj(metadata.get(MARK_KEY)).items() if k != INTENT}
    meta = {MARK_KEY: {**mark, prefix: target}}
    if block:
        BLOCKS.at(block).patch(run.client, {"metadata": meta})
        return
    value = (
        f"letta-apply: this block marks {target} as {address} of stack '{run.stack}'. "
        f"It is not memory and is attached to no agent; deleting it releases the {prefix}."
    )
    BLOCKS.post(run.client, {"label": label, "value": value, "tags": [run.tag], "metadata": meta})
