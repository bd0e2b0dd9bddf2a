"""`--target`: the addresses a run is limited to, as the manifest names them."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from ..errors import LettaApplyError
from ..manifest.language import normalize_address
from ..model import Desired

TARGET_WARNING = (
    "Warning: --target limits this run to part of the manifest; the rest may not match the "
    "server afterwards. Use it for exceptional cases, then run a full plan."
)


def expand_targets(desired: Desired, targets: Iterable[str]) -> list[str]:
    """The declared addresses `targets` stand for: a template's address is all its instances
    (agent.worker is every worker). Raises LettaApplyError on an address not declared."""
    declared = desired.addresses
    out: list[str] = []
    for t in map(normalize_address, targets):
        found = [t] if t in declared else [a for a in declared if a.startswith(t + "[")]
        if not found:
            hint = difflib.get_close_matches(t, declared, n=1)
            if hint:
                raise LettaApplyError(
                    f"--target {t}: no such resource in the manifest; did you mean {hint[0]}?"
                )
            raise LettaApplyError(
                f"--target {t}: no such resource in the manifest (addresses look like "
                "block.<key>, agent.<key>, tool.<key>, identity.<key>, "
                'agent.<key>["<for_each key>"] or agent.<key>[<index>])'
            )
        out += found
    return out
