"""`${...}` in a manifest's strings (`${var.x}`, `${env.X}`, `${each.key}`, `${each.value}`,
`${each.value.field}`, `${count.index}`; `$${` is a literal `${`), resolved while the manifest is
copied into plain data. A string that is exactly one reference takes the referenced value's type;
a value from a sensitive variable stays marked (model.Sensitive) wherever it goes."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..core.model import Sensitive, is_secret
from ..errors import Diagnostic
from .files import Document, Path_, Place
from .unknown import Unknown, field_of
from .variables import Options, Variable, as_text

# `$${` is a literal `${`; `${...}` a reference; a `${` with no `}` an error.
_REF = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")
_WHOLE_REF = re.compile(r"\$\{([^{}]*)\}")  # a string that is exactly one reference


@dataclass(frozen=True)
class Scope:
    """What `${...}` may refer to at one place in the manifest."""

    each: tuple[str | Unknown, object] | None = None
    count: int | Unknown | None = None
    what: str = ""  # the resource, for messages


class Interpolator:
    """Interpolates the manifest `raw` into `out`, a document of plain values filed at their
    places, collecting the problems found (`errors`) and what they leave empty (`quiet`)."""

    def __init__(self, raw: Document, variables: Mapping[str, Variable], options: Options) -> None:
        self.raw = raw
        self.variables = variables
        self.options = options
        self.out = Document(
            raw.file, None, roots=raw.roots, allow_outside_files=raw.allow_outside_files
        )
        # A document read without positions (manifest.quick) has none to carry over.
        self.positioned = bool(raw.values)
        self.errors: list[Diagnostic] = []
        self.unknown: set[str] = set()  # the references given no value, `var.x`, `env.X`
        self.quiet: set[Place] = set()
        self.unresolved = 0  # strings left empty for a problem reported elsewhere
        # A `variables:` that is not a mapping (reported): its names are unknown, not undefined.
        section = raw.data.get("variables") if isinstance(raw.data, dict) else None
        self.no_variables = section is not None and not isinstance(section, dict)

    def err(self, path: Path_, message: str, code: str, *, key: bool = False) -> None:
        self.errors.append(self.raw.diag(path, message, code=code, key=key))

    def hush(self, path: Path_) -> None:
        """The value at `path` is left empty for a problem already reported."""
        pos = self.raw.where(path)
        self.quiet.add((pos.file or self.raw.file, pos.line, pos.col))
        self.unresolved += 1

    # -- strings -------------------------------------------------------------------------------

    def resolve(self, expr: str, scope: Scope, path: Path_) -> tuple[bool, object]:
        parts = expr.strip().split(".")
        head = parts[0]
        ref = "${" + expr + "}"
        if head == "var" and len(parts) == 2:
            var = self.variables.get(parts[1])
            if var is None and self.no_variables:
                return False, None
            if var is None:
                known = ", ".join(sorted(self.variables)) or "none are declared"
                hint = _close(parts[1], list(self.variables))
                self.err(
                    path, f"{ref}: undefined variable '{parts[1]}'{hint} (declared: {known})",
                    "LA201",
                )  # fmt: skip
                return False, None
            if not var.has_value and self.options.unknown_values and not var.invalid:
                self.unknown.add(f"var.{var.name}")
                return True, Unknown(var.type, var.sensitive)
            if not var.has_value:
                return False, None  # reported once, at its declaration
            return True, var.value
        if head == "env" and len(parts) == 2:
            if parts[1] not in self.options.env and self.options.unknown_values:
                self.unknown.add(f"env.{parts[1]}")
                return True, Unknown("string")
            if parts[1] not in self.options.env:
                self.err(path, f"{ref}: environment variable {parts[1]} is not set", "LA202")
                return False, None
            return True, self.options.env[parts[1]]
        if head == "each" and len(parts) >= 2 and parts[1] in ("key", "value"):
            if scope.each is None:
                self.err(
                    path,
                    f"{ref}: each.{parts[1]} is only defined in a block or agent with for_each",
                    "LA203",
                )
                return False, None
            if parts[1] == "key":
                if len(parts) > 2:
                    self.err(path, f"{ref}: each.key has no fields", "LA204")
                    return False, None
                return True, scope.each[0]
            value = scope.each[1]
            for i, name in enumerate(parts[2:]):
                inner = field_of(value) if isinstance(value, Unknown) else None
                if inner is not None:
                    value = inner
                    continue
                if not isinstance(value, dict) or name not in value:
                    at = ".".join(["each", "value", *parts[2 : 2 + i]])
                    self.err(path, f"{ref}: {at} has no field '{name}'", "LA204")
                    return False, None
                value = value[name]
            return True, value
        if head == "count" and parts[1:] == ["index"]:
            if scope.count is None:
                self.err(
                    path, f"{ref}: count.index is only defined in a block or agent with count",
                    "LA205",
                )  # fmt: skip
                return False, None
            return True, scope.count
        self.err(
            path,
            f"{ref}: unknown reference; use ${{var.NAME}}, ${{env.NAME}}, ${{each.key}}, "
            "${each.value}, ${count.index}, or write $${ for a literal '${'",
            "LA206",
        )
        return False, None

    def string(self, text: str, scope: Scope, path: Path_) -> object:
        """`text` with its references replaced. A string that is exactly one reference takes the
        referenced value (and its type)."""
        if "${" not in text:
            return text
        whole = _WHOLE_REF.fullmatch(text)
        if whole:
            ok, value = self.resolve(whole.group(1), scope, path)
            if not ok:
                self.hush(path)
            return value if ok else None
        matches = _REF.finditer(text)  # lazily: a string of garbage stops at its first error
        out: list[str] = []
        sensitive = False
        pos = 0
        failed = False
        unknown = False  # a part not known yet: so is the whole string
        for m in matches:
            out.append(text[pos : m.start()])
            pos = m.end()
            if m.group() == "$${":
                out.append("${")
                continue
            if m.group(1) is None:
                # Once per string: 10 MB of `${` made millions of identical errors.
                self.err(
                    path, "unclosed '${': no matching '}' (write $${ for a literal '${')", "LA207"
                )
                self.hush(path)
                return None
            ok, value = self.resolve(m.group(1), scope, path)
            if not ok:
                failed = True
                continue
            kind = collection(value)
            if kind:
                self.err(
                    path,
                    f"${{{m.group(1)}}} is a {kind}: it can be a whole value, not part of a string",
                    "LA208",
                )
                failed = True
                continue
            sensitive = sensitive or secret(value) or self._sensitive_ref(m.group(1))
            if isinstance(value, Unknown):
                unknown = True
                continue
            out.append(as_text(value))
        out.append(text[pos:])
        if failed:
            self.hush(path)
            return None
        if unknown:
            return Unknown("string", sensitive)
        joined = "".join(out)
        return Sensitive(joined) if sensitive else joined

    def _sensitive_ref(self, expr: str) -> bool:
        parts = expr.strip().split(".")
        var = self.variables.get(parts[1]) if parts[0] == "var" and len(parts) == 2 else None
        return var is not None and var.sensitive

    # -- trees ---------------------------------------------------------------------------------

    def copy(self, raw_path: Path_, path: Path_, value: object, scope: Scope) -> object:
        """`value` (at `raw_path` in the manifest) interpolated, filed under `path`."""
        if not self.positioned:
            return self._copy(raw_path, value, scope)
        pos = self.raw.values.get(raw_path)  # where() looks here first: a large tree is copied
        self.out.values[path] = self.raw.where(raw_path) if pos is None else pos
        if isinstance(value, str):
            return self.string(value, scope, raw_path) if "${" in value else value
        if isinstance(value, dict):
            out = {}
            raw_keys, out_keys = self.raw.keys, self.out.keys
            for k, v in value.items():
                key_pos = raw_keys.get((*raw_path, k))
                if key_pos is not None:
                    out_keys[(*path, k)] = key_pos
                out[k] = self.copy((*raw_path, k), (*path, k), v, scope)
            return out
        if isinstance(value, list):
            return [self.copy((*raw_path, i), (*path, i), v, scope) for i, v in enumerate(value)]
        return value

    def _copy(self, raw_path: Path_, value: object, scope: Scope) -> object:
        """copy() with no position to carry over."""
        if isinstance(value, str):
            return self.string(value, scope, raw_path) if "${" in value else value
        if isinstance(value, dict):
            return {k: self._copy((*raw_path, k), v, scope) for k, v in value.items()}
        if isinstance(value, list):
            return [self._copy((*raw_path, i), v, scope) for i, v in enumerate(value)]
        return value

    def place(self, path: Path_) -> Place:
        """Where the value at `path` of the output came from."""
        pos = self.out.where(path)
        return pos.file or self.raw.file, pos.line, pos.col


def maybe_string(value: object) -> bool:
    """Whether `value` is a string not known yet, or a value not known yet of unknown type."""
    return isinstance(value, Unknown) and value.type in (None, "string")


def secret(value: object) -> bool:
    """Whether `value` came from a sensitive variable (known or not yet)."""
    return is_secret(value) or (isinstance(value, Unknown) and value.sensitive)


def collection(value: object) -> str:
    """`map` or `list` for a value of that type (known, or declared), else empty."""
    if isinstance(value, Unknown):
        return value.type if value.type in ("map", "list") else ""
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else ""


def _close(name: str, names: list[str]) -> str:
    hint = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean '{hint[0]}'?" if hint else ""


def spelled(path: Path_) -> str:
    """A path in the manifest as messages write it: agents.bot.memory_blocks[0].label."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "manifest"
