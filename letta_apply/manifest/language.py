"""The manifest language: several files, variables, interpolation, templates and file references,
turned into one plain manifest document that `validate` checks like a hand-written one.

Steps, each reporting every problem it finds with its `file:line:col`:

1. `-f` paths become files (a directory gives its `*.yaml` and `*.yml` files, sorted), each loaded
   with positions; their union is one document (mappings merged key by key, lists concatenated,
   scalars such as `version` and `stack` equal in every file that sets them). A key declared in
   two files is an error naming both places.
2. `variables:` are resolved: declared default < `LETTA_APPLY_VAR_<name>` < `--var-file` files
   in order < `--var` in order (the later wins). For `validate`, one given no value is unknown
   (manifest.unknown), not an error.
3. Every string is interpolated (`${var.x}`, `${env.X}`, `${each.key}`, `${each.value}`,
   `${each.value.field}`, `${count.index}`; `$${` is a literal `${`); a string that is exactly one
   reference takes the referenced value's type. Blocks and agents with `for_each` or `count` become
   one resource per instance (`agent.worker["eu"]`, `agent.worker[0]`).
4. The files entries name (`value_file`, `system_file`, ...: each kind's `file_fields`) are read
   (relative to the manifest file that names them, inside the folder given to `-f` unless
   outside files are allowed).

What is kind-specific (which sections take templates, the fields that default to an entry's
key, the files an entry names, where a sensitive value may go) comes from the kinds the caller
hands in (manifest.sections).

Reading the files with positions is in files.py, resolving variables in variables.py; this module
expands the result and ties the steps together (`load_source`).
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.model import Sensitive, is_secret
from ..errors import Diagnostic, ManifestError
from .files import (
    Document,
    Path_,
    Place,
    Position,
    Unreadable,
    clip,
    clip_path,
    manifest_files,
    read_regular,
)
from .merge import merge
from .parse import parse_file, parse_text
from .sections import Section, by_section, plural
from .unknown import REPRESENTATIVE, Unknown, field_of, settle
from .variables import Options, Variable, as_text, resolve_variables, secrets_of

# `$${` is a literal `${`; `${...}` a reference; a `${` with no `}` an error.
_REF = re.compile(r"\$\$\{|\$\{([^{}]*)\}|\$\{")
_WHOLE_REF = re.compile(r"\$\{([^{}]*)\}")  # a string that is exactly one reference
MAX_REFERENCED_BYTES = 16 * 1024 * 1024


@dataclass
class Source:
    """A manifest expanded to plain data, ready for `validate`, with the problems found while
    loading it (`errors`, masked), and the places whose value those problems left out or empty
    (`quiet`: a check that finds nothing there reports the same problem again)."""

    doc: Document
    files: tuple[str, ...]
    digest: str
    secrets: tuple[str, ...] = field(repr=False)
    errors: tuple[Diagnostic, ...] = ()
    quiet: frozenset[Place] = frozenset()
    # Values not known yet (Options.unknown_values; manifest.unknown): the references given no
    # value (`var.x`, `env.X`), and the paths of the unknown values of a known type, each with a
    # placeholder of that type for the schema check.
    unknown: tuple[str, ...] = ()
    typed: dict[Path_, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Addresses of instances


def instance_key(key: str, index: str | int) -> str:
    """`worker["eu"]` for a for_each key, `worker[0]` for a count index."""
    if isinstance(index, int):
        return f"{key}[{index}]"
    return f"{key}[{json.dumps(index, ensure_ascii=False)}]"


_INSTANCE = re.compile(r'^(?P<base>[^\[\]"]+)\[(?P<index>.*)\]$', re.S)


def normalize_address(address: str) -> str:
    """An address as the manifest names it: `agent.worker[eu]` and `agent.worker['eu']` are
    written `agent.worker["eu"]`; `[0]` stays a count index."""
    m = _INSTANCE.match(address)
    if not m:
        return address
    index = m.group("index")
    if re.fullmatch(r"0|[1-9][0-9]*|\*", index):  # a count index, or every instance
        return address
    if len(index) >= 2 and index[0] == index[-1] and index[0] in "'\"":
        inner = index[1:-1]
        if index[0] == '"':
            with contextlib.suppress(ValueError):
                inner = json.loads(index)
        index = inner
    return instance_key(m.group("base"), index)


# ---------------------------------------------------------------------------------------------
# Interpolation and templates


@dataclass(frozen=True)
class Scope:
    """What `${...}` may refer to at one place in the manifest."""

    each: tuple[str | Unknown, Any] | None = None
    count: int | Unknown | None = None
    what: str = ""  # the resource, for messages


class _Expander:
    def __init__(
        self,
        raw: Document,
        variables: Mapping[str, Variable],
        options: Options,
        kinds: Sequence[Section],
    ) -> None:
        self.raw = raw
        self.variables = variables
        self.options = options
        self.kinds = kinds
        self.sections = by_section(kinds)
        self.by_name = {k.name: k for k in kinds}
        templated = [k.section for k in kinds if k.templated]
        self.out = Document(
            raw.file, None, roots=raw.roots, allow_outside_files=raw.allow_outside_files
        )
        self.errors: list[Diagnostic] = []
        self.read: list[str] = []
        # Templated resources: section -> key -> "for_each" or "count", and their instances.
        self.templates: dict[str, dict[str, str]] = {s: {} for s in templated}
        self.instances: dict[str, dict[str, list[str]]] = {s: {} for s in templated}
        # Templates that made no instances for a reported problem (a count of -1): references
        # to their instances are not "undeclared".
        self.broken: dict[str, set[str]] = {s: set() for s in templated}
        # Templates whose instances are not known yet (manifest.unknown): checked as one.
        self.unknown_templates: dict[str, set[str]] = {s: set() for s in templated}
        self.unknown: set[str] = set()  # the references given no value, `var.x`, `env.X`
        self.typed: dict[Path_, Any] = {}  # unknown values of a known type: placeholders
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

    def resolve(self, expr: str, scope: Scope, path: Path_) -> tuple[bool, Any]:
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

    def string(self, text: str, scope: Scope, path: Path_) -> Any:
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
            kind = _collection(value)
            if kind:
                self.err(
                    path,
                    f"${{{m.group(1)}}} is a {kind}: it can be a whole value, not part of a string",
                    "LA208",
                )
                failed = True
                continue
            sensitive = sensitive or _secret(value) or self._sensitive_ref(m.group(1))
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

    def copy(self, raw_path: Path_, path: Path_, value: Any, scope: Scope) -> Any:
        """`value` (at `raw_path` in the manifest) interpolated, filed under `path`."""
        self.out.values[path] = self.raw.where(raw_path)
        if isinstance(value, str):
            return self.string(value, scope, raw_path)
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if (*raw_path, k) in self.raw.keys:
                    self.out.keys[(*path, k)] = self.raw.keys[(*raw_path, k)]
                out[k] = self.copy((*raw_path, k), (*path, k), v, scope)
            return out
        if isinstance(value, list):
            return [self.copy((*raw_path, i), (*path, i), v, scope) for i, v in enumerate(value)]
        return value

    def _set(self, path: Path_, at: Path_) -> None:
        """Position a value the manifest implies (a default, a file's text) at `at`."""
        self.out.values[path] = self.raw.where(at, key=True)

    def expand(self) -> Any:
        data = self.raw.data
        if not isinstance(data, dict):
            return data
        out: dict[str, Any] = {}
        self.out.values[()] = self.raw.where(())
        for section, value in data.items():
            if section == "variables":
                continue
            if (section,) in self.raw.keys:
                self.out.keys[(section,)] = self.raw.keys[(section,)]
            if section in self.templates and isinstance(value, dict):
                self.out.values[(section,)] = self.raw.where((section,))
                out[section] = self.resources(section, value)
            else:
                out[section] = self.copy((section,), (section,), value, Scope())
        self.references(out)
        for section, field_names in (
            ("moved", ("from", "to")),
            ("imports", ("to",)),
            ("removed", ("from",)),
        ):
            items = out.get(section)
            for item in items if isinstance(items, list) else []:  # the schema reports others
                if isinstance(item, dict):
                    for f in field_names:
                        if isinstance(item.get(f), str):
                            item[f] = normalize_address(item[f])
        self.check_sensitive(out)
        if self.unknown:
            # Unknown values are left empty for the checks (manifest.unknown): nothing is
            # reported where they are but, from the schema, a type their declaration rules out.
            self.typed, places = settle(out, self.place)
            self.quiet |= places
        return out

    def place(self, path: Path_) -> Place:
        pos = self.out.where(path)
        return pos.file or self.raw.file, pos.line, pos.col

    def resources(self, section: str, specs: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        kind = self.sections[section]
        for key, spec in specs.items():
            raw_path: Path_ = (section, key)
            if not isinstance(spec, dict) or ("for_each" not in spec and "count" not in spec):
                if isinstance(spec, dict) and ("[" in key or "]" in key):
                    self.err(
                        raw_path,
                        f"{section}.{key}: keys cannot contain '[' or ']': instances are made "
                        "by for_each or count",
                        "LA210",
                        key=True,
                    )
                if raw_path in self.raw.keys:
                    self.out.keys[raw_path] = self.raw.keys[raw_path]
                value = self.copy(raw_path, raw_path, spec, Scope(what=f"{kind.name}.{key}"))
                out[key] = self.files(section, raw_path, raw_path, value, Scope())
                continue
            instances = self.instances_of(section, key, spec)
            if instances is None:
                self.broken[section].add(key)
                continue
            body = {k: v for k, v in spec.items() if k not in ("for_each", "count")}
            keys: list[str] = []
            for index, scope in instances:
                ikey = instance_key(key, index)
                path: Path_ = (section, ikey)
                self.out.keys[path] = self.raw.where(raw_path, key=True)
                value = self.copy(raw_path, path, body, scope)
                if isinstance(value, dict):
                    self.key_defaults(kind, spec, key, index, value, path)
                out[ikey] = self.files(section, raw_path, path, value, scope)
                keys.append(ikey)
            self.instances[section][key] = keys
        return out

    def key_defaults(
        self,
        kind: Section,
        spec: dict[str, Any],
        key: str,
        index: str | int,
        value: dict[str, Any],
        path: Path_,
    ) -> None:
        """The fields of an instance that default to the template's key (`kind.key_fields`):
        a label to the key alone, a name (unique) to key-index."""
        raw_path: Path_ = (kind.section, key)
        for name, how in kind.key_fields.items():
            if name in value:
                continue
            if how == "key" or self.known(kind.section, key):
                value[name] = key if how == "key" else f"{key}-{index}"
                self._set((*path, name), raw_path)
            else:
                # Not known yet either: placed with the count or for_each that tells it.
                value[name] = Unknown("string")
                template = "count" if "count" in spec else "for_each"
                self.out.values[(*path, name)] = self.raw.where((*raw_path, template))

    def known(self, section: str, key: str) -> bool:
        """Whether the instances of template `key` are known (else one stands for them)."""
        return key not in self.unknown_templates[section]

    def template_value(self, path: Path_, name: str, spec: dict[str, Any]) -> Any:
        """The value of `count` or `for_each`, or None after reporting why there is none. An
        empty or null value is an error, never zero instances: on a live stack that would plan
        the deletion of every instance."""
        at: Path_ = (*path, name)
        before = len(self.errors), self.unresolved
        value = self.copy(at, at, spec[name], Scope())
        if value is None and (len(self.errors), self.unresolved) == before:
            self.err(
                at,
                f"{_where(at)}: no value (empty or null); write {'0' if name == 'count' else '[]'} "
                "for no instances",
                "LA211",
            )
        return value

    def within_cap(self, path: Path_, name: str, n: int) -> bool:
        cap = self.options.max_instances
        if n > cap:
            self.err(
                (*path, name),
                f"{_where((*path, name))}: {n} instances, over the limit of {cap} per template "
                "(--max-instances raises it)",
                "LA212",
            )
        return n <= cap

    def instances_of(
        self, section: str, key: str, spec: dict[str, Any]
    ) -> list[tuple[str | int, Scope]] | None:
        path: Path_ = (section, key)
        what = f"{section}.{key}"
        if "[" in key or "]" in key:
            self.err(path, f"{what}: keys cannot contain '[' or ']'", "LA210", key=True)
            return None
        if "for_each" in spec and "count" in spec:
            self.err(
                (*path, "count"), f"{what}: use for_each or count, not both", "LA213", key=True
            )
            return None
        if "count" in spec:
            self.templates[section][key] = "count"
            n = self.template_value(path, "count", spec)
            if n is None:
                return None
            if _secret(n):
                self.err(
                    (*path, "count"),
                    f"{what}.count: cannot be sensitive: the number of instances is shown",
                    "LA214",
                )
                return None
            if isinstance(n, Unknown):
                return self.representative(section, key, "count", n)
            if isinstance(n, float) and n.is_integer():
                n = int(n)
            if not isinstance(n, int) or isinstance(n, bool) or n < 0:
                self.err(
                    (*path, "count"), f"{what}.count: expected a whole number, 0 or more", "LA215"
                )
                return None
            if not self.within_cap(path, "count", n):
                return None
            return [(i, Scope(count=i, what=what)) for i in range(n)]
        self.templates[section][key] = "for_each"
        items = self.template_value(path, "for_each", spec)
        if items is None:
            return None
        if isinstance(items, (list, dict)) and not self.within_cap(path, "for_each", len(items)):
            return None
        if isinstance(items, list):
            bad = [x for x in items if not isinstance(x, str) and not _maybe_string(x)]
            if bad:
                got = f"a {bad[0].type}" if isinstance(bad[0], Unknown) else clip(as_text(bad[0]))
                self.err(
                    (*path, "for_each"),
                    f"{what}.for_each: a list must hold strings (they become the instance "
                    f"keys); got {got}; use a map for other values",
                    "LA216",
                )
                return None
            if any(isinstance(x, Unknown) for x in items):  # its keys are not known yet
                items = Unknown("list", any(_secret(x) for x in items))
        if isinstance(items, Unknown):
            return self.representative(section, key, "for_each", items)
        if isinstance(items, list):
            dupes = sorted(x for x, n in Counter(items).items() if n > 1)  # linear: no count()
            if dupes:
                self.err(
                    (*path, "for_each"), f"{what}.for_each: {clip(dupes[0])} is listed twice",
                    "LA217",
                )  # fmt: skip
                return None
            pairs: list[tuple[str, Any]] = [(x, x) for x in items]
        elif isinstance(items, dict):
            pairs = list(items.items())
        else:
            self.err((*path, "for_each"), f"{what}.for_each: expected a list or a map", "LA218")
            return None
        if any(is_secret(k) for k, _ in pairs):
            self.err(
                (*path, "for_each"),
                f"{what}.for_each: instance keys cannot be sensitive: they appear in addresses",
                "LA214",
            )
            return None
        return [(k, Scope(each=(k, v), what=what)) for k, v in pairs]

    def representative(
        self, section: str, key: str, name: str, value: Unknown
    ) -> list[tuple[str | int, Scope]] | None:
        """For a template whose count or for_each is not known yet, one instance standing for
        every one (manifest.unknown), or None after reporting what its declaration already
        rules out."""
        at: Path_ = (section, key, name)
        what = f"{section}.{key}.{name}"
        wanted = ("number",) if name == "count" else ("list", "map")
        if value.type is not None and value.type not in wanted:
            expected = "a whole number, 0 or more" if name == "count" else "a list or a map"
            code = "LA215" if name == "count" else "LA218"
            self.err(at, f"{what}: expected {expected}, got a {value.type}", code)
            return None
        if value.sensitive and value.type == "list":
            self.err(
                at, f"{what}: instance keys cannot be sensitive: they appear in addresses", "LA214"
            )
            return None
        self.unknown_templates[section].add(key)
        if name == "count":
            return [(REPRESENTATIVE, Scope(count=Unknown("number"), what=f"{section}.{key}"))]
        each_value = Unknown("string" if value.type == "list" else None, value.sensitive)
        scope = Scope(each=(Unknown("string"), each_value), what=f"{section}.{key}")
        return [(REPRESENTATIVE, scope)]

    def files(self, section: str, raw_path: Path_, path: Path_, value: Any, scope: Scope) -> Any:
        """Read the files an entry names (its kind's `file_fields`: `value_file`...) into their
        fields, and those the entries nested in it name (an agent's own blocks)."""
        if not isinstance(value, dict):
            return value
        kind = self.sections[section]
        self.file_fields(kind.file_fields, raw_path, path, value)
        templated = " and ".join(plural(k) for k in self.kinds if k.templated)
        for field_name, nested_kind in kind.nested.items():
            nested = self.by_name[nested_kind]
            own = value.get(field_name)
            for i, entry in enumerate(own if isinstance(own, list) else []):
                if isinstance(entry, dict):
                    for t in ("for_each", "count"):
                        if t in entry:
                            at: Path_ = (*raw_path, field_name, i, t)
                            self.err(at, f"{_where(at)}: {t} is for {templated}; "
                                     f"{_a(kind.name)}'s own {nested.section} come with each of "
                                     "its instances", "LA219", key=True)  # fmt: skip
                            del entry[t]
                    self.file_fields(
                        nested.file_fields, (*raw_path, field_name, i),
                        (*path, field_name, i), entry,
                    )  # fmt: skip
        return value

    def file_fields(
        self, fields: Mapping[str, str], raw_path: Path_, path: Path_, spec: dict[str, Any]
    ) -> None:
        for key, target in fields.items():
            if key not in spec:
                continue
            name = spec.pop(key)
            at: Path_ = (*raw_path, key)
            if target in spec:
                self.err(
                    at, f"{_where(raw_path)}: set {target} or {key}, not both", "LA221", key=True
                )
                continue
            if _maybe_string(name):  # which file is not known yet, nor its text
                spec[target] = Unknown("string")
                self.out.values[(*path, target)] = self.raw.where(at)
                continue
            if not isinstance(name, str) or not name:
                if name is not None:
                    self.err(at, f"{_where(at)}: expected a file path", "LA222")
                    spec[target] = None  # not reported missing on top: see below
                    self.out.values[(*path, target)] = self.raw.where(at)
                continue
            text = self.read_file(name, at)
            # A file that could not be read (reported at `at`) leaves its field empty, at the
            # same place, where the problem is already reported: not "missing" on top.
            spec[target] = text
            self.out.values[(*path, target)] = self.raw.where(at)

    def read_file(self, name: str, at: Path_) -> str | None:
        target, refused = self.raw.referenced(at, name)
        if refused:
            self.err(at, f"{_where(at)}: {refused}", "LA120")
            return None
        try:
            text = read_regular(target, MAX_REFERENCED_BYTES).decode("utf-8")
        except Unreadable as e:
            if not target.exists() and not target.is_symlink():
                looked = clip_path(str(target))
                self.err(
                    at, f"{_where(at)}: file {clip(name)} not found (looked for {looked})", "LA121"
                )
            else:
                self.err(at, f"{_where(at)}: {clip(name)} {e}", "LA122")
            return None
        except UnicodeDecodeError:
            self.err(at, f"{_where(at)}: {clip(name)} is not UTF-8 text", "LA123")
            return None
        self.read.append(str(target))
        return text

    # -- references between resources ---------------------------------------------------------

    def references(self, data: dict[str, Any]) -> None:
        """The fields that name shared blocks or agents by key (each kind's `instance_refs`:
        an agent's `blocks:`, a group's members), read alike: `region[eu]` is `region["eu"]`,
        and `region[*]`, in a list, every instance of `region`."""
        for k in self.kinds:
            section = data.get(k.section)
            if not k.instance_refs or not isinstance(section, dict):
                continue
            for key, spec in section.items():
                if not isinstance(spec, dict):
                    continue
                for name, target in k.instance_refs.items():
                    at: Path_ = (k.section, key, name)
                    value = spec.get(name)
                    if isinstance(value, str):
                        # One resource: a wrong name is reported, and left for no check to
                        # report again (the same place).
                        spec[name] = next(iter(self.named(value, target, at, many=False)), value)
                    elif isinstance(value, list):
                        self.reference_list(value, target, at)

    def named(self, ref: str, target: str, at: Path_, *, many: bool) -> list[str]:
        """The keys of `target` (blocks, agents) that `ref`, at `at`, names: none, reported,
        for a template named without one instance (or, where one is named, with `[*]`)."""
        ref = normalize_address(ref)
        m = _INSTANCE.match(ref)
        base = m.group("base") if m else ref
        templates = self.templates.get(target, {})
        if base not in templates or (m and m.group("index") != "*"):
            return [ref]
        if m and many:
            return list(self.instances[target].get(base, []))
        known = self.instances[target].get(base, []) if self.known(target, base) else []
        example = _instance_example(base, templates[base], known)
        every = f", or every one, {base}[*]" if many else ""
        pos = self.out.where(at)
        self.errors.append(
            Diagnostic(
                pos.file or self.raw.file, pos.line, pos.col,
                f"{_where(at)}: {self.sections[target].name}.{base} has {templates[base]}: "
                f"name one instance, {example}{every}", code="LA220",
            )
        )  # fmt: skip
        return []

    def reference_list(self, refs: list[Any], target: str, at: Path_) -> None:
        """`refs` (the list at `at`) with each entry read by `named`, in place."""
        out: list[Any] = []
        positions: list[Position] = []
        expanded = False  # whether an entry became other than one entry
        for i, ref in enumerate(refs):
            pos = self.out.where((*at, i))
            found = self.named(ref, target, (*at, i), many=True) if isinstance(ref, str) else [ref]
            expanded = expanded or len(found) != 1
            out.extend(found)
            positions.extend(pos for _ in found)
        refs[:] = out
        if not expanded:
            return  # same entries, same places: the recorded positions stand
        # Renumbering scans every recorded position: only worth it when entries moved (a scan
        # per agent made loading quadratic in the size of the manifest).
        n = len(at)
        for table in (self.out.values, self.out.keys):
            for p in [p for p in table if p[:n] == at and len(p) > n]:
                del table[p]
        for i, pos in enumerate(positions):
            self.out.values[(*at, i)] = pos

    def broken_references(self, data: Any) -> set[Place]:
        """Where the manifest names an instance of a template that made none for a reported
        problem (`block.w[0]` of a `count: -1`), or whose instances are not known yet (but the
        one standing for them): no check reports those names undeclared."""
        if not any(self.broken.values()) and not any(self.unknown_templates.values()):
            return set()
        prefixes = {s: f"{self.sections[s].name}." for s in self.templates}
        stands = instance_key("", REPRESENTATIVE)
        out: set[Place] = set()

        def names_broken(text: str) -> bool:
            m = _INSTANCE.match(text)
            if not m:
                return False
            base = m.group("base")
            for section in self.templates:
                keys = self.broken[section]
                if m.group() != base + stands:
                    keys = keys | self.unknown_templates[section]
                if base in keys or base.removeprefix(prefixes[section]) in keys:
                    return True
            return False

        stack: list[tuple[Path_, Any]] = [((), data)]
        while stack:
            path, value = stack.pop()
            if isinstance(value, str):
                if names_broken(normalize_address(value)):
                    pos = self.out.where(path)
                    out.add((pos.file or self.raw.file, pos.line, pos.col))
            elif isinstance(value, dict):
                stack.extend(((*path, k), v) for k, v in value.items())
            elif isinstance(value, list):
                stack.extend(((*path, i), v) for i, v in enumerate(value))
        return out

    def check_sensitive(self, data: dict[str, Any]) -> None:
        """A sensitive value goes only where it is masked: in a field of an entry that a kind
        says takes one (`sensitive_in`; any such field along the path, of any kind that takes
        one), never in a name, label or tag (shown and matched everywhere), never in a field
        shown whole (`shown_whole`)."""
        sections = {k.section for k in self.kinds if k.sensitive_in}
        ok = {f for k in self.kinds for f in k.sensitive_in}
        whole = {f: why for k in self.kinds for f, why in k.shown_whole.items()}
        where_ok = f"it can go in {_listed(sorted(ok))}"

        def walk(value: Any, path: Path_) -> None:
            if _secret(value):
                fields = [p for p in path if isinstance(p, str)]
                shown = next((whole[f] for f in fields[2:] if f in whole), None)
                allowed = (
                    len(path) >= 3
                    and path[0] in sections
                    and any(f in ok for f in fields[2:])
                    and fields[-1] not in ("label", "name", "tags")
                    and "tags" not in fields[2:]
                    and shown is None
                )
                if not allowed:
                    pos = self.out.where(path)
                    why = shown or where_ok
                    self.errors.append(
                        Diagnostic(
                            pos.file or self.raw.file, pos.line, pos.col,
                            f"{_where(path)}: a sensitive value cannot be used here (it would be "
                            f"shown); {why}", code="LA223",
                        )
                    )  # fmt: skip
            elif isinstance(value, dict):
                for k, v in value.items():
                    walk(v, (*path, k))
            elif isinstance(value, list):
                for i, v in enumerate(value):
                    walk(v, (*path, i))

        walk(data, ())


def _instance_example(key: str, template: str, instances: list[str]) -> str:
    """One instance of template `key` as a manifest may name it: `w[0]`, `region[eu]`."""
    if template == "count":
        return f"{key}[0]"
    m = _INSTANCE.match(instances[0]) if instances else None
    if not m:
        return f"{key}[KEY]"
    index = json.loads(m.group("index"))
    # A key that reads as a number keeps its quotes: `w[0]` is a count index.
    return f"{key}[{index}]" if re.fullmatch(r"[A-Za-z_][\w-]*", index) else instances[0]


def _listed(words: Sequence[str]) -> str:
    """`a, b and c`."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


def _maybe_string(value: Any) -> bool:
    """Whether `value` is a string not known yet, or a value not known yet of unknown type."""
    return isinstance(value, Unknown) and value.type in (None, "string")


def _secret(value: Any) -> bool:
    """Whether `value` came from a sensitive variable (known or not yet)."""
    return is_secret(value) or (isinstance(value, Unknown) and value.sensitive)


def _collection(value: Any) -> str:
    """`map` or `list` for a value of that type (known, or declared), else empty."""
    if isinstance(value, Unknown):
        return value.type if value.type in ("map", "list") else ""
    return "map" if isinstance(value, dict) else "list" if isinstance(value, list) else ""


def _close(name: str, names: list[str]) -> str:
    hint = difflib.get_close_matches(name, names, n=1)
    return f"; did you mean '{hint[0]}'?" if hint else ""


def _where(path: Path_) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else p)
    return out or "manifest"


# ---------------------------------------------------------------------------------------------
# The whole step


def _digest(
    files: Sequence[str], variables: Mapping[str, Variable], texts: Mapping[str, str]
) -> str:
    """sha256 over every file read (or manifest text given as such) and every variable value.
    Sensitive values are left out: a hash of a short secret gives it away; a saved plan is
    checked against them another way."""
    h = hashlib.sha256()
    for f in sorted(set(files)):
        h.update(f.encode("utf-8", "surrogateescape") + b"\0")
        try:
            h.update(texts[f].encode("utf-8") if f in texts else read_regular(f, 1 << 30))
        except Unreadable:
            h.update(b"\0unreadable")
        h.update(b"\0")
    plain = {n: v.value for n, v in variables.items() if not v.sensitive}
    h.update(json.dumps(plain, sort_keys=True, default=str).encode("utf-8"))
    return "sha256:" + h.hexdigest()


def load_source(
    paths: str | Sequence[str],
    kinds: Iterable[Section],
    options: Options | None = None,
    *,
    mask: Callable[[str], str] | None = None,
) -> Source:
    """Load the manifest `paths` name, of `kinds` (letta_apply.kinds.KINDS), into one plain
    document. The problems found on the way are in `Source.errors` (messages masked of
    sensitive values), for `validate` to report with its own; raises ManifestError only when a
    file cannot be read at all (invalid YAML)."""
    paths = [paths] if isinstance(paths, str) else list(paths)
    files, errors = manifest_files(paths)
    docs: list[Document] = []
    problems: list[Diagnostic] = []
    fatal = bool(errors)
    for file, _root in files:
        try:
            doc, found = parse_file(file)
        except ManifestError as e:
            errors.extend(e.diagnostics)
            fatal = True
            continue
        docs.append(doc)
        problems += found
    if fatal or not docs:
        errors += problems
        raise ManifestError(
            errors or [Diagnostic("-f", 0, 0, "no manifest file given", code="LA102")]
        )
    return _expand(docs, files, tuple(kinds), options or Options(), {}, problems)


def load_source_text(
    text: str,
    name: str,
    kinds: Iterable[Section],
    options: Options | None = None,
    *,
    root: Path,
) -> Source:
    """Like load_source, for a manifest given as YAML text: `name` stands for its file in
    messages, and the files it names are read relative to `root` (and kept inside it)."""
    doc, problems = parse_text(text, name)
    return _expand([doc], [(name, root)], tuple(kinds), options or Options(), {name: text},
                   problems)  # fmt: skip


def _expand(
    docs: list[Document],
    files: list[tuple[str, Path]],
    kinds: Sequence[Section],
    options: Options,
    texts: Mapping[str, str],
    problems: list[Diagnostic],
) -> Source:
    raw, errors = merge(docs)
    errors = [*problems, *errors]
    variables, var_files, variable_errors = resolve_variables(raw, options)
    errors += variable_errors
    secrets = sorted({s for v in variables.values() if v.sensitive for s in secrets_of(v.value)})
    raw.roots = dict(files)
    raw.allow_outside_files = options.allow_outside_files
    # Every step goes on past the problems it finds (what they leave out is left empty), so
    # that validation reports the rest at once.
    expander = _Expander(raw, variables, options, kinds)
    expanded = expander.expand()
    errors += expander.errors
    expander.out.data = expanded
    if options.unknown_values:  # used or not, plan asks for their values
        expander.unknown |= {
            f"var.{v.name}" for v in variables.values() if not v.has_value and not v.invalid
        }
    # Files the kinds' entries name (a tool's source) are read now, once: validation does no
    # I/O, and their text is part of the digest a saved plan is checked against.
    sources: list[str] = []
    # A document that is not a mapping has no entries to read files for: the schema says what
    # it should be.
    for k in kinds if isinstance(expanded, dict) else ():
        read_by_kind, read_problems = k.read_files(expander.out, expanded)
        sources += read_by_kind
        errors += read_problems
    manifest_names = [f for f, _ in files]
    read = [*manifest_names, *expander.read, *sources, *var_files]
    digest = _digest(read, variables, texts)
    quiet = expander.quiet | expander.broken_references(expanded)
    return Source(
        expander.out, tuple(manifest_names), digest, tuple(secrets),
        tuple(_masked(errors, secrets).diagnostics) if errors else (), frozenset(quiet),
        tuple(sorted(expander.unknown)), expander.typed,
    )  # fmt: skip


def _masked(errors: list[Diagnostic], secrets: Sequence[str]) -> ManifestError:
    from ..core.sensitive import Masker

    masker = Masker(secrets)
    return ManifestError(
        [
            Diagnostic(d.file, d.line, d.col, masker.text(d.message), code=d.code)
            for d in dict.fromkeys(errors)
        ]
    )
