"""Blocks in the manifest: the rules on a block the schema cannot say (a label Letta accepts, a
value within the block's limit), for shared blocks and an agent's own alike, and the declared
block an entry makes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache

from ...core.jsonish import number, obj, strings, text
from ...errors import Diagnostic, define
from ...manifest.files import Document, Path_, clip, where
from .model import CONFIG, DEFAULT_LIMIT, DesiredBlock

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA401", "ManifestError", "block label too long",
       "A block's label (its key, when `label` is not set) is longer than Letta accepts.",
       "Set a shorter `label`.")
define("LA402", "ManifestError", "block label Letta refuses",
       "A block's label holds characters Letta does not accept in a label.",
       "Use the characters the message lists.")
define("LA403", "ManifestError", "block value over its limit",
       "A block's value is longer than its `limit` (100,000 characters unless set).",
       "Shorten the value, or raise `limit`.")
# fmt: on

MAX_LABEL = 50
# Labels the server accepts (the core-memory routes address a block by label).
BLOCK_LABEL = re.compile(r"[A-Za-z0-9_/-]+")
_LABEL_CHARS = "letters, digits, '_', '-' and '/'"

FILE_FIELDS = {"value_file": "value", "description_file": "description"}
"""Keys of a block (shared or an agent's own) naming a file whose text becomes a field."""


def check_blocks(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """`check_block` for every entry of `blocks:`."""
    errors: list[Diagnostic] = []
    blocks = data.get("blocks")
    for key, spec in (blocks if isinstance(blocks, dict) else {}).items():
        if isinstance(spec, dict):
            label = spec.get("label", key)
            errors += check_block(doc, ("blocks", key), spec, label, from_key="label" not in spec)
    return errors


def check_block(
    doc: Document, path: Path_, spec: Mapping[str, object], label: object, *, from_key: bool
) -> list[Diagnostic]:
    """A label Letta accepts, and a value within the block's limit (shared and own blocks)."""
    errors = _check_label(doc, path, label, from_key=from_key) if isinstance(label, str) else []
    value, limit = spec.get("value"), _limit(spec.get("limit", DEFAULT_LIMIT))
    if limit is None:
        return errors  # the schema reports the limit itself; the value cannot be judged by it
    if isinstance(value, str) and len(value) > limit:
        default = "" if "limit" in spec else " (the default; set 'limit' to raise it)"
        errors.append(
            doc.diag(
                (*path, "value"),
                f"{where((*path, 'value'))}: value is {len(value)} characters, over the "
                f"block's limit of {limit}{default}",
                code="LA403",
            )
        )
    return errors


def _check_label(doc: Document, path: Path_, label: str, *, from_key: bool) -> list[Diagnostic]:
    label_path: Path_ = path if from_key else (*path, "label")
    source = " (the label defaults to the key; set a shorter 'label')" if from_key else ""
    if len(label) > MAX_LABEL:
        message = (
            f"{where(label_path)}: label is {len(label)} characters; Letta accepts at most "
            f"{MAX_LABEL}"
        )
        return [doc.diag(label_path, message + source, code="LA401", key=from_key)]
    if label and not BLOCK_LABEL.fullmatch(label):
        message = (
            f"{where(label_path)}: label {clip(label)} is not accepted by Letta: use only "
            f"{_LABEL_CHARS}"
        )
        return [doc.diag(label_path, message, code="LA402", key=from_key)]
    return []


def _limit(value: object) -> int | float | None:
    """`value` when it is a `limit` the schema accepts (an integer, 1.0 included, from 1 to its
    maximum), else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    low, high = _limit_bounds()
    return value if value == int(value) and low <= value <= high else None


@cache
def _limit_bounds() -> tuple[float, float]:
    """The bounds of `limit` in the kind's schema, read once: every block of a large manifest
    is checked."""
    from .kind import BlockKind  # the kind builds on this module; its schema has the bounds

    bounds = obj(obj(obj(obj(BlockKind().schema()["$defs"])["block"])["properties"])["limit"])
    return number(bounds["minimum"]) or 0, number(bounds["maximum"]) or 0


def declare_blocks(data: Mapping[str, object]) -> dict[str, DesiredBlock]:
    """The declared blocks of `blocks:`, by address."""
    out: dict[str, DesiredBlock] = {}
    for key, entry in obj(data.get("blocks")).items():
        spec = obj(entry)
        out[f"block.{key}"] = declare_block(spec, f"block.{key}", text(spec.get("label", key)))
    return out


def declare_block(spec: Mapping[str, object], address: str, label: str) -> DesiredBlock:
    """A block as an entry declares it (a shared block, or an agent's own)."""
    config = {k: spec[k] for k in CONFIG if k in spec}
    limit = config.get("limit")
    if isinstance(limit, int | float):
        config["limit"] = int(limit)  # YAML `limit: 5000.0` is a valid integer
    if "identities" in config:
        config["identities"] = [f"identity.{k}" for k in strings(config["identities"])]
    return DesiredBlock(
        address=address,
        label=label,
        value=text(spec["value"]),
        enforce_value=bool(spec.get("enforce_value", False)),
        config=config,
        prevent_destroy=bool(spec.get("prevent_destroy", False)),
        ignore=frozenset(strings(spec.get("ignore_changes"))),
    )
