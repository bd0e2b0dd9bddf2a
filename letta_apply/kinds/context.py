"""What planning and applying give a kind: the planning context kinds write their changes into,
the update every kind plans the same way, what a kind's match returns, and the applier's run."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar, cast

from ..core.changes import (
    ADOPT,
    CONFIGURATION,
    DRIFT,
    MANIFEST,
    RESUME,
    Action,
    Change,
    Drift,
    FieldDiff,
    Problem,
    Why,
)
from ..core.jsonish import JsonObject, obj, strings
from ..core.marks import digest
from ..core.model import MARK_KEY, Desired, Live
from ..errors import ApiError
from .resource import Declared, Resource, applied_of

if TYPE_CHECKING:
    from ..server.client import LettaClient, Params
    from ..server.routes import Route

Users = tuple[tuple[str, str, "str | None"], ...]
"""Agents using a resource: (agent id, agent name, the agent's stack or None)."""

Found = TypeVar("Found", bound=Resource, covariant=True)


@dataclass(frozen=True)
class Matched(Generic[Found]):
    """A kind's live resources found by their marks: `pool` by address (what the planner works
    on), `ids` every address that exists (nested ones included), notes, and whatever else the
    kind needs to plan (`extra`: the kind's own, read back by it through `Context.extra`)."""

    pool: Mapping[str, Found]
    ids: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    extra: object = None


class Context:
    """What the planner and the kinds share while planning: the inputs, the live resources each
    kind matched (moved and imported ones included), and the changes, drift, problems and notes
    made so far."""

    def __init__(self, desired: Desired, live: Live, *, detach_unmanaged: bool) -> None:
        self.desired = desired
        self.live = live
        self.detach_unmanaged = detach_unmanaged
        self.stack = desired.stack
        self.tag = desired.tag
        self.changes: list[Change] = []
        self.drift: list[Drift] = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.ids: dict[str, str] = {}
        # kind -> address -> live resource, each of its kind's own type (Kind.pool_of)
        self.pools: dict[str, dict[str, Resource]] = {}
        self.extra: dict[str, object] = {}  # kind -> what its match left for planning
        self.moved: dict[str, str] = {}  # to-address -> from-address, for resources moved now
        self.importing: set[str] = set()
        self.resumed: set[str] = set()  # adopted by an intent (kinds.mark_blocks)
        self.replacing: set[str] = set()
        self.refused: set[str] = set()  # declared addresses apply cannot make

    def pool(self, kind: str) -> dict[str, Resource]:
        return self.pools.setdefault(kind, {})

    def why(self, applied: Mapping[str, object] | None, name: str, live_value: object) -> Why:
        """Whether a difference comes from the manifest or from the server (drift): the live
        value still matching the digest letta-apply wrote means the manifest changed."""
        if not applied or name not in applied:
            return MANIFEST
        return MANIFEST if applied[name] == digest(live_value) else DRIFT

    def config_drift(self, address: str, diffs: Iterable[FieldDiff]) -> None:
        for d in diffs:
            if d.why == DRIFT:
                self.drift.append(Drift(address, d.field, d.after, d.before, CONFIGURATION, True))

    def protected(self, resource: Resource, declared: object = None) -> bool:
        return bool(
            getattr(declared, "prevent_destroy", False)
            or (applied_of(resource) or {}).get("prevent_destroy")
        )

    def refuse_destroy(self, address: str, verb: str = "delete") -> None:
        self.problems.append(
            Problem(
                address,
                f"prevent_destroy is set, and this plan would {verb} it",
                "remove prevent_destroy from the manifest and apply that first, or keep the "
                "resource as it is",
                fatal=True,
                code="LA703",
            )
        )

    def used_elsewhere(self, address: str, users: Users, ours: set[str]) -> bool:
        """Refuse to delete a resource agents outside the stack still use (a problem)."""
        foreign = [u for u in users if u[0] not in ours]
        if foreign:
            names = ", ".join(f"{name} ({aid})" for aid, name, _ in foreign)
            self.problems.append(
                Problem(
                    address,
                    f"not deleted: still attached to agents this stack does not manage: {names}",
                    "detach it from those agents first",
                    code="LA621",
                )
            )
        return bool(foreign)


class Update:
    """The update of one declared resource from its live one, as every kind plans it: the
    differences, each with why (drift or the manifest), and the request that converges them.
    Only fields the manifest declares and does not `ignore_changes` are compared."""

    def __init__(
        self, ctx: Context, declared: Declared, applied: Mapping[str, object] | None
    ) -> None:
        self.ctx = ctx
        self.declared = declared
        self.applied = applied
        self.diffs: list[FieldDiff] = []
        self.body: JsonObject = {}
        moved_from = ctx.moved.get(declared.address)
        if moved_from:
            self.diffs.append(FieldDiff("address", moved_from, declared.address))

    def managed(self, name: str) -> bool:
        return name in self.declared.config and name not in self.declared.ignore

    def differs(self, name: str, live: object, declared: object) -> None:
        self.diffs.append(FieldDiff(name, live, declared, self.ctx.why(self.applied, name, live)))

    def field(
        self, name: str, live: object, declared: object, *, request: str | None = None
    ) -> None:
        """A field enforced as declared: a difference is written back."""
        if live != declared:
            self.differs(name, live, declared)
            self.body[request or name] = declared

    def fields(self, live: object, names: Iterable[str]) -> None:
        """Plain fields the manifest may declare, compared with the live resource's."""
        for k in names:
            if self.managed(k):
                self.field(k, getattr(live, k), self.declared.config[k])

    def mapping(self, name: str, live: Mapping[str, object]) -> None:
        """A mapping (metadata, properties): differences key by key, written whole."""
        wanted = obj(self.declared.config.get(name))
        if self.managed(name) and dict(live) != wanted:
            why = self.ctx.why(self.applied, name, dict(live))
            self.diffs.extend(dict_diffs(name, dict(live), dict(wanted), why))

    def tags(self, live_tags: list[str]) -> None:
        """Declared tags against the live ones (the stack's tag apart, always kept)."""
        wanted = sorted(strings(self.declared.config.get("tags")))
        if self.managed("tags") and live_tags != wanted:
            self.differs("tags", live_tags, wanted)
            self.body["tags"] = sorted({*wanted, self.ctx.tag})

    def protection(self, marked: bool) -> None:
        """prevent_destroy lives in the marks: a change of it is a write of the marks."""
        protected = bool((self.applied or {}).get("prevent_destroy"))
        if protected != self.declared.prevent_destroy and marked:
            self.diffs.append(
                FieldDiff("prevent_destroy", protected, self.declared.prevent_destroy)
            )

    def needed(self, *, adopt: bool, also: bool = False) -> bool:
        """Whether a request is needed (drift found is recorded on the way)."""
        self.ctx.config_drift(self.declared.address, self.diffs)
        return bool(self.diffs) or adopt or also

    def emit(self, kind: str, rid: str, *, adopt: bool) -> None:
        """The change: an import (the marks written) or an update."""
        action: Action = "import" if adopt else "update"
        resumed = self.declared.address in self.ctx.resumed
        why: tuple[Why, ...] = (RESUME if resumed else ADOPT,) if adopt else whys(self.diffs)
        self.ctx.changes.append(
            Change(
                self.declared.address,
                action,
                rid,
                tuple(self.diffs),
                self.body,
                why=why,
                kind=kind,
            )
        )


def dict_diffs(
    name: str, before: Mapping[str, object], after: Mapping[str, object], why: Why
) -> list[FieldDiff]:
    """Field-level differences inside a mapping, e.g. metadata['team']: 'a' -> 'b'."""
    from deepdiff import DeepDiff  # here: only a plan with a changed mapping needs it

    dd = DeepDiff(dict(before), dict(after), verbose_level=2, view="tree")
    out = []
    for items in dd.values():
        for item in items:
            path = item.path(root=name)
            t1 = None if _missing(item.t1) else item.t1
            t2 = None if _missing(item.t2) else item.t2
            out.append(FieldDiff(path, t1, t2, why))
    return sorted(out, key=lambda d: d.field)


def _missing(value: object) -> bool:
    return type(value).__name__ == "NotPresent"


def whys(diffs: Iterable[FieldDiff]) -> tuple[Why, ...]:
    return tuple(sorted({d.why for d in diffs})) or (MANIFEST,)


class Run(Protocol):
    """What the applier gives a kind to carry out one change."""

    client: LettaClient
    stack: str
    tag: str
    lock: threading.Lock

    def id_of(self, address_or_id: str) -> str: ...

    def record(self, address: str, rid: str) -> None: ...

    def resolve(self, body: Mapping[str, object]) -> JsonObject:
        """A change's body with the ids of what it refers to."""
        ...


def unmark_tagged(
    run: Run,
    route: Route,
    metadata: str = "metadata",
    *,
    tags: bool = True,
    params: Params | None = None,
) -> None:
    """`Kind.unmark` for a resource whose marks are the stack's tag in `tags` (unless `tags`
    is false: the kind has none) and its mark in a metadata mapping (named `metadata`): read
    it, write both back without the marks."""
    try:
        found = obj(route.get(run.client, params))
    except ApiError as e:
        if e.status == 404:
            return  # gone: nothing is marked
        raise
    kept = {k: v for k, v in obj(found.get(metadata)).items() if k != MARK_KEY}
    body: JsonObject = {metadata: kept}
    if tags:
        body["tags"] = sorted(set(strings(found.get("tags"))) - {run.tag})
    route.patch(run.client, body)


T = TypeVar("T")


# The generic core holds each kind's declared resources, state, pool and match leftovers as
# `object` under the kind's name; only the kind that made them knows their type. These keys are
# how a kind reads its own, or another kind's (through a Protocol of what it needs, when the
# other kind's folder cannot be imported without a cycle), typed. Each holds because the core
# stores under a kind's name only what that kind's own methods returned (Kind.declare, state,
# complete, names_taken, match): the one place such data is cast.


@dataclass(frozen=True)
class DeclaredOf(Generic[T]):
    """A kind's declared resources, by address, read as `T`."""

    kind: str

    def of(self, desired: Desired) -> Mapping[str, T]:
        return cast("Mapping[str, T]", desired.of(self.kind))


@dataclass(frozen=True)
class StateOf(Generic[T]):
    """A kind's live state (what its `state` or `complete` made), read as `T`."""

    kind: str

    def of(self, live: Live) -> T:
        return cast(T, live.of(self.kind))


@dataclass(frozen=True)
class PoolOf(Generic[T]):
    """A kind's live resources the plan works on, by address (its `match`'s pool), as `T`."""

    kind: str

    def of(self, ctx: Context) -> dict[str, T]:
        return cast("dict[str, T]", ctx.pool(self.kind))


@dataclass(frozen=True)
class ExtraOf(Generic[T]):
    """What a kind's `match` left for planning (`Matched.extra`), read as `T` (None: none)."""

    kind: str

    def of(self, ctx: Context) -> T | None:
        return cast("T | None", ctx.extra.get(self.kind))
