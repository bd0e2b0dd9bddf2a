"""HoldsMemory: the optional capability of a kind whose resources hold what agents wrote (an
agent's messages and passages, a block's value, an archive's passages), beside the required
`Kind`, as Terraform's plugin framework has `ResourceWithImportState` beside `Resource`.

A kind that has it says, in its own folder: what a delete of one of its resources holds (for the
plan: `memory_held`, `count_memory`), what to save before deleting one and how (`save_memory`:
Letta's agent export, a block's value, an archive's passages), what holds its addresses in a
stack now and how to bring a saved one back, marked as the stack's (`memory_holders`,
`restore_memory`). The memory package (backups, the plan's memory section, `restore`) asks the
registry which kinds have it and names none of them: it owns the backup folder, its records and
their crash-safe writing, the order of saves and deletes, Letta's Agent File
(memory.af_format, handed to kinds as `AgentFiles`) and the stack's lock during a restore.

ExportsAgentFiles is the capability of a kind whose resources Letta exports as Agent Files
(agents): `export --format af` (memory.af_export) writes a stack's as one file through it.

This module also holds what the kinds' implementations share: masking, re-marking, attaching.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, runtime_checkable

from ..core.changes import Change, Held
from ..core.jsonish import JsonObject, strings
from ..core.model import MARK_KEY, SHOWN, Live, stack_tag
from ..errors import ApiError
from .resource import mark_of

if TYPE_CHECKING:
    from ..core.sensitive import Masker
    from ..server.client import LettaClient
    from ..server.routes import Route

T = TypeVar("T")

AGENT_FILE = "agent_file"
"""The key of a backup record naming the Agent File (`.af`) saved beside it."""


@dataclass
class Saved:
    """One resource's backup: its record (letta-apply's JSON; memory.backup adds what every
    record carries) and, for a resource Letta exports as an Agent File, that file; `masked`
    says what was masked."""

    kind: str
    address: str
    id: str
    record: Mapping[str, object]
    agent_file: JsonObject | None = None
    masked: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Record:
    """One backup record (`data`, as read from `path`), and where it goes back to."""

    path: Path
    # Values unchecked: the agent and archive kinds read a record's nested data without
    # core.jsonish yet (their files are typed apart); Mapping[str, object] once they do.
    data: Mapping[str, Any]
    stack: str  # the stack it is restored into
    address: str  # ... at this address

    @property
    def kind(self) -> str:
        return str(self.data["kind"])

    @property
    def token(self) -> str:
        """What the restored resource's mark records: the backup it came from."""
        return f"{self.data.get('run')}/{self.data['id']}"

    def masked(self, where: str) -> bool:
        """Whether the backup masked the field `where` (as its `masked` list names it)."""
        return any(str(m) == where for m in self.data.get("masked") or ())


@dataclass(frozen=True)
class Holder:
    """What holds an address in a stack now: its id ("" while a mark is being made for it:
    a write-ahead intent, see kinds.mark_blocks) and its mark."""

    id: str
    mark: Mapping[str, object]


class AgentFiles(Protocol):
    """Letta's Agent File (`.af`), as memory.af_format reads, checks and edits it: the format's
    keys stay there, and a kind whose resources Letta exports as one goes through this. A file
    is its JSON (`doc`); its entities are the dicts in it, edited in place."""

    def checked(self, answer: object, name: str) -> JsonObject:
        """An export's answer (the file, or the file as a JSON string), checked."""
        ...

    def load(self, path: Path) -> JsonObject:
        """The Agent File at `path`, checked."""
        ...

    # The file's entities, edited in place. Values unchecked: the agent kind edits them without
    # core.jsonish yet (its files are typed apart); JsonObject once it does.

    def agents(self, doc: Mapping[str, object]) -> list[dict[str, Any]]: ...

    def blocks(self, doc: Mapping[str, object]) -> list[dict[str, Any]]: ...

    def blocks_of(
        self, doc: Mapping[str, object], agent: Mapping[str, object]
    ) -> list[dict[str, Any]]:
        """The file's blocks an agent of it names, in its order."""
        ...

    def message_counts(self, agent: Mapping[str, object]) -> tuple[int, int]:
        """An agent's messages in the file, and how many of them are in its context."""
        ...

    def blank_secrets(self, doc: JsonObject) -> list[str]:
        """Empty every agent's secret values in place; returns their names."""
        ...

    def only(self, doc: Mapping[str, object], agent_id: str) -> JsonObject:
        """The file with one of its agents alone."""
        ...

    def without_blocks(self, doc: Mapping[str, object], file_ids: Iterable[str]) -> JsonObject:
        """The file without these blocks."""
        ...


class Session(Protocol):
    """What the memory package gives a kind for one backup run or one restore."""

    @property
    def client(self) -> LettaClient: ...

    @property
    def stack(self) -> str: ...

    @property
    def agent_files(self) -> AgentFiles: ...

    def once(self, key: str, read: Callable[[], T]) -> T:
        """`read()`, made once per run or restore whatever asks for it (thread-safe)."""
        ...


class Saving(Session, Protocol):
    """A backup run: the sensitive values it masks in what it saves (`masker.text`)."""

    @property
    def masker(self) -> Masker: ...


class Restoring(Session, Protocol):
    """A restore: what it made so far (old id -> new id: what is restored later attaches to it;
    the addresses restored) and what holds the target stack's addresses."""

    @property
    def ids(self) -> dict[str, str]: ...

    @property
    def made(self) -> set[str]: ...

    def in_backup(self, rid: str) -> bool:
        """Whether the resource of id `rid` is restored by this restore too."""
        ...

    def holder(self, address: str) -> Holder | None:
        """What holds `address` in the target stack now, any kind's, as read when the restore
        began (under the stack's lock)."""
        ...


@runtime_checkable
class HoldsMemory(Protocol):
    """The capability (see the module's docstring). `name` is the kind's."""

    name: ClassVar[str]
    counts_memory: ClassVar[bool]
    """Whether the plan reads the server to count what a delete holds (`count_memory`)."""
    memory_readme: ClassVar[str]
    """What a backup folder's README.md says of this kind's records: lines of a Markdown
    list (two spaces in, wrapped as the README is), ending with a newline."""

    def memory_held(self, change: Change, live: Live, stack: str) -> Held | None:
        """What the resource a delete (or replacement) removes holds, from the live state the
        plan was made from (no I/O); None when it is not in it."""
        ...

    def held_words(self, held: Held) -> str:
        """What `held` removes, in a line for a reviewer (plans, the markdown comment)."""
        ...

    def count_memory(self, client: LettaClient, held: Held, cap: int) -> Held:
        """`held` with what the live state does not say counted on the server, up to `cap`
        (a read or two). A failed read leaves it uncounted: a plan is not refused for what it
        only reports."""
        ...

    def save_memory(self, saving: Saving, change: Change, address: str, rid: str) -> Saved:
        """Read what resource `rid` (at `address`) holds, for its backup, before `change`
        deletes it (or an own resource of it). Masks every sensitive value; writes nothing."""
        ...

    def memory_holders(self, restoring: Restoring) -> Mapping[str, Holder]:
        """The target stack's resources of the kind, by address (a listing or two, shared
        through `restoring.once` with the kinds that read the same)."""
        ...

    def restore_memory(
        self, restoring: Restoring, record: Record, existing: str | None
    ) -> tuple[str, list[str]]:
        """Bring back what `record` saved, marked as `record.stack`'s at `record.address`;
        `existing`: the id of what an earlier restore of this backup made there, to finish
        ("": it stopped after writing the resource's intent, kinds.mark_blocks).
        Returns the id of the resource and notes for the terminal."""
        ...


@dataclass(frozen=True)
class Exported:
    """One of a stack's resources Letta exports as an Agent File, as its kind lists it: its
    id, name and mark, and its blocks' ids by label (how its export's blocks are known)."""

    id: str
    name: str | None
    mark: Mapping[str, object]
    blocks: Mapping[str, str]


@runtime_checkable
class ExportsAgentFiles(Protocol):
    """The capability (see the module's docstring). `name` is the kind's."""

    name: ClassVar[str]

    def agent_file_sources(self, client: LettaClient, stack: str) -> list[Exported]:
        """The stack's resources of the kind, found by their marks (one listing)."""
        ...

    def agent_file_export(self, client: LettaClient, rid: str) -> object:
        """Letta's answer to the export of resource `rid` (an Agent File, unchecked)."""
        ...


# -- what the kinds' implementations share ----------------------------------------------


def stack_blocks(session: Session) -> list[dict[str, Any]]:
    """The stack's tagged blocks (its own and shared blocks, mark blocks), listed once for the
    whole run or restore. (Values unchecked: the agent kind reads them without core.jsonish
    yet.)"""
    return session.once(
        "the stack's blocks", lambda: session.client.list_blocks(stack_tag(session.stack))
    )


def sensitive_of(mark: Mapping[str, object]) -> list[str]:
    """The fields a mark says hold sensitive values (names only)."""
    applied = mark.get("applied")
    names = applied.get("sensitive") if isinstance(applied, Mapping) else None
    return [str(n) for n in names] if isinstance(names, list) else []


def mask_fields(entry: JsonObject, names: Iterable[str]) -> list[str]:
    """Replace fields the marks name sensitive (`system`, `metadata.key`...) in place by
    SHOWN; returns those that held a value."""
    done = []
    for name in sorted(set(names)):
        head, _, key = name.partition(".")
        within = entry.get(head)
        if key and isinstance(within, dict) and within.get(key) is not None:
            within[key] = SHOWN
            done.append(name)
        elif not key and entry.get(head) not in (None, ""):
            entry[head] = SHOWN
            done.append(name)
    return done


def masked(value: T, mask: Callable[[str], str]) -> tuple[T, int]:
    """`value` with every string passed through `mask`, and how many it changed. letta-apply's
    marks are left as they are: they never hold a secret, and their digests must survive a
    restore. (The data's nesting is bounded: Agent Files are checked, records are ours.)"""
    out, n = _masked(value, mask)
    return out, n  # type: ignore[return-value]  # the same shape, strings masked


def _masked(value: object, mask: Callable[[str], str]) -> tuple[object, int]:
    if isinstance(value, str):
        shown = mask(value)
        return shown, int(shown != value)
    if isinstance(value, dict):
        out: dict[str, object] = {}
        n = 0
        for k, v in value.items():
            out[k], changed = (v, 0) if k == MARK_KEY else _masked(v, mask)
            n += changed
        return out, n
    if isinstance(value, list):
        items = [_masked(v, mask) for v in value]
        return [v for v, _ in items], sum(n for _, n in items)
    return value, 0


def masked_text(count: int) -> list[str]:
    """What a record's `masked` says of the texts a sensitive value was masked in."""
    return [f"{count} text(s) holding a sensitive value"] if count else []


def remarked(metadata: object, r: Record, address: str | None = None) -> JsonObject:
    """Metadata with the mark naming `r`'s stack and `address` (default: the record's), and
    recording the backup it was restored from."""
    out = dict(metadata) if isinstance(metadata, Mapping) else {}
    mark = dict(mark_of(out))
    mark.update(stack=r.stack, address=address or r.address, restored=r.token)
    out[MARK_KEY] = mark
    return out


def retagged(tags: object, r: Record, *, always: bool = False) -> list[str]:
    """Tags with the old stack's tag replaced by the target stack's (added when `always`)."""
    have = set(strings(tags))
    old = stack_tag(str(r.data["stack"]))
    if old in have or always:
        have = (have - {old}) | {stack_tag(r.stack)}
    return sorted(have)


def exists(client: LettaClient, route: Route) -> bool:
    """Whether a read of `route` finds something (404: no)."""
    try:
        route.get(client)
    except ApiError as e:
        if e.status == 404:
            return False
        raise
    return True


def attach(client: LettaClient, route: Route, what: str, notes: list[str]) -> None:
    """An attach that may find its agent gone or its place taken: said in `notes`, not
    fatal."""
    try:
        route.patch(client)
    except ApiError as e:
        if e.status not in (404, 409):
            raise
        notes.append(f"not attached to {what}: {e.detail}")


def counted(n: int | None, noun: str, capped: bool) -> str:
    """A count as plans word it: `3 passages`, `50+ messages` (at least), `... not counted`."""
    if n is None:
        return f"{noun}s not counted"
    return f"{n}{'+' if capped else ''} {noun}{'' if n == 1 and not capped else 's'}"
