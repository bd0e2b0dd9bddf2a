"""A manifest as the code holds it (`Document`: plain data, and where every value and key came
from), the files it is read from, and the helpers messages use to name a place in it.

Reading YAML into a Document is in parse.py; the union of several files in merge.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Diagnostic

# A manifest is text a person reviews; anything larger is a mistake, not a manifest.
MAX_FILE_BYTES = 64 * 1024 * 1024
# Guards against YAML that is small on disk but huge or endless once aliases are expanded.
MAX_DEPTH = 100
MAX_VALUES = 1_000_000

Path_ = tuple[str | int, ...]
Place = tuple[str, int, int]
"""A position in a manifest file: file, line, column."""


@dataclass(frozen=True)
class Position:
    line: int
    col: int
    file: str = ""  # set when a document is made of several files: the file this came from


_START = Position(1, 1)


@dataclass
class Document:
    """A loaded manifest: its data plus the position of each value and each mapping key."""

    file: str
    data: object  # YAML-loaded: dicts, lists and scalars, as JSON has them
    values: dict[Path_, Position] = field(default_factory=dict)
    keys: dict[Path_, Position] = field(default_factory=dict)
    # Files a manifest names (value_file, source_file...) must stay inside these folders, one per
    # manifest file (the folder given to -f), unless `allow_outside_files`.
    roots: dict[str, Path] = field(default_factory=dict)
    allow_outside_files: bool = False
    # Text of the files the manifest names that kinds read while loading (a tool's source):
    # path of the naming value -> (the file's path, its text).
    sources: dict[Path_, tuple[str, str]] = field(default_factory=dict)
    # Bytes of the files kinds upload as they are (a folder's documents, PDFs among them):
    # path of the naming value plus the file's name there -> (the file's path, its bytes).
    blobs: dict[Path_, tuple[str, bytes]] = field(default_factory=dict)

    def where(self, path: Path_, *, key: bool = False) -> Position:
        """Best position for `path`: the key itself when asked and known, else the value,
        else the nearest enclosing value."""
        if key and path in self.keys:
            return self.keys[path]
        if not self.values:  # a document read without positions (quick.py): no walk up
            return _START
        p = path
        while p not in self.values and p:
            p = p[:-1]
        return self.values.get(p, _START)

    def diag(self, path: Path_, message: str, *, code: str, key: bool = False) -> Diagnostic:
        pos = self.where(path, key=key)
        return Diagnostic(pos.file or self.file, pos.line, pos.col, message, code=code)

    def file_of(self, path: Path_) -> str:
        """The file the value at `path` was written in."""
        return self.where(path).file or self.file

    def referenced(self, path: Path_, name: str) -> tuple[Path, str | None]:
        """The file that the value at `path` names (relative to the manifest file that names
        it), and why it may not be read, or None when it may."""
        manifest = self.file_of(path)
        base = Path(manifest).resolve().parent
        too_long = _too_long(name)
        if too_long:
            return base, f"{clip(name)} cannot be read: {too_long}"
        try:
            target = (base / name).resolve()  # symlinks resolved: one pointing outside is outside
        except (OSError, RuntimeError, ValueError) as e:  # a symlink loop, a NUL in the name
            return base / name, f"{clip(name)} cannot be read: {e}"
        root = self.roots.get(manifest, base)
        if not self.allow_outside_files and not target.is_relative_to(root):
            return target, (
                f"{clip(name)} is outside {root} (the folder given to -f); "
                "pass --allow-outside-files to read it"
            )
        return target, None

    def at(self, path: Path_, here: Path_ = ()) -> str:
        """Where `path` is, for a message about `here`: "line N" in the same file, else
        "FILE:LINE:COL"."""
        pos = self.where(path, key=True)
        if self.file_of(here) == (pos.file or self.file):
            return f"line {pos.line}"
        return f"{pos.file or self.file}:{pos.line}:{pos.col}"


# What file systems take (NAME_MAX and PATH_MAX on Linux and macOS): past them the system
# refuses the name in every call, and Python raises where it would answer "no such file".
MAX_NAME_BYTES = 255
MAX_PATH_BYTES = 4096


def _too_long(name: str) -> str | None:
    if len(name.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        return f"the path is over {MAX_PATH_BYTES} bytes"
    if any(len(p.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES for p in name.split("/")):
        return f"a file or folder name in it is over {MAX_NAME_BYTES} bytes"
    return None


def where(path: Path_) -> str:
    """A path in a manifest as messages write it: agents.bot.memory_blocks[0].label."""
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if len(p) <= 40 else p[:37] + "..."
            out += f".{part}" if out else part
    return out or "manifest"


def clip(text: str, limit: int = 60) -> str:
    """`text` quoted for a message, cut short: a message never echoes a huge value."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "...'"


class Unreadable(Exception):
    """A file letta-apply will not read, and why (`str(e)`: "cannot read: ...", ...)."""


def read_regular(path: str | Path, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes. Anything else is Unreadable: a
    pipe or a device would block or never end, a symlink loop or a bad name cannot be opened."""
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise Unreadable("is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise Unreadable("is not a regular file (a pipe or a device?); only files are read")
        if st.st_size > limit:
            raise Unreadable(f"is {st.st_size} bytes; the limit is {limit}")
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except (OSError, ValueError, RuntimeError) as e:  # a NUL in the name; a symlink loop
        raise Unreadable(f"cannot read: {_reason(e)}") from None
    if len(data) > limit:  # it grew while being read
        raise Unreadable(f"is over {limit} bytes")
    return data


def _reason(e: Exception) -> str:
    """Why a file could not be read, without echoing its (maybe very long) name."""
    return e.strerror if isinstance(e, OSError) and e.strerror else str(e).split(": '")[0]


def clip_path(name: str, limit: int = 200) -> str:
    """A path for a message: a very long one (a name over the system's limit) cut short."""
    return name if len(name) <= limit else name[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Several files: `-f` may name files and folders; the manifest is their union


def manifest_files(paths: Sequence[str]) -> tuple[list[tuple[str, Path]], list[Diagnostic]]:
    """The files `-f` names, each with the folder its references must stay in."""
    out: list[tuple[str, Path]] = []
    errors: list[Diagnostic] = []
    seen: set[Path] = set()
    for arg in paths:
        p = Path(arg)
        try:
            is_dir = p.is_dir()
            p.resolve()
        except (OSError, RuntimeError, ValueError) as e:  # a name too long, a symlink loop
            errors.append(
                Diagnostic(clip_path(arg), 1, 1, f"cannot read: {_reason(e)}", code="LA101")
            )
            continue
        if is_dir:
            found = sorted(
                (f for f in p.iterdir() if f.suffix in (".yaml", ".yml") and f.is_file()),
                key=lambda f: f.name,
            )
            if not found:
                errors.append(
                    Diagnostic(arg, 1, 1, "no *.yaml or *.yml file in this directory", code="LA102")
                )
            items = [(str(f), p) for f in found]
        else:
            items = [(arg, p.parent)]
        for file, root in items:
            real = Path(file).resolve()
            if real in seen:
                continue
            seen.add(real)
            out.append((file, root.resolve()))
    return out, errors
