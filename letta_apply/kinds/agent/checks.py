"""The rules of `agents:` a schema cannot say, checked with the blocks the agents claim labels
against: names Letta accepts, each used once; an agent's own blocks; shared blocks named by a
declared key; no two blocks of one label on one agent. Written to run on manifests the schema
rejected too (parts of the wrong shape are skipped), so that every problem is reported at once."""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

from ...errors import Diagnostic, define
from ...manifest.files import Document, Path_, clip, where
from ..block.kind import check_block

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA321", "ManifestError", "agent name Letta refuses",
       "An agent's name (its key when `name` is not set) holds characters other than "
       "letters, digits, spaces, '-', '_' and apostrophes.",
       "Set a `name` Letta accepts.")
define("LA322", "ManifestError", "agent name used twice",
       "Two agents of the manifest have the same name.",
       "Give each agent its own name.")
define("LA323", "ManifestError", "no such shared block",
       "An agent's `blocks:` names a key that `blocks:` does not declare.",
       "Declare the shared block, or fix the key (the message suggests a close one).")
define("LA324", "ManifestError", "two blocks with one label on an agent",
       "An agent would hold two blocks with the same label (its own, or shared ones); Letta "
       "addresses blocks by label.",
       "Give one of them another label.")
# fmt: on

# What Letta 0.16.8 accepts as an agent's name (CreateAgent.validate_name), matched against the
# whole name: Letta's own `$` would let a trailing newline through.
AGENT_NAME = re.compile(r"[\w '\-]+")


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[object]:
    return value if isinstance(value, list) else []


def _order(doc: Document, path: Path_) -> tuple[int, int]:
    pos = doc.where(path)
    return pos.line, pos.col


def check_agents(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    errors: list[Diagnostic] = []
    shared_labels: dict[str, object] = {}  # shared block key -> its label
    for key, spec in _mapping(data.get("blocks")).items():
        if not isinstance(spec, dict):
            shared_labels[key] = None
            continue
        shared_labels[key] = spec.get("label", key)  # checked by the block kind

    names: dict[str, Path_] = {}
    for key, spec in _mapping(data.get("agents")).items():
        if not isinstance(spec, dict):
            continue
        path: Path_ = ("agents", key)
        errors += _name(doc, path, spec.get("name", key), "name" not in spec, names)
        # Every block the agent will see, by label: its own and the shared ones it attaches.
        claims: list[tuple[str, Path_, str | Path_]] = []
        for i, mb in enumerate(_list(spec.get("memory_blocks"))):
            if not isinstance(mb, dict):
                continue
            mpath: Path_ = (*path, "memory_blocks", i)
            label = mb.get("label")
            errors += check_block(doc, mpath, mb, label, from_key=False)
            if isinstance(label, str):
                claims.append((label, (*mpath, "label"), mpath))
        errors += _shared(doc, path, _list(spec.get("blocks")), shared_labels, claims)
        errors += _one_label_each(doc, path, claims)
    return errors


def _name(
    doc: Document, path: Path_, name: object, from_key: bool, names: dict[str, Path_]
) -> list[Diagnostic]:
    """A name Letta accepts, used by no other agent of the manifest."""
    if not isinstance(name, str):
        return []
    errors: list[Diagnostic] = []
    name_path = path if from_key else (*path, "name")
    if name and not AGENT_NAME.fullmatch(name):
        errors.append(
            doc.diag(
                name_path,
                f"{where(name_path)}: agent name {clip(name)} is not accepted by Letta: "
                "use letters, digits, spaces, '-', '_' and apostrophes",
                code="LA321",
                key=from_key,
            )
        )
    if name in names:
        first = names[name]
        errors.append(
            doc.diag(
                name_path,
                f"{where(name_path)}: agent name {clip(name)} is already used by "
                f"{where(first)} ({doc.at(first, name_path)}); agent names must be unique",
                code="LA322",
                key=from_key,
            )
        )
    else:
        names[name] = name_path
    return errors


def _shared(
    doc: Document,
    path: Path_,
    refs: list[object],
    shared_labels: Mapping[str, object],
    claims: list[tuple[str, Path_, str | Path_]],
) -> list[Diagnostic]:
    """Shared blocks named by a declared key; their labels claimed (into `claims`)."""
    errors: list[Diagnostic] = []
    for i, ref in enumerate(refs):
        if not isinstance(ref, str):
            continue
        rpath: Path_ = (*path, "blocks", i)
        if ref not in shared_labels:
            hint = difflib.get_close_matches(ref, list(shared_labels), n=1)
            if hint:
                known = f"; did you mean '{hint[0]}'?"
            elif shared_labels:
                known = f" (declared: {', '.join(sorted(shared_labels))})"
            else:
                known = " (the manifest declares no shared blocks under 'blocks')"
            message = f"{where(rpath)}: no shared block {clip(ref)} is declared{known}"
            errors.append(doc.diag(rpath, message, code="LA323"))
            continue
        label = shared_labels[ref]
        if isinstance(label, str):
            claims.append((label, rpath, f"block.{ref}"))
    return errors


def _one_label_each(
    doc: Document, path: Path_, claims: list[tuple[str, Path_, str | Path_]]
) -> list[Diagnostic]:
    """Each label once among the blocks an agent sees: `claims` are (label, where it is, what
    claims it: a shared block's address, or the path of an own block, spelled when reported)."""
    errors: list[Diagnostic] = []
    if len({label for label, _, _ in claims}) == len(claims):
        return errors  # no label twice: nothing to order by position
    seen: dict[str, tuple[Path_, str | Path_]] = {}
    for label, at, what in sorted(claims, key=lambda c: _order(doc, c[1])):
        if label not in seen:
            seen[label] = (at, what)
            continue
        first_at, first_what = seen[label]
        errors.append(
            doc.diag(
                at,
                f"{where(path)}: two blocks labelled {clip(label)} on one agent: {_what(what)} "
                f"and {_what(first_what)} ({doc.at(first_at, at)}); labels must be unique per "
                "agent",
                code="LA324",
            )
        )
    return errors


def _what(claim: str | Path_) -> str:
    return claim if isinstance(claim, str) else where(claim)
