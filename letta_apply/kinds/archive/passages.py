"""An archive's seeded passages (kinds.archive): read from files while the manifest is loaded, one
passage per file or one per part between declared separators. Each passage letta-apply inserts is
tagged with the stack's tag and marked (in its metadata) with its source file and the digest of
its text, so apply inserts the new ones and deletes those whose source is gone or changed; a
passage without that mark (one an agent wrote) is never touched.

Letta has no listing of an archive's passages; its passage search, with no query, lists them
oldest first, at most 100 at a time (tags are filtered after the limit, so the filter is applied
here), paged by creation time. Letta gives every passage of one batch insert the same creation
time, and a search cannot page past more than 100 passages made at one instant: so each passage
letta-apply inserts carries its own creation time, a microsecond after the one before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from ...core.jsonish import JsonObject, items, obj, objs, opt_text
from ...core.marks import digest
from ...core.model import MARK_KEY, stack_tag
from ...errors import Diagnostic, ServerStateError, define
from ...manifest.files import Document, Path_, clip
from ...server.client import LettaClient
from ...server.routes import Route
from ..folder.files import declared_files, read_folder_files

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA423", "ManifestError", "a passage too long",
       "A file seeding an archive holds a passage over 100,000 characters (passages are "
       "embedded whole).",
       "Declare a `separator` that splits the file into passages.")
define("LA520", "ServerStateError", "archive passages that cannot be listed",
       "Over 100 of an archive's passages were made at one instant, and Letta's passage "
       "search cannot list past them, so the seeded passages cannot be compared.",
       "Delete those passages, or the archive (the next apply makes and seeds it again).")
# fmt: on

ROUTE = Route("/v1/archives/")
PASSAGES = Route("/v1/passages/")

MAX_PASSAGE = 100_000  # characters: a passage is embedded whole
SEARCH_PAGE = 100  # the most Letta's passage search returns


def passages_at(key: str) -> Path_:
    return ("archives", key, "passages", "files")


@dataclass(frozen=True)
class SeedPassage:
    """One passage the manifest seeds: the file it comes from, its text and the text's digest."""

    source: str
    text: str
    digest: str


@dataclass(frozen=True)
class LivePassage:
    """A passage letta-apply inserted (the stack's tag and mark on it)."""

    id: str
    text: str
    source: str
    digest: str

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LivePassage:
        mark = obj(obj(raw.get("metadata")).get(MARK_KEY))
        return cls(
            str(raw["id"]), str(raw.get("text") or ""), str(mark.get("source") or ""),
            str(mark.get("digest") or ""),
        )  # fmt: skip


def read_all(doc: Document, data: Mapping[str, object]) -> tuple[list[str], list[Diagnostic]]:
    """Every archive's seed files, read once while the manifest is loaded (UTF-8 text)."""
    errors: list[Diagnostic] = []
    archives = data.get("archives")
    for key, spec in (archives if isinstance(archives, dict) else {}).items():
        seed = spec.get("passages") if isinstance(spec, dict) else None
        patterns = seed.get("files") if isinstance(seed, dict) else None
        if not isinstance(patterns, list):
            continue
        at = passages_at(key)
        errors += read_folder_files(doc, key, patterns, at)
        for p, (path, raw) in list(doc.blobs.items()):
            if p[:-1] != at:
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                message = f"archives.{key}.passages: {clip(path)} is not UTF-8 text"
                errors.append(doc.diag(at, message, code="LA123"))
                continue
            sep = seed.get("separator") if isinstance(seed, dict) else None
            parts = text.split(sep) if isinstance(sep, str) and sep else [text]
            if any(len(part.strip()) > MAX_PASSAGE for part in parts):
                errors.append(
                    doc.diag(
                        at,
                        f"archives.{key}.passages: {clip(path)} holds a passage over "
                        f"{MAX_PASSAGE} characters; declare a separator to split it",
                        code="LA423",
                    )
                )
    read = sorted({path for p, (path, _) in doc.blobs.items() if p[:1] == ("archives",)})
    return read, errors


def seed_passages(doc: Document, key: str, spec: Mapping[str, object]) -> tuple[SeedPassage, ...]:
    """The passages archive `key` seeds, in file order; a text repeated in one file is one."""
    sep = opt_text(obj(spec.get("passages")).get("separator"))
    out: list[SeedPassage] = []
    seen: set[tuple[str, str]] = set()
    for f in declared_files(doc, passages_at(key)):
        _, raw = doc.blobs[(*passages_at(key), f.name)]
        for part in raw.decode("utf-8").split(sep) if sep else [raw.decode("utf-8")]:
            text = part.strip()
            if text and (f.name, text) not in seen:
                seen.add((f.name, text))
                out.append(SeedPassage(f.name, text, digest(text)))
    return tuple(out)


def passage_body(stack: str, address: str, p: SeedPassage) -> JsonObject:
    """The request that inserts a seeded passage, with its mark."""
    mark = {"stack": stack, "address": address, "source": p.source, "digest": p.digest}
    return {"text": p.text, "tags": [stack_tag(stack)], "metadata": {MARK_KEY: mark}}


def stamped(inserts: Iterable[Mapping[str, object]]) -> list[JsonObject]:
    """Passages to insert in one batch, each with a creation time of its own (now, then a
    microsecond apart), by which the passage search pages."""
    now = datetime.now(timezone.utc)
    return [
        {**p, "created_at": (now + timedelta(microseconds=i)).isoformat(timespec="microseconds")}
        for i, p in enumerate(inserts)
    ]


def list_passages(client: LettaClient, archive_id: str) -> list[JsonObject]:
    """Every passage of an archive, oldest first: pages of the passage search (a read), each
    starting at the newest time seen (inclusive: repeats are dropped). A full page that brings
    nothing new is more than a page of passages made at one instant: an error, never a
    listing cut short (a plan would insert the passages it did not see again)."""
    out: list[JsonObject] = []
    seen: set[object] = set()
    body: JsonObject = {"archive_id": archive_id, "limit": SEARCH_PAGE}
    while True:
        page = objs(PASSAGES.at("search").post(client, body, read=True))
        found = [dict(obj(r["passage"])) for r in page]
        fresh = [p for p in found if p["id"] not in seen]
        if not fresh and len(page) >= SEARCH_PAGE:
            raise ServerStateError(
                f"archive {archive_id}: more than {SEARCH_PAGE} of its passages were made at one "
                f"instant ({body.get('start_date')}, a batch inserted by an earlier letta-apply "
                "or by hand), and Letta's passage search cannot list past them, so the seeded "
                "passages cannot be compared; delete those passages (or the archive, which the "
                "next apply makes and seeds again)",
                code="LA520",
            )
        if not fresh:
            return out
        seen.update(p["id"] for p in fresh)
        out.extend(fresh)
        if len(page) < SEARCH_PAGE:
            return out
        body = {**body, "start_date": max(str(p["created_at"]) for p in fresh)}


def ours(
    passages: Iterable[Mapping[str, object]], stack: str, address: str
) -> tuple[LivePassage, ...]:
    """The passages letta-apply inserted for `address`: the stack's tag and mark on them."""
    found = []
    for p in passages:
        mark = obj(obj(p.get("metadata")).get(MARK_KEY))
        owner = (mark.get("stack"), mark.get("address"))
        if stack_tag(stack) in items(p.get("tags")) and owner == (stack, address):
            found.append(LivePassage.from_api(p))
    return tuple(found)
