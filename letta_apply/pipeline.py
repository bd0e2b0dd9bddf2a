"""The pipeline end to end, for the CLI and for programs that embed letta-apply."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import yaml

from .core.changes import Plan
from .core.model import Desired
from .core.sensitive import Masker
from .errors import Diagnostic, ManifestError
from .kinds import KINDS
from .manifest.data import (
    Budget,
    data_name,
    environment,
    file_paths,
    folder,
    key_path,
    manifest_data,
    variable_values,
)
from .manifest.files import manifest_files
from .manifest.language import Source, load_source, load_source_text, quick_source
from .manifest.parse import load_file, load_text
from .manifest.validate import check, validate
from .manifest.variables import Options
from .memory.held import memory_held
from .plan.planner import make_plan
from .plan.targets import target_addresses
from .read.live import read_live
from .server.client import LettaClient

T = TypeVar("T")

DATA_NAME = "<dict>"
"""What errors call a manifest given as data rather than as a file."""


def load_manifest(paths: str | Sequence[str], options: Options | None = None) -> Desired:
    """Load the manifest files and folders `paths` names, resolve variables and templates, and
    validate the result; raises ManifestError with every problem found (sensitive values
    masked)."""
    checked = file_paths(paths, "paths")
    options = _checked(options, Budget())
    return _quick(checked, options) or _validated(load_source(checked, KINDS, options))


@dataclass(frozen=True)
class Validated:
    """A manifest `validate_manifest` found valid: its desired state when every value is known;
    else the references checked without one (`var.x`, `env.X`) and no desired state (that
    needs them: plan and apply ask for them)."""

    desired: Desired | None
    unknown: tuple[str, ...] = ()


def validate_manifest(paths: str | Sequence[str], options: Options | None = None) -> Validated:
    """Check the manifest `paths` name as `letta-apply validate` does: without the values of its
    variables (nor of `${env.X}`). A value given is used; one not given is unknown, and the
    checks that depend on it are made as far as its declaration tells (manifest.unknown).
    Raises ManifestError with every problem found, as load_manifest does."""
    checked = file_paths(paths, "paths")
    options = replace(_checked(options, Budget()), unknown_values=True)
    quick = _quick(checked, options)
    if quick is not None:
        return Validated(quick)
    source = load_source(checked, KINDS, options)
    if not source.unknown:
        return Validated(_validated(source))
    with _masked(source):
        check(source.doc, KINDS, source.errors, source.quiet, source.typed)
    return Validated(None, source.unknown)


def declared_addresses(paths: Sequence[str], options: Options | None = None) -> list[str]:
    """The addresses `--target` accepts for a manifest, for shell completion: from the manifest
    when it loads; else (a variable with no value yet, a line being edited) the keys its files
    declare. Reads the files only. Raises ManifestError when not even the keys can be read."""
    try:
        return target_addresses(load_manifest(paths, options))
    except ManifestError:
        pass
    files, errors = manifest_files(paths)
    if errors:
        raise ManifestError(errors)
    out: dict[str, None] = {}  # in file order, once
    for file, _root in files:
        data = load_file(file).data
        for kind in KINDS:
            section = data.get(kind.section) if isinstance(data, dict) else None
            for key in section if isinstance(section, dict) else ():
                out[f"{kind.name}.{key}"] = None
    return list(out)


def load_manifest_data(
    data: Mapping[str, object],
    options: Options | None = None,
    *,
    name: str = DATA_NAME,
    root: str | Path | None = None,
) -> Desired:
    """Like load_manifest, for a manifest given as data (a dict, as a YAML file would hold).
    Errors name `name` and the key path instead of a line; files the manifest names are read
    relative to `root` (default: the working directory). The data is checked first, in time
    and memory bounded by the limits of a manifest file: plain types, no cycle, at most
    MAX_DEPTH levels, MAX_VALUES values and MAX_FILE_BYTES characters in all."""
    name = data_name(name)
    base = folder(root, "root") or Path.cwd()
    budget = Budget()
    try:
        plain, errors = manifest_data(data, name, budget), []
    except ManifestError as e:
        plain, errors = {}, e.diagnostics
    options = _checked(options, budget, errors)
    text = yaml.dump(
        plain, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=1 << 16
    )  # fmt: skip
    try:
        return _validated(load_source_text(text, name, KINDS, options, root=base.resolve()))
    except ManifestError as e:
        raise _by_key_path(e, text, name) from None


# libyaml's writer when PyYAML has it: the pure-Python one takes a minute for 60 MB.
_DUMPER: type[yaml.SafeDumper] | type[yaml.CSafeDumper] = (
    yaml.CSafeDumper if getattr(yaml, "__with_libyaml__", False) else yaml.SafeDumper
)


def _checked(
    options: Options | None, budget: Budget, errors: list[Diagnostic] | None = None
) -> Options:
    """`options` with what a program gives (variable values, an environment, var files) checked
    as plain data within `budget`, before anything converts them. Raises ManifestError with
    `errors` (found before) and every problem found here."""
    options = options or Options()
    found = list(errors or [])

    def take(check: Callable[[], T], default: T) -> T:
        try:
            return check()
        except ManifestError as e:
            found.extend(e.diagnostics)
            return default

    no_values: dict[str, object] = {}
    no_env: dict[str, str] = {}
    no_files: list[str] = []
    values = take(lambda: variable_values(options.values, budget), no_values)
    env = take(lambda: environment(options.env, budget), no_env)
    var_files = take(lambda: file_paths(options.var_files, "var_files"), no_files)
    if found:
        raise ManifestError(found)
    return replace(options, values=values, env=env, var_files=var_files)


def _quick(paths: Sequence[str], options: Options) -> Desired | None:
    """The desired state of a manifest read without positions (manifest.quick), when nothing
    in it is a problem; else None, and the caller reads it again with positions, so that every
    problem is reported where it is, as it always was. Positions only ever place problems: a
    manifest with none has the same desired state either way."""
    if options.positions:
        return None
    source = quick_source(paths, KINDS, options)
    if source is None:
        return None
    try:
        desired = _validated(source)
    except ManifestError:
        return None
    # A manifest naming its own policy rules is read with positions: what they find is placed.
    return None if desired.policies else desired


def _validated(source: Source) -> Desired:
    with _masked(source):
        desired = validate(source.doc, KINDS, source.errors, source.quiet)
    return replace(desired, files=source.files, digest=source.digest, secrets=source.secrets)


@contextmanager
def _masked(source: Source) -> Iterator[None]:
    """The manifest errors raised inside, with `source`'s sensitive values masked."""
    try:
        yield
    except ManifestError as e:
        masker = Masker(source.secrets)
        raise ManifestError(
            [
                Diagnostic(d.file, d.line, d.col, masker.text(d.message), code=d.code)
                for d in e.diagnostics
            ]
        ) from None


def _by_key_path(error: ManifestError, text: str, name: str) -> ManifestError:
    """The errors with the key path each points at in place of a position in the YAML text,
    which the caller never saw."""
    try:
        doc = load_text(text, name)
    except ManifestError:
        doc = None
    where: dict[tuple[int, int], str] = {}
    if doc is not None:
        # Keys first, values after: a value shares no position with its key.
        for table in (doc.values, doc.keys):
            for path, pos in table.items():
                where.setdefault((pos.line, pos.col), key_path(path))
    out = []
    for d in error.diagnostics:
        if d.file != name or d.line == 0:
            out.append(d)
            continue
        at = where.get((d.line, d.col), "")
        message = d.message
        named = message.split(":", 1)[0]  # most messages start with the place they are about
        if at and not (named and at.startswith(named)):
            message = f"{at}: {message}"
        out.append(Diagnostic(name, 0, 0, message, code=d.code))
    return ManifestError(out)


def plan_for(
    client: LettaClient,
    desired: Desired,
    *,
    destroy: bool = False,
    detach_unmanaged: bool = False,
    memory: bool = True,
    listings: Mapping[str, object] | None = None,
) -> Plan:
    """Read the live state of `desired`'s stack and plan against it (with `destroy`, plan the
    deletion of everything the stack owns). With `memory`, the plan says what its deletes hold
    of agents' memory (memory.held: a read or two per deleted agent, for at most 50).
    `listings`: the stack's listings already read (read.shared), not read again."""
    live = read_live(client, desired, destroy=destroy, listings=listings)
    key = client.api_key
    plan = make_plan(
        desired, live, destroy=destroy, detach_unmanaged=detach_unmanaged, seal_key=key
    )
    # Changes that need the server's facts (a model handle to create an agent with) are
    # checked against them: read only then, so a converged plan costs nothing more, and
    # planned again only when one fails (a fleet's plan is not made twice for nothing).
    facts = {k.name: f for k in KINDS if (f := k.facts(client, plan)) is not None}
    if facts:
        live = replace(live, facts=facts)
        plan = make_plan(
            desired, live, destroy=destroy, detach_unmanaged=detach_unmanaged, seal_key=key
        )
    if memory:
        plan = replace(plan, memory=memory_held(client, plan, live))
    return plan
