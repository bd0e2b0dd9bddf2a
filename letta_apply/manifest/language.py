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

Reading the files with positions is in parse.py and merge.py, resolving variables in
variables.py, interpolation in interpolate.py, templates and the files entries name in
expand.py, references between entries in references.py; this module ties the steps together
(`load_source`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import Diagnostic, ManifestError
from .expand import Expander
from .files import Document, Path_, Place, Unreadable, manifest_files, read_regular
from .merge import merge
from .parse import parse_file, parse_text, read_text
from .quick import quick_values
from .references import broken_references
from .sections import Section
from .variables import Options, Variable, resolve_variables, secrets_of


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
    typed: dict[Path_, object] = field(default_factory=dict)


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


def quick_source(
    paths: str | Sequence[str], kinds: Iterable[Section], options: Options | None = None
) -> Source | None:
    """Like load_source, faster, for a manifest of one file that the quick reader takes
    (quick.py): its document holds the same values, and no position. None when the manifest
    is not such a file, or when reading it finds a problem: load_source then reads it again and
    says where. A caller whose checks find any problem in what this returns does the same."""
    files, errors = manifest_files([paths] if isinstance(paths, str) else list(paths))
    if errors or len(files) != 1:
        return None
    try:
        text = read_text(files[0][0])
    except ManifestError:
        return None
    data = quick_values(text)
    if data is None:
        return None
    source = _expand([Document(files[0][0], data)], files, tuple(kinds), options or Options(),
                     {}, [])  # fmt: skip
    return None if source.errors or source.quiet or source.unknown else source


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
    expander = Expander(raw, variables, options, kinds)
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
    if isinstance(expanded, dict):
        for k in kinds:
            read_by_kind, read_problems = k.read_files(expander.out, expanded)
            sources += read_by_kind
            errors += read_problems
    manifest_names = [f for f, _ in files]
    read = [*manifest_names, *expander.read, *sources, *var_files]
    digest = _digest(read, variables, texts)
    quiet = expander.quiet | broken_references(expander, expanded)
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
