"""The requests that carry out a group's changes (kinds.group): its create (the intent first,
kinds.mark_blocks) with its shared blocks, its update, and its delete, each with its mark
block."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ...core.changes import Change
from ...core.jsonish import JsonObject, items, obj, opt_text, strings
from ...errors import ApiError, define
from ...server.routes import BLOCKS, Route
from ..context import Run
from ..mark_blocks import intend, write_mark
from .model import MARK_LABEL, claimed, claims

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA723", "ApiError", "a group's create answer lost, several look alike",
       "The answer to a group's create was lost, and several groups on the server look like "
       "the one sent: nothing proves which one it made.",
       "Adopt one with an `imports:` entry, delete the others, then apply again.")
# fmt: on

ROUTE = Route("/v1/groups/")
_KIND = "group"  # the key of the group's id in its mark (kinds.mark_blocks)


def create(run: Run, change: Change, body: Mapping[str, object]) -> str:
    """Make the group (its intent first: a run that dies after the create leaves a group its
    stack adopts, never one that is nobody's), mark it, attach its shared blocks, delete the
    marks it reuses no more and, for a replacement, the group it replaces."""
    c = run.client
    sent: JsonObject = {**obj(body.get("group")), "shared_block_ids": []}
    exclude = strings(body.get("exclude"))
    mark = obj(body.get("mark"))
    block = intend(
        run, MARK_LABEL, _KIND, change.address, mark, claims(sent), exclude,
        opt_text(body.get("intent_block")),
    )  # fmt: skip
    created = ROUTE.post(c, sent, find=lambda: _lost(run, change.address, sent, exclude))
    rid = str(obj(created)["id"])
    write_mark(run, MARK_LABEL, _KIND, change.address, rid, mark, block)
    run.record(change.address, rid)
    for bid in items(body.get("blocks")):
        ROUTE.at(rid, "blocks", "attach", str(bid)).patch(c)
    for stale in items(body.get("stale")):
        BLOCKS.at(str(stale)).delete(c)
    replaces = obj(body.get("replaces"))
    if replaces:
        delete(run, opt_text(replaces.get("group")), opt_text(replaces.get("mark_block")))
    return rid


def update(run: Run, change: Change, rid: str, body: Mapping[str, object]) -> None:
    """The PATCH (when a field changed), the shared blocks attached and detached, the mark."""
    c = run.client
    patch = obj(body.get("patch"))
    if patch:
        ROUTE.at(rid).patch(c, patch)
    for bid in items(body.get("attach")):
        ROUTE.at(rid, "blocks", "attach", str(bid)).patch(c)
    for bid in items(body.get("detach")):
        ROUTE.at(rid, "blocks", "detach", str(bid)).patch(c)
    mark = obj(body.get("mark"))
    write_mark(run, MARK_LABEL, _KIND, change.address, rid, mark, opt_text(body.get("mark_block")))


def delete(run: Run, group_id: str | None, mark_block: str | None) -> None:
    """The group, then its mark: a group is never left without one while it exists. Without a
    group: a mark that marks none."""
    if group_id:
        ROUTE.at(group_id).delete(run.client)
    if mark_block:
        BLOCKS.at(mark_block).delete(run.client)


def _lost(
    run: Run, address: str, sent: Mapping[str, object], exclude: Iterable[str]
) -> JsonObject | None:
    """After an ambiguous failure of a group's create: the one group that answers the intent
    written before it (and was not on the server when the plan was made) is the one sent. With
    none the create surely did not land and is sent again; with several nothing proves which,
    and the failure says so."""
    wanted, old = claims(sent), set(exclude)
    alike = [
        g for g in ROUTE.list(run.client)
        if claimed(wanted, g) and str(g["id"]) not in old
    ]  # fmt: skip
    if len(alike) > 1:
        ids = ", ".join(str(g["id"]) for g in alike)
        raise ApiError(
            f"{address}: the server's answer to the group's create was lost, and {ids} all "
            f"look like what it sent: adopt one with `imports: [{{to: {address}, id: ...}}]` "
            "and delete the others, then apply again",
            code="LA723",
        )
    return dict(alike[0]) if alike else None
