"""A folder's files (kinds.folder): the paths and globs of `files:` resolved against the manifest's
tree and read once while the manifest is loaded, under the same rule as `value_file` (nothing
outside the folder given to -f without --allow-outside-files; a symlink counts where it points).

Each file gets its name in the Letta folder: its path relative to the pattern's literal folder
(`docs/handbook/**/*.md` names `docs/handbook/policies/refunds.md` as `policies/refunds.md`; a
plain path is named by its base name). Letta keys duplicate uploads by that name, so two files
with one name in a folder are refused here. Files Letta would refuse (its parsers take a fixed
set of extensions) are refused here too, before any request.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ...errors import Diagnostic, define, escape_controls
from ...manifest.files import Document, Path_, Unreadable, clip, clip_path, read_regular

# Letta 0.16.8's parsers (services/file_processor/file_types.py): anything else gets 415.
# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA431", "ManifestError", "a files entry that names no file",
       "An entry of a folder's (or an archive's) `files` matches no file that can be read: "
       "no match, a folder that is not there, a pattern that is not valid, too many matches.",
       "Fix the path or pattern, relative to the manifest, with '/'.")
define("LA432", "ManifestError", "a file Letta does not take",
       "A file of a folder has a type Letta does not take, a name over 255 characters, or a "
       "name starting with '.'.",
       "Convert or rename the file, or leave it out.")
define("LA433", "ManifestError", "two files with one name in a folder",
       "Two files of a folder would have the same name in it; Letta keys a folder's files by "
       "name.",
       "Rename one, or keep them in two folders.")
define("LA434", "ManifestError", "too many files in a folder",
       "A folder's `files` name more than 10,000 files.",
       "Split them into several folders.")
# fmt: on

EXTENSIONS = frozenset(
    {
        ".pdf",
        ".txt",
        ".md",
        ".markdown",
        ".json",
        ".jsonl",
        ".csv",
        ".py",
        ".js",
        ".ts",
        ".java",
        ".cpp",
        ".cxx",
        ".c",
        ".h",
        ".cs",
        ".php",
        ".rb",
        ".go",
        ".rs",
        ".swift",
        ".kt",
        ".scala",
        ".r",
        ".m",
        ".html",
        ".htm",
        ".css",
        ".scss",
        ".sass",
        ".less",
        ".vue",
        ".jsx",
        ".tsx",
        ".xml",
        ".yaml",
        ".yml",
        ".toml",
        ".ini",
        ".cfg",
        ".conf",
        ".sh",
        ".bash",
        ".ps1",
        ".bat",
        ".cmd",
        ".dockerfile",
        ".sql",
    }
)
MAX_NAME = 255  # Letta 0.16.8 MAX_FILENAME_LENGTH
MAX_FILE_BYTES = 50 * 1024 * 1024  # what letta-apply holds in memory per file
MAX_FILES = 10_000  # per folder: a glob that matches more is a mistake, not a handbook
MAX_ENTRIES = 1_000_000  # files and folders a glob's walk looks at, matched or not
_GLOB = re.compile(r"[*?\[]")


@dataclass(frozen=True)
class LocalFile:
    """One file a folder declares: its name in the folder, where it is read from, its digest
    (sha256 of the bytes, the first 16 hex digits) and size."""

    name: str
    path: str
    digest: str
    size: int


def file_digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def files_at(key: str) -> Path_:
    return ("folders", key, "files")


class _Name:
    """One path component of a glob, matched against one name in time linear in both: the
    pattern is cut at its `*`s into pieces of fixed width (`?`, `[...]` and literal
    characters), each found leftmost after the one before, the first at the start and the last
    at the end. A regex of the whole (`.*a.*a.*b`) backtracks exponentially on a name that
    nearly matches."""

    def __init__(self, part: str) -> None:
        pieces: list[str] = [""]
        widths = [0]
        i = 0
        while i < len(part):
            c = part[i]
            if c == "*":
                if len(pieces) == 1 or pieces[-1]:  # `**` inside a name is one `*`
                    pieces.append("")
                    widths.append(0)
                i += 1
                continue
            if c == "?":
                atom = "."
                i += 1
            elif c == "[" and "]" in part[i + 1 :]:
                end = part.index("]", i + 1)
                body = part[i + 1 : end].replace("\\", "\\\\")
                atom = "[" + ("^" + body[1:] if body.startswith("!") else body) + "]"
                try:
                    re.compile(atom)
                except re.error as e:
                    shown = clip(part[i : end + 1])
                    raise ValueError(f"invalid character class {shown}: {e}") from None
                i = end + 1
            else:
                atom = re.escape(c)
                i += 1
            pieces[-1] += atom
            widths[-1] += 1
        self.starred = len(pieces) > 1
        self.pieces = [re.compile(p, re.S) for p in pieces]
        self.last_width = widths[-1]

    def match(self, name: str) -> bool:
        first, *rest = self.pieces
        if not self.starred:
            return first.fullmatch(name) is not None
        *middle, last = rest
        head = first.match(name)
        if head is None:
            return False
        pos = head.end()
        for piece in middle:
            found = piece.search(name, pos)
            if found is None:
                return False
            pos = found.end()
        # The last piece ends the name, after everything before it.
        start = len(name) - self.last_width
        return start >= pos and last.fullmatch(name, start) is not None


class _Glob:
    """A glob on posix paths relative to its literal folder: `**` as a whole component spans
    any folders (none included), `*` (`**` too, inside a name), `?` and `[...]` stay within a
    name. Matched a component at a time, keeping every place in the pattern a path so far can
    have reached (as a finite automaton does): never exponential, and a folder no place can
    continue from is not walked."""

    def __init__(self, pattern: str) -> None:
        parts = pattern.split("/")
        self.parts: list[_Name | None] = [None if p == "**" else _Name(p) for p in parts]

    def start(self) -> frozenset[int]:
        return self._closure({0})

    def _closure(self, states: set[int]) -> frozenset[int]:
        out = set(states)
        for i in sorted(states):
            j = i
            while j < len(self.parts) and self.parts[j] is None:
                j += 1
                out.add(j)
        return frozenset(out)

    def step(self, states: frozenset[int], name: str) -> frozenset[int]:
        after: set[int] = set()
        for i in states:
            if i >= len(self.parts):
                continue
            part = self.parts[i]
            if part is None:
                after.add(i)  # `**` takes this name and may take more
            elif part.match(name):
                after.add(i + 1)
        return self._closure(after)

    def accepts(self, states: frozenset[int]) -> bool:
        return len(self.parts) in states


def _literal_base(pattern: str) -> str:
    """The folders of a glob before its first wildcard ("docs/**/*.md" -> "docs")."""
    parts = PurePosixPath(pattern).parts
    literal = []
    for part in parts[:-1]:
        if _GLOB.search(part):
            break
        literal.append(part)
    return "/".join(literal)


def _walk(base: Path, glob: _Glob) -> tuple[list[str], bool]:
    """Every file under `base` the glob matches, as a posix path relative to it, and whether
    the walk stopped at MAX_ENTRIES. Only folders the glob can continue into are entered;
    symlinked folders are not (a loop would never end; one pointing outside is outside), nor
    hidden ones."""
    found: list[str] = []
    seen = 0
    states: dict[str, frozenset[int]] = {".": glob.start()}
    for top, dirs, files in os.walk(base, followlinks=False):
        rel = Path(top).relative_to(base).as_posix()
        here = states.pop(rel, frozenset())
        seen += len(dirs) + len(files)
        if seen > MAX_ENTRIES:
            return found, True
        kept = []
        for d in sorted(d for d in dirs if not d.startswith(".")):
            after = glob.step(here, d)
            if after:
                states[d if rel == "." else f"{rel}/{d}"] = after
                kept.append(d)
        dirs[:] = kept
        for f in sorted(files):
            if not f.startswith(".") and glob.accepts(glob.step(here, f)):
                found.append(f if rel == "." else f"{rel}/{f}")
    return found, False


def _matches(doc: Document, at: Path_, pattern: str) -> tuple[list[tuple[str, str]], str | None]:
    """(name in the folder, path relative to the manifest) of each file `pattern` names, or
    why it names none that may be read."""
    if pattern.startswith("/") or "\\" in pattern:
        return [], f"{clip(pattern)}: write paths relative to the manifest, with '/'"
    if not _GLOB.search(pattern):
        return [(PurePosixPath(pattern).name, pattern)], None
    base_rel = _literal_base(pattern)
    base, refused = doc.referenced(at, base_rel or ".")
    if refused:
        return [], refused
    if not base.is_dir():
        return [], f"{clip(pattern)} matches no file ({base_rel or '.'} is not a folder)"
    rest = pattern[len(base_rel) + 1 :] if base_rel else pattern
    try:
        glob = _Glob(rest)
    except ValueError as e:
        return [], str(e)
    names, stopped = _walk(base, glob)
    if stopped:
        return [], (
            f"{clip(pattern)}: stopped after {MAX_ENTRIES} files and folders under "
            f"{base_rel or '.'}; name a narrower folder"
        )
    if len(names) > MAX_FILES:
        return [], f"{clip(pattern)} matches {len(names)} files, over the limit of {MAX_FILES}"
    if not names:
        return [], f"{clip(pattern)} matches no file"
    return [(n, f"{base_rel}/{n}" if base_rel else n) for n in names], None


def read_folder_files(
    doc: Document, key: str, patterns: list[object], list_at: Path_ | None = None
) -> list[Diagnostic]:
    """Resolve and read the files of the list at `list_at` (folder `key`'s `files` unless
    given) into `doc.blobs`; the problems found."""
    errors: list[Diagnostic] = []
    by_name: dict[str, tuple[str, int]] = {}  # name -> (path, entry index)
    list_at = list_at or files_at(key)
    where = ".".join(map(str, list_at))
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str) or not pattern:
            continue  # the schema reports it
        at = (*list_at, i)
        found, why = _matches(doc, at, pattern)
        if why:
            errors.append(doc.diag(at, f"{where}[{i}]: {why}", code="LA431"))
            continue
        for name, rel in found:
            problem = _refused_name(name)
            if problem:
                message = f"{where}[{i}]: {clip(rel)}: {problem}"
                errors.append(doc.diag(at, message, code="LA432"))
                continue
            if name in by_name and by_name[name][0] != rel:
                other, j = by_name[name]
                errors.append(
                    doc.diag(
                        at,
                        f"{where}[{i}]: {clip(rel)} and {clip(other)} (files[{j}]) would both be "
                        f"named {name!r} in the folder; Letta keys files by name",
                        code="LA433",
                    )
                )
                continue
            path, refused = doc.referenced(at, rel)
            if refused:
                errors.append(doc.diag(at, f"{where}[{i}]: {refused}", code="LA120"))
                continue
            if not path.exists() and not path.is_symlink():
                message = f"{where}[{i}]: no such file: {clip_path(str(path))}"
                errors.append(doc.diag(at, message, code="LA121"))
                continue
            try:
                data = read_regular(path, MAX_FILE_BYTES)
            except Unreadable as e:
                message = f"{where}[{i}]: {clip_path(str(path))} {e}"
                errors.append(doc.diag(at, message, code="LA122"))
                continue
            by_name[name] = (rel, i)
            doc.blobs[(*list_at, name)] = (str(path), data)
    if len(by_name) > MAX_FILES:
        errors.append(doc.diag(list_at, f"{where}: over {MAX_FILES} files", code="LA434"))
    return errors


def shown_name(name: str) -> str:
    """A file name for plan text: control and format characters (a newline, a terminal escape,
    a bidirectional override) escaped, and `\\` and `'` as well, so a name can neither fake a
    line of the plan nor end its quotes."""
    # Quotes and backslashes first: the escapes escape_controls writes must stay single.
    return escape_controls(name.replace("\\", "\\\\").replace("'", "\\'"))


def _refused_name(name: str) -> str | None:
    ext = PurePosixPath(name).suffix.lower()
    if ext not in EXTENSIONS:
        shown = f"type {ext!r}" if ext else "a file with no extension"
        return (
            f"Letta does not take {shown} (it takes .md, .txt, .pdf, .json, .csv, source code "
            "and the like)"
        )
    if len(name) > MAX_NAME:
        return f"its name in the folder is over {MAX_NAME} characters"
    if PurePosixPath(name).name.startswith("."):
        return "Letta refuses names starting with '.'"
    return None


def declared_files(doc: Document, prefix: Path_) -> tuple[LocalFile, ...]:
    """The files of the list at `prefix` (a folder's `files`) read while loading, by name."""
    out = [
        LocalFile(str(p[-1]), _relative(path), file_digest(data), len(data))
        for p, (path, data) in doc.blobs.items()
        if p[:-1] == prefix
    ]
    return tuple(sorted(out, key=lambda f: f.name))


def _relative(path: str) -> str:
    """`path` as a plan records it: relative to the working folder when under it, as manifest
    paths are (a plan saved in one checkout applies in another at the same place)."""
    try:
        return Path(path).relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path


def read_all(doc: Document, data: Mapping[str, object]) -> tuple[list[str], list[Diagnostic]]:
    """Every folder's files, read once while the manifest is loaded."""
    errors: list[Diagnostic] = []
    folders = data.get("folders")
    for key, spec in (folders if isinstance(folders, dict) else {}).items():
        patterns = spec.get("files") if isinstance(spec, dict) else None
        if isinstance(patterns, list):
            errors += read_folder_files(doc, key, patterns)
    read = sorted({path for p, (path, _) in doc.blobs.items() if p[:1] == ("folders",)})
    return read, errors


def size(n: int) -> str:
    """A byte count as people read it."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"
