"""Multi-agent groups: `groups:`, addressed group.<key> (Letta's `/v1/groups/`: a manager type,
an optional manager agent, member agents, blocks shared by the whole group, turn limits). Agents
and shared blocks are named by key.

Where the marks live: Letta's groups carry no tags and no metadata, and their one free text, the
`description`, goes into the agents' prompts (round_robin and dynamic groups quote it), so a mark
there would be read by the model. The mark (stack, address, the group's id, field digests) is
kept instead in a *mark block*: a memory block labelled `letta-apply-group`, tagged with the
stack's tag and carrying the mark in its `metadata`, attached to no agent. Ownership of a group
is that block naming the group's id, nothing else:

- it is provable without a name match: a group made by hand or by another tool is named by no
  mark block, so a group with a declared description, manager or members is never changed,
  pruned or destroyed;
- the block kind lists the stack's tagged blocks anyway, so reading the marks costs no request;
  the block kind ignores these blocks (their address is not block.<key>), and the manifest may
  not declare the label;
- a mark block whose group is gone (deleted by hand) proves nothing: the group is created again
  and the stale mark deleted with it. A group whose mark block was deleted is no longer the
  stack's: a new one is made, the old one left alone (it is then a hand-made group).

What Letta 0.16.8 allows in place (letta/services/group_manager.py): `PATCH /v1/groups/{id}`
changes the description, the member list (replaced whole, never emptied) and the manager's
settings (manager agent, max_turns, termination_token, sleeptime_agent_frequency, buffer lengths;
never cleared: a falsy value is ignored); it refuses another manager type ("Cannot change group
pattern after creation") and ignores `shared_block_ids`, which it never reports either (a
group reads `shared_block_ids: []` whatever is attached). So a new manager type, an emptied member
list or description replace the group (create-first), and shared blocks are attached and
detached with the group's block routes, and the mark records which ones letta-apply attached
(what plan compares; a block attached or detached by hand cannot be seen). Those routes (and
the create here) touch the group alone: Letta's create with `shared_block_ids` would also attach
the blocks to every member and the manager, behind the agent kind's back (declare them in the
agents' `blocks:` for that).
Deleting a group deletes the group only: its agents and blocks stay.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from ...core.changes import CREATE, DELETE, NEW, REPLACE, Change, FieldDiff, Why
from ...core.jsonish import JsonObject, items, objs, opt_text
from ...core.marks import digest
from ...core.model import Desired, Import, Live
from ...errors import Diagnostic
from ...manifest.files import Document
from ...server.client import LettaClient
from ..base import Field, Kind, Link, Listing, Shape
from ..context import Context, Matched, Run, Update
from ..declaring import entries, ignored, prevents_destroy
from ..mark_blocks import (
    MarkedLeft,
    drop_marks,
    left_of,
    prune_leftovers,
    prune_marks,
    read_marks,
    reuse,
    unanswered,
)
from ..matching import replacement_wins
from ..resource import applied_of
from ..writing import Conversion, Export
from .checks import check_groups
from .model import (
    ALLOWED,
    BUFFERS,
    MARK_LABEL,
    SETTINGS,
    DesiredGroup,
    GroupState,
    LiveGroup,
    group_applied,
    mark_body,
)
from .requests import ROUTE, create, delete, update

__all__ = ["MARK_LABEL", "DesiredGroup", "GroupKind", "GroupState", "LiveGroup"]


def _ref(ctx: Context, address: str) -> object:
    """A resource's id, or `{"$ref": address}` when this plan makes it (or makes it again)."""
    if address in ctx.ids and address not in ctx.replacing and address not in ctx.refused:
        return ctx.ids[address]
    return {"$ref": address}


def _renewed(ctx: Context, addresses: Iterable[str | None]) -> list[str]:
    """Addresses as a plan shows them, those this plan replaces marked as the new resource."""
    return [f"{a} (new)" if a in ctx.replacing else str(a) for a in addresses]


def _named(ctx: Context, rid: str | None) -> str | None:
    """A live id as the address of the stack's resource holding it (else the id)."""
    if rid is None:
        return None
    return next((a for a, i in ctx.ids.items() if i == rid), rid)


class GroupKind(Kind[DesiredGroup, LiveGroup, GroupState]):
    name: ClassVar[str] = "group"
    section: ClassVar[str] = "groups"
    id_prefix: ClassVar[str] = "group-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
    depends_on: ClassVar[tuple[str, ...]] = ("agent", "block")
    instance_refs: ClassVar[Mapping[str, str]] = {
        "agents": "agents", "manager_agent": "agents", "blocks": "blocks",
    }  # fmt: skip
    fields: ClassVar[tuple[Field, ...]] = (
        Field("manager_type", "replace"),
        Field("manager_agent"),
        Field("agents"),
        Field("blocks"),
        Field("description"),
        *(Field(s) for s in SETTINGS),
    )
    marks: ClassVar[str] = (
        f"the metadata of a `{MARK_LABEL}` block tagged with the stack (groups have no tags and "
        "no metadata)"
    )
    shape: ClassVar[Shape] = "hexagon"
    listing: ClassVar[Listing] = "marks"
    mark_label: ClassVar[str] = MARK_LABEL

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """References name declared agents and shared blocks; the manager agent and settings
        fit the manager type (kinds.group.checks)."""
        return check_groups(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredGroup]:
        out: dict[str, DesiredGroup] = {}
        for key, spec in entries(data, self.section):
            config: JsonObject = {
                "manager_type": spec["manager_type"],
                "description": spec.get("description", ""),
                "agents": [f"agent.{a}" for a in items(spec["agents"])],
            }
            if "manager_agent" in spec:
                config["manager_agent"] = f"agent.{spec['manager_agent']}"
            if "blocks" in spec:
                config["blocks"] = sorted(f"block.{b}" for b in items(spec["blocks"]))
            config.update({s: spec[s] for s in SETTINGS if s in spec})
            out[f"group.{key}"] = DesiredGroup(
                f"group.{key}", config, prevents_destroy(spec), ignored(spec)
            )
        return out

    def references(self, declared: DesiredGroup, desired: Desired) -> list[str]:
        manager = [declared.manager] if declared.manager is not None else []
        return [*manager, *declared.agents, *declared.blocks]

    def links(self, declared: DesiredGroup, desired: Desired) -> list[Link]:
        out = [Link(a) for a in self.references(declared, desired) if a.startswith("agent.")]
        return [*out, *(Link(b, shared=True) for b in declared.blocks)]

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        # Hidden groups (Letta's own sleeptime groups) are left out by the server: never ours.
        return list(ROUTE.list(client))

    def marked(self, blocks: Sequence[Mapping[str, object]], stack: str) -> bool:
        return bool(read_marks(blocks, stack, MARK_LABEL, self.name))

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveGroup | str, object]:
        """From the listing already read, by id."""
        for g in objs(raw.get("group")):
            if g.get("id") == imp.id:
                return LiveGroup.from_api(g), None
        return f"no such group on the server: {imp.id}", None

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> GroupState:
        marks = read_marks(objs(raw.get("block")), stack, MARK_LABEL, self.name)
        listing = raw.get("group")
        return GroupState(tuple(objs(listing)), marks, listing is not None)

    def resources(self, state: GroupState) -> Iterable[LiveGroup]:
        return state.live()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveGroup]:
        """A group is the stack's when one of its mark blocks names it. Should two groups carry
        one address (an interrupted replacement), the replacement wins and the one it replaces
        is left for prune to finish."""
        state = self.state_of(live)
        pool, leftovers = replacement_wins(state.live(), stack, self.name)
        live_ids = [str(g["id"]) for g in state.groups]
        stale = unanswered(state.resolved(), live_ids) if state.listed else ()
        ids = {a: g.id for a, g in pool.items()}
        return Matched(pool, ids, extra=MarkedLeft(stale, leftovers))

    def _create_body(self, ctx: Context, dg: DesiredGroup) -> JsonObject:
        config: JsonObject = {"manager_type": dg.config["manager_type"]}
        if dg.manager is not None:
            config["manager_agent_id"] = _ref(ctx, dg.manager)
        config.update({s: dg.config[s] for s in SETTINGS if s in dg.config})
        # Groups already on the server that look like this one: never adopted by its intent.
        alike = [
            str(g["id"]) for g in self.state_of(ctx.live).groups
            if g.get("manager_type") == config["manager_type"]
            and (g.get("description") or "") == dg.config["description"]
        ]  # fmt: skip
        return {
            "group": {
                "description": dg.config["description"],
                "agent_ids": [_ref(ctx, a) for a in dg.agents],
                "manager_config": config,
            },
            "blocks": [_ref(ctx, b) for b in dg.blocks],
            "mark": mark_body(ctx.stack, dg),
            **reuse(ctx, self.name, dg.address),
            "exclude": alike,
        }

    def create(self, ctx: Context, declared: DesiredGroup) -> None:
        dg = declared
        diffs = tuple(FieldDiff(k, None, v, NEW) for k, v in dg.config.items())
        ctx.changes.append(
            Change(
                dg.address, CREATE, diffs=diffs, body=self._create_body(ctx, dg), why=(NEW,),
                kind=self.name,
            )
        )  # fmt: skip

    def update(
        self, ctx: Context, declared: DesiredGroup, found: LiveGroup, *, adopt: bool
    ) -> None:
        dg, lg = declared, found
        u = Update(ctx, dg, None if adopt else applied_of(lg))
        reason = _replaced_by(ctx, u, dg, lg)
        if reason is not None:
            self._replace(ctx, dg, lg, reason)
            return
        patch = _patch(ctx, u, dg, lg)
        attach, detach = _shared_blocks(ctx, u, dg, lg, adopt=adopt)
        u.protection(bool(lg.mark) or adopt)
        applied = {k: v for k, v in (u.applied or {}).items() if k not in dg.ignore}
        marks_stale = not adopt and applied != group_applied(dg)
        if u.needed(adopt=adopt, also=bool(patch) or marks_stale):
            u.body.update({"patch": patch, "attach": attach, "detach": detach})
            u.body["mark"] = mark_body(ctx.stack, dg, group=lg.id)
            u.body["mark_block"] = lg.mark_block
            u.emit(self.name, lg.id, adopt=adopt)

    def _replace(self, ctx: Context, dg: DesiredGroup, lg: LiveGroup, reason: FieldDiff) -> None:
        """Create the new group first (with its members, manager and blocks), then delete the
        old one and its mark."""
        if ctx.protected(lg, dg):
            ctx.refuse_destroy(dg.address, "replace")
            return
        body = self._create_body(ctx, dg)
        body["mark"] = mark_body(ctx.stack, dg, replaces=lg.id)
        body["replaces"] = {"group": lg.id, "mark_block": lg.mark_block}
        made = (FieldDiff(k, None, v) for k, v in dg.config.items() if k != reason.field)
        ctx.changes.append(
            Change(
                dg.address, REPLACE, lg.id,
                (reason, *made), body,
                why=(reason.why,), kind=self.name,
            )
        )  # fmt: skip
        ctx.replacing.add(dg.address)

    def delete(self, ctx: Context, address: str, found: LiveGroup, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        body: JsonObject = {"mark_block": found.mark_block}
        ctx.changes.append(Change(address, DELETE, found.id, body=body, why=(why,), kind=self.name))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        prune_leftovers(ctx, self.name)  # the groups an interrupted replacement left behind
        prune_marks(ctx, self.name)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        m = self.match(desired.stack, live)
        keep = set() if destroy else {*self.declared(desired), *desired.moved}
        return {g.id for a, g in m.pool.items() if a not in keep} | {
            g.id for _, g in left_of(m).leftovers
        }

    def fingerprint(self, resource: LiveGroup, blank: frozenset[str]) -> str:
        g = resource
        return digest(
            [g.id, g.manager_type, g.description, list(g.agent_ids), sorted(g.blocks),
             g.manager_agent_id, dict(g.settings), dict(g.mark), g.mark_block]
        )  # fmt: skip

    def describe(self, resource: LiveGroup, live: Live, hidden: frozenset[str]) -> str:
        g = resource
        return f"manager_type={g.manager_type}  agents={len(g.agent_ids)}"

    # -- applying (kinds.group.requests) -----------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        drop_marks(run, MARK_LABEL, self.name, change.address)

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        rid = change.remote_id or ""
        if change.action in (CREATE, REPLACE):
            return create(run, change, body)
        if change.action == DELETE:
            delete(run, rid, opt_text(body.get("mark_block")))
            return rid or str(body.get("mark_block"))
        update(run, change, rid, body)
        return rid

    # -- export ----------------------------------------------------------------------------

    def export(self, found: LiveGroup) -> JsonObject:
        """The group with its agents by id (the exporter names them by key). Its shared blocks
        are left out: Letta does not report them."""
        out: JsonObject = {"manager_type": found.manager_type}
        if found.manager_agent_id:
            out["manager_agent"] = found.manager_agent_id
        out["agents"] = list(found.agent_ids)
        if found.description:
            out["description"] = found.description
        out.update({s: v for s, v in found.settings.items() if s in ALLOWED[found.manager_type]})
        return out

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_groups  # builds on this module

        return export_groups(self, ex)

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        from .writing import convert_groups

        return convert_groups(self, conv)


# -- planning an update, step by step ---------------------------------------------------------


def _replaced_by(ctx: Context, u: Update, dg: DesiredGroup, lg: LiveGroup) -> FieldDiff | None:
    """What Letta cannot change in place, as the difference that replaces the group: the
    manager type, an emptied member list or description (a falsy value in a PATCH is ignored).
    None: the group is updated in place."""
    if lg.manager_type != dg.config["manager_type"]:
        why = ctx.why(u.applied, "manager_type", lg.manager_type)
        return FieldDiff("manager_type", lg.manager_type, dg.config["manager_type"], why)
    live_values: tuple[tuple[str, object], ...] = (
        ("agents", lg.agent_ids), ("description", lg.description),
    )  # fmt: skip
    for name, live_value in live_values:
        if u.managed(name) and live_value and not dg.config[name]:
            seen = list(lg.agent_ids) if name == "agents" else live_value
            return FieldDiff(name, live_value, dg.config[name], ctx.why(u.applied, name, seen))
    return None


def _patch(ctx: Context, u: Update, dg: DesiredGroup, lg: LiveGroup) -> JsonObject:
    """The PATCH of the group's description, members and manager settings (each difference
    recorded in `u`)."""
    patch: JsonObject = {}
    if u.managed("description") and lg.description != dg.config["description"]:
        u.differs("description", lg.description, dg.config["description"])
        patch["description"] = dg.config["description"]
    live_agents = [_named(ctx, a) for a in lg.agent_ids]
    moved_agents = any(a in ctx.replacing for a in dg.agents)
    if u.managed("agents") and (live_agents != dg.agents or moved_agents):
        if live_agents != dg.agents:
            u.differs("agents", live_agents, dg.config["agents"])
        else:
            u.diffs.append(FieldDiff("agents", live_agents, _renewed(ctx, live_agents)))
        patch["agent_ids"] = [_ref(ctx, a) for a in dg.agents]
    config = _manager_config(ctx, u, dg, lg)
    if config:
        patch["manager_config"] = {"manager_type": lg.manager_type, **config}
    return patch


def _manager_config(ctx: Context, u: Update, dg: DesiredGroup, lg: LiveGroup) -> JsonObject:
    """The manager's update: its agent and settings that changed, with what Letta needs beside
    them (the manager agent, both buffer lengths)."""
    config: JsonObject = {}
    live_manager = _named(ctx, lg.manager_agent_id)
    manager = dg.manager
    if (
        manager is not None
        and u.managed("manager_agent")
        and (live_manager != manager or manager in ctx.replacing)
    ):
        if live_manager != manager:
            u.differs("manager_agent", live_manager, manager)
        else:
            u.diffs.append(FieldDiff("manager_agent", manager, _renewed(ctx, [manager])[0]))
        config["manager_agent_id"] = _ref(ctx, manager)
    for s in SETTINGS:
        if u.managed(s) and lg.settings.get(s) != dg.config[s]:
            u.differs(s, lg.settings.get(s), dg.config[s])
            config[s] = dg.config[s]
    if config:
        # The manager's update names its type; Letta checks it against the group's.
        if manager is not None and "manager_agent_id" not in config:
            config["manager_agent_id"] = _ref(ctx, manager)
        if any(s in config for s in BUFFERS):
            config.update({s: dg.config[s] for s in BUFFERS if s in dg.config})
    return config


def _shared_blocks(
    ctx: Context, u: Update, dg: DesiredGroup, lg: LiveGroup, *, adopt: bool
) -> tuple[list[object], list[str]]:
    """The shared blocks to attach and detach. Letta never reports a group's shared blocks
    (shared_block_ids reads empty): the mark's record of what letta-apply attached is compared
    instead. An adopted group's are unknown: attaching is idempotent, so every declared one is
    attached."""
    had = [] if adopt else sorted(lg.blocks)
    if not u.managed("blocks") or (had == dg.blocks and not adopt):
        return [], []
    if had != dg.blocks:
        u.diffs.append(FieldDiff("blocks", had, dg.config["blocks"]))
    attach = [_ref(ctx, b) for b in dg.blocks if b not in had or adopt]
    wanted = set(dg.blocks)
    # A block that is gone took its attachment with it.
    detach = [ctx.ids[b] for b in had if b not in wanted and b in ctx.ids]
    return attach, detach
