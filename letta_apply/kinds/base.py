"""The interface every resource kind implements.

A kind (block, agent, tool, identity...) is one folder with one `Kind` subclass: its manifest
section and JSON Schema fragment, how its live resources are listed, where its ownership marks
live, its fields and their policies, what it depends on, and the requests that create, update,
attach, detach and delete it. The planner, the reader, the applier, prune, import, `moved`,
`--target` and fingerprints only ever go through this interface.

`Kind` is generic over the kind's declared resource (`D`, what its `declare` makes of a manifest
entry), its live resource (`F`, one it found on the server) and its state (`S`, what its `state`
makes of the listings): the generic core holds them as `object` and each kind reads its own back
typed (`declared`, `pool_of`, `state_of`).

What a kind must guarantee, whatever it manages:
- `create`, `update`, `delete`, `forget` only plan (no I/O); `apply` carries out one change.
- `apply` of a create marks what it makes (tag and mark, or a mark block) in the create request
  itself, or writes a write-ahead intent first (kinds.mark_blocks), so that a run killed right
  after the request leaves something the next run's `match` finds by its marks (adopted, never
  made twice).
- `apply` of an update or delete may be retried after a crash: the next run plans again from
  what the server then holds, so a change applied twice converges to the same state; a delete
  of something gone is done.
- `match` finds the stack's resources by their marks only, never by name.
"""

from __future__ import annotations

import inspect
import json
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

from ..core.changes import FORGET, MANIFEST, REMOVED, Change, Plan, Why
from ..core.jsonish import JsonObject
from ..core.marks import sensitive_fields
from ..core.model import Desired, Import, Live
from .context import Context, DeclaredOf, Matched, PoolOf, Run, StateOf
from .resource import Declared, Resource, applied_of, pending

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


D = TypeVar("D", bound=Declared)
F = TypeVar("F", bound=Resource)
S = TypeVar("S")


class Kind(ABC, Generic[D, F, S]):
    """One kind of Letta resource under management: `D` its declared resources, `F` its live
    ones, `S` its state (see the module's docstring)."""

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
    attaches: ClassVar[str] = ""  # the kind its attach and detach changes name (`target`)
    listing: ClassVar[Listing] = "always"
    """When a plan lists the kind: "always" (by the stack's tag, or the server's whole list
    when it cannot filter), or, for a kind the server cannot list by the stack's tag, only when
    the manifest (or a saved plan) names the kind or the stack's own blocks say it holds some:
    its mark blocks ("marks", see `marked`), its flag ("flag", see kinds.flags). A stack holding
    none of such a kind never asks its routes (read.live)."""
    mark_label: ClassVar[str] = ""
    """The label of its mark blocks, for a kind listed by "marks" (kinds.mark_blocks)."""

    # -- its own, typed (the generic core holds them as object) -------------------------------

    def declared(self, desired: Desired) -> Mapping[str, D]:
        """The kind's declared resources, by address."""
        return DeclaredOf[D](self.name).of(desired)

    def state_of(self, live: Live) -> S:
        """The kind's live state, as its `state` (or `complete`) made it."""
        return StateOf[S](self.name).of(live)

    def pool_of(self, ctx: Context) -> dict[str, F]:
        """The kind's live resources the plan works on, by address (see `match`)."""
        return PoolOf[F](self.name).of(ctx)

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

    def schema(self) -> JsonObject:
        """The kind's JSON Schema fragment, `schema.json` in the kind's own folder: the schema
        of its manifest section (`section`) and the `$defs` it adds to the manifest's."""
        folder = Path(inspect.getfile(type(self))).parent
        fragment: JsonObject = json.loads((folder / "schema.json").read_text(encoding="utf-8"))
        return fragment

    def read_files(
        self, doc: Document, data: Mapping[str, object]
    ) -> tuple[list[str], list[Diagnostic]]:
        """Read the files the kind's entries name (into `doc.sources`), once, while the
        manifest is loaded: validation does no I/O. Returns the files read and the problems."""
        return [], []

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """Rules the schema cannot say, on the whole manifest's data (no I/O)."""
        return []

    @abstractmethod
    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, D]:
        """The declared resources of a manifest that passed every check, by address."""

    def resolve(self, desired: Desired) -> Desired:
        """A last look at the whole desired state (how other kinds refer to this one)."""
        return desired

    def references(self, declared: D, desired: Desired) -> list[str]:
        """Addresses a declared resource depends on (kept with it by `--target`)."""
        return []

    def links(self, declared: D, desired: Desired) -> list[Link]:
        """What `letta-apply graph` links a declared resource to: what it references, unless
        the kind says more (shared memory, resources on the server by name). Resources nested
        in it (`nested`) are drawn inside it without a link."""
        return [Link(a) for a in self.references(declared, desired)]

    # -- reading the server ----------------------------------------------------------------

    @abstractmethod
    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        """The kind's listing: a few paginated list calls, never one per resource. Called only
        when the kind is to be listed (`listing`); `state` gets None for a kind that was not."""

    same_listing: ClassVar[bool] = False
    """Whether `read` lists the same for every stack (the server's whole list, each stack's
    `state` keeping its own by marks): then many stacks share one read (`read_many`)."""

    def read_many(
        self, client: LettaClient, stacks: Sequence[str], desired: Sequence[Desired] = ()
    ) -> dict[str, object]:
        """The kind's listing for each of `stacks`, as `read` gives it for one, read once for
        all of them where the kind can (`read_whole`, then `split`); else one read per stack.
        `desired`: the stacks' manifests, when they are known (what a listing needs may depend
        on what they declare)."""
        whole = self.read_whole(client, desired) if stacks else None
        if whole is not None:
            return self.split(whole, stacks)
        return {s: self.read(client, s, None) for s in stacks}

    def read_whole(self, client: LettaClient, desired: Sequence[Desired] = ()) -> object | None:
        """The kind's listing for any stacks at all, read before they are known (`split` gives
        each its own) or for those `desired` declares; None when the kind can only list one
        stack at a time."""
        return self.read(client, "", None) if self.same_listing else None

    def read_ahead(self, client: LettaClient) -> object | None:
        """`read_whole` before the manifests are known (read.shared.read_ahead), as most
        fleets' manifests need it: `covers` says whether theirs do."""
        return self.read_whole(client)

    def covers(self, whole: object, desired: Sequence[Desired]) -> bool:
        """Whether `read_ahead`'s listing holds all the plans of the stacks `desired` compare
        (else the kind is read again for them)."""
        return True

    def split(self, whole: object, stacks: Sequence[str]) -> dict[str, object]:
        """Each of `stacks`' listing, out of `read_whole`'s."""
        return dict.fromkeys(stacks, whole)

    def marked(self, blocks: Sequence[Mapping[str, object]], stack: str) -> bool:
        """Whether the stack's blocks, as its block listing read them, hold the kind's mark
        blocks (a kind listed by "marks": then the stack may hold some)."""
        return False

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[F | str, object]:
        """The live resource an `imports:` entry names (or why there is none), and raw data
        read on the way that other kinds may see (an agent's blocks)."""
        return f"{self.name}s cannot be imported", None

    @abstractmethod
    def state(self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str) -> S:
        """The kind's live state from every kind's listing (`raw`) and what imports read
        (`seen`). No I/O."""

    def complete(self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]) -> S:
        """Reads that depend on the matched state: who else uses what a plan may delete
        (`doomed`: the ids of every resource of any kind a plan may delete), names a create
        would clash with. Returns the kind's state, completed."""
        return self.state_of(live)

    def facts(self, client: LettaClient, plan: Plan) -> object:
        """What the server serves that the kind's changes in `plan` must be checked against,
        read only then; when a change fails the check, the plan is made again with it in
        `Live.facts`. None: nothing to check, or nothing fails."""
        return None

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> S:
        """The kind's state with whatever holds `names` outside the stack, where the listing
        cannot say (a saved plan's creates are checked against it)."""
        return self.state_of(live)

    @abstractmethod
    def resources(self, state: S) -> Iterable[F]:
        """Every live resource in the kind's state (for fingerprints)."""

    # -- planning --------------------------------------------------------------------------

    @abstractmethod
    def match(self, stack: str, live: Live) -> Matched[F]:
        """The stack's resources among the live ones, by their marks only."""

    def plan(self, ctx: Context) -> None:
        """Plan every declared resource of the kind: create what is missing, update the rest."""
        for address, declared in self.declared(ctx.desired).items():
            found = self.pool_of(ctx).get(address)
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
    def create(self, ctx: Context, declared: D) -> None:
        """Plan the create of a declared resource the server lacks (a change, or a problem
        saying why it cannot be made)."""

    @abstractmethod
    def update(self, ctx: Context, declared: D, found: F, *, adopt: bool) -> None:
        """Plan what converges a live resource to its declaration (nothing when it matches).
        `adopt`: it is imported (or resumed), so the change writes its marks too."""

    @abstractmethod
    def delete(self, ctx: Context, address: str, found: F, why: Why) -> None:
        """Plan the delete of a resource the stack owns (or a problem when it is protected or
        still used outside the stack)."""

    def forget(self, ctx: Context, address: str, found: F) -> None:
        """Stop managing `found` without deleting it (`removed:`): the change that takes its
        marks off (see `unmark`). A kind whose resources own others (an agent's own blocks)
        lets go of them too."""
        ctx.changes.append(Change(address, FORGET, found.id, why=(REMOVED,), kind=self.name))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        """Delete what the stack owns and no longer declares (everything, for destroy)."""
        why: Why = "destroy" if destroy else MANIFEST
        declared = self.declared(ctx.desired)
        for address, found in sorted(self.pool_of(ctx).items()):
            if destroy or address not in declared:
                self.delete(ctx, address, found, why)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        """Ids of live resources (of any kind: an agent's own blocks) a plan may delete."""
        keep = set() if destroy else {*self.declared(desired), *desired.moved}
        keep |= set(desired.removed)  # let go of, never deleted
        return {r.id for a, r in self.match(desired.stack, live).pool.items() if a not in keep}

    @abstractmethod
    def fingerprint(self, resource: F, blank: frozenset[str]) -> str:
        """A digest of what a change to `resource` was planned from (sensitive fields in
        `blank` left out)."""

    def watched(self, change: Change) -> str:
        """A field `change` writes that `fingerprint` leaves out (a block's value, which agents
        rewrite all the time): a saved plan that writes it checks it too. "" for none."""
        return ""

    def secret_values(self, resource: F, names: frozenset[str]) -> list[object]:
        """The live values of the fields `names` (`<mapping>.<key>` for a key of a mapping):
        what a saved plan seals (see plan.fingerprint.seal)."""
        out: list[object] = []
        for name in sorted(names):
            head, _, key = name.partition(".")
            value = getattr(resource, head, None)
            out.append(value.get(key) if key and isinstance(value, Mapping) else value)
        return out

    def blanks(self, live: Live) -> dict[str, frozenset[str]]:
        """Fields each live resource's marks say hold sensitive values."""
        out: dict[str, frozenset[str]] = {}
        for r in self.resources(self.state_of(live)):
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

    def hidden(self, declared: D) -> frozenset[str]:
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

    def describe(self, resource: F, live: Live, hidden: frozenset[str]) -> str:
        """One line saying what a live resource is (its name, label...), the fields in
        `hidden` masked whatever their live value (a secret rotated since is still one)."""
        return ""

    # -- applying --------------------------------------------------------------------------

    @abstractmethod
    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
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

    def export(self, found: F) -> JsonObject:
        """A manifest entry declaring a live resource as it is."""
        return {}

    def export_selection(self, client: LettaClient, selection: Selection) -> Selected:
        """The root kind's resources `selection` names that no stack manages (and why the
        others are left out)."""
        raise NotImplementedError(f"{self.name}s are not what export selects")

    def export_section(self, ex: Export) -> JsonObject | None:
        """The kind's section of an exported manifest (entries by key, `ex.key` making each
        key): its resources the selected ones use or are made of, declared as they are, that no
        stack manages (export writes an import of each). None: the kind exports nothing, and
        export says so."""
        return None

    def from_agent_file(self, conv: Conversion) -> JsonObject | None:
        """The kind's section of the manifest converted from an Agent File (entries by key,
        `conv.key` making each key), with a note (`conv.note`) for each thing of the kind the
        file holds that is not converted. None: the kind takes nothing from an Agent File."""
        return None


def declared_at(desired: Desired, address: str) -> object:
    """The declared resource at an address, resources nested in another included (an agent's
    own blocks)."""
    top = address.split(".")
    owner = desired.of(top[0]).get(".".join(top[:2]))
    if owner is None or len(top) < 4:
        return owner
    nested = getattr(owner, top[2], ())
    return next((r for r in nested if getattr(r, "label", None) == ".".join(top[3:])), None)


def shown_hidden(
    kind: AnyKind, desired: Desired, address: str, rid: str, marked: Mapping[str, frozenset[str]]
) -> frozenset[str]:
    """What `show` masks of a resource: what its marks say is sensitive, and what the manifest
    declares sensitive now."""
    declared = declared_at(desired, address)
    now = kind.hidden(declared) if declared is not None else frozenset()
    return marked.get(rid, frozenset()) | now


AnyKind = Kind[Any, Any, Any]
"""A kind of any types: what the generic core iterates over (each kind reads its own typed)."""


def by_tags(
    items: Iterable[Mapping[str, object]], owners: Mapping[str, str], stacks: Iterable[str]
) -> dict[str, object]:
    """`items` (a listing, as it is read) split by the stack each belongs to: `owners` maps a
    tag to its stack; an item carrying none of them is dropped as it comes, one carrying the
    tags of several stacks goes to each. Every stack of `stacks` gets a list, empty or not."""
    out: dict[str, list[Mapping[str, object]]] = {s: [] for s in stacks}
    for item in items:
        for stack in {owners[t] for t in _tags(item) if isinstance(t, str) and t in owners}:
            out[stack].append(item)
    return dict(out)


def tagged(
    items: Iterable[Mapping[str, object]], prefixes: tuple[str, ...]
) -> list[Mapping[str, object]]:
    """The `items` carrying a tag that starts with one of `prefixes` (some stack's), as they
    come: the others are dropped before anything holds them."""
    return [
        item for item in items
        if any(isinstance(t, str) and t.startswith(prefixes) for t in _tags(item))
    ]  # fmt: skip


def _tags(item: Mapping[str, object]) -> list[object]:
    tags = item.get("tags")
    return tags if isinstance(tags, list) else []


TAGGED_AT_ONCE = 16
"""Most stacks whose tags one filtered listing names (the query string stays short); a read of
more lists the whole collection once and splits it by tag (`by_tags`)."""
