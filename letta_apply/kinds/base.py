"""The interface every resource kind implements, and the planning context kinds write into.

A kind (block, agent, tool, identity...) is one module with one `Kind` subclass: its manifest
section and JSON Schema fragment, how its live resources are listed, where its ownership marks
live, its fields and their policies, what it depends on, and the requests that create, update,
attach, detach and delete it. The planner, the reader, the applier, prune, import, `moved`,
`--target` and fingerprints only ever go through this interface.
"""

from __future__ import annotations

import inspect
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol

from deepdiff import DeepDiff

from ..core.changes import (
    ADOPT,
    CONFIGURATION,
    DRIFT,
    FORGET,
    MANIFEST,
    REMOVED,
    RESUME,
    Action,
    Change,
    Drift,
    FieldDiff,
    Plan,
    Problem,
    Why,
)
from ..core.marks import digest, sensitive_fields
from ..core.model import MARK_KEY, Desired, Import, Live, stack_tag
from ..errors import ApiError

if TYPE_CHECKING:
    from ..errors import Diagnostic
    from ..manifest.files import Document
    from ..manifest.sections import KeyDefault
    from ..server.client import LettaClient
    from .writing import Conversion, Export, Selected, Selection

Policy = Literal["enforced", "initial", "sensitive", "replace", "create"]
"""How a field is kept: `enforced` (a difference is written back), `initial` (set at creation; a
live difference is drift, kept, like a block's value), `sensitive` (write-only: never shown,
never digested), `replace` (a change replaces the resource, create-first), `create` (sent with
the create only, never compared: what the resource starts with, such as an agent's first
messages)."""

Users = tuple[tuple[str, str, "str | None"], ...]
"""Agents using a resource: (agent id, agent name, the agent's stack or None)."""

Shape = Literal["box", "rounded", "cylinder", "hexagon", "parallelogram"]
"""How `letta-apply graph` draws a kind's resources (each renderer has its own syntax)."""

Listing = Literal["always", "marks", "flag"]
"""When a plan lists a kind's resources (see `Kind.listing`)."""


@dataclass(frozen=True)
class Link:
    """A line `letta-apply graph` draws from a declared resource to one it uses. `to` is an
    address, or, with `outside` (a kind's name), the name of a resource of that kind the manifest
    does not declare (a base tool on the server). A `shared` link is shared memory: the two read
    and write it alike, so it is drawn as a dotted line, as on Letta's own diagram."""

    to: str
    shared: bool = False
    outside: str = ""


@dataclass(frozen=True)
class Field:
    """A field a kind manages, under its Letta name, with its policy."""

    name: str
    policy: Policy = "enforced"


class Resource(Protocol):
    """What every live resource has: an id and the marks letta-apply wrote on it."""

    @property
    def id(self) -> str: ...

    @property
    def mark(self) -> Mapping[str, Any]: ...


class Declared(Protocol):
    """What every declared resource has."""

    @property
    def address(self) -> str: ...

    @property
    def config(self) -> Mapping[str, Any]: ...

    @property
    def prevent_destroy(self) -> bool: ...

    @property
    def ignore(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class Matched:
    """A kind's live resources found by their marks: `pool` by address (what the planner works
    on), `ids` every address that exists (nested ones included), notes, and whatever else the
    kind needs to plan (`extra`)."""

    pool: Mapping[str, Any]
    ids: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    extra: Any = None


INTENT = "intent"
"""The key of a write-ahead intent in a mark (kinds.mark_blocks)."""


def pending(mark: Mapping[str, Any]) -> bool:
    """Whether a resource was matched by the intent a run wrote before making it, and stopped
    before completing: its mark is still to write."""
    return isinstance(mark.get(INTENT), Mapping)


def mark_of(metadata: Any) -> Mapping[str, Any]:
    """The letta-apply mark in a metadata mapping (empty when there is none)."""
    m = metadata.get(MARK_KEY) if isinstance(metadata, Mapping) else None
    return m if isinstance(m, Mapping) else {}


def applied_of(resource: Resource) -> Mapping[str, Any] | None:
    """Digests of the fields as letta-apply last wrote them, from a resource's mark."""
    applied = resource.mark.get("applied")
    return applied if isinstance(applied, Mapping) else None


def owned_by(resource: Resource, stack: str, prefix: str) -> str | None:
    """The address `resource` carries when its marks say it is `stack`'s, else None."""
    address = resource.mark.get("address")
    if resource.mark.get("stack") == stack and isinstance(address, str):
        return address if address.startswith(prefix + ".") else None
    return None


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
        self.pools: dict[str, dict[str, Any]] = {}  # kind -> address -> live resource
        self.extra: dict[str, Any] = {}  # kind -> what its match left for planning
        self.moved: dict[str, str] = {}  # to-address -> from-address, for resources moved now
        self.importing: set[str] = set()
        self.resumed: set[str] = set()  # adopted by an intent (kinds.mark_blocks)
        self.replacing: set[str] = set()
        self.refused: set[str] = set()  # declared addresses apply cannot make

    def pool(self, kind: str) -> dict[str, Any]:
        return self.pools.setdefault(kind, {})

    def why(self, applied: Mapping[str, Any] | None, name: str, live_value: Any) -> Why:
        """Whether a difference comes from the manifest or from the server (drift): the live
        value still matching the digest letta-apply wrote means the manifest changed."""
        if not applied or name not in applied:
            return MANIFEST
        return MANIFEST if applied[name] == digest(live_value) else DRIFT

    def config_drift(self, address: str, diffs: Iterable[FieldDiff]) -> None:
        for d in diffs:
            if d.why == DRIFT:
                self.drift.append(Drift(address, d.field, d.after, d.before, CONFIGURATION, True))

    def protected(self, resource: Resource, declared: Any = None) -> bool:
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

    def __init__(self, ctx: Context, declared: Any, applied: Mapping[str, Any] | None) -> None:
        self.ctx = ctx
        self.declared = declared
        self.applied = applied
        self.diffs: list[FieldDiff] = []
        self.body: dict[str, Any] = {}
        moved_from = ctx.moved.get(declared.address)
        if moved_from:
            self.diffs.append(FieldDiff("address", moved_from, declared.address))

    def managed(self, name: str) -> bool:
        return name in self.declared.config and name not in self.declared.ignore

    def differs(self, name: str, live: Any, declared: Any) -> None:
        self.diffs.append(FieldDiff(name, live, declared, self.ctx.why(self.applied, name, live)))

    def field(self, name: str, live: Any, declared: Any, *, request: str | None = None) -> None:
        """A field enforced as declared: a difference is written back."""
        if live != declared:
            self.differs(name, live, declared)
            self.body[request or name] = declared

    def fields(self, live: Any, names: Iterable[str]) -> None:
        """Plain fields the manifest may declare, compared with the live resource's."""
        for k in names:
            if self.managed(k):
                self.field(k, getattr(live, k), self.declared.config[k])

    def mapping(self, name: str, live: Mapping[str, Any]) -> None:
        """A mapping (metadata, properties): differences key by key, written whole."""
        wanted = self.declared.config.get(name)
        if self.managed(name) and dict(live) != wanted:
            why = self.ctx.why(self.applied, name, dict(live))
            self.diffs.extend(dict_diffs(name, dict(live), dict(wanted), why))

    def tags(self, live_tags: list[str]) -> None:
        """Declared tags against the live ones (the stack's tag apart, always kept)."""
        if self.managed("tags") and live_tags != sorted(self.declared.config["tags"]):
            wanted = sorted(self.declared.config["tags"])
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


class Run(Protocol):
    """What the applier gives a kind to carry out one change."""

    client: LettaClient
    stack: str
    tag: str
    lock: threading.Lock

    def id_of(self, address_or_id: str) -> str: ...

    def record(self, address: str, rid: str) -> None: ...

    def resolve(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """A change's body with the ids of what it refers to."""
        ...


class Kind(ABC):
    """One kind of Letta resource under management."""

    name: ClassVar[str]  # the address prefix: identity.<key>
    section: ClassVar[str]  # the manifest section: identities:
    noun: ClassVar[str] = ""  # what one is called in summaries, when not `name` with spaces
    id_prefix: ClassVar[str]  # the prefix of its ids: identity-
    depends_on: ClassVar[tuple[str, ...]] = ()  # kinds whose ids its requests carry
    nested: ClassVar[Mapping[str, str]] = {}  # address segment -> kind of what it owns
    fields: ClassVar[tuple[Field, ...]] = ()
    marks: ClassVar[str]  # where its ownership marks live, for people
    import_by_name: ClassVar[bool] = False
    shape: ClassVar[Shape] = "box"  # how `letta-apply graph` draws it
    # Fields of an entry that name shared blocks or agents by key (field -> the section named),
    # templates' instances included: the manifest language reads `w[eu]`, `'w["eu"]'`, `w[0]`
    # and, in a list, `w[*]` there alike.
    instance_refs: ClassVar[Mapping[str, str]] = {}
    listing: ClassVar[Listing] = "always"
    """When a plan lists the kind: "always" (by the stack's tag, or the server's whole list
    when it cannot filter), or, for a kind the server cannot list by the stack's tag, only when
    the manifest (or a saved plan) names the kind or the stack's own blocks say it holds some:
    its mark blocks ("marks", see `marked`), its flag ("flag", see kinds.flags). A stack holding
    none of such a kind never asks its routes (read.live)."""
    mark_label: ClassVar[str] = ""
    """The label of its mark blocks, for a kind listed by "marks" (kinds.mark_blocks)."""

    # -- the manifest (manifest.sections.Section) ----------------------------------------------

    templated: ClassVar[bool] = False  # an entry may have `for_each` or `count`
    key_fields: ClassVar[Mapping[str, KeyDefault]] = {}  # fields defaulting to the entry's key
    file_fields: ClassVar[Mapping[str, str]] = {}  # `value_file` -> `value`: read when loaded
    sensitive_in: ClassVar[tuple[str, ...]] = ()  # fields a sensitive value may go in
    shown_whole: ClassVar[Mapping[str, str]] = {}  # fields no sensitive value goes in, and why
    tagged: ClassVar[bool] = False  # its resources carry the stack's tag in their own tags

    @property
    def reserved_labels(self) -> tuple[str, ...]:
        """Labels of the blocks letta-apply keeps for the kind (its mark blocks, its flag): no
        block of a manifest may take one."""
        from .flags import flag_label  # flags are built on this module

        flag = (flag_label(self),) if self.listing == "flag" else ()
        return (*((self.mark_label,) if self.mark_label else ()), *flag)

    @property
    def reserved_addresses(self) -> tuple[str, ...]:
        """Where a plan shows the kind's flag (kinds.flags): no entry of a manifest may have
        that address."""
        from .flags import flag_address

        return (flag_address(self),) if self.listing == "flag" else ()

    def schema(self) -> dict[str, Any]:
        """The kind's JSON Schema fragment, `schema.json` in the kind's own folder: the schema
        of its manifest section (`section`) and the `$defs` it adds to the manifest's."""
        folder = Path(inspect.getfile(type(self))).parent
        fragment: dict[str, Any] = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
        return fragment

    def read_files(
        self, doc: Document, data: Mapping[str, Any]
    ) -> tuple[list[str], list[Diagnostic]]:
        """Read the files the kind's entries name (into `doc.sources`), once, while the
        manifest is loaded: validation does no I/O. Returns the files read and the problems."""
        return [], []

    def check(self, doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
        """Rules the schema cannot say, on the whole manifest's data (no I/O)."""
        return []

    @abstractmethod
    def declare(self, doc: Document, data: Mapping[str, Any]) -> dict[str, Any]:
        """The declared resources of a manifest that passed every check, by address."""

    def resolve(self, desired: Desired) -> Desired:
        """A last look at the whole desired state (how other kinds refer to this one)."""
        return desired

    def references(self, declared: Any, desired: Desired) -> list[str]:
        """Addresses a declared resource depends on (kept with it by `--target`)."""
        return []

    def links(self, declared: Any, desired: Desired) -> list[Link]:
        """What `letta-apply graph` links a declared resource to: what it references, unless
        the kind says more (shared memory, resources on the server by name). Resources nested
        in it (`nested`) are drawn inside it without a link."""
        return [Link(a) for a in self.references(declared, desired)]

    # -- reading the server ----------------------------------------------------------------

    @abstractmethod
    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> Any:
        """The kind's listing: a few paginated list calls, never one per resource. Called only
        when the kind is to be listed (`listing`); `state` gets None for a kind that was not."""

    def marked(self, blocks: Sequence[Mapping[str, Any]], stack: str) -> bool:
        """Whether the stack's blocks, as its block listing read them, hold the kind's mark
        blocks (a kind listed by "marks": then the stack may hold some)."""
        return False

    def find(self, client: LettaClient, imp: Import, raw: Mapping[str, Any]) -> tuple[Any, Any]:
        """The live resource an `imports:` entry names (or why there is none), and raw data
        read on the way that other kinds may see (an agent's blocks)."""
        return f"{self.name}s cannot be imported", None

    @abstractmethod
    def state(self, raw: Mapping[str, Any], seen: Mapping[str, Any], stack: str) -> Any:
        """The kind's live state from every kind's listing (`raw`) and what imports read
        (`seen`). No I/O."""

    def complete(self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]) -> Any:
        """Reads that depend on the matched state: who else uses what a plan may delete
        (`doomed`: the ids of every resource of any kind a plan may delete), names a create
        would clash with. Returns the kind's state, completed."""
        return live.of(self.name)

    def facts(self, client: LettaClient, plan: Plan) -> Any:
        """What the server serves that the kind's changes in `plan` must be checked against,
        read only then; when a change fails the check, the plan is made again with it in
        `Live.facts`. None: nothing to check, or nothing fails."""
        return None

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> Any:
        """The kind's state with whatever holds `names` outside the stack, where the listing
        cannot say (a saved plan's creates are checked against it)."""
        return live.of(self.name)

    @abstractmethod
    def resources(self, state: Any) -> Iterable[Resource]:
        """Every live resource in the kind's state (for fingerprints)."""

    # -- planning --------------------------------------------------------------------------

    @abstractmethod
    def match(self, stack: str, live: Live) -> Matched:
        """The stack's resources among the live ones, by their marks only."""

    def plan(self, ctx: Context) -> None:
        """Plan every declared resource of the kind: create what is missing, update the rest."""
        for address, declared in ctx.desired.of(self.name).items():
            found = ctx.pool(self.name).get(address)
            if found is None:
                self.create(ctx, declared)
            elif pending(found.mark):
                # Matched by a write-ahead intent (kinds.mark_blocks): made by a run that
                # stopped before marking it. Adopted as an import: its mark is written.
                ctx.resumed.add(address)
                ctx.notes.append(
                    f"{address}: adopted, made by a run that stopped before marking it"
                )
                self.update(ctx, declared, found, adopt=True)
            else:
                self.update(ctx, declared, found, adopt=address in ctx.importing)

    @abstractmethod
    def create(self, ctx: Context, declared: Any) -> None: ...

    @abstractmethod
    def update(self, ctx: Context, declared: Any, found: Any, *, adopt: bool) -> None: ...

    @abstractmethod
    def delete(self, ctx: Context, address: str, found: Any, why: Why) -> None: ...

    def forget(self, ctx: Context, address: str, found: Any) -> None:
        """Stop managing `found` without deleting it (`removed:`): the change that takes its
        marks off (see `unmark`). A kind whose resources own others (an agent's own blocks)
        lets go of them too."""
        ctx.changes.append(Change(address, FORGET, found.id, why=(REMOVED,), kind=self.name))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        """Delete what the stack owns and no longer declares (everything, for destroy)."""
        why: Why = "destroy" if destroy else MANIFEST
        declared = ctx.desired.of(self.name)
        for address, found in sorted(ctx.pool(self.name).items()):
            if destroy or address not in declared:
                self.delete(ctx, address, found, why)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        """Ids of live resources (of any kind: an agent's own blocks) a plan may delete."""
        keep = set() if destroy else {*desired.of(self.name), *desired.moved}
        keep |= set(desired.removed)  # let go of, never deleted
        return {r.id for a, r in self.match(desired.stack, live).pool.items() if a not in keep}

    @abstractmethod
    def fingerprint(self, resource: Any, blank: frozenset[str]) -> str:
        """A digest of what a change to `resource` was planned from (sensitive fields in
        `blank` left out)."""

    def watched(self, change: Change) -> str:
        """A field `change` writes that `fingerprint` leaves out (a block's value, which agents
        rewrite all the time): a saved plan that writes it checks it too. "" for none."""
        return ""

    def secret_values(self, resource: Any, names: frozenset[str]) -> list[Any]:
        """The live values of the fields `names` (`<mapping>.<key>` for a key of a mapping):
        what a saved plan seals (see plan.fingerprint.seal)."""
        out = []
        for name in sorted(names):
            head, _, key = name.partition(".")
            value = getattr(resource, head, None)
            out.append(value.get(key) if key and isinstance(value, Mapping) else value)
        return out

    def blanks(self, live: Live) -> dict[str, frozenset[str]]:
        """Fields each live resource's marks say hold sensitive values."""
        out: dict[str, frozenset[str]] = {}
        for r in self.resources(live.of(self.name)):
            names = (applied_of(r) or {}).get("sensitive")
            if isinstance(names, list):
                out[r.id] = frozenset(map(str, names))
        return out

    def created_name(self, change: Change) -> str:
        """The unique name a create takes ("" when the kind's names may repeat)."""
        return ""

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        """Ids of resources outside the stack that hold `name` (a saved create is stale)."""
        return ()

    def hidden(self, declared: Any) -> frozenset[str]:
        """Fields of a declared resource that hold sensitive values (never shown, never
        digested): plain fields, and `<mapping>.<key>` for metadata and properties."""
        return sensitive_fields(declared.config, mappings=("metadata", "properties"))

    def show(self, desired: Desired, live: Live) -> list[tuple[str, str, str]]:
        """The stack's resources of this kind for `show`: (address, id, what it is)."""
        pool = self.match(desired.stack, live).pool
        marked = self.blanks(live)
        return [
            (a, r.id, self.describe(r, live, shown_hidden(self, desired, a, r.id, marked)))
            for a, r in sorted(pool.items())
        ]

    def describe(self, resource: Any, live: Live, hidden: frozenset[str]) -> str:
        """One line saying what a live resource is (its name, label...), the fields in
        `hidden` masked whatever their live value (a secret rotated since is still one)."""
        return ""

    # -- applying --------------------------------------------------------------------------

    @abstractmethod
    def apply(self, run: Run, change: Change, body: dict[str, Any]) -> str:
        """Carry out one change; return the id of the resource it made or changed."""

    @abstractmethod
    def unmark(self, run: Run, change: Change) -> None:
        """Take the stack's marks (its tag, its mark, its mark block) off the resource a forget
        names (`change.remote_id`, at `change.address`), and change nothing else of it: how
        `removed:` lets go of a resource. Read as it is now, so nothing written since the plan
        is undone; gone already, nothing to do."""

    def settle(self, run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
        """After a stage of creates (`made`: each change with the id it made), should another
        run have made one of these addresses meanwhile (two applies at once, without the
        lock), keep one and delete ours, with one listing for the whole stage; return the
        addresses now held by another run's resource, with its id. A kind whose resources
        the server keeps unique by name has nothing to settle."""
        return {}

    # -- writing a manifest (export, convert: kinds.writing) ----------------------------------

    root: ClassVar[bool] = False
    """Whether manifests letta-apply writes are written around this kind's resources (agents):
    export selects them (`export_selection`), an Agent File holds them. One kind is."""

    def export(self, found: Any) -> dict[str, Any]:
        """A manifest entry declaring a live resource as it is."""
        return {}

    def export_selection(self, client: LettaClient, selection: Selection) -> Selected:
        """The root kind's resources `selection` names that no stack manages (and why the
        others are left out)."""
        raise NotImplementedError(f"{self.name}s are not what export selects")

    def export_section(self, ex: Export) -> dict[str, Any] | None:
        """The kind's section of an exported manifest (entries by key, `ex.key` making each
        key): its resources the selected ones use or are made of, declared as they are, that no
        stack manages (export writes an import of each). None: the kind exports nothing, and
        export says so."""
        return None

    def from_agent_file(self, conv: Conversion) -> dict[str, Any] | None:
        """The kind's section of the manifest converted from an Agent File (entries by key,
        `conv.key` making each key), with a note (`conv.note`) for each thing of the kind the
        file holds that is not converted. None: the kind takes nothing from an Agent File."""
        return None


def unmark_tagged(
    run: Run,
    path: str,
    metadata: str = "metadata",
    *,
    tags: bool = True,
    params: Mapping[str, Any] | None = None,
) -> None:
    """`Kind.unmark` for a resource whose marks are the stack's tag in `tags` (unless `tags`
    is false: the kind has none) and its mark in a metadata mapping (named `metadata`): read
    it, write both back without the marks."""
    try:
        found = run.client.request("GET", path, params=params)
    except ApiError as e:
        if e.status == 404:
            return  # gone: nothing is marked
        raise
    kept = {k: v for k, v in (found.get(metadata) or {}).items() if k != MARK_KEY}
    body: dict[str, Any] = {metadata: kept}
    if tags:
        body["tags"] = sorted(set(found.get("tags") or ()) - {run.tag})
    run.client.request("PATCH", path, json=body)


def tagged(tags: Iterable[str], stack: str) -> list[str]:
    """A tag set with the stack's tag added (the server replaces tags whole)."""
    return sorted({*tags, stack_tag(stack)})


def dict_diffs(
    name: str, before: Mapping[str, Any], after: Mapping[str, Any], why: Why
) -> list[FieldDiff]:
    """Field-level differences inside a mapping, e.g. metadata['team']: 'a' -> 'b'."""
    dd = DeepDiff(dict(before), dict(after), verbose_level=2, view="tree")
    out = []
    for items in dd.values():
        for item in items:
            path = item.path(root=name)
            t1 = None if _missing(item.t1) else item.t1
            t2 = None if _missing(item.t2) else item.t2
            out.append(FieldDiff(path, t1, t2, why))
    return sorted(out, key=lambda d: d.field)


def _missing(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


def whys(diffs: Iterable[FieldDiff]) -> tuple[Why, ...]:
    return tuple(sorted({d.why for d in diffs})) or (MANIFEST,)


def carries(resource: Mapping[str, Any], stack: str, address: str) -> bool:
    """Whether a resource, as the server lists it, carries the stack's mark for `address`."""
    mark = mark_of(resource.get("metadata"))
    return (mark.get("stack"), mark.get("address")) == (stack, address)


def settle(created: dict[str, Any], candidates: list[dict[str, Any]]) -> dict[str, Any]:
    """The resource to keep when more than one carries an address (two applies at once): the
    oldest (list order). Every run that made one computes the same winner, so each deletes
    only its own."""
    if not candidates or candidates[0]["id"] == created["id"]:
        return created
    return candidates[0]


def declared_at(desired: Desired, address: str) -> Any:
    """The declared resource at an address, resources nested in another included (an agent's
    own blocks)."""
    top = address.split(".")
    owner = desired.of(top[0]).get(".".join(top[:2]))
    if owner is None or len(top) < 4:
        return owner
    nested = getattr(owner, top[2], ())
    return next((r for r in nested if getattr(r, "label", None) == ".".join(top[3:])), None)


def shown_hidden(
    kind: Kind, desired: Desired, address: str, rid: str, marked: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """What `show` masks of a resource: what its marks say is sensitive, and what the manifest
    declares sensitive now."""
    declared = declared_at(desired, address)
    now = kind.hidden(declared) if declared is not None else frozenset()
    return marked.get(rid, frozenset()) | now
