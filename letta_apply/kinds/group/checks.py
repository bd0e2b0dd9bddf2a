"""The rules a manifest's `groups:` must follow that its schema cannot say (kinds.group): what
the groups name is declared, and the manager agent and settings fit the manager type."""

from __future__ import annotations

import difflib
from collections.abc import Mapping

from ...core.jsonish import obj
from ...errors import Diagnostic, define
from ...manifest.files import Document, Path_
from .model import ALLOWED, SETTINGS

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA441", "ManifestError", "a group naming an agent not declared",
       "A group's `agents` or `manager_agent` names a key that `agents:` does not declare.",
       "Declare the agent, or fix the key.")
define("LA442", "ManifestError", "a group naming a shared block not declared",
       "A group's `blocks` names a key that `blocks:` does not declare.",
       "Declare the shared block, or fix the key.")
define("LA443", "ManifestError", "a round_robin group with a manager",
       "A `round_robin` group sets `manager_agent`; it has none.",
       "Remove `manager_agent`, or choose another manager_type.")
define("LA444", "ManifestError", "a group without its manager",
       "A group whose manager_type needs a manager agent sets no `manager_agent`.",
       "Set `manager_agent` to one of the manifest's agents.")
define("LA445", "ManifestError", "a setting this group type does not take",
       "A group sets a setting its manager_type does not take.",
       "Remove it (the message lists what the type takes).")
define("LA446", "ManifestError", "buffer lengths apart",
       "A `voice_sleeptime` group sets one of min_ and max_message_buffer_length without "
       "the other.",
       "Set both, or neither.")
define("LA447", "ManifestError", "buffer lengths in the wrong order",
       "A group's `max_message_buffer_length` is not greater than its "
       "`min_message_buffer_length`.",
       "Make max greater than min.")
# fmt: on

_WHAT = {"agents": "agent", "blocks": "shared block"}  # what a group's reference names


def check_groups(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """References name declared agents and shared blocks; the manager agent and settings fit
    the manager type."""
    known: dict[str, list[str]] = {}
    for kind in _WHAT:
        section = data.get(kind)
        known[kind] = sorted(section) if isinstance(section, dict) else []
    errors: list[Diagnostic] = []
    for key, spec in obj(data.get("groups")).items():
        if not isinstance(spec, dict):
            continue
        errors += _unknown_refs(doc, key, spec, known)
        mtype = str(spec.get("manager_type"))
        if mtype not in ALLOWED:
            continue  # the schema says
        errors += _manager_problems(doc, key, spec, mtype)
        errors += _settings_problems(doc, key, spec, mtype)
        if mtype == "voice_sleeptime":
            errors += _buffer_problems(doc, key, spec)
    return errors


def _unknown_refs(
    doc: Document, key: str, spec: Mapping[str, object], known: Mapping[str, list[str]]
) -> list[Diagnostic]:
    """The group's members, shared blocks and manager that the manifest does not declare."""
    path = ("groups", key)
    found: list[tuple[Path_, str, str, str]] = []  # (where, as written, the key, its section)
    for kind in _WHAT:
        refs = spec.get(kind)
        for i, ref in enumerate(refs if isinstance(refs, list) else []):
            if isinstance(ref, str) and ref not in known[kind]:
                found.append(((*path, kind, i), f"groups.{key}.{kind}[{i}]", ref, kind))
    manager = spec.get("manager_agent")
    if isinstance(manager, str) and manager not in known["agents"]:
        found.append(((*path, "manager_agent"), f"groups.{key}.manager_agent", manager, "agents"))
    return [_unknown(doc, at, where, ref, kind, known[kind]) for at, where, ref, kind in found]


def _unknown(
    doc: Document, at: Path_, where: str, ref: str, kind: str, known: list[str]
) -> Diagnostic:
    hint = difflib.get_close_matches(ref, known, n=1)
    tail = (
        f"; did you mean '{hint[0]}'?" if hint
        else f" (declared: {', '.join(known)})" if known
        else f" (the manifest declares none under '{kind}')"
    )  # fmt: skip
    message = f"{where}: no {_WHAT[kind]} {ref!r} is declared{tail}"
    return doc.diag(at, message, code="LA441" if kind == "agents" else "LA442")


def _manager_problems(
    doc: Document, key: str, spec: Mapping[str, object], mtype: str
) -> list[Diagnostic]:
    """A round_robin group has no manager agent; every other type has one."""
    path = ("groups", key)
    if mtype == "round_robin" and "manager_agent" in spec:
        return [
            doc.diag(
                (*path, "manager_agent"),
                f"groups.{key}.manager_agent: a round_robin group has no manager agent",
                code="LA443",
                key=True,
            )
        ]
    if mtype != "round_robin" and "manager_agent" not in spec:
        return [
            doc.diag(
                path, f"groups.{key}: a {mtype} group needs a manager_agent", code="LA444", key=True
            )
        ]
    return []


def _settings_problems(
    doc: Document, key: str, spec: Mapping[str, object], mtype: str
) -> list[Diagnostic]:
    """The manager's settings its type takes, and no other."""
    errors: list[Diagnostic] = []
    for s in SETTINGS:
        if s in spec and s not in ALLOWED[mtype]:
            takes = ", ".join(ALLOWED[mtype]) or "none"
            errors.append(
                doc.diag(
                    ("groups", key, s),
                    f"groups.{key}.{s}: a {mtype} group does not take it (it takes: {takes})",
                    code="LA445",
                    key=True,
                )
            )
    return errors


def _buffer_problems(doc: Document, key: str, spec: Mapping[str, object]) -> list[Diagnostic]:
    """A voice_sleeptime group's buffer lengths: both or neither, max above min."""
    path = ("groups", key)
    lo, hi = spec.get("min_message_buffer_length"), spec.get("max_message_buffer_length")
    if (lo is None) != (hi is None):
        return [
            doc.diag(
                path,
                f"groups.{key}: max_message_buffer_length and min_message_buffer_length go "
                "together",
                code="LA446",
                key=True,
            )
        ]
    if isinstance(lo, int) and isinstance(hi, int) and hi <= lo:
        return [
            doc.diag(
                (*path, "max_message_buffer_length"),
                f"groups.{key}.max_message_buffer_length: must be greater than "
                f"min_message_buffer_length ({lo})",
                code="LA447",
            )
        ]
    return []
