"""Fingerprints of live resources: what a saved plan records, so that applying it later can
tell whether anything it touches changed since (a stale plan)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..model import SHOWN, Live, LiveAgent, LiveBlock, LiveTool
from .marks import SENSITIVE_FIELDS_KEY, applied_of, digest, rule_keys

ABSENT = "absent"  # fingerprint of an address with nothing on the server


def _tool_fingerprint(t: LiveTool) -> str:
    return digest(
        [
            t.id, t.name, t.source_code, t.description, sorted(t.tags), dict(t.metadata),
            t.return_char_limit, list(t.pip_requirements or ()), t.default_requires_approval,
        ]
    )  # fmt: skip


def _blank(value: Any, name: str, fields: frozenset[str]) -> Any:
    """A field's value for a fingerprint: SHOWN when it is sensitive; a mapping (metadata) with
    its sensitive keys blanked."""
    if name in fields:
        return SHOWN
    if isinstance(value, Mapping):
        return {k: SHOWN if f"{name}.{k}" in fields else v for k, v in value.items()}
    return value


def _block_fingerprint(b: LiveBlock, blank: frozenset[str] = frozenset()) -> str:
    # The value is left out: agents write it all the time, and no change depends on it.
    return digest(
        [
            b.id, b.label, _blank(b.description, "description", blank), b.limit, b.read_only,
            _blank(dict(b.metadata), "metadata", blank), sorted(b.tags),
        ]
    )  # fmt: skip


def _agent_fingerprint(a: LiveAgent, blank: frozenset[str] = frozenset()) -> str:
    parts: list[Any] = [
        a.id, a.name, _blank(a.description, "description", blank),
        _blank(a.system, "system", blank), a.model, a.embedding, sorted(a.tags),
        _blank(dict(a.metadata), "metadata", blank), sorted(t.id for t in a.tools),
        sorted(a.block_ids),
    ]  # fmt: skip
    if a.tool_rules:  # left out when empty: fingerprints of plans made before tool rules hold
        parts.append(rule_keys(a.tool_rules))
    return digest(parts)


def _with_blanks(fingerprint: str, blank: frozenset[str]) -> str:
    # The blanked fields' names travel with the fingerprint, so that a saved plan is checked
    # with the same fields left out, whatever the variables are when it is applied.
    return fingerprint + ("|" + ",".join(sorted(blank)) if blank else "")


def marked_blanks(live: Live) -> dict[str, frozenset[str]]:
    """Fields each live resource's marks say hold sensitive values (its own blocks' included)."""
    out: dict[str, frozenset[str]] = {}
    resources: list[LiveAgent | LiveBlock] = [*live.blocks.values(), *live.agents]
    for r in resources:
        names = (applied_of(r) or {}).get(SENSITIVE_FIELDS_KEY)
        if isinstance(names, list):
            out[r.id] = frozenset(map(str, names))
    for a in live.agents:
        own = (applied_of(a) or {}).get("memory_blocks")
        if not isinstance(own, Mapping):
            continue
        for i in a.block_ids:
            b = live.blocks.get(i)
            entry = own.get(b.label) if b is not None else None
            names = entry.get(SENSITIVE_FIELDS_KEY) if isinstance(entry, Mapping) else None
            if isinstance(names, list):
                out[i] = out.get(i, frozenset()) | frozenset(map(str, names))
    return out


def fingerprints(
    live: Live,
    present: Mapping[str, str],
    creates: Mapping[str, str],
    blanks: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, str]:
    """Fingerprint of every live resource, by id; and for each address in `creates` (address ->
    agent name, or "" for a block): ABSENT, the id of what now carries the address (`present`),
    or the ids of unmarked agents that now hold the name.

    Fields holding sensitive values are left out (a plain hash of a short secret gives it away):
    those `blanks` names by resource id, else those the resources' marks name."""
    if blanks is None:
        blanks = marked_blanks(live)
    out = {
        b.id: _with_blanks(
            _block_fingerprint(b, blanks.get(b.id, frozenset())), blanks.get(b.id, frozenset())
        )
        for b in live.blocks.values()
    }
    out.update(
        {
            a.id: _with_blanks(
                _agent_fingerprint(a, blanks.get(a.id, frozenset())), blanks.get(a.id, frozenset())
            )
            for a in live.agents
        }
    )
    out.update({t.id: _tool_fingerprint(t) for t in live.custom_tools})
    for found in live.imported.values():
        blank = blanks.get(found.id, frozenset()) if not isinstance(found, str) else frozenset()
        if isinstance(found, LiveAgent):
            out[found.id] = _with_blanks(_agent_fingerprint(found, blank), blank)
        elif isinstance(found, LiveBlock):
            out[found.id] = _with_blanks(_block_fingerprint(found, blank), blank)
    for address, name in creates.items():
        clash: tuple[str, ...] | None
        if address.startswith("tool."):
            holder = live.tools.get(name)
            clash = (holder,) if holder else None
        else:
            clash = live.clashes.get(name) if name else None
        if address in present:
            out[address] = f"present:{present[address]}"
        elif clash:
            out[address] = f"clash:{','.join(clash)}"
        else:
            out[address] = ABSENT
    return out
