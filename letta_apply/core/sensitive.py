"""Sensitive values: how they are carried through the pipeline and masked in every output.

A value read from a variable declared `sensitive: true` becomes a `Sensitive` string, and so does
any string interpolated from one; the type travels with the value into request bodies, diffs and
drift. Before anything is shown or saved, `mask_plan` replaces each such value (and the other side
of its diff) by `MASKED`, so that a plan says a sensitive value changed without showing either
value. `Masker.text` is the last line of defence: it replaces the secrets' text wherever it still
appears in an output string (messages, errors, server responses), but where a short one is
inside a digest or an id by chance (MACHINE_DIGITS).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TextIO, overload

from .changes import Change, Drift, FieldDiff, Plan
from .jsonish import JsonObject
from .model import SHOWN, Sensitive, is_secret

__all__ = ["MASKED", "SHOWN", "Masked", "Masker", "Sensitive", "is_sensitive", "mask_plan"]

# Shorter secrets are masked where they are used, not searched for in free text: masking every
# "ab" in a plan would make it unreadable and say what the secret is.
MIN_TEXT_MASK = 4

# A run of this many characters from either end of a longer secret is masked where it appears.
PARTIAL_MASK = 8

BodyPath = tuple[str | int, ...]

# A run of lowercase hex digits (dashes between them allowed) holding at least this many digits
# is a digest or a server id (sha256, a resource's uuid): a secret shorter than PARTIAL_MASK found
# strictly inside one is there by chance (a 4-digit PIN is in one sha256 in a thousand) and is
# not masked, for masking it would break what a saved plan is checked and applied with.
MACHINE_DIGITS = 16
_HEXISH = frozenset("0123456789abcdef-")


def _by_chance(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies strictly inside a digest or an id (MACHINE_DIGITS)."""
    if not _HEXISH.issuperset(text[start:end]):
        return False
    lo, hi = start, end
    while lo > 0 and text[lo - 1] in _HEXISH:
        lo -= 1
    while hi < len(text) and text[hi] in _HEXISH:
        hi += 1
    run = text[lo:hi].strip("-")
    return (lo, hi) != (start, end) and len(run) - run.count("-") >= MACHINE_DIGITS


def _occurrences(text: str, form: str) -> list[int]:
    """Where `form` is in `text`, but for a short one where it is there by chance."""
    found = [m.start() for m in re.finditer(re.escape(form), text)]
    if len(form) >= PARTIAL_MASK:
        return found
    return [at for at in found if not _by_chance(text, at, at + len(form))]


def _mask_partial(text: str, secret: str) -> str:
    """`text` with every run of PARTIAL_MASK or more characters that starts or ends `secret`
    masked."""
    head, tail = secret[:PARTIAL_MASK], secret[-PARTIAL_MASK:]
    spans: list[tuple[int, int]] = []
    at = text.find(head)
    while at != -1:
        n = PARTIAL_MASK
        while n < len(secret) and at + n < len(text) and text[at + n] == secret[n]:
            n += 1
        spans.append((at, at + n))
        at = text.find(head, at + 1)
    at = text.find(tail)
    while at != -1:
        start, n = at, PARTIAL_MASK
        while n < len(secret) and start > 0 and text[start - 1] == secret[-n - 1]:
            start, n = start - 1, n + 1
        spans.append((start, at + PARTIAL_MASK))
        at = text.find(tail, at + 1)
    return _mask_spans(text, spans)


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with each span (start, end) replaced by SHOWN; overlapping spans are one."""
    if not spans:
        return text
    out, last = [], 0
    for start, end in sorted(spans):
        if start < last:
            if end > last:
                last = end
            continue
        out.append(text[last:start] + SHOWN)
        last = end
    return "".join(out) + text[last:]


class Masked(str):
    """What is shown in place of a sensitive value."""

    __slots__ = ()


MASKED = Masked(SHOWN)


class Masker:
    """Replaces the text of known secrets in output strings."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.forms: list[str] = []
        self.secrets: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        for s in secrets:
            if s in self.secrets:
                continue
            self.secrets.add(s)
            # The text as written, as a JSON string, as a Python repr, and each long line of a
            # multi-line secret (diffs show values line by line).
            forms = {
                s,
                json.dumps(s)[1:-1],
                json.dumps(s, ensure_ascii=False)[1:-1],
                str.__repr__(s)[1:-1],
            }
            forms |= {line.strip() for line in s.splitlines() if len(line.strip()) >= 8}
            self.forms.extend(f for f in forms if len(f) >= MIN_TEXT_MASK)
        self.forms = sorted(set(self.forms), key=len, reverse=True)

    def contains(self, text: str) -> bool:
        return any(
            s in text and _occurrences(text, s) for s in self.secrets if len(s) >= MIN_TEXT_MASK
        )

    def text(self, text: str) -> str:
        for form in self.forms:
            if form in text:
                text = _mask_spans(text, [(at, at + len(form)) for at in _occurrences(text, form)])
        # A secret cut short (a server's echo truncated, a line cut at a width) is no longer
        # found whole: a run of its first or last characters is masked too.
        for form in self.forms:
            if len(form) > PARTIAL_MASK:
                text = _mask_partial(text, form)
        return text

    def __bool__(self) -> bool:
        return bool(self.secrets)


def is_sensitive(value: object, masker: Masker | None = None) -> bool:
    """Whether `value` is or holds a sensitive value (by type, or a string by its text)."""
    if is_secret(value):
        return True
    if isinstance(value, str):
        return masker is not None and masker.contains(value)
    if isinstance(value, Mapping):
        return any(is_sensitive(v, masker) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(is_sensitive(v, masker) for v in value)
    return False


@overload
def mask_value(value: Mapping[str, object], masker: Masker | None = None) -> JsonObject: ...


@overload
def mask_value(value: object, masker: Masker | None = None) -> object: ...


def mask_value(value: object, masker: Masker | None = None) -> object:
    """`value` with every sensitive value (string or number) replaced by MASKED."""
    if is_secret(value):
        return MASKED
    if isinstance(value, str):
        return MASKED if is_sensitive(value, masker) else value
    if isinstance(value, Mapping):
        return {k: mask_value(v, masker) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_value(v, masker) for v in value]
    if isinstance(value, tuple):
        return tuple(mask_value(v, masker) for v in value)
    return value


def masked_paths(value: object, path: BodyPath = ()) -> list[BodyPath]:
    """Paths of the MASKED strings in `value`."""
    if isinstance(value, Masked):
        return [path]
    if isinstance(value, Mapping):
        return [p for k, v in value.items() for p in masked_paths(v, (*path, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in masked_paths(v, (*path, i))]
    return []


def _scalar(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float))


def _both(before: object, after: object, masker: Masker | None) -> tuple[object, object]:
    """A sensitive text masks both sides of its diff (the live side may hold an older secret);
    in a mapping or a list only the sensitive items are masked."""
    if not (is_sensitive(before, masker) or is_sensitive(after, masker)):
        return before, after
    if _scalar(before) and _scalar(after):  # text or a number: the live side too
        return (None if before is None else MASKED), (None if after is None else MASKED)
    return mask_value(before, masker), mask_value(after, masker)


def _diff(d: FieldDiff, masker: Masker | None) -> FieldDiff:
    before, after = _both(d.before, d.after, masker)
    return replace(d, before=before, after=after)


def _change(c: Change, masker: Masker | None) -> Change:
    return replace(
        c, diffs=tuple(_diff(d, masker) for d in c.diffs), body=mask_value(dict(c.body), masker)
    )


def _drift(d: Drift, masker: Masker | None) -> Drift:
    declared, live = _both(d.declared, d.live, masker)
    return replace(d, declared=declared, live=live)


def mask_plan(plan: Plan, masker: Masker | None = None) -> Plan:
    """The plan as it may be shown or saved: no sensitive value in it, on either side of a diff."""
    return replace(
        plan,
        changes=tuple(_change(c, masker) for c in plan.changes),
        drift=tuple(_drift(d, masker) for d in plan.drift),
    )


def has_masked(plan: Plan) -> bool:
    return any(masked_paths(dict(c.body)) for c in plan.changes)


class MaskedStream:
    """A text stream that masks known secrets in everything written to it."""

    def __init__(self, stream: TextIO, masker: Masker) -> None:
        self.stream = stream
        self.masker = masker
        # The reader went away (`... | head`): the rest is dropped, and the command still
        # finishes and returns its exit code.
        self.closed_by_reader = False

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(self.masker.text(text))
            except BrokenPipeError:
                self.closed_by_reader = True
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self.closed_by_reader = True

    def isatty(self) -> bool:
        return self.stream.isatty()
