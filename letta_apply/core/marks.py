"""What letta-apply records on what it writes, in forms every kind shares.

Every resource letta-apply writes carries a mark: the stack, the manifest address, and a digest
of each field as it was last written (`applied`). A live field that no longer matches its digest
was changed on the server (drift); one that still does means the manifest changed. Fields holding
sensitive values get no digest: a hash of a short secret gives it away. Where a kind keeps its
mark (metadata, a property...) is the kind's business (see letta_apply.kinds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping

from .jsonish import JsonObject
from .model import MARK_KEY, is_secret

SENSITIVE_FIELDS_KEY = "sensitive"
"""Key in a mark's `applied` listing the fields that hold sensitive values (names, not values)."""


def digest(value: object) -> str:
    """A short, stable digest of a JSON value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def user_metadata(metadata: Mapping[str, object]) -> JsonObject:
    return {k: v for k, v in metadata.items() if k != MARK_KEY}


def has_secret(value: object) -> bool:
    """Whether `value` is or holds a value from a sensitive variable (of any type)."""
    if is_secret(value):
        return True
    if isinstance(value, Mapping):
        return any(has_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_secret(v) for v in value)
    return False


def sensitive_fields(
    config: Mapping[str, object],
    plain: tuple[str, ...] = ("description", "system"),
    mappings: tuple[str, ...] = ("metadata",),
) -> frozenset[str]:
    """Fields of a declared resource that hold sensitive values: plain fields by name, and
    `<mapping>.<key>` for keys of mappings (metadata, properties)."""
    out = {k for k in plain if has_secret(config.get(k))}
    for name in mappings:
        value = config.get(name)
        if isinstance(value, Mapping):
            out |= {f"{name}.{k}" for k, v in value.items() if has_secret(v)}
    return frozenset(out)


def config_digests(config: Mapping[str, object], fields: tuple[str, ...]) -> dict[str, str]:
    """Digests of the plain fields, metadata and tags a resource declares; fields holding
    sensitive values get none."""
    out: dict[str, str] = {}
    for k in fields:
        if k in config and not has_secret(config[k]):
            out[k] = digest(config[k])
    metadata = config.get("metadata")
    if "metadata" in config and not has_secret(metadata) and isinstance(metadata, Mapping):
        out["metadata"] = digest(dict(metadata))
    tags = config.get("tags")
    if "tags" in config and isinstance(tags, Iterable):
        out["tags"] = digest(sorted(tags))
    return out


def sensitive_names(names: frozenset[str]) -> dict[str, list[str]]:
    return {SENSITIVE_FIELDS_KEY: sorted(names)} if names else {}


def mark_metadata(
    stack: str, address: str, applied: Mapping[str, object], **extra: object
) -> JsonObject:
    """The metadata entry that says which stack and manifest address own a resource."""
    return {MARK_KEY: {"stack": stack, "address": address, "applied": dict(applied), **extra}}
