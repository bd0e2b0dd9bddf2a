"""Folders in the manifest convert writes from an Agent File (kinds.writing): none. An Agent File
holds a folder (`sources`) with the names of its files, not their text: each is noted, to be
declared by hand with its files."""

from __future__ import annotations

from ..writing import Conversion


def note_sources(conv: Conversion) -> None:
    files: dict[str, int] = {}
    for f in conv.entities("files"):
        files[f["source_id"]] = files.get(f["source_id"], 0) + 1
    for i, s in enumerate(conv.entities("sources")):
        conv.note(
            f"sources[{i}] ({s.get('name')!r}): a folder of {files.get(s['id'], 0)} "
            "file(s), not converted (declare it under `folders:` with its files)"
        )
