"""A manifest's templates and the files its entries name, expanded into plain entries.

Blocks and agents with `for_each` or `count` become one resource per instance
(`agent.worker["eu"]`, `agent.worker[0]`); the files entries name (`value_file`, `system_file`,
...: each kind's `file_fields`) are read, relative to the manifest file that names them and
inside the folder given to `-f` unless outside files are allowed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from ..core.model import is_secret
from .addresses import instance_key, normalize_address
from .files import Document, Path_, Unreadable, clip, clip_path, read_regular
from .interpolate import Interpolator, Scope, maybe_string, secret, spelled
from .references import resolve_references
from .sections import Section, by_section, plural
from .sensitive import misplaced_secrets
from .unknown import REPRESENTATIVE, Unknown, settle
from .variables import Options, Variable, as_text

MAX_REFERENCED_BYTES = 16 * 1024 * 1024


class Expander(Interpolator):
    """Expands the manifest `raw` of `kinds`: templates into instances, the files entries name
    into their fields, references between entries read alike (references.py)."""

    def __init__(
        self,
        raw: Document,
        variables: Mapping[str, Variable],
        options: Options,
        kinds: Sequence[Section],
    ) -> None:
        super().__init__(raw, variables, options)
        self.kinds = kinds
        self.sections = by_section(kinds)
        self.by_name = {k.name: k for k in kinds}
        templated = [k.section for k in kinds if k.templated]
        self.read: list[str] = []
        # Templated resources: section -> key -> "for_each" or "count", and their instances.
        self.templates: dict[str, dict[str, str]] = {s: {} for s in templated}
        self.instances: dict[str, dict[str, list[str]]] = {s: {} for s in templated}
        # Templates that made no instances for a reported problem (a count of -1): references
        # to their instances are not "undeclared".
        self.broken: dict[str, set[str]] = {s: set() for s in templated}
        # Templates whose instances are not known yet (manifest.unknown): checked as one.
        self.unknown_templates: dict[str, set[str]] = {s: set() for s in templated}
        self.typed: dict[Path_, object] = {}  # unknown values of a known type: placeholders

    def expand(self) -> object:
        data = self.raw.data
        if not isinstance(data, dict):
            return data
        out: dict[str, object] = {}
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
        resolve_references(self, out)
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
        if any(v.sensitive for v in self.variables.values()):  # else no value is sensitive
            self.errors += misplaced_secrets(out, self.kinds, self.place)
        if self.unknown:
            # Unknown values are left empty for the checks (manifest.unknown): nothing is
            # reported where they are but, from the schema, a type their declaration rules out.
            self.typed, places = settle(out, self.place)
            self.quiet |= places
        return out

    def resources(self, section: str, specs: dict[str, object]) -> dict[str, object]:
        out: dict[str, object] = {}
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
        spec: dict[str, object],
        key: str,
        index: str | int,
        value: dict[str, object],
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

    def _set(self, path: Path_, at: Path_) -> None:
        """Position a value the manifest implies (a default, a file's text) at `at`."""
        self.out.values[path] = self.raw.where(at, key=True)

    def known(self, section: str, key: str) -> bool:
        """Whether the instances of template `key` are known (else one stands for them)."""
        return key not in self.unknown_templates[section]

    def template_value(self, path: Path_, name: str, spec: dict[str, object]) -> object:
        """The value of `count` or `for_each`, or None after reporting why there is none. An
        empty or null value is an error, never zero instances: on a live stack that would plan
        the deletion of every instance."""
        at: Path_ = (*path, name)
        before = len(self.errors), self.unresolved
        value = self.copy(at, at, spec[name], Scope())
        if value is None and (len(self.errors), self.unresolved) == before:
            self.err(
                at,
                f"{spelled(at)}: no value (empty or null); write "
                f"{'0' if name == 'count' else '[]'} for no instances",
                "LA211",
            )
        return value

    def within_cap(self, path: Path_, name: str, n: int) -> bool:
        cap = self.options.max_instances
        if n > cap:
            self.err(
                (*path, name),
                f"{spelled((*path, name))}: {n} instances, over the limit of {cap} per template "
                "(--max-instances raises it)",
                "LA212",
            )
        return n <= cap

    def instances_of(
        self, section: str, key: str, spec: dict[str, object]
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
            return self.counted(section, key, spec)
        return self.each(section, key, spec)

    def counted(
        self, section: str, key: str, spec: dict[str, object]
    ) -> list[tuple[str | int, Scope]] | None:
        """The instances of template `key` with `count`, or None after reporting why none."""
        path: Path_ = (section, key)
        what = f"{section}.{key}"
        self.templates[section][key] = "count"
        n = self.template_value(path, "count", spec)
        if n is None:
            return None
        if secret(n):
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
            self.err((*path, "count"), f"{what}.count: expected a whole number, 0 or more", "LA215")
            return None
        if not self.within_cap(path, "count", n):
            return None
        return [(i, Scope(count=i, what=what)) for i in range(n)]

    def each(
        self, section: str, key: str, spec: dict[str, object]
    ) -> list[tuple[str | int, Scope]] | None:
        """The instances of template `key` with `for_each`, or None after reporting why none."""
        path: Path_ = (section, key)
        what = f"{section}.{key}"
        self.templates[section][key] = "for_each"
        items = self.template_value(path, "for_each", spec)
        if items is None:
            return None
        if isinstance(items, (list, dict)) and not self.within_cap(path, "for_each", len(items)):
            return None
        if isinstance(items, list):
            bad = [x for x in items if not isinstance(x, str) and not maybe_string(x)]
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
                items = Unknown("list", any(secret(x) for x in items))
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
            pairs: list[tuple[str, object]] = [(x, x) for x in items]
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

    def files(
        self, section: str, raw_path: Path_, path: Path_, value: object, scope: Scope
    ) -> object:
        """Read the files an entry names (its kind's `file_fields`: `value_file`...) into their
        fields, and those the entries nested in it name (an agent's own blocks)."""
        if not isinstance(value, dict):
            return value
        kind = self.sections[section]
        self.file_fields(kind.file_fields, raw_path, path, value)
        for field_name, nested_kind in kind.nested.items():
            nested = self.by_name[nested_kind]
            own = value.get(field_name)
            for i, entry in enumerate(own if isinstance(own, list) else []):
                if isinstance(entry, dict):
                    for t in ("for_each", "count"):
                        if t in entry:
                            at: Path_ = (*raw_path, field_name, i, t)
                            templated = " and ".join(plural(k) for k in self.kinds if k.templated)
                            self.err(at, f"{spelled(at)}: {t} is for {templated}; "
                                     f"{_a(kind.name)}'s own {nested.section} come with each of "
                                     "its instances", "LA219", key=True)  # fmt: skip
                            del entry[t]
                    self.file_fields(
                        nested.file_fields, (*raw_path, field_name, i),
                        (*path, field_name, i), entry,
                    )  # fmt: skip
        return value

    def file_fields(
        self, fields: Mapping[str, str], raw_path: Path_, path: Path_, spec: dict[str, object]
    ) -> None:
        for key, target in fields.items():
            if key not in spec:
                continue
            name = spec.pop(key)
            at: Path_ = (*raw_path, key)
            if target in spec:
                self.err(
                    at, f"{spelled(raw_path)}: set {target} or {key}, not both", "LA221", key=True
                )
                continue
            if maybe_string(name):  # which file is not known yet, nor its text
                spec[target] = Unknown("string")
                self.out.values[(*path, target)] = self.raw.where(at)
                continue
            if not isinstance(name, str) or not name:
                if name is not None:
                    self.err(at, f"{spelled(at)}: expected a file path", "LA222")
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
            self.err(at, f"{spelled(at)}: {refused}", "LA120")
            return None
        try:
            text = read_regular(target, MAX_REFERENCED_BYTES).decode("utf-8")
        except Unreadable as e:
            if not target.exists() and not target.is_symlink():
                looked = clip_path(str(target))
                self.err(
                    at, f"{spelled(at)}: file {clip(name)} not found (looked for {looked})", "LA121"
                )
            else:
                self.err(at, f"{spelled(at)}: {clip(name)} {e}", "LA122")
            return None
        except UnicodeDecodeError:
            self.err(at, f"{spelled(at)}: {clip(name)} is not UTF-8 text", "LA123")
            return None
        self.read.append(str(target))
        return text


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"
