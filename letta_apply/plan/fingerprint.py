"""Fingerprints of live resources: what a saved plan records, so that applying it later can
tell whether anything it touches changed since (a stale plan)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from ..core.changes import Change, Plan, Seal
from ..core.marks import digest, has_secret
from ..core.model import Live
from ..core.sensitive import masked_paths
from ..kinds import KINDS, kind, kind_of_address

ABSENT = "absent"  # fingerprint of an address with nothing on the server
SEAL_COST = 1 << 15
"""scrypt's cost for a seal: about 0.15 s here, for each plan that writes a sensitive field."""


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


def watched(changes: Sequence[Change]) -> dict[str, str]:
    """Live id -> a field the change writes that fingerprints otherwise leave out."""
    out = {}
    for c in changes:
        name = kind(c.kind).watched(c) if c.remote_id else ""
        if name and c.remote_id:
            out[c.remote_id] = name
    return out


def fingerprints(
    live: Live,
    present: Mapping[str, str],
    creates: Mapping[str, str],
    blanks: Mapping[str, frozenset[str]] | None = None,
    watch: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Fingerprint of every live resource, by id; and for each address in `creates` (address ->
    the unique name it takes, or ""): ABSENT, the id of what now carries the address
    (`present`), or the ids of resources outside the stack that now hold the name.

    Fields holding sensitive values are left out (a plain hash of a short secret gives it away):
    those `blanks` names by resource id, else those the resources' marks name. A field in
    `watch` (by id) is taken in, unless it is sensitive (see `seal`)."""
    if blanks is None:
        blanks = marked_blanks(live)
    watch = watch or {}
    out: dict[str, str] = {}
    for k in KINDS:
        for r in k.resources(live.of(k.name)):
            blank = blanks.get(r.id, frozenset())
            fp = k.fingerprint(r, blank)
            name = watch.get(r.id)
            if name and name not in blank:
                fp = digest([fp, getattr(r, name, None)])
            out[r.id] = _with_blanks(fp, blank)
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


def blanks_of(plan: Plan) -> dict[str, frozenset[str]]:
    """The fields each saved fingerprint left out, by the key it is filed under."""
    return {
        key: frozenset(fp.partition("|")[2].split(","))
        for key, fp in plan.fingerprints.items()
        if "|" in fp
    }


def seal(plan: Plan, live: Live, secrets: Sequence[str], key: str = "") -> Seal | None:
    """The seal of the live values of the sensitive fields `plan` writes, so that a saved plan
    notices a hand edit of one of them without keeping them in a guessable form. None when the
    plan writes no sensitive value."""
    blanks = blanks_of(plan)
    items = []
    for c in plan.changes:
        names = blanks.get(c.key, frozenset())
        # A fresh plan's body holds the sensitive values, a saved one's their placeholders.
        writes = has_secret(dict(c.body)) or masked_paths(dict(c.body))
        if c.remote_id and names and writes:
            items.append((c.remote_id, tuple(sorted(names))))
    if not items or not secrets:
        return None
    resources = tuple(sorted(set(items)))
    return Seal(resources, sealed(plan.stack, resources, live, secrets, key))


def sealed(
    stack: str,
    resources: Sequence[tuple[str, tuple[str, ...]]],
    live: Live,
    secrets: Sequence[str],
    key: str = "",
) -> str:
    """scrypt over the live values of `resources`' fields together with every sensitive
    variable of the manifest (which apply needs again) and the API key if there is one, at a
    cost that makes each guess slow: without all of those it gives nothing away (with an API
    key, nothing at all)."""
    by_id = {r.id: (k, r) for k in KINDS for r in k.resources(live.of(k.name))}
    values = []
    for rid, names in resources:
        found = by_id.get(rid)
        values.append([rid, found[0].secret_values(found[1], frozenset(names)) if found else None])
    password = json.dumps([sorted(secrets), key, values], sort_keys=True, default=str)
    # A salt of its own for each plan's resources: no table of digests serves two plans.
    salt = hashlib.sha256(json.dumps([stack, [r for r, _ in resources]]).encode()).digest()
    derived = hashlib.scrypt(
        password.encode("utf-8", "surrogateescape"),
        salt=salt[:16],
        n=SEAL_COST,
        r=8,
        p=1,
        maxmem=1 << 26,
        dklen=16,
    )
    return f"scrypt:{SEAL_COST}:{derived.hex()}"
