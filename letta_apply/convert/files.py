"""Where `convert` writes: the manifest (a file, or standard output) and its tools' Python sources
beside it, only once the manifest they make is known to load and validate. A file that exists
with other content is never overwritten (but the manifest `-o` names), and nothing at all is
written when anything is refused. Each file is written whole or not at all (a temporary file
renamed into place), sources first: a run killed half-way leaves no manifest naming a source
that is missing."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from ..errors import ExportError, ManifestError, UsageError, escape_controls
from ..manifest.variables import Options
from ..pipeline import load_manifest_data
from .manifest import Converted

PLACEHOLDER = "given-at-apply"
"""What the sensitive variables made for agent secrets hold while the manifest is checked."""


def check_converted(converted: Converted, output: str | None) -> None:
    """Load and validate the manifest as `validate` would (the sources in a scratch folder),
    so that convert never writes a manifest that `apply` refuses to read."""
    values = dict.fromkeys(converted.secrets, PLACEHOLDER)
    name = output or "<converted>"
    with tempfile.TemporaryDirectory(prefix="letta-apply-convert-") as scratch:
        for rel, text in converted.sources.items():
            write_file(Path(scratch) / rel, text)
        # Named as a file of the scratch folder: the sources it names are read beside it.
        there = str(Path(scratch) / "manifest.yaml")
        try:
            load_manifest_data(converted.document, Options(values=values), name=there, root=scratch)
        except ManifestError as e:
            first = e.diagnostics[0]
            if first.file == there:
                first = replace(first, file=name)
            more = len(e.diagnostics) - 1
            also = f" (and {more} more)" if more else ""
            raise ExportError(
                f"{escape_controls(converted.source_name)}: cannot convert: the manifest made "
                f"from it would not validate: {first}{also}",
                code="LA832",
            ) from None


def write_converted(converted: Converted, output: str) -> list[str]:
    """Write the tool sources beside `output`, then the manifest; the paths written."""
    base = Path(output).parent
    targets = {base / rel: text for rel, text in converted.sources.items()}
    for path, text in targets.items():
        if path.exists() and _read(path) != text:
            raise ExportError(
                f"{escape_controls(str(path))} exists with other content; nothing was written "
                "(move it, or write the manifest into another folder with -o)",
                code="LA833",
            )
    written = []
    for path, text in targets.items():
        write_file(path, text)
        written.append(str(path))
    write_file(Path(output), converted.text())
    return [*written, output]


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def write_file(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all: into a temporary file beside it, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # made as the umask says
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_output(path: str, text: str) -> None:
    """Write what a command saves (`plan --out`, `export -o`, `export --format af -o`), whole or
    not at all; a path that cannot be written is one line naming it, not a traceback."""
    try:
        write_file(Path(path), text)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UsageError(f"cannot write {escape_controls(path)}: {reason}", code="LA908") from None
