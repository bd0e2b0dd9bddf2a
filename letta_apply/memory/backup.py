"""Backups before deletes: before apply or destroy deletes or replaces a resource whose kind holds
agents' memory (kinds.holds_memory: an agent, a shared or own block, an archive...), its kind
reads what it holds and it is written to the run's backup folder; only then is the delete sent.
A resource nested in one the run deletes too (an agent's own block) is saved with it, once. A
backup that fails stops that delete: the change fails (BackupFailed), the resource is kept, and
the run reports it and exits 1.

Crash safety: each file is written to a temporary name, flushed to disk (fsync) and renamed into
place, and the folder is synced, before the delete request leaves; a run killed between the
backup and the delete leaves one backup more, never a delete without one. A resource's record
(`<address>--<id>.json`) is written last: it is what `restore` reads, and it names the Agent File
(`.af`) written before it.

The folder (`<root>/<stack>/<UTC time>-<run>/`, made on the first backup, private to its owner)
holds a README.md saying what is in it, what was masked and how to restore it.
"""

from __future__ import annotations

import json
import os
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..core.changes import DELETE, REPLACE, Change, Plan
from ..core.sensitive import Masker
from ..errors import ApiError, LettaApplyError
from ..kinds.context import Run
from ..kinds.holds_memory import AGENT_FILE, AgentFiles, HoldsMemory, Saved
from ..server.client import LettaClient, public_url
from ..version import __version__
from . import af_format
from .holders import Once, holder, holders, kind_at, owner_of

DEFAULT_ROOT = Path(".letta-apply") / "backups"
"""Where backups go by default, relative to the working directory."""
ROOT_VARIABLE = "LETTA_APPLY_BACKUP_DIR"
"""The environment variable that moves the default (a CI workspace, say)."""


def default_root() -> Path:
    """Where backups go unless told: LETTA_APPLY_BACKUP_DIR, else DEFAULT_ROOT."""
    return Path(os.environ.get(ROOT_VARIABLE) or DEFAULT_ROOT)


RECORD_KEY = "letta_apply_backup"
"""The key (holding FORMAT) that tells a backup record from any other JSON file."""
FORMAT = 1
"""Version of a backup record."""
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class BackupFailed(ApiError):
    """The backup a delete waits for could not be made: the delete was not sent. It carries
    the status of the request that failed (a 4xx is refused again if sent again)."""

    code = "LA801"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)  # the failed request is named in the message
        self.status = status


def write_file(path: Path, data: bytes) -> None:
    """Write `data` at `path` so that it is whole on disk before this returns: a temporary file
    in the same folder, flushed and synced, renamed into place, the folder synced."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def file_stem(address: str, rid: str) -> str:
    """A file name for a resource's backup: its address and id (two agents of one address, an
    interrupted replacement's, get one each), in characters every file system takes."""
    return f"{_SAFE.sub('_', address)}--{_SAFE.sub('_', rid)}"


_README = """\
# letta-apply backup

Stack `{stack}` on {server}, saved by letta-apply {version} at {time} (run {run}), before
`{operation}` deleted or replaced what is here.

- `*.json`: one record per resource, the file `letta-apply restore` reads. It holds,
{kinds}
Sensitive values are not in these files: fields the stack's marks name sensitive read
`(sensitive)`, and the text of the manifest's sensitive values is replaced by `(sensitive)`
wherever it appeared (messages, passages, tool source). Each record lists what was masked under
`masked`. A restored resource gets those values back from the manifest on the next `apply`.

Restore everything here, each resource re-marked as the stack's:

    letta-apply restore {folder}

or one record, into another stack or address: `letta-apply restore FILE.json --stack NAME
--address ADDRESS`. The files hold agents' memory: keep them as private as the server.
"""


@dataclass(frozen=True)
class _Saving:
    """What a kind saving one resource is given (kinds.holds_memory.Saving)."""

    client: LettaClient
    stack: str
    masker: Masker
    once: Once
    agent_files: AgentFiles = af_format


class Backups:
    """The backups of one apply or destroy run, into a folder of `root` (named when the stack
    is known: `for_stack`, or `prepare` with the plan). `before` is called before each change
    is carried out. Thread-safe: changes run in parallel."""

    def __init__(
        self,
        root: str | Path,
        stack: str = "",
        *,
        masker: Masker | None = None,
        operation: str = "apply",
        server: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        now = clock()
        self.run = uuid.uuid4().hex[:6]
        self.root = Path(root)
        self.stack = ""
        self.time = now.strftime("%Y-%m-%dT%H:%M:%SZ")
        self._name = f"{now:%Y%m%dT%H%M%SZ}-{self.run}"
        self.folder = self.root
        if stack:
            self.for_stack(stack)
        self.masker = masker if masker is not None else Masker()  # filled as secrets are read
        self.operation = operation
        self.server = public_url(server) if server else "the server"
        self.saved: list[Saved] = []
        self._deleting: dict[str, list[str]] = {}  # address -> ids the plan deletes there
        self._lock = threading.Lock()
        self._busy: dict[str, threading.Lock] = {}  # one per resource being saved
        self._done: set[str] = set()
        self._memo = Once()  # what the kinds read once per run (the stack's blocks)

    def for_stack(self, stack: str) -> Path:
        """The run's folder, once the stack is known (a saved plan names it)."""
        if not self.stack:
            self.stack = stack
            self.folder = self.root / _SAFE.sub("_", stack) / self._name
        return self.folder

    def prepare(self, plan: Plan) -> None:
        """Note what the plan deletes or replaces: the resources nested in one of them (an
        agent's own blocks), deleted in the stage before it, are saved with it."""
        self.for_stack(plan.stack)
        self._deleting = {}  # a plan made again under the lock replaces the first
        for c in plan.changes:
            if holder(c.kind) is not None and c.action in (DELETE, REPLACE) and c.remote_id:
                self._deleting.setdefault(c.address, []).append(c.remote_id)

    def before(self, run: Run, change: Change) -> None:
        """Save what `change` would delete, before it is carried out; raises BackupFailed
        (the change is then not carried out)."""
        if change.action not in (DELETE, REPLACE) or not change.remote_id:
            return  # a mark of nothing (its resource is gone) holds no memory
        kind = holder(change.kind)
        if kind is None:
            return
        owner = owner_of(change.address)
        owner_kind = holder(kind_at(owner) or "") if owner is not None else None
        if owner is not None and owner_kind is not None and self._deleting.get(owner):
            # A nested resource goes in the stage before its owner: the owner is saved with it.
            for owner_id in self._deleting[owner]:
                self._once(run.client, owner_kind, owner, owner_id, change)
            return
        self._once(run.client, kind, change.address, change.remote_id, change)

    def _once(
        self, client: LettaClient, kind: HoldsMemory, address: str, rid: str, change: Change
    ) -> None:
        with self._lock:
            busy = self._busy.setdefault(rid, threading.Lock())
        with busy:  # two own blocks of one agent: the second waits for the first's backup
            if rid in self._done:
                return
            try:
                saving = _Saving(client, self.stack, self.masker, self._memo)
                saved = kind.save_memory(saving, change, address, rid)
                self._write(saved, change)
            except Exception as e:  # whatever stops a backup stops its delete
                what = address if address == change.address else f"{address} ({rid})"
                raise BackupFailed(
                    f"the backup of {what} failed, so it was not deleted: {_reason(e)}",
                    getattr(e, "status", None),
                ) from e
            with self._lock:
                self._done.add(rid)
                # What was saved, without its contents: a fleet's destroy keeps none in memory.
                self.saved.append(
                    Saved(saved.kind, saved.address, saved.id, {}, None, saved.masked)
                )

    def _write(self, saved: Saved, change: Change) -> None:
        self._folder()
        stem = file_stem(saved.address, saved.id)
        record: dict[str, Any] = {
            RECORD_KEY: FORMAT, "letta_apply_version": __version__, "stack": self.stack,
            "server": self.server, "saved_at": _now(), "run": self.run,
            "before": change.action, "why": list(change.why), **saved.record,
            "masked": saved.masked,
        }  # fmt: skip
        if saved.agent_file is not None:
            record[AGENT_FILE] = stem + af_format.SUFFIX
            write_file(self.folder / record[AGENT_FILE], af_format.dumps(saved.agent_file))
        text = json.dumps(record, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        write_file(self.folder / f"{stem}.json", text.encode("utf-8"))

    def _folder(self) -> None:
        """Make the run's folder (private: it holds agents' memory), with its README, and a
        .gitignore at the root so that backups are never committed by mistake."""
        with self._lock:
            if (self.folder / "README.md").exists():
                return
            self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            root = self.folder.parent.parent
            if not (root / ".gitignore").exists():
                write_file(root / ".gitignore", b"# letta-apply backups hold agents' memory\n*\n")
            readme = _README.format(
                stack=self.stack, server=self.server, version=__version__, time=self.time,
                run=self.run, operation=self.operation, folder=self.folder,
                kinds="".join(k.memory_readme for k in holders()),
            )  # fmt: skip
            write_file(self.folder / "README.md", readme.encode("utf-8"))


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _reason(e: BaseException) -> str:
    if isinstance(e, OSError):
        return f"cannot write the backup: {e.strerror or e}"
    if not isinstance(e, LettaApplyError):  # an answer not shaped as Letta's (a bug, or not)
        return f"{type(e).__name__}: {e}"
    return str(e)
