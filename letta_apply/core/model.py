"""Plain data the pipeline passes along: the desired state (from the manifest) and the live state
(from the server), each held by kind (see letta_apply.kinds), and the marks that tie them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

MARK_KEY = "letta_apply"
"""Key under which letta-apply records its stack and address on what it manages."""

SHOWN = "(sensitive)"
"""What outputs show in place of a sensitive value."""


class Sensitive(str):
    """A string that is, or was interpolated from, the value of a variable declared
    `sensitive: true`. The type travels with the value so that every output can mask it."""

    __slots__ = ()

    def __repr__(self) -> str:  # a stray repr() in a message shows nothing
        return SHOWN


class SensitiveInt(int):
    """A whole number from a sensitive variable: sent as a number, masked as a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return SHOWN


class SensitiveFloat(float):
    """A number from a sensitive variable: sent as a number, masked as a value."""

    __slots__ = ()

    def __repr__(self) -> str:
        return SHOWN


SECRET_TYPES = (Sensitive, SensitiveInt, SensitiveFloat)
"""The types a value from a sensitive variable travels as: whatever is one is masked where it
is rendered and never digested."""


def is_secret(value: object) -> bool:
    """Whether `value` itself came from a sensitive variable."""
    return isinstance(value, SECRET_TYPES)


STACK_TAG = "letta-apply:"
"""What the tag of every tagged resource of a stack starts with (`stack_tag`)."""

LOCK_TAG = "letta-apply-lock:"
"""What the tag of every lock record of a stack starts with (server.lock)."""

RESERVED_TAG_PREFIXES = (STACK_TAG, LOCK_TAG)
"""Tags letta-apply writes to recognise its own records: a manifest that declared one could pass
for letta-apply (a forged stack lock, another stack's mark)."""

LOCK_LABEL = "letta-apply-lock"
"""The label of a stack's lock records (server.lock): no block of a manifest may take it."""

LOCK_KEY = "letta_apply_lock"
"""Key in a lock or serial record's `metadata` under which it is described (server.lock,
server.serial): no metadata of a manifest may hold it."""


def stack_tag(stack: str) -> str:
    """The tag every tagged resource of `stack` carries; list calls filter on it."""
    return f"{STACK_TAG}{stack}"


def kind_of(address: str) -> str:
    """The kind an address starts with: `agent` for agent.x and its own blocks."""
    return address.split(".", 1)[0]


class Resource(Protocol):
    """What every live resource has, whatever its kind: an id and the marks letta-apply wrote
    on it (empty when none)."""

    @property
    def id(self) -> str: ...

    @property
    def mark(self) -> Mapping[str, object]: ...


@dataclass(frozen=True)
class Import:
    """Adopt an unmarked live resource at `address`, found by `id` or (some kinds) by `name`."""

    address: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Entry:
    """A resource as its manifest declares it (templates expanded, variables interpolated,
    sensitive values still typed as such), and where: what policy rules read."""

    data: Mapping[str, object]
    file: str
    line: int
    col: int


@dataclass(frozen=True)
class Desired:
    """Everything one manifest declares: `resources` maps a kind's name to its declared
    resources by address (each kind's own dataclass)."""

    stack: str
    resources: Mapping[str, Mapping[str, object]] = field(default_factory=dict)
    imports: tuple[Import, ...] = ()
    moved: Mapping[str, str] = field(default_factory=dict)  # from-address -> to-address
    # `removed:`: addresses the stack lets go of (its marks taken off, the resource kept)
    removed: tuple[str, ...] = ()
    files: tuple[str, ...] = ()  # the manifest files it was read from
    digest: str = ""  # of every file read and every variable value, sensitive ones apart
    secrets: tuple[str, ...] = field(default=(), repr=False)  # sensitive values, to mask
    # Each declared address as its manifest wrote it, for policy rules (letta_apply.policy).
    entries: Mapping[str, Entry] = field(default_factory=dict, repr=False, compare=False)
    # `policy:` in the manifest: policy files (relative to the manifest file that names them,
    # resolved) and the addresses whose deletion may lose agent-written memory.
    policies: tuple[str, ...] = ()
    allow_memory_loss: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        return stack_tag(self.stack)

    def of(self, kind: str) -> Mapping[str, object]:
        """The declared resources of one kind, by address (each its kind's own type: a kind
        reads its own as typed through `Kind.declared`)."""
        return self.resources.get(kind, {})

    @property
    def addresses(self) -> list[str]:
        """Every declared top-level address."""
        return [a for declared in self.resources.values() for a in declared]


@dataclass(frozen=True)
class Live:
    """What the server holds that concerns one stack: each kind's state as its module read it
    (`states`, by kind name), and the resources `imports:` name (address -> what was found, or
    why nothing was)."""

    states: Mapping[str, object] = field(default_factory=dict)
    imported: Mapping[str, Resource | str] = field(default_factory=dict)
    # What the server serves that changes are checked against (the model handles it knows),
    # by kind name: read only when a first plan has changes that need it (see Kind.facts).
    facts: Mapping[str, object] = field(default_factory=dict)
    # The Letta Cloud project the server was read in (None: no project). Agents, blocks and
    # identities are listed by project; tools are the organization's, so their marks say it.
    project: str | None = None
    # The stack's serial as the listing of its blocks showed it (server.lock.stack_serial):
    # another run that writes to the stack changes it.
    serial: str = ""
    # The stack's record of what it held when a run last wrote to it, from the same listing
    # (server.serial, plan.record): None when no run wrote one yet.
    recorded: frozenset[str] | None = None
    # The stack's lock records as that listing showed them (server.lock), as the server sent
    # them: a run with nothing to write still removes a dead run's.
    locks: tuple[Mapping[str, object], ...] = ()
    # The stack's flags as that listing showed them (kinds.flags): kind name -> the flag's id.
    flags: Mapping[str, str] = field(default_factory=dict)

    def of(self, kind: str) -> object:
        """One kind's state (its kind's own type: a kind reads its own as typed through
        `Kind.state_of`)."""
        return self.states[kind]
