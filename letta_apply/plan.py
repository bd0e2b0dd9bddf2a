"""Decide what would change: a pure function of the desired and the live state. No I/O.

Live resources are matched to the manifest only by their marks (stack tag plus the stack and
address in `metadata`); anything without this stack's marks is never changed. Fields the manifest
leaves out are never compared. A block's `value` is only what it starts with: a different live
value is reported as drift and kept, unless the block sets `enforce_value`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
    marks,
)

CREATE, UPDATE, ATTACH, DETACH = "create", "update", "attach", "detach"


@dataclass(frozen=True)
class FieldDiff:
    """One field of one resource: `before` is live (None on create), `after` is what apply sets."""

    field: str
    before: Any
    after: Any


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
    reason: str = ""

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
    """A difference made on the server outside the manifest."""

    address: str
    field: str
    declared: Any
    live: Any
    kind: str  # "memory": a block value written by agents or by hand
    restored: bool  # apply writes the declared value back (enforce_value)


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

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


def _user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != MARK_KEY}


def _dict_diffs(name: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[FieldDiff]:
    """Field-level differences inside a mapping, e.g. metadata['team']: 'a' -> 'b'."""
    dd = DeepDiff(dict(before), dict(after), verbose_level=2, view="tree")
    out = []
    for items in dd.values():
        for item in items:
            path = item.path(root=name)
            t1 = None if _missing(item.t1) else item.t1
            t2 = None if _missing(item.t2) else item.t2
            out.append(FieldDiff(path, t1, t2))
    return sorted(out, key=lambda d: d.field)


def _missing(value: Any) -> bool:
    return type(value).__name__ == "NotPresent"


class _Planner:
    def __init__(self, desired: Desired, live: Live) -> None:
        self.desired = desired
        self.live = live
        self.stack = desired.stack
        self.tag = desired.tag
        self.changes: list[Change] = []
        self.drift: list[Drift] = []
        self.problems: list[Problem] = []
        self.notes: list[str] = []
        self.agents = self._ours_agents()
        self.blocks = self._ours_blocks()
        self.ids: dict[str, str] = {a: b.id for a, b in self.blocks.items()}
        self.ids.update({a: ag.id for a, ag in self.agents.items()})

    # -- matching by marks ---------------------------------------------------------------------

    def _ours_blocks(self) -> dict[str, LiveBlock]:
        # Should two blocks carry one address, the one the stack's agents use wins.
        in_use = {i for a in self.agents.values() for i in a.block_ids}
        candidates: dict[str, list[LiveBlock]] = {}
        for b in self.live.blocks.values():
            address = b.mark.get("address")
            if (
                b.id in self.live.tagged_block_ids
                and b.mark.get("stack") == self.stack
                and isinstance(address, str)
                and address.startswith("block.")
            ):
                candidates.setdefault(address, []).append(b)
        out: dict[str, LiveBlock] = {}
        for address, blocks in candidates.items():
            blocks.sort(key=lambda b: (b.id not in in_use, b.id))
            out[address] = blocks[0]
            if len(blocks) > 1:
                others = ", ".join(b.id for b in blocks[1:])
                self.notes.append(
                    f"{address}: more than one block carries this address; using "
                    f"{blocks[0].id}, the other ({others}) is left alone"
                )
        return out

    def _ours_agents(self) -> dict[str, LiveAgent]:
        out: dict[str, LiveAgent] = {}
        for a in self.live.agents:
            address = a.mark.get("address")
            if self.tag not in a.tags or a.mark.get("stack") != self.stack:
                continue
            if not isinstance(address, str) or not address.startswith("agent."):
                continue
            if address in out:
                self.notes.append(
                    f"{address}: more than one agent carries this address "
                    f"({out[address].id}, {a.id}); using {out[address].id}, the other is left alone"
                )
                continue
            out[address] = a
        return out

    # -- blocks --------------------------------------------------------------------------------

    def _block_body(self, db: DesiredBlock, *, mark: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"label": db.label, "value": db.value}
        for k in ("description", "limit", "read_only"):
            if k in db.config:
                body[k] = db.config[k]
        metadata = dict(db.config.get("metadata", {}))
        if mark:
            metadata.update(marks(self.stack, db.address))
        if metadata:
            body["metadata"] = metadata
        body["tags"] = sorted({*db.config.get("tags", ()), self.tag})
        return body

    def _create_block(self, db: DesiredBlock, reason: str) -> Change:
        body = self._block_body(db, mark=True)
        diffs = tuple(
            FieldDiff(k, None, v) for k, v in body.items() if k not in ("metadata", "tags")
        ) + self._declared_extras(db.config)
        return Change(db.address, CREATE, diffs=diffs, body=body, reason=reason)

    @staticmethod
    def _declared_extras(config: Mapping[str, Any]) -> tuple[FieldDiff, ...]:
        return tuple(FieldDiff(k, None, config[k]) for k in ("tags", "metadata") if k in config)

    def _update_block(self, db: DesiredBlock, lb: LiveBlock, *, mark: bool) -> None:
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}
        if lb.label != db.label:
            diffs.append(FieldDiff("label", lb.label, db.label))
            body["label"] = db.label
        for k in ("description", "limit", "read_only"):
            if k in db.config and getattr(lb, k) != db.config[k]:
                diffs.append(FieldDiff(k, getattr(lb, k), db.config[k]))
                body[k] = db.config[k]
        if "metadata" in db.config:
            live_md = _user_metadata(lb.metadata)
            if live_md != db.config["metadata"]:
                diffs.extend(_dict_diffs("metadata", live_md, db.config["metadata"]))
                body["metadata"] = {
                    **db.config["metadata"],
                    **(marks(self.stack, db.address) if mark else {}),
                }
        if "tags" in db.config and lb.id in self.live.tagged_block_ids:
            live_tags = sorted(set(lb.tags) - {self.tag})
            if live_tags != sorted(db.config["tags"]):
                diffs.append(FieldDiff("tags", live_tags, sorted(db.config["tags"])))
                body["tags"] = sorted({*db.config["tags"], self.tag})
        if lb.value != db.value:
            self.drift.append(
                Drift(db.address, "value", db.value, lb.value, "memory", db.enforce_value)
            )
            if db.enforce_value:
                diffs.append(FieldDiff("value", lb.value, db.value))
                body["value"] = db.value
        if body:
            reason = "restore the enforced value" if list(body) == ["value"] else "manifest differs"
            self.changes.append(
                Change(db.address, UPDATE, lb.id, tuple(diffs), body, reason=reason)
            )

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
        for k in ("description", "system", "model", "embedding"):
            if k in da.config:
                body[k] = da.config[k]
        body["tags"] = sorted({*da.config.get("tags", ()), self.tag})
        body["metadata"] = {**da.config.get("metadata", {}), **marks(self.stack, da.address)}
        body["memory_blocks"] = [self._block_body(b, mark=False) for b in da.memory_blocks]
        body["block_ids"] = [{"$ref": a} for a in da.blocks]
        if "tools" in da.config:
            tool_ids = self._tool_ids(da, None)
            if tool_ids is None:
                return
            body["tool_ids"] = tool_ids
        if da.include_base_tools is not None:
            body["include_base_tools"] = da.include_base_tools
        diffs = [
            FieldDiff(k, None, body[k])
            for k in ("name", "description", "system", "model", "embedding")
            if k in body
        ]
        diffs.extend(self._declared_extras(da.config))
        if "tools" in da.config:
            diffs.append(FieldDiff("tools", None, list(da.config["tools"])))
        if da.include_base_tools is not None:
            diffs.append(FieldDiff("include_base_tools", None, da.include_base_tools))
        for b in da.memory_blocks:
            diffs.append(FieldDiff(f"memory_blocks.{b.label}.value", None, b.value))
            diffs.extend(
                FieldDiff(f"memory_blocks.{b.label}.{k}", None, v) for k, v in b.config.items()
            )
        if da.blocks:
            diffs.append(FieldDiff("blocks", None, list(da.blocks)))
        self.changes.append(
            Change(da.address, CREATE, diffs=tuple(diffs), body=body, reason="not on the server")
        )

    def _update_agent(self, da: DesiredAgent, la: LiveAgent) -> None:
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}
        if la.name != da.name:
            diffs.append(FieldDiff("name", la.name, da.name))
            body["name"] = da.name
        for k in ("description", "system", "model", "embedding"):
            if k in da.config and getattr(la, k) != da.config[k]:
                diffs.append(FieldDiff(k, getattr(la, k), da.config[k]))
                body[k] = da.config[k]
        if "tags" in da.config:
            live_tags = sorted(set(la.tags) - {self.tag})
            if live_tags != sorted(da.config["tags"]):
                diffs.append(FieldDiff("tags", live_tags, sorted(da.config["tags"])))
                body["tags"] = sorted({*da.config["tags"], self.tag})
        if "metadata" in da.config:
            live_md = _user_metadata(la.metadata)
            if live_md != da.config["metadata"]:
                diffs.extend(_dict_diffs("metadata", live_md, da.config["metadata"]))
                body["metadata"] = {**da.config["metadata"], **marks(self.stack, da.address)}
        if "tools" in da.config:
            tool_ids = self._tool_ids(da, la)
            if tool_ids is not None and set(tool_ids) != {t.id for t in la.tools}:
                shown = sorted(
                    t.name for t in la.tools if not t.is_base or t.name in da.config["tools"]
                )
                diffs.append(FieldDiff("tools", shown, sorted(da.config["tools"])))
                body["tool_ids"] = tool_ids
        if body:
            self.changes.append(
                Change(da.address, UPDATE, la.id, tuple(diffs), body, reason="manifest differs")
            )
        self._agent_blocks(da, la)

    def _agent_blocks(self, da: DesiredAgent, la: LiveAgent) -> None:
        attached = [self.live.blocks[i] for i in la.block_ids if i in self.live.blocks]
        by_label = {b.label: b for b in attached}
        shared_ids = {b.id: addr for addr, b in self.blocks.items()}

        for db in da.memory_blocks:
            lb = by_label.get(db.label)
            if lb is None:
                self.changes.append(self._create_block(db, "declared, not on the agent"))
                self.changes.append(
                    Change(
                        da.address, ATTACH, la.id, block=db.address, reason="new block of the agent"
                    )
                )
            elif lb.id in self.live.tagged_block_ids and lb.id not in shared_ids:
                self.ids[db.address] = lb.id
                self._update_block(db, lb, mark=False)
            else:
                owner = shared_ids.get(lb.id, "a block this stack does not manage")
                self.problems.append(
                    Problem(
                        db.address,
                        f"the agent already has a block labelled '{db.label}' ({lb.id}, {owner})",
                        "detach that block from the agent or give the declared block another label",
                    )
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
            self.changes.append(
                Change(da.address, ATTACH, la.id, block=addr, reason="listed in the agent's blocks")
            )
        for b in attached:
            shared = shared_ids.get(b.id)
            if shared is not None and shared not in wanted:
                self.changes.append(
                    Change(
                        da.address, DETACH, la.id, block=shared, reason="not in the agent's blocks"
                    )
                )

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
                self.changes.append(self._create_block(db, "not on the server"))
            else:
                self._update_block(db, lb, mark=True)
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
        return Plan(
            stack=self.stack,
            changes=tuple(changes),
            drift=tuple(sorted(self.drift, key=lambda d: (d.address, d.field))),
            problems=tuple(sorted(self.problems, key=lambda p: p.address)),
            notes=tuple(sorted(self.notes)),
            ids=dict(sorted(self.ids.items())),
        )


def make_plan(desired: Desired, live: Live) -> Plan:
    """Compare desired with live and return the changes that converge the server."""
    return _Planner(desired, live).run()
