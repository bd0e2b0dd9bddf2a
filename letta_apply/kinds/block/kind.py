"""Memory blocks: `blocks:` (shared, addressed block.<key>) and the agents' own blocks (declared
under an agent's `memory_blocks`, addressed agent.<key>.memory_blocks.<label>, planned by the
agent kind with the helpers here).

Marks: the stack's tag in `tags`, and stack, address and field digests in `metadata`. A block's
`value` is memory: agents rewrite it. A difference is decided three ways against the value
letta-apply last wrote (see `plan_value`): a manifest edit is applied, an agent's write is kept
and reported, both at once is a conflict, kept and reported; `enforce_value` always writes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Protocol, TypedDict, cast

from ...core.changes import (
    CREATE,
    DELETE,
    MANIFEST,
    MEMORY,
    NEW,
    Change,
    Drift,
    FieldDiff,
    Why,
)
from ...core.jsonish import number, obj
from ...core.marks import (
    config_digests,
    digest,
    has_secret,
    mark_metadata,
    sensitive_fields,
    sensitive_names,
    user_metadata,
)
from ...core.model import SHOWN, Desired, Import, Live, Resource, stack_tag
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document, Path_, clip, where
from ...manifest.sections import KeyDefault
from ...server.client import LettaClient
from ...server.lock import is_lock_record, lock_tag
from ...server.serial import serial_tag
from ..base import Field, Kind, Shape
from ..context import (
    Context,
    DeclaredOf,
    ExtraOf,
    Matched,
    PoolOf,
    Run,
    StateOf,
    Update,
    Users,
    unmark_tagged,
)
from ..resource import applied_of, carries, mark_of, owned_by, settle
from ..writing import Conversion, Export
from .memory import BlockMemory

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA401", "ManifestError", "block label too long",
       "A block's label (its key, when `label` is not set) is longer than Letta accepts.",
       "Set a shorter `label`.")
define("LA402", "ManifestError", "block label Letta refuses",
       "A block's label holds characters Letta does not accept in a label.",
       "Use the characters the message lists.")
define("LA403", "ManifestError", "block value over its limit",
       "A block's value is longer than its `limit` (100,000 characters unless set).",
       "Shorten the value, or raise `limit`.")
# fmt: on

DEFAULT_LIMIT = 100000
"""Letta's default block character limit (CreateBlock.limit)."""
# What Letta 0.16.8 fills in when a block or agent leaves them out (letta/constants.py).
DEFAULT_DESCRIPTIONS = {
    "persona": "The persona block: Stores details about your current persona, guiding how you "
    "behave and respond. This helps you to maintain consistency and personality in your "
    "interactions.",
    "human": "The human block: Stores key details about the person you are conversing with, "
    "allowing for more personalized and friend-like conversation.",
}
FIELDS = ("description", "limit", "read_only")
CONFIG = ("description", "limit", "read_only", "metadata", "tags", "identities")
MAX_LABEL = 50
# Labels the server accepts (the core-memory routes address a block by label).
BLOCK_LABEL = re.compile(r"[A-Za-z0-9_/-]+")
_LABEL_CHARS = "letters, digits, '_', '-' and '/'"


@dataclass(frozen=True)
class DesiredBlock:
    """A memory block as the manifest declares it. `config` holds only the fields the manifest
    sets (description, limit, read_only, metadata, tags): fields left out are the server's."""

    address: str
    label: str
    value: str
    enforce_value: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


class _Id(TypedDict):
    id: str


class BlockJSON(_Id, total=False):
    """A block as Letta's API returns it (the fields letta-apply reads)."""

    label: str
    value: str
    description: str | None
    limit: int | None
    read_only: bool | None
    metadata: dict[str, Any] | None
    tags: list[str] | None


@dataclass(frozen=True)
class LiveBlock:
    id: str
    label: str
    value: str
    description: str | None = None
    limit: int | None = None
    read_only: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def mark(self) -> Mapping[str, Any]:
        return mark_of(self.metadata)

    @classmethod
    def from_api(cls, raw: Mapping[str, Any]) -> LiveBlock:
        d = cast(BlockJSON, raw)
        return cls(
            id=d["id"],
            label=d.get("label") or "",
            value=d.get("value") or "",
            description=d.get("description"),
            limit=d.get("limit"),
            read_only=bool(d.get("read_only")),
            metadata=d.get("metadata") or {},
            tags=tuple(d.get("tags") or ()),
        )


@dataclass(frozen=True)
class BlockState:
    """Every block the stack's reads saw, by id: those carrying its tag, and those attached to
    its agents (an agent's view of a block omits tags: the tagged copy wins). `users` maps the
    id of a block a plan may delete to the agents attached to it."""

    blocks: Mapping[str, LiveBlock] = field(default_factory=dict)
    tagged: frozenset[str] = frozenset()
    users: Mapping[str, Users] = field(default_factory=dict)


BLOCKS = StateOf[BlockState]("block")
"""The blocks' live state, typed (for the kinds that read it)."""
BLOCKS_DECLARED = DeclaredOf[DesiredBlock]("block")
"""The declared blocks, typed (for the kinds that read them)."""


class _AgentLike(Protocol):
    """What blocks need to know of an agent (see kinds.agent)."""

    @property
    def id(self) -> str: ...

    @property
    def block_ids(self) -> tuple[str, ...]: ...


class _Agents(Protocol):
    """What blocks need to know of the agents' live state (see kinds.agent)."""

    def ours(self, stack: str) -> list[_AgentLike]: ...


class _Identities(Protocol):
    """What blocks need to know of the identities' live state (see kinds.identity)."""

    @property
    def blocks(self) -> Mapping[str, Sequence[str]]: ...


# Other kinds' data, as blocks read it (the agent and identity kinds import this one).
_AGENT_POOL = PoolOf[_AgentLike]("agent")
_AGENTS = StateOf[_Agents]("agent")
_AGENT_EXTRA = ExtraOf[object]("agent")
_IDENTITY_POOL = PoolOf[Resource]("identity")
_IDENTITIES = StateOf[_Identities]("identity")


def block_applied(
    db: DesiredBlock, *, written: bool = True, base: str | None = None
) -> dict[str, Any]:
    """Digests of the configuration letta-apply writes for a block, and its protection. A field
    holding a sensitive value gets no digest (marks are shown in plans and saved in plan files);
    a difference in it is attributed to the manifest.

    `value` is the base of the three-way decision on memory (see `plan_value`): the digest of
    the value letta-apply last wrote, or knew the server to hold. When this write leaves the
    value alone (`written` false), the previous `base` is carried over."""
    out: dict[str, Any] = {"label": digest(db.label), **config_digests(db.config, FIELDS)}
    value = digest(db.value) if written else base
    if value and not has_secret(db.value):
        out["value"] = value
    if "identities" in db.config:
        out["identities"] = digest(sorted(db.config["identities"]))
    if db.prevent_destroy:
        out["prevent_destroy"] = True
    names = sensitive_fields(db.config) | ({"value"} if has_secret(db.value) else set())
    return {**out, **sensitive_names(frozenset(names))}


def owned_block_address(agent_address: str, label: str) -> str:
    """Address of a block an agent owns alone (declared under its `memory_blocks`)."""
    return f"{agent_address}.memory_blocks.{label}"


FILE_FIELDS = {"value_file": "value", "description_file": "description"}
"""Keys of a block (shared or an agent's own) naming a file whose text becomes a field."""


def declare_block(spec: Mapping[str, Any], address: str, label: str) -> DesiredBlock:
    config = {k: spec[k] for k in CONFIG if k in spec}
    if "limit" in config:
        config["limit"] = int(config["limit"])  # YAML `limit: 5000.0` is a valid integer
    if "identities" in config:
        config["identities"] = [f"identity.{k}" for k in config["identities"]]
    return DesiredBlock(
        address=address,
        label=label,
        value=spec["value"],
        enforce_value=bool(spec.get("enforce_value", False)),
        config=config,
        prevent_destroy=bool(spec.get("prevent_destroy", False)),
        ignore=frozenset(spec.get("ignore_changes", ())),
    )


def check_block(
    doc: Document, path: Path_, spec: Mapping[str, Any], label: Any, *, from_key: bool
) -> list[Diagnostic]:
    """A label Letta accepts, and a value within the block's limit (shared and own blocks)."""
    errors: list[Diagnostic] = []
    if isinstance(label, str):
        label_path: Path_ = path if from_key else (*path, "label")
        at = where(label_path)
        source = " (the label defaults to the key; set a shorter 'label')" if from_key else ""
        if len(label) > MAX_LABEL:
            errors.append(
                doc.diag(
                    label_path,
                    f"{at}: label is {len(label)} characters; Letta accepts at most "
                    f"{MAX_LABEL}{source}",
                    code="LA401",
                    key=from_key,
                )
            )
        elif label and not BLOCK_LABEL.fullmatch(label):
            errors.append(
                doc.diag(
                    label_path,
                    f"{at}: label {clip(label)} is not accepted by Letta: use only {_LABEL_CHARS}",
                    code="LA402",
                    key=from_key,
                )
            )
    value, limit = spec.get("value"), spec.get("limit", DEFAULT_LIMIT)
    if not _is_limit(limit):
        return errors  # the schema reports the limit itself; the value cannot be judged by it
    if isinstance(value, str) and len(value) > limit:
        default = "" if "limit" in spec else " (the default; set 'limit' to raise it)"
        errors.append(
            doc.diag(
                (*path, "value"),
                f"{where((*path, 'value'))}: value is {len(value)} characters, over the "
                f"block's limit of {limit}{default}",
                code="LA403",
            )
        )
    return errors


def _is_limit(value: Any) -> bool:
    """A `limit` the schema accepts: an integer (1.0 included), from 1 to its maximum."""
    bounds = _limit_bounds()
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == int(value)
        and (number(bounds["minimum"]) or 0) <= value <= (number(bounds["maximum"]) or 0)
    )


@cache
def _limit_bounds() -> Mapping[str, object]:
    # Read from the kind's schema file once: every block of a large manifest is checked.
    return obj(obj(obj(obj(BlockKind().schema()["$defs"])["block"])["properties"])["limit"])


def block_body(db: DesiredBlock, stack: str, tag: str, *, mark: bool) -> dict[str, Any]:
    """The request that creates a block (inline in an agent's create, without its own mark:
    Letta drops metadata there)."""
    body: dict[str, Any] = {"label": db.label, "value": db.value}
    for k in FIELDS:
        if k in db.config:
            body[k] = db.config[k]
    metadata = dict(db.config.get("metadata", {}))
    if mark:
        metadata.update(mark_metadata(stack, db.address, block_applied(db)))
    if metadata:
        body["metadata"] = metadata
    body["tags"] = sorted({*db.config.get("tags", ()), tag})
    return body


def identity_refs(ctx: Context, db: DesiredBlock) -> list[Any]:
    """Ids of the identities a block declares (`{"$ref": address}` for one this plan makes)."""
    pool = _IDENTITY_POOL.of(ctx)
    return [pool[a].id if a in pool else {"$ref": a} for a in db.config.get("identities", ())]


def declared_extras(config: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
    """Tags and metadata a create sets, as the manifest writes them (without the marks)."""
    return tuple(FieldDiff(k, None, config[k], NEW) for k in ("tags", "metadata") if k in config)


def create_block_change(ctx: Context, db: DesiredBlock) -> Change:
    body = block_body(db, ctx.stack, ctx.tag, mark=True)
    diffs = tuple(
        FieldDiff(k, None, v, NEW) for k, v in body.items() if k not in ("metadata", "tags")
    ) + declared_extras(db.config)
    if "identities" in db.config:
        # Attached right after the create (a block's create request takes no identities).
        body["attach_identities"] = identity_refs(ctx, db)
        diffs += (FieldDiff("identities", None, sorted(db.config["identities"]), NEW),)
    return Change(db.address, CREATE, diffs=diffs, body=body, why=(NEW,), kind="block")


def update_block(
    ctx: Context,
    db: DesiredBlock,
    lb: LiveBlock,
    applied: Mapping[str, Any] | None,
    *,
    adopt: bool = False,
) -> None:
    """Plan the update of a block; with `adopt`, the block is imported: it gets the stack's tag
    and marks in the same request."""
    u = Update(ctx, db, applied)
    state = BLOCKS.of(ctx.live)
    if "label" not in db.ignore:
        u.field("label", lb.label, db.label)
    u.fields(lb, FIELDS)
    live_md = user_metadata(lb.metadata)
    u.mapping("metadata", live_md)
    live_tags = sorted(set(lb.tags) - {ctx.tag})
    if lb.id in state.tagged or adopt:  # an agent's view of a block has no tags to compare
        u.tags(live_tags)
    if u.managed("identities"):
        _identities(ctx, db, lb, u)
    if "value" not in db.ignore:
        plan_value(ctx, db, lb.value, applied, u)
    u.protection(bool(lb.mark) or adopt)
    if adopt:
        # Tags go in whole (the server replaces the set): the live ones plus the stack's.
        u.body.setdefault("tags", sorted({*live_tags, ctx.tag}))
    if u.needed(adopt=adopt):
        user_md = db.config.get("metadata", live_md)
        applied_now = block_applied(
            db,
            written="value" in u.body or lb.value == db.value,
            base=(applied or {}).get("value"),
        )
        u.body["metadata"] = {**user_md, **mark_metadata(ctx.stack, db.address, applied_now)}
        u.emit("block", lb.id, adopt=adopt)


def plan_value(
    ctx: Context, db: DesiredBlock, live: str, applied: Mapping[str, Any] | None, u: Update
) -> None:
    """A memory value decided three ways, against the digest of the value letta-apply last
    wrote (the base): only the manifest changed -> written; only the server changed (an agent,
    or a hand) -> kept and reported; both -> a conflict, kept and reported with both values.
    `enforce_value` writes the manifest's value whatever changed. Without a base (a sensitive
    value, or marks written before the base was kept) every difference counts as the server's."""
    if live == db.value:
        return
    base = (applied or {}).get("value")
    if base is not None and digest(live) == base:
        u.diffs.append(FieldDiff("value", live, db.value, MANIFEST))
        u.body["value"] = db.value
        return
    conflict = base is not None and digest(db.value) != base
    ctx.drift.append(
        Drift(db.address, "value", db.value, live, MEMORY, db.enforce_value, conflict=conflict)
    )
    if db.enforce_value:
        u.diffs.append(FieldDiff("value", live, db.value, MEMORY))
        u.body["value"] = db.value


def _identities(ctx: Context, db: DesiredBlock, lb: LiveBlock, u: Update) -> None:
    """The stack's identities the block is attached to, against the declared ones."""
    by_id = {i.id: a for a, i in _IDENTITY_POOL.of(ctx).items()}
    live_ids = sorted(i for i, blocks in _IDENTITIES.of(ctx.live).blocks.items() if lb.id in blocks)
    wanted = identity_refs(ctx, db)
    if set(live_ids) == {i for i in wanted if isinstance(i, str)} and all(
        isinstance(i, str) for i in wanted
    ):
        return
    shown = sorted(by_id.get(i, i) for i in live_ids)
    u.differs("identities", shown, sorted(db.config["identities"]))
    u.body["attach_identities"] = [i for i in wanted if i not in live_ids]
    u.body["detach_identities"] = [i for i in live_ids if i not in wanted]


def our_agent_ids(ctx: Context) -> set[str]:
    """Ids of the stack's agents, those an interrupted replacement left behind and the
    sleep-time agents Letta made for them (kinds.agent.sleeptime) included."""
    agents: Iterable[_AgentLike] = _AGENT_POOL.of(ctx).values()
    extra = _AGENT_EXTRA.of(ctx)
    superseded = getattr(extra, "superseded", ())
    companions: Iterable[str] = getattr(extra, "companions", ())
    return {a.id for a in agents} | {a.id for _, a in superseded} | set(companions)


def delete_block(ctx: Context, address: str, b: LiveBlock, why: Why, declared: Any = None) -> None:
    if ctx.protected(b, declared):
        ctx.refuse_destroy(address)
        return
    state = BLOCKS.of(ctx.live)
    if ctx.used_elsewhere(address, state.users.get(b.id, ()), our_agent_ids(ctx)):
        return
    ctx.changes.append(Change(address, DELETE, b.id, why=(why,), kind="block"))


def leftover_own_blocks(
    state: BlockState, agents: Iterable[_AgentLike], stack: str
) -> list[tuple[str, LiveBlock]]:
    """The stack's own blocks whose agent is gone (deleted by hand, or by a run stopped before
    it deleted them too), with their addresses: blocks carrying the stack's tag and its mark
    for an own block's address, attached to none of the stack's agents (`agents`: every agent
    carrying its tag, both sides of a replacement included). A block made inline with an agent
    has no mark of its own until letta-apply writes one (Letta drops it): without its agent,
    nothing tells it from a block tagged by hand, and it is left alone. Blocks attached
    outside the stack are told apart later (`users`)."""
    in_use = {i for a in agents for i in a.block_ids}
    out: list[tuple[str, LiveBlock]] = []
    for i in sorted(state.tagged - in_use):
        b = state.blocks[i]
        address = b.mark.get("address")
        if (
            stack_tag(stack) in b.tags
            and b.mark.get("stack") == stack
            and isinstance(address, str)
            and address.startswith("agent.")
            and ".memory_blocks." in address
        ):
            out.append((address, b))
    return out


def owned_of(agent: _AgentLike, state: BlockState, shared_ids: set[str]) -> list[LiveBlock]:
    """An agent's own blocks: attached, carrying the stack's tag, not a shared block (one the
    plan manages as such, or whose mark names a shared block: one `removed:` lets go of, say,
    which stays attached and is no agent's own)."""
    return [
        state.blocks[i]
        for i in agent.block_ids
        if i in state.blocks and i in state.tagged and i not in shared_ids
        and not str(state.blocks[i].mark.get("address", "")).startswith("block.")
    ]  # fmt: skip


def block_fingerprint(b: LiveBlock, blank: frozenset[str]) -> str:
    # The value is left out: agents write it all the time, and no change depends on it.
    return digest(
        [
            b.id, b.label, blanked(b.description, "description", blank), b.limit, b.read_only,
            blanked(dict(b.metadata), "metadata", blank), sorted(b.tags),
        ]
    )  # fmt: skip


def blanked(value: Any, name: str, fields: frozenset[str]) -> Any:
    """A field's value for a fingerprint: SHOWN when it is sensitive; a mapping (metadata) with
    its sensitive keys blanked."""
    if name in fields:
        return SHOWN
    if isinstance(value, Mapping):
        return {k: SHOWN if f"{name}.{k}" in fields else v for k, v in value.items()}
    return value


class BlockKind(Kind[DesiredBlock, LiveBlock, BlockState], BlockMemory):
    name: ClassVar[str] = "block"
    noun: ClassVar[str] = "shared block"  # an agent's own blocks are counted with it
    section: ClassVar[str] = "blocks"
    id_prefix: ClassVar[str] = "block-"
    depends_on: ClassVar[tuple[str, ...]] = ("identity",)
    fields: ClassVar[tuple[Field, ...]] = (
        Field("label"),
        Field("value", "initial"),
        Field("description"),
        Field("limit"),
        Field("read_only"),
        Field("metadata"),
        Field("tags"),
        Field("identities"),
    )
    marks: ClassVar[str] = "the stack's tag in `tags`; stack, address and digests in `metadata`"
    shape: ClassVar[Shape] = "cylinder"
    tagged: ClassVar[bool] = True
    templated: ClassVar[bool] = True
    # Labels are what the agent sees: every instance of a template takes the key alone.
    key_fields: ClassVar[Mapping[str, KeyDefault]] = {"label": "key"}
    file_fields: ClassVar[Mapping[str, str]] = FILE_FIELDS
    sensitive_in: ClassVar[tuple[str, ...]] = ("value", "description", "metadata")

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
        errors: list[Diagnostic] = []
        blocks = data.get("blocks")
        for key, spec in (blocks if isinstance(blocks, dict) else {}).items():
            if isinstance(spec, dict):
                label = spec.get("label", key)
                errors += check_block(
                    doc, ("blocks", key), spec, label, from_key="label" not in spec
                )
        return errors

    def declare(self, doc: Document, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            f"block.{key}": declare_block(spec, f"block.{key}", spec.get("label", key))
            for key, spec in (data.get("blocks") or {}).items()
        }

    def references(self, declared: DesiredBlock, desired: Desired) -> list[str]:
        return list(declared.config.get("identities", ()))

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> Any:
        # The stack's serial and lock records come along (server.lock): `state` leaves them out.
        return client.list_blocks(stack_tag(stack), serial_tag(stack), lock_tag(stack))

    def find(self, client: LettaClient, imp: Import, raw: Mapping[str, Any]) -> tuple[Any, Any]:
        assert imp.id is not None  # validation: blocks are imported by id
        try:
            raw_block = client.get_block(imp.id)
            return LiveBlock.from_api(raw_block), raw_block
        except ApiError as e:
            if e.status == 404:
                return f"no such resource on the server: {imp.id}", None
            raise

    def state(self, raw: Mapping[str, Any], seen: Mapping[str, Any], stack: str) -> BlockState:
        # Lock records never carry the stack's tag; the filter keeps them out regardless.
        tagged = [LiveBlock.from_api(b) for b in raw["block"] if not is_lock_record(b)]
        blocks = {b.id: b for b in tagged}
        for agent in [*raw.get("agent", ()), *(seen.get("agent") or ())]:
            for b in agent.get("blocks") or ():
                blocks.setdefault(b["id"], LiveBlock.from_api(b))
        for b in seen.get("block") or ():
            blocks.setdefault(b["id"], LiveBlock.from_api(b))
        return BlockState(blocks, frozenset(b.id for b in tagged))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> BlockState:
        state: BlockState = self.state_of(live)
        candidates = sorted(i for i in doomed if i in state.blocks)
        users = block_users(client, desired, live, candidates)
        return BlockState(state.blocks, state.tagged, users)

    def resources(self, state: Any) -> Iterable[LiveBlock]:
        blocks: Mapping[str, LiveBlock] = state.blocks
        return blocks.values()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveBlock]:
        """Should two blocks carry one address, the one the stack's agents use wins."""
        state: BlockState = self.state_of(live)
        agents = _AGENTS.of(live)
        in_use = {i for a in agents.ours(stack) for i in a.block_ids}
        by_address: dict[str, list[LiveBlock]] = {}
        for b in state.blocks.values():
            address = owned_by(b, stack, "block")
            if b.id in state.tagged and address is not None:
                by_address.setdefault(address, []).append(b)
        pool: dict[str, LiveBlock] = {}
        notes: list[str] = []
        for address, found in by_address.items():
            found.sort(key=lambda b: (b.id not in in_use, b.id))
            pool[address] = found[0]
            if len(found) > 1:
                others = ", ".join(b.id for b in found[1:])
                notes.append(
                    f"{address}: more than one block carries this address; using "
                    f"{found[0].id}, the other ({others}) is left alone"
                )
        return Matched(pool, {a: b.id for a, b in pool.items()}, tuple(notes))

    def create(self, ctx: Context, declared: DesiredBlock) -> None:
        ctx.changes.append(create_block_change(ctx, declared))

    def update(
        self, ctx: Context, declared: DesiredBlock, found: LiveBlock, *, adopt: bool
    ) -> None:
        update_block(ctx, declared, found, None if adopt else applied_of(found), adopt=adopt)

    def delete(self, ctx: Context, address: str, found: LiveBlock, why: Why) -> None:
        delete_block(ctx, address, found, why, self.declared(ctx.desired).get(address))

    def fingerprint(self, resource: LiveBlock, blank: frozenset[str]) -> str:
        return block_fingerprint(resource, blank)

    def watched(self, change: Change) -> str:
        return "value" if "value" in change.body else ""

    def hidden(self, declared: DesiredBlock) -> frozenset[str]:
        value = frozenset({"value"}) if has_secret(declared.value) else frozenset()
        return super().hidden(declared) | value

    def describe(self, resource: LiveBlock, live: Live, hidden: frozenset[str]) -> str:
        value = SHOWN if "value" in hidden else resource.value
        return f"label={resource.label!r}  value={value!r}"

    # -- applying --------------------------------------------------------------------------

    def settle(self, run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
        return settle_blocks(run, made)

    def unmark(self, run: Run, change: Change) -> None:
        unmark_tagged(run, f"/v1/blocks/{change.remote_id}")

    def apply(self, run: Run, change: Change, body: dict[str, Any]) -> str:
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
            for identity_id in ids:
                c.request("PATCH", f"/v1/blocks/{rid}/identities/{verb}/{identity_id}")
        return rid

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> dict[str, Any]:
        from .writing import export_shared  # builds on this module

        return export_shared(ex)

    def from_agent_file(self, conv: Conversion) -> dict[str, Any]:
        from .writing import convert_shared

        return convert_shared(conv)


def create_block(run: Run, address: str, body: Mapping[str, Any]) -> str:
    """Create a block. After an ambiguous failure it is looked up by its marks (one narrow
    listing) before anything is sent again; another run's block of the same address is
    settled with the stage (`settle_blocks`)."""

    def find() -> dict[str, Any] | None:
        found = run.client.list_blocks(run.tag, label=body["label"])
        return next((b for b in found if carries(b, run.stack, address)), None)

    return str(run.client.create_block(body, find=find)["id"])


def settle_blocks(run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
    """Blocks made by this stage that another run made too: the oldest stays (every run that
    made one computes the same winner, so each deletes only its own). One listing of the
    stack's blocks for the whole stage."""
    listing = run.client.list_blocks(run.tag)
    moved: dict[str, str] = {}
    for change, rid in made:
        found = [b for b in listing if carries(b, run.stack, change.address)]
        winner = settle({"id": rid}, found)
        if winner["id"] != rid:
            run.client.delete_block(rid)
            run.record(change.address, str(winner["id"]))
            moved[change.address] = str(winner["id"])
    return moved


def block_users(
    client: LettaClient, desired: Desired, live: Live, candidates: list[str]
) -> dict[str, Users]:
    """The agents using each of `candidates` (blocks the plan may delete), read only for the
    blocks that may have users outside the stack.

    The stack's agents were listed with their blocks, so how many of them use each block is
    known; a block whose attachment count on the server is higher has another user. Letta
    filters a list of blocks by attachment count, so the check costs one tag-filtered listing
    per distinct count instead of one request per block; only the blocks it flags (or that lack
    the stack's tag, which those listings would miss) are looked up one by one.
    """
    if not candidates:
        return {}
    state = BLOCKS.of(live)
    agents = _AGENTS.of(live)
    ours = agents.ours(desired.stack)
    known = Counter(i for a in ours for i in set(a.block_ids))
    suspect = {i for i in candidates if i not in state.tagged}
    groups: dict[int, set[str]] = {}
    for i in candidates:
        if i in state.tagged:
            groups.setdefault(known[i], set()).add(i)
    tagged_known = [known[i] for i in state.tagged]
    for count, ids in sorted(groups.items()):
        # Ask for the smaller side: the blocks used more than `count` times (suspects), or those
        # used at most `count` times (cleared). The known counts are lower bounds of the real
        # ones, so they estimate the size of each answer.
        above = sum(1 for k in tagged_known if k > count)
        if above <= len(tagged_known) - above:
            flagged = client.list_block_ids(desired.tag, attached_more_than=count)
            suspect |= ids & flagged
        else:
            cleared = client.list_block_ids(desired.tag, attached_fewer_than=count + 1)
            suspect |= ids - cleared
    return {
        bid: tuple((u["id"], u.get("name") or "", stack_of(u)) for u in client.block_agents(bid))
        for bid in sorted(suspect)
    }


def stack_of(agent: Mapping[str, Any]) -> str | None:
    """The stack an agent (as the server lists it) belongs to, or None."""
    stack = mark_of(agent.get("metadata")).get("stack")
    return stack if isinstance(stack, str) else None
