"""Manifests and variable values given as Python data (the Python API), checked before anything
converts them: plain types only (str, int, float, bool, None, list, dict), finite numbers,
string keys, no cycle, and the limits a manifest file has (nesting depth, number of values, size).
Every problem is a diagnostic naming the key path; the walk stops at the first limit passed, so
that refusing a value of gigabytes takes no longer than measuring it."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import Diagnostic, ManifestError
from .files import MAX_DEPTH, MAX_FILE_BYTES, MAX_VALUES, Path_, clip_path
from .files import where as place

# Python turns whole numbers of at most this many digits into text and back (its default
# int_max_str_digits): as YAML text a longer one could not be written or read back.
MAX_INT_DIGITS = 4300
MAX_NAME_CHARS = 200  # what errors call the data (`name`): shown on every line


@dataclass
class Budget:
    """What one call may hold in all: values and characters, as a manifest file of the largest
    size allowed (MAX_FILE_BYTES) would."""

    values: int = MAX_VALUES
    chars: int = MAX_FILE_BYTES

    def __post_init__(self) -> None:
        self.limits = (self.values, self.chars)  # for messages: the amounts left change

    @property
    def exhausted(self) -> bool:
        """A limit was passed (and reported): nothing more is read."""
        return self.values < 0 or self.chars < 0


class _Stop(Exception):
    """A limit was passed: nothing further is read."""


def key_path(path: Path_, root: str = "manifest") -> str:
    """`agents.worker.memory_blocks[0].value`, as messages name a place in a manifest (`root`
    for the whole), cut short in the middle when it is very long."""
    if not path:
        return root
    out = place(path)
    return out if len(out) <= 200 else out[:100] + "..." + out[-97:]


class _Plain:
    def __init__(self, name: str, budget: Budget, root: str) -> None:
        self.name = name
        self.root = root
        self.budget = budget
        self.errors: list[Diagnostic] = []
        self.active: set[int] = set()  # containers being converted: one met again is a cycle
        self.biggest = 10**MAX_INT_DIGITS

    def err(self, path: Path_, message: str, code: str) -> None:
        where = key_path(path, self.root)
        text = f"{where}: {message}" if where else message
        self.errors.append(Diagnostic(self.name, 0, 0, text, code=code))

    def stop(self, path: Path_, message: str) -> _Stop:
        self.err(path, message, "LA107")  # a limit passed
        return _Stop()

    def spend(self, path: Path_, chars: int) -> None:
        self.budget.values -= 1
        self.budget.chars -= chars
        values, chars = self.budget.limits
        if self.budget.values < 0:
            raise self.stop(path, f"more than {values} values in all; stopped reading here")
        if self.budget.chars < 0:
            raise self.stop(
                path, f"over {chars} characters in all (the size limit of a manifest file); "
                "stopped reading here",
            )  # fmt: skip

    def text(self, value: str, path: Path_) -> str:
        self.spend(path, len(value))
        return str.__str__(value)  # a subclass of str (an enum's member) as its plain text

    def convert(self, value: object, path: Path_, depth: int = 0) -> object:
        if isinstance(value, str):
            return self.text(value, path)
        if value is None or isinstance(value, bool):
            self.spend(path, 0)
            return value
        if isinstance(value, int):
            self.spend(path, 0)
            plain = int.__int__(value)  # an IntEnum's member as its number
            if abs(plain) >= self.biggest:
                self.err(path, f"a whole number of more than {MAX_INT_DIGITS} digits", "LA117")
                return None
            return plain
        if isinstance(value, float):
            self.spend(path, 0)
            plain_float = float.__float__(value)
            if not math.isfinite(plain_float):
                self.err(path, f"{plain_float} is not a finite number", "LA117")
                return None
            return plain_float
        if not isinstance(value, (list, tuple, Mapping)):
            kind = clip_path(type(value).__name__, 60)
            message = f"{kind} is not plain data (use str, int, float, bool, None, list or dict)"
            self.err(path, message, "LA116")
            return None
        if id(value) in self.active:
            self.err(path, "refers to a list or mapping that contains it (a cycle)", "LA108")
            return None
        if depth >= MAX_DEPTH:
            raise self.stop(path, f"nested more than {MAX_DEPTH} levels deep")
        self.spend(path, 0)
        self.active.add(id(value))
        try:
            if isinstance(value, Mapping):
                return self.mapping(value, path, depth)
            return [self.convert(v, (*path, i), depth + 1) for i, v in enumerate(value)]
        finally:
            self.active.discard(id(value))

    def mapping(self, value: Mapping[object, object], path: Path_, depth: int) -> dict[str, object]:
        out: dict[str, object] = {}
        try:
            items = iter(value.items())
            while True:
                try:
                    k, v = next(items)
                except StopIteration:
                    break
                if not isinstance(k, str):
                    kind = clip_path(type(k).__name__, 60)
                    self.err(path, f"a key is {kind}, not a string", "LA112")
                    continue
                key = self.text(k, path)
                out[key] = self.convert(v, (*path, key), depth + 1)
        except _Stop:
            raise
        except Exception as e:  # a mapping of the program's own whose items fail to come
            self.err(path, f"its items cannot be read ({type(e).__name__})", "LA116")
        return out


def plain(
    value: object, name: str, budget: Budget | None = None, *, root: str = "manifest"
) -> tuple[object, list[Diagnostic]]:
    """`value` as the plain data YAML writes, and every problem found (the walk stops at the
    first limit passed; with a `budget` already exhausted, nothing is read). Messages name
    `name` and the key path (`root` for the whole value), never a value."""
    path: Path_ = ()
    budget = budget or Budget()
    if budget.exhausted:
        return None, []
    walker = _Plain(name, budget, root)
    try:
        out = walker.convert(value, path)
    except _Stop:
        out = None
    except RecursionError:  # a mapping of the program's own that nests itself in its items
        walker.err(path, f"nested more than {MAX_DEPTH} levels deep", "LA107")
        out = None
    return out, walker.errors


def manifest_data(data: object, name: str, budget: Budget | None = None) -> dict[str, object]:
    """A manifest given as data, as plain data; raises ManifestError naming every problem."""
    if not isinstance(data, Mapping):
        kind = clip_path(type(data).__name__, 60)
        message = f"a manifest is a mapping of sections, not {kind}"
        raise ManifestError([Diagnostic(name, 0, 0, message, code="LA113")])
    out, errors = plain(data, name, budget)
    if errors:
        raise ManifestError(errors)
    return out if isinstance(out, dict) else {}  # {}: a limit was passed before (reported)


def data_name(name: object) -> str:
    """What errors call a manifest given as data; raises ManifestError when it is not a name."""
    if not isinstance(name, str) or not name:
        raise ManifestError([Diagnostic("name", 0, 0, "expected a non-empty string", code="LA118")])
    return clip_path(str.__str__(name), MAX_NAME_CHARS)


def variable_values(values: object, budget: Budget | None = None) -> dict[str, object]:
    """Variable values given by a program (`variables=`): a mapping of names to plain data."""
    where = "<variables>"
    if values is None:
        return {}
    if not isinstance(values, Mapping):
        kind = clip_path(type(values).__name__, 60)
        message = f"expected a mapping of variable names to values, not {kind}"
        raise ManifestError([Diagnostic(where, 0, 0, message, code="LA118")])
    out, errors = plain(values, where, budget, root="")
    if errors:
        raise ManifestError(errors)
    return out if isinstance(out, dict) else {}  # {}: a limit was passed before (reported)


def environment(env: object, budget: Budget | None = None) -> dict[str, str]:
    """An environment given by a program (`env=`): names to strings."""
    where = "<env>"
    if env is None:
        return {}
    out, errors = plain(env, where, budget, root="") if isinstance(env, Mapping) else (None, [])
    if not isinstance(env, Mapping):
        kind = clip_path(type(env).__name__, 60)
        message = f"expected a mapping of names to strings, not {kind}"
        errors = [Diagnostic(where, 0, 0, message, code="LA118")]
    entries: dict[str, object] = out if isinstance(out, dict) else {}  # None: a limit passed
    for k, v in entries.items():
        at = key_path((k,))
        if not isinstance(v, str) and not any(d.message.startswith(f"{at}:") for d in errors):
            errors.append(Diagnostic(where, 0, 0, f"{at}: expected a string", code="LA118"))
    if errors:
        raise ManifestError(errors)
    return {k: v for k, v in entries.items() if isinstance(v, str)}  # each one, checked above


def file_paths(value: object, what: str) -> list[str]:
    """File paths given by a program: one path (str or os.PathLike) or a sequence of them."""
    if isinstance(value, (str, os.PathLike)):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, (bytes, bytearray)):
        kind = clip_path(type(value).__name__, 60)
        message = f"expected a path or a list of paths, not {kind}"
        raise ManifestError([Diagnostic(what, 0, 0, message, code="LA118")])
    out: list[str] = []
    errors: list[Diagnostic] = []
    for i, p in enumerate(value):
        if i >= MAX_VALUES:
            errors.append(Diagnostic(what, 0, 0, f"more than {MAX_VALUES} paths", code="LA107"))
            break
        if isinstance(p, str):
            out.append(str.__str__(p))
        elif isinstance(p, os.PathLike):
            out.append(str(Path(p)))
        else:
            kind = clip_path(type(p).__name__, 60)
            message = f"[{i}]: expected a path, not {kind}"
            errors.append(Diagnostic(what, 0, 0, message, code="LA118"))
    if errors:
        raise ManifestError(errors)
    return out


def folder(value: object, what: str) -> Path | None:
    """A folder given by a program (None: not given)."""
    if value is None:
        return None
    if isinstance(value, (str, os.PathLike)):
        return Path(value)
    kind = clip_path(type(value).__name__, 60)
    raise ManifestError([Diagnostic(what, 0, 0, f"expected a path, not {kind}", code="LA118")])
