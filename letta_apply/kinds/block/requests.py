"""The requests that carry out a block's changes: create (crash-safe: looked up by its marks
before anything is sent again), update, delete, the identities attached or detached, and the
settling of a block two runs made at once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...core.changes import CREATE, DELETE, Change
from ...core.jsonish import JsonObject, items, text
from ...server import routes
from ..context import Run
from ..resource import carries, settle


def apply_block(run: Run, change: Change, body: JsonObject) -> str:
    """Carry out one change of a block; the block's id."""
    c = run.client
    attach = body.pop("attach_identities", ())
    detach = body.pop("detach_identities", ())
    rid = change.remote_id or ""
    if change.action == CREATE:
        rid = create_block(run, change.address, body)
        run.record(change.address, rid)
    elif change.action == DELETE:
        c.delete_block(rid)
    else:
        c.update_block(rid, body)
    for verb, ids in (("attach", attach), ("detach", detach)):
        for identity_id in items(ids):
            routes.BLOCKS.at(rid, "identities", verb, str(identity_id)).patch(c)
    return rid


def create_block(run: Run, address: str, body: Mapping[str, object]) -> str:
    """Create a block. After an ambiguous failure it is looked up by its marks (one narrow
    listing) before anything is sent again; another run's block of the same address is
    settled with the stage (`settle_blocks`)."""

    def find() -> JsonObject | None:
        found = run.client.list_blocks(run.tag, label=text(body["label"]))
        return next((b for b in found if carries(b, run.stack, address)), None)

    return str(run.client.create_block(body, find=find)["id"])


def settle_blocks(run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
    """Blocks made by this stage that another run made too: the oldest stays (every run that
    made one computes the same winner, so each deletes only its own). One listing of the
    stack's blocks for the whole stage."""
    listing = run.client.list_blocks(run.tag)
    moved: dict[str, str] = {}
    for change, rid in made:
        found: list[Mapping[str, object]] = [
            b for b in listing if carries(b, run.stack, change.address)
        ]
        mine: Mapping[str, object] = {"id": rid}
        winner = settle(mine, found)
        if winner["id"] != rid:
            run.client.delete_block(rid)
            run.record(change.address, str(winner["id"]))
            moved[change.address] = str(winner["id"])
    return moved
