"""Read the server once for many stacks: each kind's listing is read once for all of them and
split by stack (Kind.read_many: by the stacks' tags, or the server's whole list that each
stack's `state` reads its own from by marks), instead of a few listings per stack.

What `read_live` then does per stack is the same as for one stack alone, with these listings
taken as read: a kind a stack would not have listed (not named, not held) is not given to it.
A listing that fails here is left out, so each stack that needs it reads it alone and fails
or not on its own: a shared read never fails every stack at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..core.jsonish import objs
from ..core.model import Desired
from ..errors import LettaApplyError
from ..kinds import KINDS, kind
from ..kinds.base import TAGGED_AT_ONCE
from ..kinds.flags import FLAG_KIND
from ..server.client import LettaClient
from .live import held_kinds, listed_first, named_kinds

Listings = dict[str, dict[str, object]]
"""stack -> kind -> the kind's listing of that stack, as Kind.read gives it."""


Ahead = Mapping[str, "Future[object | None]"]
"""kind -> its whole listing (Kind.read_whole), read while the stacks' manifests load."""


def read_ahead(client: LettaClient, pool: ThreadPoolExecutor, stacks: int) -> Ahead:
    """Start reading, in `pool`, the listings every plan reads (`listing` "always") whole, for
    `stacks` stacks whose manifests are still to load: only past TAGGED_AT_ONCE stacks, which
    list them whole anyway. The server works on them while the manifests load; a listing that
    proves too thin for them (Kind.covers) is read again."""
    if stacks <= TAGGED_AT_ONCE:
        return {}
    return {k.name: pool.submit(k.read_ahead, client) for k in KINDS if k.listing == "always"}


def read_shared(
    client: LettaClient, desired: Sequence[Desired], ahead: Ahead | None = None
) -> Listings:
    """Every listing the plans of the stacks `desired` declares need, each kind's read once for
    all of them (twice at most: the kinds the stacks' blocks say they hold are read after);
    those read `ahead` are split, not read again."""
    out: Listings = {d.stack: {} for d in desired}
    first: dict[str, list[str]] = {}  # kind -> the stacks listing it before their blocks
    for d in desired:
        for k in listed_first(named_kinds(d)):
            first.setdefault(k.name, []).append(d.stack)
    _read(client, first, out, ahead or {}, desired)
    later: dict[str, list[str]] = {}
    for d in desired:
        got = out[d.stack]
        if FLAG_KIND not in got:
            continue  # its blocks could not be read with the others': it reads alone
        listed = {k.name for k in listed_first(named_kinds(d))}
        for k in held_kinds(objs(got[FLAG_KIND]), d.stack, listed):
            later.setdefault(k.name, []).append(d.stack)
    _read(client, later, out, {}, desired)
    return out


def _read(
    client: LettaClient,
    wanted: dict[str, list[str]],
    out: Listings,
    ahead: Ahead,
    desired: Sequence[Desired],
) -> None:
    """Each kind of `wanted` read once for its stacks, side by side, into `out` (`desired`: the
    stacks' manifests)."""
    if not wanted:
        return

    def read(name: str, stacks: list[str]) -> dict[str, object]:
        k = kind(name)
        names = set(stacks)
        theirs = [d for d in desired if d.stack in names]
        whole = ahead[name].result() if name in ahead else None
        if whole is not None and k.covers(whole, theirs):
            return k.split(whole, stacks)
        return k.read_many(client, stacks, theirs)

    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        reads = {name: pool.submit(read, name, stacks) for name, stacks in wanted.items()}
        for name, f in reads.items():
            try:
                got = f.result()
            except LettaApplyError:
                continue  # each stack reads it alone (read_live), and says why if it fails
            for stack, listing in got.items():
                out[stack][name] = listing
