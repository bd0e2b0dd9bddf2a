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

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from ...core.changes import (
    CREATE,
    DELETE,
    NEW,
    REPLACE,
    REPLACED,
    Change,
    FieldDiff,
    Why,
)
from ...core.marks import digest
from ...core.model import MARK_KEY, Desired, Import, Live
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ..base import Field, Kind, Link, Listing, Shape
from ..context import Context, ExtraOf, Matched, Run, Update
from ..mark_blocks import (
    MarkBlock,
    MarkedLeft,
    drop_marks,
    intend,
    left_of,
    prune_marks,
    read_marks,
    resolve,
    reuse,
    unanswered,
    write_mark,
)
from ..resource import applied_of
from ..writing import Conversion, Export

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA441", "ManifestError", "a group naming an agent not declared",
       "A group's `agents` or `manager_agent` names a key that `agents:` does not declare.",
       "Declare the agent, or fix the key.")
define("LA442", "ManifestError", "a group naming a shared block not declared",
       "A group's `blocks` names a key that `blocks:` does not declare.",
       "Declare the shared block, or fix the key.")
define("LA443", "ManifestError", "a round_robin group with a manager",
       "A `round_robin` group sets `manager_agent`; it has none.",
       "Remove `manager_agent`, or choose another manager_type.")
define("LA444", "ManifestError", "a group without its manager",
       "A group whose manager_type needs a manager agent sets no `manager_agent`.",
       "Set `manager_agent` to one of the manifest's agents.")
define("LA445", "ManifestError", "a setting this group type does not take",
       "A group sets a setting its manager_type does not take.",
       "Remove it (the message lists what the type takes).")
define("LA446", "ManifestError", "buffer lengths apart",
       "A `voice_sleeptime` group sets one of min_ and max_message_buffer_length without "
       "the other.",
       "Set both, or neither.")
define("LA447", "ManifestError", "buffer lengths in the wrong order",
       "A group's `max_message_buffer_length` is not greater than its "
       "`min_message_buffer_length`.",
       "Make max greater than min.")
define("LA723", "ApiError", "a group's create answer lost, several look alike",
       "The answer to a group's create was lost, and several groups on the server look like "
       "the one sent: nothing proves which one it made.",
       "Adopt one with an `imports:` entry, delete the others, then apply again.")
# fmt: on

MARK_LABEL = "letta-apply-group"
MANAGER_TYPES = ("supervisor", "round_robin", "dynamic", "sleeptime", "voice_sleeptime")
SETTINGS = (
    "max_turns",
    "termination_token",
    "sleeptime_agent_frequency",
    "max_message_buffer_length",
    "min_message_buffer_length",
)
# The manager's settings each manager type takes (Letta's *Manager schemas).
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "supervisor": (),
    "round_robin": ("max_turns",),
    "dynamic": ("max_turns", "termination_token"),
    "sleeptime": ("sleeptime_agent_frequency",),
    "voice_sleeptime": ("max_message_buffer_length", "min_message_buffer_length"),
}
PLAIN = ("description", *SETTINGS)


@dataclass(frozen=True)
class DesiredGroup:
    """A group as the manifest declares it. `config` holds manager_type, description, agents
    (agent addresses, in turn order), and when declared manager_agent (an address), blocks
    (block addresses) and the manager's settings."""

    address: str
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LiveGroup:
    id: str
    manager_type: str
    description: str
    agent_ids: tuple[str, ...]
    blocks: tuple[str, ...]  # shared blocks letta-apply attached, by address (from the mark)
    manager_agent_id: str | None
    settings: Mapping[str, Any] = field(default_factory=dict)
    mark: Mapping[str, Any] = field(default_factory=dict)
    mark_block: str | None = None  # the id of the block holding the mark

    @classmethod
    def from_api(
        cls, raw: Mapping[str, Any], mark: Mapping[str, Any] | None = None, block: str | None = None
    ) -> LiveGroup:
        return cls(
            str(raw["id"]),
            str(raw.get("manager_type") or ""),
            str(raw.get("description") or ""),
            tuple(raw.get("agent_ids") or ()),
            tuple(map(str, (mark or {}).get("blocks") or ())),
            raw.get("manager_agent_id"),
            {k: raw[k] for k in SETTINGS if raw.get(k) is not None},
            dict(mark or {}),
            block,
        )


@dataclass(frozen=True)
class GroupState:
    """Every group on the server (they cannot be filtered by mark), and the stack's mark
    blocks, oldest first."""

    groups: tuple[Mapping[str, Any], ...] = ()
    marks: tuple[MarkBlock, ...] = ()
    listed: bool = True  # False: the groups were not listed (the stack has none to read)

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by a group given it (kinds.mark_blocks)."""
        return resolve(self.marks, self.groups, _claimed)

    def live(self) -> list[LiveGroup]:
        """Groups with their marks (a group no mark block names has none)."""
        by_group: dict[str, MarkBlock] = {}
        for m in self.resolved():
            by_group.setdefault(m.target, m)
        out = []
        for g in self.groups:
            found = by_group.get(str(g["id"]))
            mark, block = (found.mark, found.id) if found else (None, None)
            out.append(LiveGroup.from_api(g, mark, block))
        return out


def group_applied(dg: DesiredGroup) -> dict[str, Any]:
    """Digests of what letta-apply writes for a group, as the manifest says it (fields under
    ignore_changes apart: a change of them must not write the marks)."""
    config = sorted((k, v) for k, v in dg.config.items() if k not in dg.ignore)
    out: dict[str, Any] = {k: digest(v) for k, v in config}
    if dg.prevent_destroy:
        out["prevent_destroy"] = True
    return out


def mark_body(stack: str, dg: DesiredGroup, **extra: Any) -> dict[str, Any]:
    """The mark block's metadata, without the group id (known once the group is made)."""
    mark = {"stack": stack, "address": dg.address, **extra, "applied": group_applied(dg)}
    # The record of what letta-apply attached (Letta does not report it). Under
    # ignore_changes it is dropped: attaching again, once compared, is harmless.
    if "blocks" in dg.config and "blocks" not in dg.ignore:
        mark["blocks"] = list(dg.config["blocks"])
    return {MARK_KEY: mark}


def _claims(sent: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a group a create sent (groups have no name): its intent's claims."""
    config = sent["manager_config"]
    return {
        "manager_type": config["manager_type"],
        "agent_ids": list(sent["agent_ids"]),
        "manager_agent_id": config.get("manager_agent_id"),
        "description": sent["description"],
    }


def _claimed(claims: Mapping[str, Any], raw: Mapping[str, Any]) -> bool:
    return (
        raw.get("manager_type") == claims.get("manager_type")
        and list(raw.get("agent_ids") or ()) == list(claims.get("agent_ids") or ())
        and raw.get("manager_agent_id") == claims.get("manager_agent_id")
        and (raw.get("description") or "") == claims.get("description")
    )


def _ref(ctx: Context, address: str) -> Any:
    """A resource's id, or `{"$ref": address}` when this plan makes it (or makes it again)."""
    if address in ctx.ids and address not in ctx.replacing and address not in ctx.refused:
        return ctx.ids[address]
    return {"$ref": address}


def _renewed(ctx: Context, addresses: list[Any]) -> list[str]:
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

    def check(self, doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
        """References name declared agents and shared blocks; the manager agent and settings
        fit the manager type."""
        errors: list[Diagnostic] = []
        section = data.get("groups")
        known = {
            kind: sorted(data[kind]) if isinstance(data.get(kind), dict) else []
            for kind in ("agents", "blocks")
        }
        what = {"agents": "agent", "blocks": "shared block"}

        def unknown(at: tuple[Any, ...], where: str, ref: str, kind: str) -> None:
            hint = difflib.get_close_matches(ref, known[kind], n=1)
            tail = (
                f"; did you mean '{hint[0]}'?" if hint
                else f" (declared: {', '.join(known[kind])})" if known[kind]
                else f" (the manifest declares none under '{kind}')"
            )  # fmt: skip
            message = f"{where}: no {what[kind]} {ref!r} is declared{tail}"
            errors.append(doc.diag(at, message, code="LA441" if kind == "agents" else "LA442"))

        for key, spec in (section if isinstance(section, dict) else {}).items():
            if not isinstance(spec, dict):
                continue
            path = ("groups", key)
            mtype = str(spec.get("manager_type"))
            for kind in ("agents", "blocks"):
                refs = spec.get(kind)
                for i, ref in enumerate(refs if isinstance(refs, list) else []):
                    if isinstance(ref, str) and ref not in known[kind]:
                        unknown((*path, kind, i), f"groups.{key}.{kind}[{i}]", ref, kind)
            manager = spec.get("manager_agent")
            if isinstance(manager, str) and manager not in known["agents"]:
                unknown((*path, "manager_agent"), f"groups.{key}.manager_agent", manager, "agents")
            if mtype not in ALLOWED:
                continue  # the schema says
            if mtype == "round_robin" and "manager_agent" in spec:
                errors.append(
                    doc.diag(
                        (*path, "manager_agent"),
                        f"groups.{key}.manager_agent: a round_robin group has no manager agent",
                        code="LA443",
                        key=True,
                    )
                )
            elif mtype != "round_robin" and "manager_agent" not in spec:
                errors.append(
                    doc.diag(
                        path,
                        f"groups.{key}: a {mtype} group needs a manager_agent",
                        code="LA444",
                        key=True,
                    )
                )
            for s in SETTINGS:
                if s in spec and s not in ALLOWED[mtype]:
                    takes = ", ".join(ALLOWED[mtype]) or "none"
                    errors.append(
                        doc.diag(
                            (*path, s),
                            f"groups.{key}.{s}: a {mtype} group does not take it (it takes: "
                            f"{takes})",
                            code="LA445",
                            key=True,
                        )
                    )
            if mtype == "voice_sleeptime":
                lo, hi = (
                    spec.get("min_message_buffer_length"),
                    spec.get("max_message_buffer_length"),
                )
                if (lo is None) != (hi is None):
                    errors.append(
                        doc.diag(
                            path,
                            f"groups.{key}: max_message_buffer_length and "
                            "min_message_buffer_length go together",
                            code="LA446",
                            key=True,
                        )
                    )
                elif isinstance(lo, int) and isinstance(hi, int) and hi <= lo:
                    errors.append(
                        doc.diag(
                            (*path, "max_message_buffer_length"),
                            f"groups.{key}.max_message_buffer_length: must be greater than "
                            f"min_message_buffer_length ({lo})",
                            code="LA447",
                        )
                    )
        return errors

    def declare(self, doc: Document, data: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, DesiredGroup] = {}
        for key, spec in (data.get("groups") or {}).items():
            config: dict[str, Any] = {
                "manager_type": spec["manager_type"],
                "description": spec.get("description", ""),
                "agents": [f"agent.{a}" for a in spec["agents"]],
            }
            if "manager_agent" in spec:
                config["manager_agent"] = f"agent.{spec['manager_agent']}"
            if "blocks" in spec:
                config["blocks"] = sorted(f"block.{b}" for b in spec["blocks"])
            config.update({s: spec[s] for s in SETTINGS if s in spec})
            out[f"group.{key}"] = DesiredGroup(
                f"group.{key}", config, bool(spec.get("prevent_destroy", False)),
                frozenset(spec.get("ignore_changes", ())),
            )  # fmt: skip
        return out

    def references(self, declared: Any, desired: Desired) -> list[str]:
        dg: DesiredGroup = declared
        manager = [dg.config["manager_agent"]] if "manager_agent" in dg.config else []
        return [*manager, *dg.config["agents"], *dg.config.get("blocks", ())]

    def links(self, declared: Any, desired: Desired) -> list[Link]:
        dg: DesiredGroup = declared
        out = [Link(a) for a in self.references(dg, desired) if a.startswith("agent.")]
        return [*out, *(Link(b, shared=True) for b in dg.config.get("blocks", ()))]

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> Any:
        # Hidden groups (Letta's own sleeptime groups) are left out by the server: never ours.
        return list(client.paginate("/v1/groups/", {}))

    def marked(self, blocks: Sequence[Mapping[str, Any]], stack: str) -> bool:
        return bool(read_marks(blocks, stack, MARK_LABEL, self.name))

    def find(self, client: LettaClient, imp: Import, raw: Mapping[str, Any]) -> tuple[Any, Any]:
        """From the listing already read, by id."""
        for g in raw["group"]:
            if g.get("id") == imp.id:
                return LiveGroup.from_api(g), None
        return f"no such group on the server: {imp.id}", None

    def state(self, raw: Mapping[str, Any], seen: Mapping[str, Any], stack: str) -> GroupState:
        marks = read_marks(raw.get("block", ()), stack, MARK_LABEL, self.name)
        listing = raw.get("group")
        return GroupState(tuple(listing or ()), marks, listing is not None)

    def resources(self, state: Any) -> Iterable[LiveGroup]:
        groups: GroupState = state
        return groups.live()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveGroup]:
        """A group is the stack's when one of its mark blocks names it. Should two groups carry
        one address (an interrupted replacement), the replacement wins and the one it replaces
        is left for prune to finish."""
        state: GroupState = self.state_of(live)
        found: dict[str, list[LiveGroup]] = {}
        for g in state.live():
            if g.mark.get("stack") == stack and str(g.mark.get("address", "")).startswith("group."):
                found.setdefault(str(g.mark["address"]), []).append(g)
        pool: dict[str, LiveGroup] = {}
        leftovers: list[tuple[str, LiveGroup]] = []
        for address, gs in found.items():
            replaced = {g.mark.get("replaces") for g in gs}
            winners = [g for g in gs if g.id not in replaced] or gs
            pool[address] = winners[0]
            leftovers.extend((address, g) for g in gs if g is not winners[0])
        live_ids = [str(g["id"]) for g in state.groups]
        stale = unanswered(state.resolved(), live_ids) if state.listed else ()
        ids = {a: g.id for a, g in pool.items()}
        return Matched(pool, ids, extra=MarkedLeft(stale, tuple(leftovers)))

    def _create_body(self, ctx: Context, dg: DesiredGroup) -> dict[str, Any]:
        config = {"manager_type": dg.config["manager_type"]}
        if "manager_agent" in dg.config:
            config["manager_agent_id"] = _ref(ctx, dg.config["manager_agent"])
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
                "agent_ids": [_ref(ctx, a) for a in dg.config["agents"]],
                "manager_config": config,
            },
            "blocks": [_ref(ctx, b) for b in dg.config.get("blocks", ())],
            "mark": mark_body(ctx.stack, dg),
            **reuse(ctx, self.name, dg.address),
            "exclude": alike,
        }

    def _diffs(self, dg: DesiredGroup) -> list[FieldDiff]:
        return [FieldDiff(k, None, v, NEW) for k, v in dg.config.items()]

    def create(self, ctx: Context, declared: DesiredGroup) -> None:
        dg = declared
        ctx.changes.append(
            Change(
                dg.address, CREATE, diffs=tuple(self._diffs(dg)),
                body=self._create_body(ctx, dg), why=(NEW,), kind=self.name,
            )
        )  # fmt: skip

    def update(
        self, ctx: Context, declared: DesiredGroup, found: LiveGroup, *, adopt: bool
    ) -> None:
        dg, lg = declared, found
        u = Update(ctx, dg, None if adopt else applied_of(lg))
        live_agents = [_named(ctx, a) for a in lg.agent_ids]
        live_manager = _named(ctx, lg.manager_agent_id)
        moved_agents = any(a in ctx.replacing for a in dg.config["agents"])
        # What Letta cannot change in place: the manager type, an emptied member list or
        # description (a falsy value in a PATCH is ignored).
        if lg.manager_type != dg.config["manager_type"]:
            reason = FieldDiff(
                "manager_type", lg.manager_type, dg.config["manager_type"],
                ctx.why(u.applied, "manager_type", lg.manager_type),
            )  # fmt: skip
            self._replace(ctx, dg, lg, reason)
            return
        for name, live_value in (("agents", lg.agent_ids), ("description", lg.description)):
            if u.managed(name) and live_value and not dg.config[name]:
                why = ctx.why(u.applied, name, list(live_value) if name == "agents" else live_value)
                reason = FieldDiff(name, live_value, dg.config[name], why)
                self._replace(ctx, dg, lg, reason)
                return
        patch: dict[str, Any] = {}
        config: dict[str, Any] = {}
        if u.managed("description") and lg.description != dg.config["description"]:
            u.differs("description", lg.description, dg.config["description"])
            patch["description"] = dg.config["description"]
        if u.managed("agents") and (live_agents != dg.config["agents"] or moved_agents):
            if live_agents != dg.config["agents"]:
                u.differs("agents", live_agents, dg.config["agents"])
            else:
                u.diffs.append(FieldDiff("agents", live_agents, _renewed(ctx, live_agents)))
            patch["agent_ids"] = [_ref(ctx, a) for a in dg.config["agents"]]
        manager: str | None = dg.config.get("manager_agent")
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
            if "max_message_buffer_length" in config or "min_message_buffer_length" in config:
                for s in ("max_message_buffer_length", "min_message_buffer_length"):
                    if s in dg.config:
                        config[s] = dg.config[s]
            patch["manager_config"] = {"manager_type": lg.manager_type, **config}
        attach: list[Any] = []
        detach: list[str] = []
        # Letta never reports a group's shared blocks (shared_block_ids reads empty): the
        # mark's record of what letta-apply attached is compared instead. An adopted group's
        # are unknown: attaching is idempotent, so every declared one is attached.
        had = [] if adopt else sorted(lg.blocks)
        if u.managed("blocks") and (had != dg.config["blocks"] or adopt):
            if had != dg.config["blocks"]:
                u.diffs.append(FieldDiff("blocks", had, dg.config["blocks"]))
            attach = [_ref(ctx, b) for b in dg.config["blocks"] if b not in had or adopt]
            wanted = set(dg.config["blocks"])
            # A block that is gone took its attachment with it.
            detach = [ctx.ids[b] for b in had if b not in wanted and b in ctx.ids]
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
        body = {"mark_block": found.mark_block}
        ctx.changes.append(Change(address, DELETE, found.id, body=body, why=(why,), kind=self.name))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        # The groups an interrupted replacement left behind.
        left = ExtraOf[MarkedLeft[LiveGroup]](self.name).of(ctx)
        for address, g in left.leftovers if left else ():
            body = {"mark_block": g.mark_block}
            ctx.changes.append(
                Change(address, DELETE, g.id, body=body, why=(REPLACED,), kind=self.name)
            )
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

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        drop_marks(run, MARK_LABEL, self.name, change.address)

    def apply(self, run: Run, change: Change, body: dict[str, Any]) -> str:
        c = run.client
        rid = change.remote_id or ""
        if change.action in (CREATE, REPLACE):
            sent = {**body["group"], "shared_block_ids": []}
            # The intent first: a run that dies after the create leaves a group its stack
            # adopts, never one that is nobody's (kinds.mark_blocks).
            block = intend(
                run, MARK_LABEL, self.name, change.address, body["mark"], _claims(sent),
                body.get("exclude", ()), body.get("intent_block"),
            )  # fmt: skip
            created = c.request(
                "POST", "/v1/groups/", json=sent,
                find=lambda: _lost(run, change.address, sent, body.get("exclude", ())),
            )  # fmt: skip
            rid = str(created["id"])
            _write_mark(run, change.address, rid, body["mark"], block)
            run.record(change.address, rid)
            for bid in body["blocks"]:
                c.request("PATCH", f"/v1/groups/{rid}/blocks/attach/{bid}")
            for stale in body.get("stale", ()):
                c.request("DELETE", f"/v1/blocks/{stale}")
            replaces = body.get("replaces")
            if replaces:
                _delete(run, replaces["group"], replaces["mark_block"])
            return rid
        if change.action == DELETE:
            _delete(run, rid, body.get("mark_block"))
            return rid or str(body.get("mark_block"))
        if body["patch"]:
            c.request("PATCH", f"/v1/groups/{rid}", json=body["patch"])
        for bid in body["attach"]:
            c.request("PATCH", f"/v1/groups/{rid}/blocks/attach/{bid}")
        for bid in body["detach"]:
            c.request("PATCH", f"/v1/groups/{rid}/blocks/detach/{bid}")
        _write_mark(run, change.address, rid, body["mark"], body.get("mark_block"))
        return rid

    # -- export ----------------------------------------------------------------------------

    def export(self, found: LiveGroup) -> dict[str, Any]:
        """The group with its agents by id (the exporter names them by key). Its shared blocks
        are left out: Letta does not report them."""
        out: dict[str, Any] = {"manager_type": found.manager_type}
        if found.manager_agent_id:
            out["manager_agent"] = found.manager_agent_id
        out["agents"] = list(found.agent_ids)
        if found.description:
            out["description"] = found.description
        out.update({s: v for s, v in found.settings.items() if s in ALLOWED[found.manager_type]})
        return out

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> dict[str, Any]:
        from .writing import export_groups  # builds on this module

        return export_groups(self, ex)

    def from_agent_file(self, conv: Conversion) -> dict[str, Any]:
        from .writing import convert_groups

        return convert_groups(self, conv)


def _write_mark(
    run: Run, address: str, group_id: str, metadata: Mapping[str, Any], block: str | None
) -> None:
    write_mark(run, MARK_LABEL, "group", address, group_id, metadata, block)


def _lost(
    run: Run, address: str, sent: Mapping[str, Any], exclude: Iterable[str]
) -> dict[str, Any] | None:
    """After an ambiguous failure of a group's create: the one group that answers the intent
    written before it (and was not on the server when the plan was made) is the one sent. With
    none the create surely did not land and is sent again; with several nothing proves which,
    and the failure says so."""
    claims, old = _claims(sent), set(exclude)
    alike = [
        g for g in run.client.paginate("/v1/groups/", {})
        if _claimed(claims, g) and str(g["id"]) not in old
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


def _delete(run: Run, group_id: str | None, mark_block: str | None) -> None:
    """The group, then its mark: a group is never left without one while it exists. Without a
    group: a mark that marks none."""
    if group_id:
        run.client.request("DELETE", f"/v1/groups/{group_id}")
    if mark_block:
        run.client.request("DELETE", f"/v1/blocks/{mark_block}")
