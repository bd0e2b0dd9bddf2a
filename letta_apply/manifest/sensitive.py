"""Where a sensitive value may go in a manifest: only where it is masked."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import Diagnostic
from .files import Path_, Place
from .interpolate import secret, spelled
from .sections import Section


def misplaced_secrets(
    data: object, kinds: Sequence[Section], place: Callable[[Path_], Place]
) -> list[Diagnostic]:
    """A sensitive value goes only where it is masked: in a field of an entry that a kind
    says takes one (`sensitive_in`; any such field along the path, of any kind that takes
    one), never in a name, label or tag (shown and matched everywhere), never in a field
    shown whole (`shown_whole`)."""
    sections = {k.section for k in kinds if k.sensitive_in}
    ok = {f for k in kinds for f in k.sensitive_in}
    whole = {f: why for k in kinds for f, why in k.shown_whole.items()}
    where_ok = f"it can go in {_listed(sorted(ok))}"
    errors: list[Diagnostic] = []

    def walk(value: object, path: Path_) -> None:
        if secret(value):
            fields = [p for p in path if isinstance(p, str)]
            shown = next((whole[f] for f in fields[2:] if f in whole), None)
            allowed = (
                len(path) >= 3
                and path[0] in sections
                and any(f in ok for f in fields[2:])
                and fields[-1] not in ("label", "name", "tags")
                and "tags" not in fields[2:]
                and shown is None
            )
            if not allowed:
                file, line, col = place(path)
                why = shown or where_ok
                errors.append(
                    Diagnostic(
                        file, line, col,
                        f"{spelled(path)}: a sensitive value cannot be used here (it would be "
                        f"shown); {why}", code="LA223",
                    )
                )  # fmt: skip
        elif isinstance(value, dict):
            for k, v in value.items():
                walk(v, (*path, k))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, (*path, i))

    walk(data, ())
    return errors


def _listed(words: Sequence[str]) -> str:
    """`a, b and c`."""
    return " and ".join([", ".join(words[:-1]), words[-1]] if len(words) > 1 else words)
