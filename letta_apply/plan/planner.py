"""Decide what would change: a pure function of the desired and the live state. No I/O.

Live resources are matched to the manifest only by their marks (match.py); anything without
this stack's marks is never changed. Fields the manifest
leaves out are never compared. A block's `value` is only what it starts with: a different live
value is reported as drift and kept, unless the block sets `enforce_value`.

Every mark also records a digest of each field as letta-apply last wrote it (marks.py). That is
how a difference is explained without a state file: when the live field no longer matches its
digest, someone changed it on the server (drift); when it still does, the manifest changed. A
plan carries fingerprints of what it touches (fingerprint.py), so a saved plan can be checked.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from deepdiff import DeepDiff

from ..model import (
    Desired,
    DesiredAgent,
    DesiredBlock,
    DesiredTool,
    Live,
    LiveAgent,
    LiveBlock,
    LiveTool,
    owned_block_address,
    rule_tool_names,
)
from .fingerprint import ABSENT, fingerprints, marked_blanks
from .marks import (
    AGENT_FIELDS,
    BLOCK_FIELDS,
    TOOL_FIELDS,
    agent_applied,
    applied_of,
    block_applied,
    digest,
    mark_metadata,
    pip_requirements,
    rule_compared,
    rules_shown,
    sensitive_fields,
    tool_applied,
    tool_rules_update,
    user_metadata,
)
from .match import match, owned_of

CREATE, UPDATE, ATTACH, DETACH = "create", "update", "attach", "detach"
DELETE, IMPORT, REPLACE = "delete", "import", "replace"

# Why a change is in the plan.
NEW = "new"  # declared, not on the server
MANIFEST = "manifest"  # the manifest changed since letta-apply last wrote the field
DRIFT = "drift"  # the field was changed on the server, outside the manifest
MEMORY = "memory"  # a block value written by agents (restored only with enforce_value)
DESTROY = "destroy"  # `letta-apply destroy`
ADOPT = "adopt"  # named by `imports:`

CONFIGURATION = "configuration"  # kind of drift other than memory


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
    may not exist yet. For attach and detach, `address` is the agent and `block` the block (an
    address, or the id of a block the stack does not manage). A delete of an agent also deletes
    the blocks listed in `body["blocks"]` (its own; Letta leaves them behind).
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
    def is_tool(self) -> bool:
        return self.address.startswith("tool.")

    @property
    def key(self) -> str:
        """What the change's fingerprint is filed under: the live id, or the address of what
        does not exist yet."""
        return self.remote_id or self.address

    @property
    def stage(self) -> int:
        """Apply order: shared blocks and tools; agents and their own blocks; detaches (which
        free labels); attaches; then deletes, agents before blocks and tools."""
        if self.action == DELETE:
            return 5 if not self.is_agent else 4
        if self.action == DETACH:
            return 2
        if self.action == ATTACH:
            return 3
        return 1 if self.address.startswith("agent.") else 0


@dataclass(frozen=True)
class Drift:
    """A difference made on the server outside the manifest.

    `kind` is MEMORY for a block value (written by agents; kept unless enforce_value) or
    CONFIGURATION for anything else (hand edits and hand attachments; apply reverts them).
    """

    address: str
    field: str
    declared: Any
    live: Any
    kind: str
    restored: bool


@dataclass(frozen=True)
class Problem:
    """A resource apply refuses to touch, with why and what to do about it. A `fatal` problem
    (prevent_destroy) stops the whole apply before any write."""

    address: str
    message: str
    hint: str = ""
    fatal: bool = False


@dataclass(frozen=True)
class Plan:
    stack: str
    changes: tuple[Change, ...] = ()
    drift: tuple[Drift, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()
    ids: Mapping[str, str] = field(default_factory=dict)  # address -> id of what exists
    # Change.key -> fingerprint of the live state each touched resource was planned from
    fingerprints: Mapping[str, str] = field(default_factory=dict)

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def blocked(self) -> bool:
        """A fatal problem: apply must not write anything."""
        return any(p.fatal for p in self.problems)

    def count(self, action: str) -> int:
        return sum(1 for c in self.changes if c.action == action)


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
    def __init__(self, desired: Desired, live: Live, *, detach_unmanaged: bool) -> None:
        self.desired = desired
        self.live = live
        self.detach_unmanaged = detach_unmanaged
        self.stack = desired.stack
        self.tag = desired.tag
        self.changes: list[Change] = []
        self.drift: list[Drift] = []
        self.problems: list[Problem] = []
        m = match(self.stack, self.tag, live)
        self.matched = m
        self.notes: list[str] = list(m.notes)
        self.blocks: dict[str, LiveBlock] = dict(m.blocks)
        self.agents: dict[str, LiveAgent] = dict(m.agents)
        self.ids: dict[str, str] = {a: b.id for a, b in m.blocks.items()}
        self.ids.update({a: ag.id for a, ag in m.agents.items()})
        self.tools: dict[str, LiveTool] = dict(m.tools)
        self.ids.update({a: t.id for a, t in m.tools.items()})
        self.declared_tools = {t.name: t for t in desired.tools.values()}
        self.refused_tools: set[str] = set()  # addresses of declared tools apply cannot make
        # Names of the stack's tools this plan deletes: an agent must not attach them.
        self.pruned_tools = {t.name: a for a, t in m.tools.items() if a not in desired.tools}
        self.moved: dict[str, str] = {}  # to-address -> from-address, for resources moved now
        self.importing: set[str] = set()
        self.replacing: set[str] = set()

    # -- moves and imports ---------------------------------------------------------------------

    def _moves(self) -> None:
        for src, dst in self.desired.moved.items():
            kind = src.split(".", 1)[0]
            pools: dict[str, dict[str, Any]] = {"agent": self.agents, "tool": self.tools}
            pool = pools.get(kind, self.blocks)
            if src not in pool:
                continue
            if dst in pool:
                self.notes.append(
                    f"moved: {src} -> {dst}: both exist on the server; {src} is left as it is"
                )
                continue
            pool[dst] = pool.pop(src)
            self.ids[dst] = self.ids.pop(src)
            self.moved[dst] = src

    def _imports(self) -> None:
        ours = {b.id: a for a, b in self.blocks.items()}
        ours.update({ag.id: a for a, ag in self.agents.items()})
        ours.update({t.id: a for a, t in self.tools.items()})
        for imp in self.desired.imports:
            if (
                imp.address in self.blocks
                or imp.address in self.agents
                or imp.address in self.tools
            ):
                continue  # adopted already
            found = self.live.imported.get(imp.address)
            if found is None:
                continue
            if isinstance(found, str):
                self.problems.append(
                    Problem(imp.address, f"cannot import: {found}", "fix the `imports:` entry")
                )
                continue
            mark = found.mark
            if found.id in ours:
                self.problems.append(
                    Problem(
                        imp.address,
                        f"cannot import {found.id}: this stack already manages it as "
                        f"{ours[found.id]}",
                        "use `moved:` to rename an address",
                    )
                )
                continue
            if mark:
                self.problems.append(
                    Problem(
                        imp.address,
                        f"cannot import {found.id}: it belongs to stack '{mark.get('stack')}'",
                        "a resource has one owner; remove it from the other stack first",
                    )
                )
                continue
            if isinstance(found, LiveAgent):
                self.agents[imp.address] = found
            elif isinstance(found, LiveTool):
                self.tools[imp.address] = found
            else:
                self.blocks[imp.address] = found
            self.ids[imp.address] = found.id
            self.importing.add(imp.address)

    # -- blocks --------------------------------------------------------------------------------

    def _block_body(self, db: DesiredBlock, *, mark: bool) -> dict[str, Any]:
        body: dict[str, Any] = {"label": db.label, "value": db.value}
        for k in BLOCK_FIELDS:
            if k in db.config:
                body[k] = db.config[k]
        metadata = dict(db.config.get("metadata", {}))
        if mark:
            metadata.update(mark_metadata(self.stack, db.address, block_applied(db)))
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
        self,
        db: DesiredBlock,
        lb: LiveBlock,
        applied: Mapping[str, Any] | None,
        *,
        adopt: bool = False,
    ) -> None:
        """Plan the update of a block; with `adopt`, the block is imported: it gets the stack's
        tag and marks in the same request."""
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}
        ignore = db.ignore

        def differs(name: str, live_value: Any, declared: Any) -> None:
            diffs.append(FieldDiff(name, live_value, declared, _why(applied, name, live_value)))

        moved_from = self.moved.get(db.address)
        if moved_from:
            diffs.append(FieldDiff("address", moved_from, db.address, MANIFEST))
        if lb.label != db.label and "label" not in ignore:
            differs("label", lb.label, db.label)
            body["label"] = db.label
        for k in BLOCK_FIELDS:
            if k in db.config and k not in ignore and getattr(lb, k) != db.config[k]:
                differs(k, getattr(lb, k), db.config[k])
                body[k] = db.config[k]
        live_md = user_metadata(lb.metadata)
        if (
            "metadata" in db.config
            and "metadata" not in ignore
            and live_md != db.config["metadata"]
        ):
            why = _why(applied, "metadata", live_md)
            diffs.extend(_dict_diffs("metadata", live_md, db.config["metadata"], why))
        live_tags = sorted(set(lb.tags) - {self.tag})
        declared_tags = sorted(db.config.get("tags", ()))
        tracked = "tags" in db.config and "tags" not in ignore
        if (
            tracked
            and (lb.id in self.live.tagged_block_ids or adopt)
            and live_tags != declared_tags
        ):
            differs("tags", live_tags, declared_tags)
            body["tags"] = sorted({*declared_tags, self.tag})
        if lb.value != db.value and "value" not in ignore:
            self.drift.append(
                Drift(db.address, "value", db.value, lb.value, MEMORY, db.enforce_value)
            )
            if db.enforce_value:
                diffs.append(FieldDiff("value", lb.value, db.value, MEMORY))
                body["value"] = db.value
        protected = bool((applied or {}).get("prevent_destroy"))
        if protected != db.prevent_destroy and (lb.mark or adopt):
            diffs.append(FieldDiff("prevent_destroy", protected, db.prevent_destroy, MANIFEST))
        self._config_drift(db.address, diffs)
        if adopt:
            # Tags go in whole (the server replaces the set): the live ones plus the stack's.
            body.setdefault("tags", sorted({*live_tags, self.tag}))
        if diffs or adopt:
            user_md = db.config.get("metadata", live_md)
            body["metadata"] = {
                **user_md,
                **mark_metadata(self.stack, db.address, block_applied(db)),
            }
            action, whys = (IMPORT, (ADOPT,)) if adopt else (UPDATE, _whys(diffs))
            self.changes.append(Change(db.address, action, lb.id, tuple(diffs), body, why=whys))

    def _config_drift(self, address: str, diffs: Iterable[FieldDiff]) -> None:
        for d in diffs:
            if d.why == DRIFT:
                self.drift.append(Drift(address, d.field, d.after, d.before, CONFIGURATION, True))

    # -- tools ---------------------------------------------------------------------------------

    def _tool_body(self, dt: DesiredTool) -> dict[str, Any]:
        """What creates the tool. `name` and `metadata_` are not part of Letta's create request:
        apply checks the name and writes the marks right after."""
        body: dict[str, Any] = {"source_code": dt.source_code, "name": dt.name}
        for k in TOOL_FIELDS:
            if k in dt.config:
                body[k] = dt.config[k]
        if "pip_requirements" in dt.config:
            body["pip_requirements"] = pip_requirements(dt.config["pip_requirements"])
        body["tags"] = sorted({*dt.config.get("tags", ()), self.tag})
        body["metadata_"] = mark_metadata(self.stack, dt.address, tool_applied(dt))
        return body

    def _create_tool(self, dt: DesiredTool) -> None:
        holder = self.live.tools.get(dt.name)
        if holder is not None:
            self.refused_tools.add(dt.address)
            self.problems.append(
                Problem(
                    dt.address,
                    f"a tool named '{dt.name}' already exists on the server and is not managed "
                    f"by stack '{self.stack}' ({holder}); creating it would overwrite that tool",
                    f"adopt it with an `imports:` entry ({{to: {dt.address}, name: {dt.name}}}), "
                    f"or rename the function in {dt.source_file}",
                )
            )
            return
        body = self._tool_body(dt)
        diffs = [
            FieldDiff("name", None, dt.name, NEW),
            FieldDiff("source_file", None, dt.source_file, NEW),
        ]
        diffs += [
            FieldDiff(k, None, body[k], NEW)
            for k in (*TOOL_FIELDS, "pip_requirements")
            if k in body
        ]
        if "tags" in dt.config:
            diffs.append(FieldDiff("tags", None, sorted(dt.config["tags"]), NEW))
        diffs.append(FieldDiff("source_code", None, dt.source_code, NEW))
        self.changes.append(Change(dt.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,)))

    def _update_tool(
        self, dt: DesiredTool, lt: LiveTool, *, finish: bool = False, adopt: bool = False
    ) -> None:
        """Plan the update of a tool in place (same id). With `finish`, the tool was created by
        an interrupted apply and has no marks yet: they are written now. With `adopt`, the tool
        is imported: it gets the stack's tag and marks in the same request."""
        applied = None if finish or adopt else applied_of(lt)
        ignore = dt.ignore
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}

        def differs(name: str, live_value: Any, declared: Any) -> None:
            diffs.append(FieldDiff(name, live_value, declared, _why(applied, name, live_value)))

        moved_from = self.moved.get(dt.address)
        if moved_from:
            diffs.append(FieldDiff("address", moved_from, dt.address, MANIFEST))
        if "source_code" not in ignore and (lt.source_code != dt.source_code or lt.name != dt.name):
            if lt.name != dt.name:
                differs("name", lt.name, dt.name)
            if lt.source_code != dt.source_code:
                differs("source_code", lt.source_code, dt.source_code)
            # The server derives the tool's name and JSON schema from the source: apply asks it
            # for the schema of the new source and sends both (a PATCH alone keeps the old one).
            body["source_code"] = dt.source_code
        for k in TOOL_FIELDS:
            if k in dt.config and k not in ignore and getattr(lt, k) != dt.config[k]:
                differs(k, getattr(lt, k), dt.config[k])
                body[k] = dt.config[k]
        if "pip_requirements" in dt.config and "pip_requirements" not in ignore:
            live_pip = pip_requirements(lt.pip_requirements)
            want_pip = pip_requirements(dt.config["pip_requirements"])
            if live_pip != want_pip:
                differs("pip_requirements", live_pip, want_pip)
                body["pip_requirements"] = want_pip
        live_tags = sorted(set(lt.tags) - {self.tag})
        if "tags" in dt.config and "tags" not in ignore and live_tags != sorted(dt.config["tags"]):
            differs("tags", live_tags, sorted(dt.config["tags"]))
            body["tags"] = sorted({*dt.config["tags"], self.tag})
        protected = bool((applied or {}).get("prevent_destroy"))
        if protected != dt.prevent_destroy and lt.mark:
            diffs.append(FieldDiff("prevent_destroy", protected, dt.prevent_destroy, MANIFEST))
        self._config_drift(dt.address, diffs)
        if adopt:
            # Tags go in whole (the server replaces the set): the live ones plus the stack's.
            body.setdefault("tags", sorted({*live_tags, self.tag}))
        if diffs or finish or adopt:
            body["metadata_"] = {
                **user_metadata(lt.metadata),
                **mark_metadata(self.stack, dt.address, tool_applied(dt)),
            }
            action, whys = (IMPORT, (ADOPT,)) if adopt else (UPDATE, _whys(diffs))
            self.changes.append(Change(dt.address, action, lt.id, tuple(diffs), body, why=whys))

    def _tools(self) -> None:
        unmarked = {t.name: t for t in self.matched.unmarked_tools}
        for address, dt in self.desired.tools.items():
            lt = self.tools.get(address)
            if lt is not None:
                self._update_tool(dt, lt, adopt=address in self.importing)
            elif dt.name in unmarked:
                lt = unmarked[dt.name]
                self.tools[address] = lt
                self.ids[address] = lt.id
                self._update_tool(dt, lt, finish=True)
            else:
                self._create_tool(dt)

    # -- agents --------------------------------------------------------------------------------

    def _tool_ids(self, da: DesiredAgent, la: LiveAgent | None) -> list[Any] | None:
        """Tool ids the agent should end with (`{"$ref": address}` for a tool this plan
        creates), or None when a tool cannot be attached (a problem was reported)."""
        ids: list[Any] = [t.id for t in la.tools if t.is_base] if la else []
        unknown = []
        for name in da.config["tools"]:
            declared = self.declared_tools.get(name)
            tid: Any
            if declared is not None and declared.address in self.refused_tools:
                self.problems.append(
                    Problem(
                        da.address,
                        f"uses {declared.address}, which apply refuses to create",
                        f"see {declared.address}",
                    )
                )
                return None
            if declared is not None:
                lt = self.tools.get(declared.address)
                tid = lt.id if lt is not None else {"$ref": declared.address}
            elif name in self.pruned_tools:
                self.problems.append(
                    Problem(
                        da.address,
                        f"uses tool '{name}', which this plan deletes ({self.pruned_tools[name]} "
                        "is no longer declared)",
                        "declare the tool again under `tools:`, or stop using it",
                    )
                )
                return None
            else:
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

    def _agent_body(self, da: DesiredAgent, **mark_extra: Any) -> dict[str, Any] | None:
        """The request that creates the agent with everything it declares, or None when it
        cannot be made (a problem was reported)."""
        body: dict[str, Any] = {"name": da.name}
        for k in AGENT_FIELDS:
            if k in da.config:
                body[k] = da.config[k]
        body["tags"] = sorted({*da.config.get("tags", ()), self.tag})
        body["metadata"] = {
            **da.config.get("metadata", {}),
            **mark_metadata(self.stack, da.address, agent_applied(da), **mark_extra),
        }
        body["memory_blocks"] = [self._block_body(b, mark=False) for b in da.memory_blocks]
        body["block_ids"] = [{"$ref": a} for a in da.blocks]
        if "tools" in da.config:
            tool_ids = self._tool_ids(da, None)
            if tool_ids is None:
                return None
            body["tool_ids"] = tool_ids
        if "tool_rules" in da.config:
            if not self._rule_tools_known(da):
                return None
            body["tool_rules"] = [rule_compared(r) for r in da.config["tool_rules"]]
        if da.include_base_tools is not None:
            body["include_base_tools"] = da.include_base_tools
        return body

    def _rule_tools_known(self, da: DesiredAgent) -> bool:
        """Every tool the agent's rules name exists, or is declared; else a problem."""
        names = {n for r in da.config["tool_rules"] for n in rule_tool_names(r)}
        unknown = sorted(
            n for n in names
            if n not in self.declared_tools and (n not in self.live.tools or n in self.pruned_tools)
        )  # fmt: skip
        if unknown:
            self.problems.append(
                Problem(
                    da.address,
                    f"tool_rules name unknown tool{'s' if len(unknown) > 1 else ''} "
                    + ", ".join(map(repr, unknown)),
                    "declare the tool under `tools:`, create it on the server, or fix its name",
                )
            )
        return not unknown

    def _create_diffs(self, da: DesiredAgent, body: Mapping[str, Any]) -> list[FieldDiff]:
        diffs = [FieldDiff(k, None, body[k], NEW) for k in ("name", *AGENT_FIELDS) if k in body]
        diffs.extend(self._declared_extras(da.config))
        if "tools" in da.config:
            diffs.append(FieldDiff("tools", None, list(da.config["tools"]), NEW))
        if "tool_rules" in da.config:
            diffs.append(FieldDiff("tool_rules", None, rules_shown(body["tool_rules"]), NEW))
        if da.include_base_tools is not None:
            diffs.append(FieldDiff("include_base_tools", None, da.include_base_tools, NEW))
        for b in da.memory_blocks:
            diffs.append(FieldDiff(f"memory_blocks.{b.label}.value", None, b.value, NEW))
            diffs.extend(
                FieldDiff(f"memory_blocks.{b.label}.{k}", None, v, NEW) for k, v in b.config.items()
            )
        if da.blocks:
            diffs.append(FieldDiff("blocks", None, list(da.blocks), NEW))
        return diffs

    def _create_agent(self, da: DesiredAgent) -> None:
        if da.name in self.live.clashes:
            ids = ", ".join(self.live.clashes[da.name])
            self.problems.append(
                Problem(
                    da.address,
                    f"an agent named '{da.name}' already exists on the server and is not managed "
                    f"by stack '{self.stack}' ({ids})",
                    "adopt it with an `imports:` entry, or give the manifest's agent another "
                    "`name:`",
                )
            )
            return
        body = self._agent_body(da)
        if body is not None:
            diffs = tuple(self._create_diffs(da, body))
            self.changes.append(Change(da.address, CREATE, diffs=diffs, body=body, why=(NEW,)))

    def _replace_agent(self, da: DesiredAgent, la: LiveAgent, reason: FieldDiff) -> None:
        """Create the new agent first (wired to its blocks in the same request), then delete the
        old one and its own blocks."""
        if self._protected(la, da):
            self._refuse_destroy(da.address, "replace")
            return
        body = self._agent_body(da, replaces=la.id)
        if body is None:
            return
        old_blocks = [b.id for b in owned_of(la, self.live, {b.id for b in self.blocks.values()})]
        body = {**body, "replaces": {"agent": la.id, "blocks": old_blocks}}
        diffs = (reason, *self._create_diffs(da, body))
        self.changes.append(Change(da.address, REPLACE, la.id, diffs, body, why=(reason.why,)))
        self.replacing.add(da.address)

    def _update_agent(self, da: DesiredAgent, la: LiveAgent) -> None:
        adopt = da.address in self.importing
        applied = applied_of(la)
        recorded = (applied or {}).get("include_base_tools")
        if (
            not adopt
            and da.include_base_tools is not None
            and recorded is not None
            and recorded != da.include_base_tools
        ):
            why = MANIFEST
            self._replace_agent(
                da, la, FieldDiff("include_base_tools", recorded, da.include_base_tools, why)
            )
            return
        ignore = da.ignore
        diffs: list[FieldDiff] = []
        body: dict[str, Any] = {}

        def differs(name: str, live_value: Any, declared: Any) -> None:
            diffs.append(FieldDiff(name, live_value, declared, _why(applied, name, live_value)))

        moved_from = self.moved.get(da.address)
        if moved_from:
            diffs.append(FieldDiff("address", moved_from, da.address, MANIFEST))
        if la.name != da.name and "name" not in ignore:
            differs("name", la.name, da.name)
            body["name"] = da.name
        for k in AGENT_FIELDS:
            if k in da.config and k not in ignore and getattr(la, k) != da.config[k]:
                differs(k, getattr(la, k), da.config[k])
                body[k] = da.config[k]
        live_tags = sorted(set(la.tags) - {self.tag})
        if "tags" in da.config and "tags" not in ignore and live_tags != sorted(da.config["tags"]):
            differs("tags", live_tags, sorted(da.config["tags"]))
            body["tags"] = sorted({*da.config["tags"], self.tag})
        live_md = user_metadata(la.metadata)
        if (
            "metadata" in da.config
            and "metadata" not in ignore
            and live_md != da.config["metadata"]
        ):
            why = _why(applied, "metadata", live_md)
            diffs.extend(_dict_diffs("metadata", live_md, da.config["metadata"], why))
        if "tools" in da.config and "tools" not in ignore:
            tool_ids = self._tool_ids(da, la)
            known = {i for i in tool_ids or () if isinstance(i, str)}
            if tool_ids is not None and (
                len(known) != len(tool_ids) or known != {t.id for t in la.tools}
            ):
                shown = sorted(
                    t.name for t in la.tools if not t.is_base or t.name in da.config["tools"]
                )
                differs("tools", shown, sorted(da.config["tools"]))
                body["tool_ids"] = tool_ids
        if "tool_rules" in da.config and "tool_rules" not in ignore and self._rule_tools_known(da):
            base = {t.name for t in la.tools if t.is_base}
            update = tool_rules_update(da.config["tool_rules"], la.tool_rules, base)
            if update is not None:
                differs("tool_rules", rules_shown(update[0]), rules_shown(da.config["tool_rules"]))
                body["tool_rules"] = update[1]
        protected = bool((applied or {}).get("prevent_destroy"))
        if protected != da.prevent_destroy and (la.mark or adopt):
            diffs.append(FieldDiff("prevent_destroy", protected, da.prevent_destroy, MANIFEST))
        self._config_drift(da.address, diffs)
        if adopt:
            body.setdefault("tags", sorted({*live_tags, self.tag}))
        if diffs or adopt:
            user_md = da.config.get("metadata", live_md)
            body["metadata"] = {
                **user_md,
                **mark_metadata(self.stack, da.address, agent_applied(da)),
            }
            action, whys = (IMPORT, (ADOPT,)) if adopt else (UPDATE, _whys(diffs))
            self.changes.append(Change(da.address, action, la.id, tuple(diffs), body, why=whys))
        self._agent_blocks(da, la, applied, adopt=adopt)

    def _agent_blocks(
        self,
        da: DesiredAgent,
        la: LiveAgent,
        applied: Mapping[str, Any] | None,
        *,
        adopt: bool,
    ) -> None:
        attached = [self.live.blocks[i] for i in la.block_ids if i in self.live.blocks]
        by_label = {b.label: b for b in attached}
        shared_ids = {b.id: addr for addr, b in self.blocks.items()}
        owned_applied = (applied or {}).get("memory_blocks") or {}

        for db in da.memory_blocks if "memory_blocks" not in da.ignore else ():
            lb = by_label.get(db.label)
            if lb is None:
                self.changes.append(self._create_block(db))
                self.changes.append(Change(da.address, ATTACH, la.id, block=db.address, why=(NEW,)))
            elif lb.id in shared_ids:
                self.problems.append(
                    Problem(
                        db.address,
                        f"the agent already has a block labelled '{db.label}' ({lb.id}, "
                        f"{shared_ids[lb.id]})",
                        "detach that block from the agent or give the declared block another label",
                    )
                )
            elif lb.id in self.live.tagged_block_ids and not adopt:
                self.ids[db.address] = lb.id
                # Blocks created inline with an agent carry no mark of their own until
                # letta-apply updates them; until then the agent's mark speaks for them.
                own = applied_of(lb)
                self._update_block(db, lb, own if own is not None else owned_applied.get(db.label))
            elif adopt and not lb.mark:
                self.ids[db.address] = lb.id
                self._update_block(db, lb, None, adopt=True)
            else:
                self.problems.append(
                    Problem(
                        db.address,
                        f"the agent already has a block labelled '{db.label}' ({lb.id}, a block "
                        "this stack does not manage)",
                        "detach that block from the agent or give the declared block another label",
                    )
                )

        if "blocks" in da.ignore:
            return
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
        declared_labels = {b.label for b in da.memory_blocks}
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
            elif (
                shared is None
                and b.id not in self.live.tagged_block_ids
                and b.label not in declared_labels
            ):
                self._unmanaged_block(da, la, b)

    def _unmanaged_block(self, da: DesiredAgent, la: LiveAgent, b: LiveBlock) -> None:
        """A block this stack does not manage, attached to one of its agents by hand."""
        if self.detach_unmanaged:
            self.changes.append(Change(da.address, DETACH, la.id, block=b.id, why=(DRIFT,)))
        else:
            self.notes.append(
                f"{da.address}: block '{b.label}' ({b.id}) is attached but not managed by this "
                "stack; left alone (--detach-unmanaged-blocks detaches it)"
            )

    # -- deletions -----------------------------------------------------------------------------

    def _protected(self, resource: LiveAgent | LiveBlock | LiveTool, declared: Any = None) -> bool:
        return bool(
            getattr(declared, "prevent_destroy", False)
            or (applied_of(resource) or {}).get("prevent_destroy")
        )

    def _refuse_destroy(self, address: str, verb: str = "delete") -> None:
        self.problems.append(
            Problem(
                address,
                f"prevent_destroy is set, and this plan would {verb} it",
                "remove prevent_destroy from the manifest and apply that first, or keep the "
                "resource as it is",
                fatal=True,
            )
        )

    def _delete_block(self, address: str, b: LiveBlock, why: str, declared: Any = None) -> None:
        if self._protected(b, declared):
            self._refuse_destroy(address)
            return
        ours = {a.id for a in self.agents.values()} | {a.id for _, a in self.matched.superseded}
        foreign = [u for u in self.live.users.get(b.id, ()) if u[0] not in ours]
        if foreign:
            users = ", ".join(f"{name} ({aid})" for aid, name, _ in foreign)
            self.problems.append(
                Problem(
                    address,
                    f"not deleted: still attached to agents this stack does not manage: {users}",
                    "detach it from those agents first",
                )
            )
            return
        self.changes.append(Change(address, DELETE, b.id, why=(why,)))

    def _delete_agent(self, address: str, la: LiveAgent, why: str, declared: Any = None) -> None:
        shared_ids = {b.id for b in self.blocks.values()}
        own = owned_of(la, self.live, shared_ids)
        owned_applied = (applied_of(la) or {}).get("memory_blocks") or {}
        protected_blocks = [
            b.label for b in own if (owned_applied.get(b.label) or {}).get("prevent_destroy")
        ]
        if self._protected(la, declared) or protected_blocks:
            self._refuse_destroy(address)
            return
        self.changes.append(Change(address, DELETE, la.id, why=(why,)))
        for b in own:
            self._delete_block(owned_block_address(address, b.label), b, why)

    def _delete_tool(self, address: str, lt: LiveTool, why: str) -> None:
        if self._protected(lt, self.desired.tools.get(address)):
            self._refuse_destroy(address)
            return
        ours = {a.id for a in self.agents.values()} | {a.id for _, a in self.matched.superseded}
        foreign = [u for u in self.live.tool_users.get(lt.id, ()) if u[0] not in ours]
        if foreign:
            users = ", ".join(f"{name} ({aid})" for aid, name, _ in foreign)
            self.problems.append(
                Problem(
                    address,
                    f"not deleted: still attached to agents this stack does not manage: {users}",
                    "detach it from those agents first",
                )
            )
            return
        self.changes.append(Change(address, DELETE, lt.id, why=(why,)))

    def _prune(self, *, destroy: bool) -> None:
        why = DESTROY if destroy else MANIFEST
        for address, lt in sorted(self.tools.items()):
            if destroy or address not in self.desired.tools:
                self._delete_tool(address, lt, why)
        for address, la in sorted(self.agents.items()):
            if destroy or address not in self.desired.agents:
                self._delete_agent(address, la, why, self.desired.agents.get(address))
        for address, la in self.matched.superseded:
            self._delete_agent(address, la, "replace")
        for address, lb in sorted(self.blocks.items()):
            if destroy or address not in self.desired.blocks:
                self._delete_block(address, lb, why, self.desired.blocks.get(address))
        if destroy:
            return
        # Own blocks the manifest no longer declares, on agents it still does.
        shared_ids = {b.id for b in self.blocks.values()}
        for address, la in self.agents.items():
            da = self.desired.agents.get(address)
            if da is None or "memory_blocks" in da.ignore:
                continue
            if address in self.importing or address in self.replacing:
                continue
            labels = {b.label for b in da.memory_blocks}
            for b in owned_of(la, self.live, shared_ids):
                if b.label not in labels:
                    self._delete_block(owned_block_address(address, b.label), b, why)

    # -- the whole plan ------------------------------------------------------------------------

    def run(self, *, destroy: bool) -> Plan:
        if destroy:
            self._prune(destroy=True)
        else:
            self._moves()
            self._imports()
            self._tools()  # first: agents attach the tools by id, or by the id apply gets
            for addr, db in self.desired.blocks.items():
                lb = self.blocks.get(addr)
                if lb is None:
                    self.changes.append(self._create_block(db))
                else:
                    adopt = addr in self.importing
                    self._update_block(db, lb, None if adopt else applied_of(lb), adopt=adopt)
            for addr, da in self.desired.agents.items():
                la = self.agents.get(addr)
                if la is None:
                    self._create_agent(da)
                else:
                    self._update_agent(da, la)
            self._prune(destroy=False)
        return self._finish()

    def _declared(self, address: str) -> DesiredAgent | DesiredBlock | None:
        """The declared resource at an address, an agent's own blocks included."""
        if address in self.desired.blocks:
            return self.desired.blocks[address]
        agent_address, _, label = address.partition(".memory_blocks.")
        agent = self.desired.agents.get(agent_address)
        if agent is None or not label:
            return agent
        return next((b for b in agent.memory_blocks if b.label == label), None)

    def _finish(self) -> Plan:
        refused = {p.address for p in self.problems}

        def is_refused(address: str | None) -> bool:
            # A refused agent takes its own blocks with it.
            return address is not None and any(
                address == r or address.startswith(r + ".") for r in refused
            )

        changes = [c for c in self.changes if not is_refused(c.address) and not is_refused(c.block)]
        changes.sort(key=lambda c: (c.stage, c.address, c.block or "", c.action, c.key))
        creates = {c.address: _created_name(c) for c in changes if c.action == CREATE}
        blanks = marked_blanks(self.live)
        for c in changes:
            declared = self._declared(c.address)
            if c.remote_id and declared is not None:
                blanks[c.remote_id] = blanks.get(c.remote_id, frozenset()) | sensitive_fields(
                    declared.config
                )
        prints = fingerprints(self.live, {}, creates, blanks)
        return Plan(
            stack=self.stack,
            changes=tuple(changes),
            drift=tuple(sorted(self.drift, key=lambda d: (d.address, d.field))),
            problems=tuple(sorted(self.problems, key=lambda p: (not p.fatal, p.address))),
            notes=tuple(sorted(self.notes)),
            ids=dict(sorted(self.ids.items())),
            fingerprints={c.key: prints[c.key] for c in changes},
        )


def _created_name(c: Change) -> str:
    """The name a created agent or tool takes (a clash with it makes a saved plan stale)."""
    return str(c.body.get("name", "")) if c.is_agent or c.is_tool else ""


def make_plan(
    desired: Desired, live: Live, *, destroy: bool = False, detach_unmanaged: bool = False
) -> Plan:
    """Compare desired with live and return the changes that converge the server; with
    `destroy`, the changes that delete everything the stack owns."""
    return _Planner(desired, live, detach_unmanaged=detach_unmanaged).run(destroy=destroy)


def stale(plan: Plan, live: Live, tag: str) -> list[str]:
    """Addresses whose live state differs from what `plan` was computed from (with the fields
    each saved fingerprint left out, left out again)."""
    creates = {c.address: _created_name(c) for c in plan.changes if c.action == CREATE}
    present = match(plan.stack, tag, live).ids()
    blanks = {
        key: frozenset(fp.partition("|")[2].split(","))
        for key, fp in plan.fingerprints.items()
        if "|" in fp
    }
    now = fingerprints(live, present, creates, blanks)
    return sorted(
        {c.address for c in plan.changes if now.get(c.key, ABSENT) != plan.fingerprints.get(c.key)}
    )


def restrict(plan: Plan, desired: Desired, targets: Iterable[str]) -> Plan:
    """Only the changes of `targets` and what they depend on: an agent's own blocks and the
    shared blocks it uses. Drift and notes of other resources are dropped too."""
    keep: set[str] = set()
    for t in targets:
        keep.add(t)
        agent = desired.agents.get(t)
        if agent is not None:
            keep.update(agent.blocks)
            keep.update(desired.agent_tools(agent))

    def kept(address: str) -> bool:
        return any(address == k or address.startswith(k + ".") for k in keep)

    changes = tuple(c for c in plan.changes if kept(c.address))
    return replace(
        plan,
        changes=changes,
        drift=tuple(d for d in plan.drift if kept(d.address)),
        problems=tuple(p for p in plan.problems if kept(p.address)),
        fingerprints={
            c.key: plan.fingerprints[c.key] for c in changes if c.key in plan.fingerprints
        },
    )
