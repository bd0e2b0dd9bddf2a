"""The pipeline end to end, for the CLI and for programs that embed letta-apply."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .errors import Diagnostic, ManifestError
from .kinds import KINDS
from .manifest.files import Path_, load_file, load_text, manifest_files
from .manifest.language import Source, load_source, load_source_text
from .manifest.validate import validate
from .manifest.variables import Options
from .model import Desired
from .plan.changes import Plan
from .plan.planner import make_plan
from .plan.targets import target_addresses
from .sensitive import Masker
from .server.client import LettaClient
from .server.live import read_live

DATA_NAME = "<dict>"
"""What errors call a manifest given as data rather than as a file."""


def load_manifest(paths: str | Sequence[str], options: Options | None = None) -> Desired:
    """Load the manifest files and folders `paths` names, resolve variables and templates, and
    validate the result; raises ManifestError with every problem found (sensitive values
    masked)."""
    return _validated(load_source(paths, options))


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
    data: Mapping[str, Any],
    options: Options | None = None,
    *,
    name: str = DATA_NAME,
    root: str | Path | None = None,
) -> Desired:
    """Like load_manifest, for a manifest given as data (a dict, as a YAML file would hold).
    Errors name `name` and the key path instead of a line; files the manifest names are read
    relative to `root` (default: the working directory)."""
    text = _as_yaml(data, name)
    base = Path(root if root is not None else Path.cwd()).resolve()
    try:
        return _validated(load_source_text(text, name, options, root=base))
    except ManifestError as e:
        raise _by_key_path(e, text, name) from None


def _validated(source: Source) -> Desired:
    try:
        desired = validate(source.doc, source.errors, source.quiet)
    except ManifestError as e:
        masker = Masker(source.secrets)
        raise ManifestError(
            [Diagnostic(d.file, d.line, d.col, masker.text(d.message)) for d in e.diagnostics]
        ) from None
    return replace(desired, files=source.files, digest=source.digest, secrets=source.secrets)


def _as_yaml(data: Mapping[str, Any], name: str) -> str:
    """The data as YAML text, so that it is read exactly like a manifest file."""
    errors: list[Diagnostic] = []
    plain = _plain(data, (), name, errors)
    if not isinstance(data, Mapping):
        errors = [Diagnostic(name, 0, 0, "a manifest is a mapping of sections")]
    if errors:
        raise ManifestError(errors)
    return yaml.safe_dump(plain, sort_keys=False, allow_unicode=True, width=1 << 16)


def _plain(value: Any, path: Path_, name: str, errors: list[Diagnostic]) -> Any:
    """`value` as the plain types YAML writes (str, int, float, bool, None, list, dict)."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, str):
        return str(value)  # a subclass of str is written as a plain string
    if isinstance(value, (list, tuple)):
        return [_plain(v, (*path, i), name, errors) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                message = f"{key_path(path)}: key {k!r} is not a string"
                errors.append(Diagnostic(name, 0, 0, message))
                continue
            out[str(k)] = _plain(v, (*path, k), name, errors)
        return out
    kind = type(value).__name__
    message = f"{key_path(path)}: {kind} is not plain data (use str, int, float, bool, None, list "
    errors.append(Diagnostic(name, 0, 0, message + "or dict)"))
    return None


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
        out.append(Diagnostic(name, 0, 0, message))
    return ManifestError(out)


def key_path(path: Path_) -> str:
    """`agents.worker.memory_blocks[0].value`, as messages name a place in a manifest."""
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "manifest"


def plan_for(
    client: LettaClient,
    desired: Desired,
    *,
    destroy: bool = False,
    detach_unmanaged: bool = False,
) -> Plan:
    """Read the live state of `desired`'s stack and plan against it (with `destroy`, plan the
    deletion of everything the stack owns)."""
    live = read_live(client, desired, destroy=destroy)
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
    return plan
