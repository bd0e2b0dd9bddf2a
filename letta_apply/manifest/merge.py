"""Several files: `-f` may name files and folders; the manifest is their union."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import Diagnostic, ManifestError
from .files import Document, Path_, Position, clip


def _with_file(pos: Position, file: str) -> Position:
    return pos if pos.file else Position(pos.line, pos.col, file)


def _copy_positions(src: Document, src_path: Path_, dst: Document, dst_path: Path_) -> None:
    """Positions of `src_path` and everything under it, filed under `dst_path` in `dst`."""
    n = len(src_path)
    for table, out in ((src.values, dst.values), (src.keys, dst.keys)):
        for path, pos in table.items():
            if path[:n] == src_path:
                out[(*dst_path, *path[n:])] = _with_file(pos, src.file)


def merge(docs: Sequence[Document]) -> tuple[Document, list[Diagnostic]]:
    """The union of several manifest files, with the file of every position, and the problems
    found. Mappings are merged key by key (a key in two files is an error naming both; the first
    is kept), lists are concatenated and scalars must be equal wherever they are set. Raises
    ManifestError when a file is not a mapping: what it holds cannot be merged."""
    if len(docs) == 1:
        doc = docs[0]
        return Document(
            doc.file,
            doc.data,
            {p: _with_file(v, doc.file) for p, v in doc.values.items()},
            {p: _with_file(v, doc.file) for p, v in doc.keys.items()},
        ), []
    data: dict[str, object] = {}
    out = Document(docs[0].file, data)
    out.values[()] = Position(1, 1, docs[0].file)
    errors: list[Diagnostic] = []
    for doc in docs:
        if not isinstance(doc.data, dict):
            errors.append(
                doc.diag((), "a manifest file must be a mapping of sections", code="LA113")
            )
            continue
        for section, value in doc.data.items():
            here = doc.where((section,), key=True)
            if section not in data:
                data[section] = (
                    dict(value) if isinstance(value, dict)
                    else list(value) if isinstance(value, list) else value
                )  # fmt: skip
                _copy_positions(doc, (section,), out, (section,))
                out.keys[(section,)] = _with_file(here, doc.file)
                continue
            first = out.where((section,), key=True)
            first_at = f"{first.file}:{first.line}:{first.col}"
            have = data[section]
            if isinstance(have, dict) and isinstance(value, dict):
                for key, item in value.items():
                    if key in have:
                        other = out.where((section, key), key=True)
                        errors.append(
                            doc.diag(
                                (section, key),
                                f"{section}.{key} is declared twice: here and at "
                                f"{other.file}:{other.line}:{other.col}",
                                code="LA114",
                                key=True,
                            )
                        )
                        continue
                    have[key] = item
                    _copy_positions(doc, (section, key), out, (section, key))
            elif isinstance(have, list) and isinstance(value, list):
                start = len(have)
                have.extend(value)
                for i in range(len(value)):
                    _copy_positions(doc, (section, i), out, (section, start + i))
            elif have != value or type(have) is not type(value):
                errors.append(
                    doc.diag(
                        (section,),
                        f"{section}: {clip(str(value))} here, but {clip(str(have))} at "
                        f"{first_at}; every file of a manifest must agree",
                        code="LA115",
                    )
                )
    if any(not isinstance(doc.data, dict) for doc in docs):
        raise ManifestError(errors)
    return out, errors
