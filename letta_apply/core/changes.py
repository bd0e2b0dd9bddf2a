"""What a plan is made of: changes (one write each), drift, problems. Plain frozen data; the
planner makes them, renderers show them, the applier carries them out."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final, Literal

if TYPE_CHECKING:
    from .record import Record

Action = Literal["create", "update", "attach", "detach", "delete", "import", "replace", "forget"]
CREATE: Final = "create"
UPDATE: Final = "update"
ATTACH: Final = "attach"
DETACH: Final = "detach"
DELETE: Final = "delete"
IMPORT: Final = "import"
REPLACE: Final = "replace"
FORGET: Final = "forget"  # `removed:`: the stack's marks taken off, the resource left as it is
ACTIONS: tuple[Action, ...] = (CREATE, UPDATE, ATTACH, DETACH, DELETE, IMPORT, REPLACE, FORGET)

Why = Literal[
    "new",
    "manifest",
    "drift",
    "memory",
    "destroy",
    "adopt",
    "replace",
    "resume",
    "leftover",
    "removed",
]
NEW: Final = "new"  # declared, not on the server
MANIFEST: Final = "manifest"  # the manifest changed since letta-apply last wrote the field
DRIFT: Final = "drift"  # the field was changed on the server, outside the manifest
MEMORY: Final = "memory"  # a block value written by agents (restored only with enforce_value)
DESTROY: Final = "destroy"  # `letta-apply destroy`
ADOPT: Final = "adopt"  # named by `imports:`
REPLACED: Final = "replace"  # superseded by its replacement (now, or by an interrupted apply)
RESUME: Final = "resume"  # made by a run that stopped before marking it (kinds.mark_blocks)
LEFTOVER: Final = "leftover"  # a mark of nothing: its resource is gone, or was never made
REMOVED: Final = "removed"  # named by `removed:`: no longer managed, kept on the server
WHYS: tuple[Why, ...] = (
    NEW, MANIFEST, DRIFT, MEMORY, DESTROY, ADOPT, REPLACED, RESUME, LEFTOVER, REMOVED
)  # fmt: skip

DriftKind = Literal["memory", "configuration", "deleted"]
CONFIGURATION: Final = "configuration"  # a field or an attachment changed by hand
DELETED: Final = "deleted"  # a resource the stack made, deleted on the server since
DRIFT_KINDS: tuple[DriftKind, ...] = (MEMORY, CONFIGURATION, DELETED)


@dataclass(frozen=True)
class FieldDiff:
    """One field of one resource: `before` is live (None on create), `after` is what apply sets,
    `why` says where the difference comes from."""

    field: str
    before: object
    after: object
    why: Why = MANIFEST


@dataclass(frozen=True)
class Change:
    """One write apply will make.

    `kind` is the resource kind the write goes to (see letta_apply.kinds). `body` is the request
    body, in which `{"$ref": address}` stands for the id of a resource that may not exist yet.
    For attach and detach, `address` is the resource attached to (an agent) and `target` what
    is attached or detached (an address, or the id of a resource the stack does not manage; its
    kind is the attaching kind's `Kind.attaches`). Saved and JSON plans keep it under "block",
    the key they have always had.
    """

    address: str
    action: Action
    remote_id: str | None = None
    diffs: tuple[FieldDiff, ...] = ()
    body: Mapping[str, object] = field(default_factory=dict)
    target: str | None = None
    why: tuple[Why, ...] = (MANIFEST,)
    kind: str = ""

    @property
    def key(self) -> str:
        """What the change's fingerprint is filed under: the live id, or the address of what
        does not exist yet."""
        return self.remote_id or self.address


@dataclass(frozen=True)
class Drift:
    """A difference made on the server outside the manifest.

    `kind` is MEMORY for a block value (written by agents; kept unless enforce_value),
    DELETED for a resource the stack made that is no longer on the server (apply makes it
    again; `field` is "") or CONFIGURATION for anything else (hand edits and hand attachments).
    `restored`: whether apply undoes it (apply leaves a block the stack does not manage
    attached, unless told to detach it; a resource it refuses to make stays deleted).
    """

    address: str
    field: str
    declared: object
    live: object
    kind: DriftKind
    restored: bool
    conflict: bool = False  # a memory value changed in the manifest and on the server both
    label: str = ""  # the label of a block `field` names by id (one the stack does not manage)


@dataclass(frozen=True)
class Problem:
    """A resource apply refuses to touch, with why and what to do about it, and its code (see
    letta_apply.errors). A `fatal` problem (prevent_destroy) stops the whole apply before any
    write."""

    address: str
    message: str
    hint: str = ""
    fatal: bool = False
    code: str = ""


Severity = Literal["error", "warning"]
ERROR: Final = "error"  # a policy rule that refuses the whole plan
WARNING: Final = "warning"  # a policy rule that reports and lets the plan through


@dataclass(frozen=True)
class Violation:
    """A policy rule (letta_apply.policy) a resource breaks, or a rule that could not be
    evaluated (`code` says which). At `error`, apply writes nothing. `file`, `line`, `col`: where
    the manifest declares the resource (empty when it no longer does: a delete)."""

    rule: str
    severity: Severity
    address: str
    message: str
    code: str = ""
    file: str = ""
    line: int = 0
    col: int = 0


@dataclass(frozen=True)
class Seal:
    """A digest of the live values of sensitive fields a plan overwrites (`resources`: live id
    and field names), checked before a saved plan is applied (see plan.fingerprint.seal)."""

    resources: tuple[tuple[str, tuple[str, ...]], ...]
    digest: str


@dataclass(frozen=True)
class Held:
    """Memory a delete (or replacement) in the plan removes, as read when the plan was made,
    for a reviewer: the messages in an agent's context window and its archival passages (None:
    not counted; a count in `capped` is at least that many), which of its own blocks agents
    wrote (their value no longer the one letta-apply last wrote) and which it cannot tell
    (`unknown`: no record of what it wrote); a block's value (`written`: ("value",)); an
    archive's passages, and how many of them agents wrote (not seeded from the manifest)."""

    address: str
    remote_id: str
    kind: str
    messages: int | None = None
    passages: int | None = None
    capped: tuple[str, ...] = ()
    written: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    agent_passages: int | None = None


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
    seal: Seal | None = None  # of the live sensitive values the plan overwrites
    # The stack's serial when it was read (server.lock): None for a plan read from a file.
    serial: str | None = None
    # The stack's lock records when it was read, as the server sent them (server.lock).
    locks: tuple[Mapping[str, object], ...] = ()
    # What the plan does to the stack's record of what it holds (plan.record): None for a
    # saved plan until it is checked against the server.
    record: Record | None = None
    # What the deletes remove of agents' memory (memory.held), read after planning.
    memory: tuple[Held, ...] = ()
    # What the policy rules given to the run found (letta_apply.policy), after planning.
    violations: tuple[Violation, ...] = ()

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    @property
    def blocked(self) -> bool:
        """A fatal problem, or a policy rule broken at `error`: apply must not write anything."""
        return any(p.fatal for p in self.problems) or self.refused_by_policy

    @property
    def refused_by_policy(self) -> bool:
        return any(v.severity == ERROR for v in self.violations)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action == action)


def natural_key(text: str) -> tuple[object, ...]:
    """A sort key putting worker[2] before worker[10], the one order addresses are listed in
    everywhere: runs of digits compare by length, then digit by digit (no int(): a key may hold
    thousands of digits)."""
    parts = re.split(r"([0-9]+)", text)
    return tuple(p if i % 2 == 0 else (len(p.lstrip("0")), p) for i, p in enumerate(parts))
