"""`--target`: the addresses a run is limited to, as the manifest names them."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable

from ..core.model import Desired
from ..errors import UsageError
from ..kinds import KINDS
from ..manifest.addresses import normalize_address

TARGET_WARNING = (
    "Warning: --target limits this run to part of the manifest; the rest may not match the "
    "server afterwards. Use it for exceptional cases, then run a full plan."
)


def expand_targets(desired: Desired, targets: Iterable[str]) -> list[str]:
    """The declared addresses `targets` stand for: a template's address is all its instances
    (agent.worker is every worker). Raises UsageError on an address not declared."""
    declared = desired.addresses
    out: list[str] = []
    for t in map(normalize_address, targets):
        found = [t] if t in declared else [a for a in declared if a.startswith(t + "[")]
        if not found:
            hint = difflib.get_close_matches(t, declared, n=1)
            if hint:
                raise UsageError(
                    f"--target {t}: no such resource in the manifest; did you mean {hint[0]}?",
                    code="LA906",
                )
            kinds = ", ".join(f"{k.name}.<key>" for k in KINDS)
            raise UsageError(
                f"--target {t}: no such resource in the manifest (addresses look like {kinds}, "
                'agent.<key>["<for_each key>"] or agent.<key>[<index>])',
                code="LA906",
            )
        out += found
    return out


# An instance key that needs no quotes in `--target`: not a count index, nothing a shell or the
# address syntax reads specially.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def target_addresses(desired: Desired) -> list[str]:
    """What `--target` accepts for this manifest, in the form easiest to type, for shell
    completion: every declared address, and each template's own (all its instances);
    `agent.worker[eu]` rather than `agent.worker["eu"]` when the key needs no quotes."""
    out: list[str] = []
    for address in desired.addresses:
        base, bracket, index = address.partition("[")
        if not bracket:
            out.append(address)
            continue
        if base not in out:
            out.append(base)
        key = index[:-1]
        if key.startswith('"'):
            plain = json.loads(key)
            if _PLAIN_KEY.fullmatch(plain):
                key = plain
        out.append(f"{base}[{key}]")
    return out
