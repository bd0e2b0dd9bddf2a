"""Manifest variables: declared under `variables:` with a type, a default and `sensitive`, and
given values by `LETTA_APPLY_VAR_<name>`, `--var-file` files and `--var`, the later winning.
Sensitive values are wrapped (model.Sensitive) so that they are masked wherever they travel."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..core.model import Sensitive, SensitiveFloat, SensitiveInt
from ..errors import Diagnostic, ManifestError
from .files import Document, Path_, clip
from .parse import load_text, parse_file

ENV_PREFIX = "LETTA_APPLY_VAR_"
VARIABLE_TYPES = ("string", "number", "bool", "list", "map")
_VARIABLE_KEYS = ("type", "default", "description", "sensitive")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Options:
    """Where variable values come from, and what files a manifest may read."""

    vars: Sequence[str] = ()  # "name=value" from --var, in command-line order
    var_files: Sequence[str] = ()  # --var-file, in command-line order
    env: Mapping[str, str] = field(default_factory=dict)  # LETTA_APPLY_VAR_*, ${env.X}
    # Typed values given by a program (the Python API): they win over every other source.
    values: Mapping[str, object] = field(default_factory=dict)
    allow_outside_files: bool = False
    # The most instances one count/for_each template may make: a typo of a few digits must not
    # exhaust memory (raised with --max-instances).
    max_instances: int = 10_000
    # `validate`: a variable given no value (and an unset `${env.X}`) is unknown, as Terraform's
    # validate has it: what depends on it is checked as far as its declaration tells, the rest
    # as usual. Plan and apply leave this off: they need every value.
    unknown_values: bool = False
    # Read with positions from the start (no quick read): policy rules place what they find at
    # the lines that declare it, and they look only once the manifest is loaded.
    positions: bool = False


@dataclass
class Variable:
    name: str
    type: str
    sensitive: bool
    path: Path_
    value: object = None
    has_value: bool = False
    source: str = ""  # where the value came from, for messages
    invalid: bool = False  # a value was given but refused (reported there)


def _type_of(value: object) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "map"
    return "string"


def _convert(value: object, kind: str, *, text: bool) -> tuple[object, str | None]:
    """`value` as a `kind`, or why it is not one. `text` values (--var, environment) are parsed:
    numbers, true/false, and YAML flow lists and maps."""
    if text and isinstance(value, str) and kind != "string":
        if kind == "bool":
            if value.lower() in ("true", "false"):
                return value.lower() == "true", None
            return None, f"expected true or false, got {clip(value)}"
        try:
            # The manifest's own reader: its guards against deep nesting, alias bombs and
            # non-finite numbers hold for values given on the command line too.
            value = load_text(value, "--var").data
        except ManifestError as e:
            return None, f"cannot read it as a {kind}: {e.diagnostics[0].message}"
    if kind == "string" and isinstance(value, str):
        return value, None
    if kind == "number" and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value, None
    if kind == "bool" and isinstance(value, bool):
        return value, None
    if kind == "list" and isinstance(value, list):
        return value, None
    if kind == "map" and isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return value, None
    got = "null" if value is None else f"a {_type_of(value)}"
    return None, f"expected a {kind}, got {got}"


def secrets_of(value: object) -> list[str]:
    """The text of a sensitive value's strings, searched for in free text as a last defence.
    Numbers are masked as values only: searching output for `1234` would mangle it (and JSON)."""
    if isinstance(value, dict):
        return [s for v in value.values() for s in secrets_of(v)]
    if isinstance(value, list):
        return [s for v in value for s in secrets_of(v)]
    return [value] if isinstance(value, str) and value else []


def _bools(value: object) -> bool:
    if isinstance(value, dict):
        return any(_bools(v) for v in value.values())
    if isinstance(value, list):
        return any(_bools(v) for v in value)
    return isinstance(value, bool)


def _mark_sensitive(value: object) -> object:
    if isinstance(value, str):
        return Sensitive(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return SensitiveInt(value)
    if isinstance(value, float):
        return SensitiveFloat(value)
    if isinstance(value, dict):
        return {k: _mark_sensitive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mark_sensitive(v) for v in value]
    return value


def as_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_variables(
    doc: Document, options: Options
) -> tuple[dict[str, Variable], list[str], list[Diagnostic]]:
    """Declared variables with their values, the files read for them, and every problem."""
    declared, errors = _declared(doc)
    values = _Values(declared, errors)
    values.from_env(options.env)
    read = values.from_files(options.var_files)
    values.from_args(options.vars)
    values.from_program(options.values)
    for var in declared.values():
        _settle(doc, var, options.unknown_values, errors)
    return declared, read, errors


def _declared(doc: Document) -> tuple[dict[str, Variable], list[Diagnostic]]:
    """The variables `variables:` declares (those declared wrong too, invalid), and the
    problems with their declarations."""
    errors: list[Diagnostic] = []
    declared: dict[str, Variable] = {}
    section = doc.data.get("variables") if isinstance(doc.data, dict) else None
    if section is not None and not isinstance(section, dict):
        errors.append(
            doc.diag(("variables",), "variables: expected a mapping of variables", code="LA230")
        )
        section = {}
    for name, spec in (section or {}).items():
        declared[name] = _declare(doc, name, spec, errors)
    return declared, errors


def _declare(doc: Document, name: str, spec: object, errors: list[Diagnostic]) -> Variable:
    """The variable `name` as `spec` declares it, its default resolved."""
    path: Path_ = ("variables", name)
    if not _NAME.fullmatch(name):
        errors.append(
            doc.diag(
                path,
                f"variables: invalid name {clip(name)}: use letters, digits and '_', "
                "starting with a letter or '_'",
                code="LA231",
                key=True,
            )
        )
        return _broken(name, path)
    spec = {} if spec is None else spec
    if not isinstance(spec, dict):
        errors.append(doc.diag(path, f"variables.{name}: expected a mapping", code="LA232"))
        return _broken(name, path)
    entry: Mapping[str, object] = spec
    for k in entry:
        if k not in _VARIABLE_KEYS:
            errors.append(
                doc.diag(
                    (*path, k),
                    f"variables.{name}: unknown key {clip(k)} (allowed: "
                    f"{', '.join(_VARIABLE_KEYS)})",
                    code="LA233",
                    key=True,
                )
            )
    kind = entry.get("type")
    if kind is None:
        kind = _type_of(entry["default"]) if entry.get("default") is not None else "string"
    if not isinstance(kind, str) or kind not in VARIABLE_TYPES:
        errors.append(
            doc.diag(
                (*path, "type"),
                f"variables.{name}.type: must be one of {', '.join(VARIABLE_TYPES)}, got "
                f"{clip(str(kind))}",
                code="LA234",
            )
        )
        return _broken(name, path)
    sensitive = entry.get("sensitive", False)
    if not isinstance(sensitive, bool):
        errors.append(
            doc.diag(
                (*path, "sensitive"), f"variables.{name}.sensitive: true or false", code="LA235"
            )
        )
    if "description" in entry and not isinstance(entry["description"], str):
        errors.append(
            doc.diag(
                (*path, "description"),
                f"variables.{name}.description: expected a string",
                code="LA235",
            )
        )
    var = Variable(name, kind, sensitive is True, path)
    if entry.get("default") is not None:
        value, problem = _convert(entry["default"], kind, text=False)
        if problem:
            message = f"variables.{name}.default: {problem}"
            errors.append(doc.diag((*path, "default"), message, code="LA236"))
            var.invalid = True
        else:
            var.value, var.has_value, var.source = value, True, "its default"
    return var


class _Values:
    """Gives the declared variables their values, source by source (the later wins), and
    collects the problems with them."""

    def __init__(self, declared: dict[str, Variable], errors: list[Diagnostic]) -> None:
        self.declared = declared
        self.errors = errors

    def assign(
        self, name: str, raw: object, *, text: bool, where: Diagnostic, source: str,
        named: Diagnostic | None = None,
    ) -> None:  # fmt: skip
        var = self.declared.get(name)
        if var is None:
            known = ", ".join(sorted(self.declared)) or "none"
            message = f"no variable {clip(name)} is declared (declared: {known})"
            self.errors.append(_at(named or where, message, "LA237"))  # at the name, in a file
            return
        if not var.type:
            return  # its declaration is wrong, and reported
        value, problem = _convert(raw, var.type, text=text)
        if problem:
            var.invalid = True
            shown = f"variable '{name}'"
            self.errors.append(
                _at(
                    where,
                    f"{shown}: {problem}"
                    if not var.sensitive
                    else f"{shown}: expected a {var.type}",
                    "LA238",
                )
            )
            return
        var.value, var.has_value, var.source = value, True, source

    def from_env(self, env: Mapping[str, str]) -> None:
        for env_name, raw in sorted(env.items()):
            if env_name.startswith(ENV_PREFIX) and env_name[len(ENV_PREFIX) :] in self.declared:
                self.assign(
                    env_name[len(ENV_PREFIX) :], raw, text=True,
                    where=Diagnostic(env_name, 0, 0, ""), source=env_name,
                )  # fmt: skip

    def from_files(self, var_files: Sequence[str]) -> list[str]:
        """Values from `--var-file` files, in order; the files read."""
        read: list[str] = []
        for var_file in var_files:
            try:
                vf, problems = parse_file(var_file)
            except ManifestError as e:
                self.errors.extend(e.diagnostics)
                continue
            self.errors.extend(problems)
            read.append(var_file)
            if not isinstance(vf.data, dict):
                message = "a variables file is a mapping of variable names to values"
                self.errors.append(vf.diag((), message, code="LA239"))
                continue
            for name, raw in vf.data.items():
                self.assign(
                    name, raw, text=False, where=vf.diag((name,), "", code=""), source=var_file,
                    named=vf.diag((name,), "", code="", key=True),
                )  # fmt: skip
        return read

    def from_args(self, args: Sequence[str]) -> None:
        for n, arg in enumerate(args, 1):
            name, sep, raw = arg.partition("=")
            where = Diagnostic("--var", 0, 0, "")
            if not sep or not name:
                # Not echoed: what was meant as a value may be a secret.
                message = f"value {n} is not name=value (not shown: it may hold a secret)"
                self.errors.append(_cli(message))
                continue
            self.assign(name.strip(), raw, text=True, where=where, source="--var")

    def from_program(self, values: Mapping[str, object]) -> None:
        for name, value in values.items():
            where = Diagnostic("<variables>", 0, 0, "")
            self.assign(str(name), value, text=False, where=where, source="the variables given")


def _settle(doc: Document, var: Variable, unknown_values: bool, errors: list[Diagnostic]) -> None:
    """A variable given no value is an error (unknown, for `validate`); a sensitive one is
    wrapped to be masked, and may hold no boolean."""
    if not var.has_value and not var.invalid and unknown_values:
        if var.sensitive and var.type == "bool":
            errors.append(_sensitive_bool(doc, var))
            var.invalid = True
    elif not var.has_value and not var.invalid:
        errors.append(
            doc.diag(
                var.path,
                f"variable '{var.name}' has no value: give it a default, or set it with "
                f"--var {var.name}=..., a --var-file, or {ENV_PREFIX}{var.name}",
                code="LA241",
                key=True,
            )
        )
    elif var.sensitive and _bools(var.value):
        errors.append(_sensitive_bool(doc, var))
        # Its uses are left empty, quietly: the value is neither shown nor used.
        var.value, var.has_value, var.invalid = None, False, True
    elif var.sensitive:
        var.value = _mark_sensitive(var.value)


def _sensitive_bool(doc: Document, var: Variable) -> Diagnostic:
    # A boolean has two values: no mask keeps it secret, and masking `true` in output text
    # would mangle every other true.
    return doc.diag(
        var.path,
        f"variable '{var.name}': a sensitive value cannot be (or hold) a boolean: it has two "
        "values, so it cannot be kept secret",
        code="LA242",
        key=True,
    )


def _broken(name: str, path: Path_) -> Variable:
    """A variable whose declaration is wrong (reported): its uses are left empty, quietly."""
    return Variable(name, "", False, path, invalid=True)


def _at(where: Diagnostic, message: str, code: str) -> Diagnostic:
    return Diagnostic(where.file, where.line, where.col, message, code=code)


def _cli(message: str) -> Diagnostic:
    # A value given on the command line has no file position (line 0: none shown).
    return Diagnostic("--var", 0, 0, message, code="LA240")
