"""Decide what would change: a pure function of the desired and the live state. No I/O.

Live resources are matched to the manifest only by their marks (stack tag plus the stack and
address in `metadata`); anything without this stack's marks is never changed. Fields the manifest
leaves out are never compared. A block's `value` is only what it starts with: a different live
value is reported as drift and kept, unless the block sets `enforce_value`.

Every mark also records a digest of each field as letta-apply last wrote it (`applied`). That is
how a difference is explained without a state file: when the live field no longer matches its
digest, someone changed it on the server (drift); when it still does, the manifest changed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deepdiff import DeepDiff

from .model import (
    MARK_KEY,
    Desired,
    DesiredAgent,
    DesiredBlock,
    Live,
    LiveAgent,
    LiveBlock,
    owned_block_address,
)

CREATE, UPDATE, ATTACH, DETACH = "create", "update", "attach", "detach"

# Why a change is in the plan.
NEW = "new"  # declared, not on the server
MANIFEST = "manifest"  # the manifest changed since letta-apply last wrote the field
DRIFT = "drift"  # the field was changed on the server, outside the manifest
MEMORY = "memory"  # a block value written by agents (restored only with enforce_value)

ABSENT = "absent"  # fingerprint of an address with nothing on the server

_BLOCK_FIELDS = ("description", "limit", "read_only")
_AGENT_FIELDS = ("description", "system", "model", "embedding")


def digest(value: Any) -> str:
    """A short, stable digest of a JSON value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class FieldDiff:
    """One field of one resource: `before` is live (None on create), `after` is what apply sets,
    `why` says where the difference comes from."""

    field: str
    before: Any
    after: Any
    why: str = MANIFEST


@dataclass(frozen=True)
class Change:
    """One write apply will make.

    `body` is the request body, in which `{"$ref": address}` stands for the id of a resource that
    may not exist yet. For attach and detach, `address` is the agent and `block` the block.
    """

    address: str
    action: str
    remote_id: str | None = None
    diffs: tuple[FieldDiff, ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)
    block: str | None = None
    why: tuple[str, ...] = (MANIFEST,)

    @property
    def is_agent(self) -> bool:
        return self.address.startswith("agent.") and ".memory_blocks." not in self.address

    @property
    def stage(self) -> int:
        """Apply order: shared blocks, then agents and their own blocks, then detaches (which
        free labels), then attaches."""
        if self.action == DETACH:
            return 2
        if self.action == ATTACH:
            return 3
        return 1 if self.address.startswith("agent.") else 0


@dataclass(frozen=True)
class Drift:
    """A difference made on the server outside the manifest.

    `kind` is MEMORY for a block value (written by agents; kept unless enforce_value) or
    "configuration" for anything else (hand edits and hand attachments; apply reverts them).
    """

    address: str
    field: str
    declared: Any
    live: Any
    kind: str
    restored: bool


CONFIGURATION = "configuration"


@dataclass(frozen=True)
class Problem:
    """A resource apply refuses to touch, with why and what to do about it."""

    address: str
    message: str
    hint: str = ""


@dataclass(frozen=True)
class Plan:
    stack: str
    changes: tuple[Change, ...] = ()
    drift: tuple[Drift, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    ids: Mapping[str, str] = field(default_factory=dict)  # address -> id of what exists
    # address -> fingerprint of the live state each touched resource was planned from
    fingerprints: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


# ---------------------------------------------------------------------------------------------
# Matching live resources to addresses by their marks


@dataclass(frozen=True)
class Matched:
    """The stack's live resources by address: shared blocks, agents, and agents' own blocks."""

    blocks: Mapping[str, LiveBlock]
    agents: Mapping[str, LiveAgent]
    owned: Mapping[str, LiveBlock]
    notes: tuple[str, ...] = ()

    def ids(self) -> dict[str, str]:
        out = {a: r.id for a, r in self.blocks.items()}
        out.update({a: r.id for a, r in self.agents.items()})
        out.update({a: r.id for a, r in self.owned.items()})
        return out


def match(stack: str, tag: str, live: Live) -> Matched:
    """Find the stack's resources in `live`. Should two carry one address, the oldest agent and
    the block the stack's agents use win; the others are reported and left alone."""
    notes: list[str] = []
    agents: dict[str, LiveAgent] = {}
    for a in live.agents:
        address = a.mark.get("address")
        if tag not in a.tags or a.mark.get("stack") != stack:
            continue
        if not isinstance(address, str) or not address.startswith("agent."):
            continue
        if address in agents:
            notes.append(
                f"{address}: more than one agent carries this address "
                f"({agents[address].id}, {a.id}); using {agents[address].id}, the other is left "
                "alone"
            )
            continue
        agents[address] = a

    in_use = {i for a in agents.values() for i in a.block_ids}
    candidates: dict[str, list[LiveBlock]] = {}
    for b in live.blocks.values():
        address = b.mark.get("address")
        if (
            b.id in live.tagged_block_ids
            and b.mark.get("stack") == stack
            and isinstance(address, str)
            and address.startswith("block.")
        ):
            candidates.setdefault(address, []).append(b)
    blocks: dict[str, LiveBlock] = {}
    for address, found in candidates.items():
        found.sort(key=lambda b: (b.id not in in_use, b.id))
        blocks[address] = found[0]
        if len(found) > 1:
            others = ", ".join(b.id for b in found[1:])
            notes.append(
                f"{address}: more than one block carries this address; using {found[0].id}, "
                f"the other ({others}) is left alone"
            )

    shared_ids = {b.id for b in blocks.values()}
    owned: dict[str, LiveBlock] = {}
    for address, a in agents.items():
        for i in a.block_ids:
            own = live.blocks.get(i)
            if own is not None and i in live.tagged_block_ids and i not in shared_ids:
                owned[owned_block_address(address, own.label)] = own
    return Matched(blocks, agents, owned, tuple(notes))


def _block_fingerprint(b: LiveBlock) -> str:
    # The value is left out: agents write it all the time, and no change depends on it.
    return digest(
        [b.id, b.label, b.description, b.limit, b.read_only, dict(b.metadata), sorted(b.tags)]
    )


def _agent_fingerprint(a: LiveAgent) -> str:
    return digest(
        [
            a.id, a.name, a.description, a.system, a.model, a.embedding, sorted(a.tags),
            dict(a.metadata), sorted(t.id for t in a.tools), sorted(a.block_ids),
        ]
    )  # fmt: skip


def fingerprints(matched: Matched, live: Live, creates: Mapping[str, str]) -> dict[str, str]:
    """Fingerprint of every matched address; for `creates` (address -> agent name, or "" for a
    block), ABSENT, or the ids of unmarked agents that now hold the name."""
    out = {a: _block_fingerprint(b) for a, b in matched.blocks.items()}
    out.update({a: _block_fingerprint(b) for a, b in matched.owned.items()})
    out.update({a: _agent_fingerprint(ag) for a, ag in matched.agents.items()})
    for address, name in creates.items():
        if address not in out:
            clash = live.clashes.get(name) if name else None
            out[address] = f"clash:{','.join(clash)}" if clash else ABSENT
    return out


# ---------------------------------------------------------------------------------------------
# Marks and digests


def _user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != MARK_KEY}


def block_applied(db: DesiredBlock) -> dict[str, str]:
    """Digests of the configuration letta-apply writes for a block."""
    out = {"label": digest(db.label)}
    for k in _BLOCK_FIELDS:
        if k in db.config:
            out[k] = digest(db.config[k])
    if "metadata" in db.config:
        out["metadata"] = digest(dict(db.config["metadata"]))
    if "tags" in db.config:
        out["tags"] = digest(sorted(db.config["tags"]))
    return out


def agent_applied(da: DesiredAgent) -> dict[str, Any]:
    """Digests of the configuration letta-apply writes for an agent, the shared blocks it
    attaches (as addresses), and the configuration of its own blocks."""
    out: dict[str, Any] = {"name": digest(da.name)}
    for k in _AGENT_FIELDS:
        if k in da.config:
            out[k] = digest(da.config[k])
    if "metadata" in da.config:
        out["metadata"] = digest(dict(da.config["metadata"]))
    if "tags" in da.config:
        out["tags"] = digest(sorted(da.config["tags"]))
    if "tools" in da.config:
        out["tools"] = digest(sorted(da.config["tools"]))
    out["blocks"] = sorted(da.blocks)
    out["memory_blocks"] = {b.label: block_applied(b) for b in da.memory_blocks}
    return out


def _mark(stack: str, address: str, applied: Mapping[str, Any]) -> dict[str, Any]:
    return {MARK_KEY: {"stack": stack, "address": address, "applied": dict(applied)}}


def _why(applied: Mapping[str, Any] | None, name: str, live_value: Any) -> str:
    if not applied or name not in applied:
        return MANIFEST
    return MANIFEST if applied[name] == digest(live_value) else DRIFT


def _dict_diffs(
    name: str, before: Mapping[str, Any], after: Mapping[str, Any], why: str
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


def _whys(diffs: Iterable[FieldDiff]) -> tuple[str, ...]:
    return tuple(sorted({d.why for d in diffs})) or (MANIFEST,)


# ---------------------------------------------------------------------------------------------
# The planner


class _Planner:
    def __init__(self, desired: Desired, live: Live) -> None:
        self.desired = desired
        self.live = live
        self.stack = desired.stack
        self.tag = desired.tag
        self.changes: list[Change] = []
        self.drift: list[Drift] = []
        self.problems: list[Problem] = []
        m = match(self.stack, self.tag, live)
        self.matched = m
        self.notes: list[str] = list(m.notes)
        self.blocks = m.blocks
        self.agents = m.agents
        self.ids: dict[str, str] = {a: b.id for a, b in m.blocks.items()}
        self.ids.update({a: ag.id for a, ag in m.agents.items()})

    # -- blocks --------------------------------------------------------------------------------

    def _block_body(self, db: DesiredBlock, *, mark: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"label": db.label, "value": db.value}
        for k in _BLOCK_FIELDS:
            if k in db.config:
                body[k] = db.config[k]
        metadata = dict(db.config.get("metadata", {}))
        if mark:
            metadata.update(_mark(self.stack, db.address, block_applied(db)))
        if metadata:
            body["metadata"] = metadata
        body["tags"] = sorted({*db.config.get("tags", ()), self.tag})
        return body

    def _create_block(self, db: DesiredBlock) -> Change:
        body = self._block_body(db, mark=True)
        diffs = tuple(
            FieldDiff(k, None, v, NEW) for k, v in body.items() if k not in ("metadata", "tags")
        ) + self._declared_extras(db.config)
        return Change(db.address, CREATE, diffs=diffs, body=body, why=(NEW,))

    @staticmethod
    def _declared_extras(config: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
        return tuple(
            FieldDiff(k, None, config[k], NEW) for k in ("tags", "metadata") if k in config
        )

    def _update_block(
        self, db: DesiredBlock, lb: LiveBlock, applied: Mapping[str, Any] | None
    ) -> None:
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}

        def differs(name: str, live_value: Any, declared: Any) -> str:
            why = _why(applied, name, live_value)
            diffs.append(FieldDiff(name, live_value, declared, why))
            return why

        if lb.label != db.label:
            differs("label", lb.label, db.label)
            body["label"] = db.label
        for k in _BLOCK_FIELDS:
            if k in db.config and getattr(lb, k) != db.config[k]:
                differs(k, getattr(lb, k), db.config[k])
                body[k] = db.config[k]
        live_md = _user_metadata(lb.metadata)
        if "metadata" in db.config and live_md != db.config["metadata"]:
            why = _why(applied, "metadata", live_md)
            diffs.extend(_dict_diffs("metadata", live_md, db.config["metadata"], why))
        if "tags" in db.config and lb.id in self.live.tagged_block_ids:
            live_tags = sorted(set(lb.tags) - {self.tag})
            if live_tags != sorted(db.config["tags"]):
                differs("tags", live_tags, sorted(db.config["tags"]))
                body["tags"] = sorted({*db.config["tags"], self.tag})
        if lb.value != db.value:
            self.drift.append(
                Drift(db.address, "value", db.value, lb.value, MEMORY, db.enforce_value)
            )
            if db.enforce_value:
                diffs.append(FieldDiff("value", lb.value, db.value, MEMORY))
                body["value"] = db.value
        self._config_drift(db.address, diffs)
        if diffs:
            user_md = db.config.get("metadata", live_md)
            body["metadata"] = {**user_md, **_mark(self.stack, db.address, block_applied(db))}
            self.changes.append(
                Change(db.address, UPDATE, lb.id, tuple(diffs), body, why=_whys(diffs))
            )

    def _config_drift(self, address: str, diffs: Iterable[FieldDiff]) -> None:
        for d in diffs:
            if d.why == DRIFT:
                self.drift.append(Drift(address, d.field, d.after, d.before, CONFIGURATION, True))

    # -- agents --------------------------------------------------------------------------------

    def _tool_ids(self, da: DesiredAgent, la: LiveAgent | None) -> list[str] | None:
        """Tool ids the agent should end with, or None when a declared tool does not exist."""
        ids: list[str] = [t.id for t in la.tools if t.is_base] if la else []
        unknown = []
        for name in da.config["tools"]:
            tid = self.live.tools.get(name)
            if tid is None:
                unknown.append(name)
            elif tid not in ids:
                ids.append(tid)
        if unknown:
            self.problems.append(
                Problem(
                    da.address,
                    f"unknown tool{'s' if len(unknown) > 1 else ''} "
                    + ", ".join(map(repr, unknown)),
                    "create the tool on the server first, or fix its name",
                )
            )
            return None
        return ids

    def _create_agent(self, da: DesiredAgent) -> None:
        if da.name in self.live.clashes:
            ids = ", ".join(self.live.clashes[da.name])
            self.problems.append(
                Problem(
                    da.address,
                    f"an agent named '{da.name}' already exists on the server and is not managed "
                    f"by stack '{self.stack}' ({ids})",
                    "give the manifest's agent another `name:`, or rename or delete the existing "
                    "agent; adopting existing agents is not supported yet",
                )
            )
            return
        body: dict[str, Any] = {"name": da.name}
        for k in _AGENT_FIELDS:
            if k in da.config:
                body[k] = da.config[k]
        body["tags"] = sorted({*da.config.get("tags", ()), self.tag})
        body["metadata"] = {
            **da.config.get("metadata", {}),
            **_mark(self.stack, da.address, agent_applied(da)),
        }
        body["memory_blocks"] = [self._block_body(b, mark=False) for b in da.memory_blocks]
        body["block_ids"] = [{"$ref": a} for a in da.blocks]
        if "tools" in da.config:
            tool_ids = self._tool_ids(da, None)
            if tool_ids is None:
                return
            body["tool_ids"] = tool_ids
        if da.include_base_tools is not None:
            body["include_base_tools"] = da.include_base_tools
        diffs = [FieldDiff(k, None, body[k], NEW) for k in ("name", *_AGENT_FIELDS) if k in body]
        diffs.extend(self._declared_extras(da.config))
        if "tools" in da.config:
            diffs.append(FieldDiff("tools", None, list(da.config["tools"]), NEW))
        if da.include_base_tools is not None:
            diffs.append(FieldDiff("include_base_tools", None, da.include_base_tools, NEW))
        for b in da.memory_blocks:
            diffs.append(FieldDiff(f"memory_blocks.{b.label}.value", None, b.value, NEW))
            diffs.extend(
                FieldDiff(f"memory_blocks.{b.label}.{k}", None, v, NEW) for k, v in b.config.items()
            )
        if da.blocks:
            diffs.append(FieldDiff("blocks", None, list(da.blocks), NEW))
        self.changes.append(Change(da.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,)))

    def _update_agent(self, da: DesiredAgent, la: LiveAgent) -> None:
        applied = la.mark.get("applied")
        applied = applied if isinstance(applied, Mapping) else None
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}

        def differs(name: str, live_value: Any, declared: Any) -> None:
            diffs.append(FieldDiff(name, live_value, declared, _why(applied, name, live_value)))

        if la.name != da.name:
            differs("name", la.name, da.name)
            body["name"] = da.name
        for k in _AGENT_FIELDS:
            if k in da.config and getattr(la, k) != da.config[k]:
                differs(k, getattr(la, k), da.config[k])
                body[k] = da.config[k]
        if "tags" in da.config:
            live_tags = sorted(set(la.tags) - {self.tag})
            if live_tags != sorted(da.config["tags"]):
                differs("tags", live_tags, sorted(da.config["tags"]))
                body["tags"] = sorted({*da.config["tags"], self.tag})
        live_md = _user_metadata(la.metadata)
        if "metadata" in da.config and live_md != da.config["metadata"]:
            why = _why(applied, "metadata", live_md)
            diffs.extend(_dict_diffs("metadata", live_md, da.config["metadata"], why))
        if "tools" in da.config:
            tool_ids = self._tool_ids(da, la)
            if tool_ids is not None and set(tool_ids) != {t.id for t in la.tools}:
                shown = sorted(
                    t.name for t in la.tools if not t.is_base or t.name in da.config["tools"]
                )
                differs("tools", shown, sorted(da.config["tools"]))
                body["tool_ids"] = tool_ids
        self._config_drift(da.address, diffs)
        if diffs:
            user_md = da.config.get("metadata", live_md)
            body["metadata"] = {**user_md, **_mark(self.stack, da.address, agent_applied(da))}
            self.changes.append(
                Change(da.address, UPDATE, la.id, tuple(diffs), body, why=_whys(diffs))
            )
        self._agent_blocks(da, la, applied)

    def _agent_blocks(
        self, da: DesiredAgent, la: LiveAgent, applied: Mapping[str, Any] | None
    ) -> None:
        attached = [self.live.blocks[i] for i in la.block_ids if i in self.live.blocks]
        by_label = {b.label: b for b in attached}
        shared_ids = {b.id: addr for addr, b in self.blocks.items()}
        owned_applied = (applied or {}).get("memory_blocks") or {}

        for db in da.memory_blocks:
            lb = by_label.get(db.label)
            if lb is None:
                self.changes.append(self._create_block(db))
                self.changes.append(Change(da.address, ATTACH, la.id, block=db.address, why=(NEW,)))
            elif lb.id in self.live.tagged_block_ids and lb.id not in shared_ids:
                self.ids[db.address] = lb.id
                # Blocks created inline with an agent carry no mark of their own until
                # letta-apply updates them; until then the agent's mark speaks for them.
                own = lb.mark.get("applied")
                self._update_block(
                    db, lb, own if isinstance(own, Mapping) else owned_applied.get(db.label)
                )
            else:
                owner = shared_ids.get(lb.id, "a block this stack does not manage")
                self.problems.append(
                    Problem(
                        db.address,
                        f"the agent already has a block labelled '{db.label}' ({lb.id}, {owner})",
                        "detach that block from the agent or give the declared block another label",
                    )
                )

        was = (
            set(applied["blocks"]) if applied and isinstance(applied.get("blocks"), list) else None
        )
        wanted = set(da.blocks)
        for addr in da.blocks:
            lb = self.blocks.get(addr)
            if lb is not None and lb.id in la.block_ids:
                continue
            label = self.desired.blocks[addr].label
            other = by_label.get(label)
            if other is not None and other.id not in shared_ids:
                self.problems.append(
                    Problem(
                        da.address,
                        f"cannot attach {addr}: the agent already has a block labelled "
                        f"'{label}' ({other.id})",
                        "detach that block from the agent or give the shared block another label",
                    )
                )
                continue
            # Declared and attached before, missing now: someone detached it on the server.
            why = DRIFT if was is not None and addr in was and lb is not None else MANIFEST
            self.changes.append(Change(da.address, ATTACH, la.id, block=addr, why=(why,)))
            if why == DRIFT:
                self.drift.append(
                    Drift(
                        da.address, f"blocks[{addr}]", "attached", "detached", CONFIGURATION, True
                    )
                )
        for b in attached:
            shared = shared_ids.get(b.id)
            if shared is not None and shared not in wanted:
                # Never attached by letta-apply: someone attached it on the server.
                why = DRIFT if was is not None and shared not in was else MANIFEST
                self.changes.append(Change(da.address, DETACH, la.id, block=shared, why=(why,)))
                if why == DRIFT:
                    self.drift.append(
                        Drift(
                            da.address, f"blocks[{shared}]", "detached", "attached",
                            CONFIGURATION, True,
                        )
                    )  # fmt: skip

        declared_labels = {b.label for b in da.memory_blocks}
        for b in attached:
            if (
                b.id in self.live.tagged_block_ids
                and b.id not in shared_ids
                and b.label not in declared_labels
            ):
                self.notes.append(
                    f"{da.address}: its block '{b.label}' ({b.id}) is no longer declared; "
                    "it is kept"
                )

    # -- the whole plan ------------------------------------------------------------------------

    def run(self) -> Plan:
        for addr, db in self.desired.blocks.items():
            lb = self.blocks.get(addr)
            if lb is None:
                self.changes.append(self._create_block(db))
            else:
                own = lb.mark.get("applied")
                self._update_block(db, lb, own if isinstance(own, Mapping) else None)
        for addr, da in self.desired.agents.items():
            la = self.agents.get(addr)
            if la is None:
                self._create_agent(da)
            else:
                self._update_agent(da, la)
        for addr in [*self.blocks, *self.agents]:
            if addr not in self.desired.blocks and addr not in self.desired.agents:
                self.notes.append(
                    f"{addr} ({self.ids[addr]}) is no longer declared; it is kept "
                    "(nothing is deleted)"
                )
        refused = {p.address for p in self.problems}

        def is_refused(address: str | None) -> bool:
            # A refused agent takes its own blocks with it.
            return address is not None and any(
                address == r or address.startswith(r + ".") for r in refused
            )

        changes = [c for c in self.changes if not is_refused(c.address) and not is_refused(c.block)]
        changes.sort(key=lambda c: (c.stage, c.address, c.block or "", c.action))
        creates = {
            c.address: (self.desired.agents[c.address].name if c.is_agent else "")
            for c in changes
            if c.action == CREATE
        }
        prints = fingerprints(self.matched, self.live, creates)
        return Plan(
            stack=self.stack,
            changes=tuple(changes),
            drift=tuple(sorted(self.drift, key=lambda d: (d.address, d.field))),
            problems=tuple(sorted(self.problems, key=lambda p: p.address)),
            notes=tuple(sorted(self.notes)),
            ids=dict(sorted(self.ids.items())),
            fingerprints={a: prints[a] for a in sorted({c.address for c in changes})},
        )


def make_plan(desired: Desired, live: Live) -> Plan:
    """Compare desired with live and return the changes that converge the server."""
    return _Planner(desired, live).run()


def stale(plan: Plan, live: Live, tag: str) -> list[str]:
    """Addresses whose live state differs from what `plan` was computed from."""
    creates = {
        c.address: str(c.body.get("name", "")) if c.is_agent else ""
        for c in plan.changes
        if c.action == CREATE
    }
    now = fingerprints(match(plan.stack, tag, live), live, creates)
    return [a for a, fp in plan.fingerprints.items() if now.get(a, ABSENT) != fp]


def restrict(plan: Plan, desired: Desired, targets: Iterable[str]) -> Plan:
    """Only the changes of `targets` and what they depend on: an agent's own blocks and the
    shared blocks it uses. Drift and notes of other resources are dropped too."""
    keep: set[str] = set()
    for t in targets:
        keep.add(t)
        agent = desired.agents.get(t)
        if agent is not None:
            keep.update(agent.blocks)

    def kept(address: str) -> bool:
        return any(address == k or address.startswith(k + ".") for k in keep)

    changes = tuple(c for c in plan.changes if kept(c.address))
    return replace(
        plan,
        changes=changes,
        drift=tuple(d for d in plan.drift if kept(d.address)),
        problems=tuple(p for p in plan.problems if kept(p.address)),
        fingerprints={a: f for a, f in plan.fingerprints.items() if kept(a)},
    )
