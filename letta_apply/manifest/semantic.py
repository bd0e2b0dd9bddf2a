"""The rules a manifest's schema cannot say: characters Letta cannot store, the tags, labels and
keys letta-apply reserves, the addresses `imports:`, `moved:` and `removed:` name, and each
kind's own (`Section.check`). Written to run on manifests the schema rejected too (parts of the
wrong shape are skipped), so that every problem is reported in one run."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence

from ..core.jsonish import items, obj
from ..core.model import LOCK_KEY, LOCK_LABEL, RESERVED_TAG_PREFIXES
from ..errors import Diagnostic
from .files import Document, Path_, clip
from .files import where as _where
from .sections import Section

# Invalid in any string sent to Letta: PostgreSQL text and jsonb refuse NUL, and a lone surrogate
# cannot be encoded as UTF-8.
_BAD_CHAR = re.compile("[\x00\ud800-\udfff]")


def _strings(value: object, path: Path_) -> Iterator[tuple[Path_, str, bool]]:
    """Every string in `value`, keys included: (path, text, is_key)."""
    if isinstance(value, str):
        yield path, value, False
    elif isinstance(value, dict):
        for k, v in value.items():
            yield (*path, k), k, True
            yield from _strings(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))


def _texts(value: object) -> list[str]:
    """Every string in `value`, keys included, without their paths: one quick pass that tells
    whether the checks below, which name each string's path, have anything to find."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            out.extend(v)
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return out


def semantic(doc: Document, kinds: Sequence[Section]) -> list[Diagnostic]:
    """The rules a schema cannot say. Written to run on manifests the schema rejected too (parts
    of the wrong shape are skipped), so that every problem is reported in one run."""
    data = obj(doc.data)
    errors: list[Diagnostic] = []
    texts = _texts(data)

    # A bad character in some string is in their concatenation, and only there.
    bad = _BAD_CHAR.search("".join(texts)) is not None
    for at, text, is_key in _strings(data, ()) if bad else ():
        m = _BAD_CHAR.search(text)
        if m:
            nul = m.group() == "\x00"
            what = "a NUL character" if nul else "a lone surrogate (invalid Unicode)"
            errors.append(
                doc.diag(
                    at,
                    f"{_where(at)}: {'key ' if is_key else ''}contains {what}; Letta cannot "
                    "store it",
                    code="LA320",
                    key=is_key,
                )
            )

    errors += _lifecycle(doc, data, kinds)
    errors += _reserved(doc, data, kinds, texts)
    for k in kinds:
        errors += k.check(doc, data)
    return errors


_RESERVED_START = re.compile("(?:^|\n)(?:" + "|".join(map(re.escape, RESERVED_TAG_PREFIXES)) + ")")


def _reserved(
    doc: Document, data: Mapping[str, object], kinds: Sequence[Section], texts: Sequence[str]
) -> list[Diagnostic]:
    """Tags, labels and metadata keys letta-apply reserves for its marks and its lock, in the
    entries of the kinds whose resources carry the stack's tag; and the keys of its own blocks'
    addresses."""
    labels = {LOCK_LABEL, *(label for k in kinds for label in k.reserved_labels)}
    addresses = {a for k in kinds for a in k.reserved_addresses}
    tagged = {k.section for k in kinds if k.tagged}
    errors: list[Diagnostic] = []
    # Only a string that is a reserved tag, label or key can break these rules: looked for
    # in one pass each (a string that spans lines may look like one: then the walk tells).
    suspect = not labels.isdisjoint(texts) or LOCK_KEY in texts
    suspect = suspect or _RESERVED_START.search("\n".join(texts)) is not None
    for at, text, is_key in _strings(data, ()) if suspect else ():
        fields = [p for p in at if isinstance(p, str)]
        if len(fields) < 3 or fields[0] not in tagged:
            continue
        what = code = None
        if not is_key and "tags" in fields[2:] and text.startswith(RESERVED_TAG_PREFIXES):
            what = f"tag {clip(text)} is reserved for letta-apply's marks and stack lock"
            code = "LA325"
        elif not is_key and fields[-1] == "label" and text in labels:
            what = f"label {clip(text)} is reserved for letta-apply's stack lock"
            code = "LA326"
        elif is_key and fields[-2] == "metadata" and text == LOCK_KEY:  # MARK_KEY: the schema
            what = f"the key {clip(text)} is reserved for letta-apply's stack lock"
            code = "LA327"
        if what and code:
            errors.append(doc.diag(at, f"{_where(at)}: {what}", code=code, key=is_key))
    for k in kinds:
        for key, spec in obj(data.get(k.section)).items():
            entry: Path_ = (k.section, key)
            if "label" in k.key_fields and "label" not in obj(spec) and key in labels:
                errors.append(
                    doc.diag(
                        entry,
                        f"{_where(entry)}: label {clip(key)} (the key) is reserved for "
                        "letta-apply's stack lock; set another 'label'",
                        code="LA329",
                        key=True,
                    )
                )
            elif f"{k.name}.{key}" in addresses:
                errors.append(
                    doc.diag(
                        entry,
                        f"{_where(entry)}: the key {clip(key)} is reserved for letta-apply's own "
                        "bookkeeping block of that name; use another key",
                        code="LA328",
                        key=True,
                    )
                )
    return errors


def _lifecycle(
    doc: Document, data: Mapping[str, object], kinds: Sequence[Section]
) -> list[Diagnostic]:
    """`imports:` and `moved:` name declared addresses, each at most once; `removed:` names
    addresses no longer declared."""
    errors: list[Diagnostic] = []

    def err(path: Path_, message: str, code: str) -> None:
        errors.append(doc.diag(path, f"{_where(path)}: {message}", code=code))

    by_name = {k.name: k for k in kinds}
    declared = {f"{k.name}.{key}" for k in kinds for key in obj(data.get(k.section))}
    targets: dict[str, Path_] = {}

    def claim(address: str, at: Path_, what: str) -> None:
        if address in targets:
            first = targets[address]
            err(
                at,
                f"{address} is already the target of {_where(first)} ({doc.at(first, at)}); {what}",
                "LA331",
            )
        else:
            targets[address] = at

    for i, imp in enumerate(items(data.get("imports"))):
        if not isinstance(imp, dict) or not isinstance(imp.get("to"), str):
            continue
        to = imp["to"]
        if to not in declared:
            err(("imports", i, "to"), f"{to} is not declared in the manifest", "LA330")
            continue
        claim(to, ("imports", i, "to"), "import it once")
        k = by_name[to.split(".", 1)[0]]
        rid = imp.get("id")
        if isinstance(rid, str) and not rid.startswith(k.id_prefix):
            prefix = f"{to} is a {k.name}: its id starts with '{k.id_prefix}'"
            err(("imports", i, "id"), prefix, "LA332")
        if "name" in imp and not k.import_by_name:
            err(("imports", i, "name"), f"{k.section} are imported by id, not by name", "LA333")

    moved_from: set[str] = set()
    for i, mv in enumerate(items(data.get("moved"))):
        if not isinstance(mv, dict):
            continue
        src, dst = mv.get("from"), mv.get("to")
        if not isinstance(src, str) or not isinstance(dst, str):
            continue
        if src.split(".", 1)[0] != dst.split(".", 1)[0]:
            kept = f"cannot move {src} to {dst}: a move keeps the kind of resource"
            err(("moved", i), kept, "LA334")
            continue
        if src in declared:
            gone = f"{src} is still declared; a move renames a key that is gone"
            err(("moved", i, "from"), gone, "LA335")
        if dst not in declared:
            err(("moved", i, "to"), f"{dst} is not declared in the manifest", "LA330")
        if src in moved_from:
            err(("moved", i, "from"), f"{src} is moved twice", "LA336")
        moved_from.add(src)
        claim(dst, ("moved", i, "to"), "a resource is imported or moved into it once")

    removed: set[str] = set()
    for i, rm in enumerate(items(data.get("removed"))):
        src = rm.get("from") if isinstance(rm, dict) else None
        if not isinstance(src, str):
            continue
        at: Path_ = ("removed", i, "from")
        if src in declared:
            err(at, f"{src} is still declared; `removed:` lets go of a key the manifest no "
                "longer declares (delete its entry, or this one)", "LA337")  # fmt: skip
        elif src in moved_from:
            err(at, f"{src} is also moved; a resource is either moved or removed", "LA338")
        elif src in removed:
            err(at, f"{src} is removed twice", "LA339")
        removed.add(src)
    return errors
