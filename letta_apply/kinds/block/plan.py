"""Planning blocks, shared ones and (through the agent kind) an agent's own: which live blocks are
the stack's, the create request, the update (a block's `value` decided three ways, see
`plan_value`), the delete, and what a change was planned from (`block_fingerprint`)."""

from __future__ import annotations

from collections.abc import Mapping

from ...core.changes import CREATE, DELETE, MANIFEST, MEMORY, NEW, Change, Drift, FieldDiff, Why
from ...core.jsonish import JsonObject, obj, strings
from ...core.marks import (
    config_digests,
    digest,
    has_secret,
    mark_metadata,
    sensitive_fields,
    sensitive_names,
    user_metadata,
)
from ...core.model import SHOWN, Live
from ..context import Context, Matched, Update
from ..resource import owned_by
from .model import (
    AGENTS,
    BLOCKS,
    FIELDS,
    IDENTITIES,
    IDENTITY_POOL,
    DesiredBlock,
    LiveBlock,
    our_agent_ids,
)

IdentityRef = str | dict[str, str]
"""An identity's id, or `{"$ref": address}` for one the plan makes (resolved by apply)."""


def match_blocks(live: Live, stack: str) -> Matched[LiveBlock]:
    """The stack's shared blocks, by their marks. Should two blocks carry one address, the one
    the stack's agents use wins."""
    state = BLOCKS.of(live)
    in_use = {i for a in AGENTS.of(live).ours(stack) for i in a.block_ids}
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


def block_applied(db: DesiredBlock, *, written: bool = True, base: object = None) -> JsonObject:
    """Digests of the configuration letta-apply writes for a block, and its protection. A field
    holding a sensitive value gets no digest (marks are shown in plans and saved in plan files);
    a difference in it is attributed to the manifest.

    `value` is the base of the three-way decision on memory (see `plan_value`): the digest of
    the value letta-apply last wrote, or knew the server to hold. When this write leaves the
    value alone (`written` false), the previous `base` is carried over."""
    out: JsonObject = {"label": digest(db.label), **config_digests(db.config, FIELDS)}
    value = digest(db.value) if written else base
    if value and not has_secret(db.value):
        out["value"] = value
    if "identities" in db.config:
        out["identities"] = digest(sorted(db.identities))
    if db.prevent_destroy:
        out["prevent_destroy"] = True
    names = sensitive_fields(db.config) | ({"value"} if has_secret(db.value) else set())
    return {**out, **sensitive_names(frozenset(names))}


def block_body(db: DesiredBlock, stack: str, tag: str, *, mark: bool) -> JsonObject:
    """The request that creates a block (inline in an agent's create, without its own mark:
    Letta drops metadata there)."""
    body: JsonObject = {"label": db.label, "value": db.value}
    for k in FIELDS:
        if k in db.config:
            body[k] = db.config[k]
    metadata = dict(obj(db.config.get("metadata")))
    if mark:
        metadata.update(mark_metadata(stack, db.address, block_applied(db)))
    if metadata:
        body["metadata"] = metadata
    body["tags"] = sorted({*strings(db.config.get("tags")), tag})
    return body


def identity_refs(ctx: Context, db: DesiredBlock) -> list[IdentityRef]:
    """Ids of the identities a block declares (`{"$ref": address}` for one this plan makes)."""
    pool = IDENTITY_POOL.of(ctx)
    return [pool[a].id if a in pool else {"$ref": a} for a in db.identities]


def declared_extras(config: Mapping[str, object]) -> tuple[FieldDiff, ...]:
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
        diffs += (FieldDiff("identities", None, sorted(db.identities), NEW),)
    return Change(db.address, CREATE, diffs=diffs, body=body, why=(NEW,), kind="block")


def update_block(
    ctx: Context,
    db: DesiredBlock,
    lb: LiveBlock,
    applied: Mapping[str, object] | None,
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
        user_md = obj(db.config["metadata"]) if "metadata" in db.config else live_md
        applied_now = block_applied(
            db,
            written="value" in u.body or lb.value == db.value,
            base=(applied or {}).get("value"),
        )
        u.body["metadata"] = {**user_md, **mark_metadata(ctx.stack, db.address, applied_now)}
        u.emit("block", lb.id, adopt=adopt)


def plan_value(
    ctx: Context, db: DesiredBlock, live: str, applied: Mapping[str, object] | None, u: Update
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
    by_id = {i.id: a for a, i in IDENTITY_POOL.of(ctx).items()}
    live_ids = sorted(i for i, blocks in IDENTITIES.of(ctx.live).blocks.items() if lb.id in blocks)
    wanted = identity_refs(ctx, db)
    if set(live_ids) == {i for i in wanted if isinstance(i, str)} and all(
        isinstance(i, str) for i in wanted
    ):
        return
    shown = sorted(by_id.get(i, i) for i in live_ids)
    u.differs("identities", shown, sorted(db.identities))
    u.body["attach_identities"] = [i for i in wanted if i not in live_ids]
    u.body["detach_identities"] = [i for i in live_ids if i not in wanted]


def delete_block(
    ctx: Context, address: str, b: LiveBlock, why: Why, declared: DesiredBlock | None = None
) -> None:
    if ctx.protected(b, declared):
        ctx.refuse_destroy(address)
        return
    state = BLOCKS.of(ctx.live)
    if ctx.used_elsewhere(address, state.users.get(b.id, ()), our_agent_ids(ctx)):
        return
    ctx.changes.append(Change(address, DELETE, b.id, why=(why,), kind="block"))


def block_fingerprint(b: LiveBlock, blank: frozenset[str]) -> str:
    # The value is left out: agents write it all the time, and no change depends on it.
    return digest(
        [
            b.id, b.label, blanked(b.description, "description", blank), b.limit, b.read_only,
            blanked(dict(b.metadata), "metadata", blank), sorted(b.tags),
        ]
    )  # fmt: skip


def blanked(value: object, name: str, fields: frozenset[str]) -> object:
    """A field's value for a fingerprint: SHOWN when it is sensitive; a mapping (metadata) with
    its sensitive keys blanked."""
    if name in fields:
        return SHOWN
    if isinstance(value, Mapping):
        return {k: SHOWN if f"{name}.{k}" in fields else v for k, v in value.items()}
    return value
