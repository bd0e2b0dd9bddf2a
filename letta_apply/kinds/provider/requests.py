"""The requests that make, change and delete a provider (kinds.provider): the create behind its
write-ahead intent, the mark after each write, and errors masked where they may quote a key."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from ...core.changes import Change
from ...core.jsonish import JsonObject, obj, opt_text, strings, text
from ...core.model import MARK_KEY
from ...core.sensitive import Masker
from ...errors import ApiError
from ...server.routes import BLOCKS, Route
from ..context import Run
from ..mark_blocks import intend, write_mark
from .model import MARK_LABEL, SECRETS

ROUTE = Route("/v1/providers/")


def create(run: Run, change: Change, body: Mapping[str, object]) -> str:
    """The intent first, then the create, then the mark (kinds.mark_blocks)."""
    c, sent, planned = run.client, obj(body["provider"]), obj(body["mark"])
    name = text(sent["name"])
    block = intend(
        run, MARK_LABEL, "provider", change.address, planned, {"name": name}, (),
        opt_text(body.get("intent_block")),
    )  # fmt: skip
    try:
        # An ambiguous failure (the answer lost): the provider of that name is the one sent,
        # names being unique and the plan having found none that is not the stack's.
        created = obj(guarded(lambda: ROUTE.post(c, sent, find=lambda: _named(run, name)), sent))
    except ApiError as e:
        if e.status is not None and e.status < 500:
            # Refused (a name taken since the plan): nothing was made, so nothing may ever
            # answer this intent, another's provider least of all.
            BLOCKS.at(block).delete(c)
        raise
    rid = str(created["id"])
    mark(run, change.address, rid, planned, block, created, sent["api_key"])
    run.record(change.address, rid)
    for stale in strings(body.get("stale")):
        BLOCKS.at(stale).delete(c)
    return rid


def _named(run: Run, name: str) -> JsonObject | None:
    found = [p for p in ROUTE.list(run.client, {"name": name}) if p.get("name") == name]
    return dict(found[0]) if found else None


def mark(
    run: Run, address: str, rid: str, planned: Mapping[str, object], block: str | None,
    answer: Mapping[str, object], key: object, keys: str | None = None,
) -> None:  # fmt: skip
    """The mark as planned, with when this write left the provider (its updated_at) and how
    the server keeps its keys: in plain when its answer holds the key sent, else encrypted
    (`keys`: as the mark said before, when no key was sent)."""
    extra: JsonObject = {"written": answer.get("updated_at")}
    if key is not None and "api_key_enc" in answer:
        keys = "plain" if answer.get("api_key_enc") == key else "encrypted"
    if keys:
        extra["keys"] = keys
    metadata = {MARK_KEY: {**obj(planned[MARK_KEY]), **extra}}
    write_mark(run, MARK_LABEL, "provider", address, rid, metadata, block)


def update(run: Run, change: Change, body: Mapping[str, object]) -> None:
    """The PATCH (it always carries a key), the models listed again, the mark."""
    rid, patch = change.remote_id or "", obj(body["patch"])
    answer: Mapping[str, object] = {"updated_at": body["updated_at"]}
    if patch:
        answer = obj(guarded(lambda: ROUTE.at(rid).patch(run.client, patch), patch))
        # Letta lists the models again only when asked to: a new key or endpoint may serve
        # others.
        ROUTE.at(rid, "refresh").patch(run.client)
    mark(
        run, change.address, rid, obj(body["mark"]), opt_text(body["mark_block"]), answer,
        patch.get("api_key"), opt_text(body.get("keys")),
    )  # fmt: skip


def delete(run: Run, rid: str, mark_block: str | None) -> None:
    """The provider (gone already: done), then its mark: a provider is never left without one
    while it exists."""
    if rid:
        try:
            ROUTE.at(rid).delete(run.client)
        except ApiError as e:
            if e.status != 404:
                raise
    if mark_block:
        BLOCKS.at(mark_block).delete(run.client)


def guarded(send: Callable[[], object], sent: Mapping[str, object]) -> object:
    """Send a request carrying keys: should the server quote them in its error (Letta quotes
    a refused row whole), they are masked (a key written in the manifest is no sensitive
    variable the CLI knows)."""
    try:
        return send()
    except ApiError as e:
        detail = Masker(str(sent[k]) for k in SECRETS if sent.get(k)).text(e.detail)
        if detail == e.detail:
            raise
        raise ApiError(detail, status=e.status, method=e.method, path=e.path, code=e.code) from None
