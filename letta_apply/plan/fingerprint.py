"""Fingerprints of live resources: what a saved plan records, so that applying it later can
tell whether anything it touches changed since (a stale plan)."""

from __future__ import annotations

from collections.abc import Mapping

from ..kinds import KINDS, kind, kind_of_address
from ..model import Live

ABSENT = "absent"  # fingerprint of an address with nothing on the server


def _with_blanks(fingerprint: str, blank: frozenset[str]) -> str:
    # The blanked fields' names travel with the fingerprint, so that a saved plan is checked
    # with the same fields left out, whatever the variables are when it is applied.
    return fingerprint + ("|" + ",".join(sorted(blank)) if blank else "")


def marked_blanks(live: Live) -> dict[str, frozenset[str]]:
    """Fields each live resource's marks say hold sensitive values."""
    out: dict[str, frozenset[str]] = {}
    for k in KINDS:
        for rid, names in k.blanks(live).items():
            out[rid] = out.get(rid, frozenset()) | names
    return out


def fingerprints(
    live: Live,
    present: Mapping[str, str],
    creates: Mapping[str, str],
    blanks: Mapping[str, frozenset[str]] | None = None,
) -> dict[str, str]:
    """Fingerprint of every live resource, by id; and for each address in `creates` (address ->
    the unique name it takes, or ""): ABSENT, the id of what now carries the address
    (`present`), or the ids of resources outside the stack that now hold the name.

    Fields holding sensitive values are left out (a plain hash of a short secret gives it away):
    those `blanks` names by resource id, else those the resources' marks name."""
    if blanks is None:
        blanks = marked_blanks(live)
    out: dict[str, str] = {}
    for k in KINDS:
        for r in k.resources(live.of(k.name)):
            blank = blanks.get(r.id, frozenset())
            out[r.id] = _with_blanks(k.fingerprint(r, blank), blank)
    for address, found in live.imported.items():
        if not isinstance(found, str):
            blank = blanks.get(found.id, frozenset())
            out[found.id] = _with_blanks(
                kind(kind_of_address(address)).fingerprint(found, blank), blank
            )
    for address, name in creates.items():
        clash = kind(kind_of_address(address)).clash(live, name) if name else ()
        if address in present:
            out[address] = f"present:{present[address]}"
        elif clash:
            out[address] = f"clash:{','.join(clash)}"
        else:
            out[address] = ABSENT
    return out
