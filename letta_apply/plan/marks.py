"""What letta-apply records on what it writes, and the forms fields are compared in.

Every resource letta-apply writes carries a mark in its `metadata`: the stack, the manifest
address, and a digest of each field as it was last written (`applied`). A live field that no
longer matches its digest was changed on the server (drift); one that still does means the
manifest changed. Fields holding sensitive values get no digest: a hash of a short secret gives
it away.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ..model import (
    MARK_KEY,
    DesiredAgent,
    DesiredBlock,
    DesiredTool,
    LiveAgent,
    LiveBlock,
    LiveTool,
    Sensitive,
)

BLOCK_FIELDS = ("description", "limit", "read_only")
AGENT_FIELDS = ("description", "system", "model", "embedding")
TOOL_FIELDS = ("description", "return_char_limit", "default_requires_approval")

SENSITIVE_FIELDS_KEY = "sensitive"
"""Key in a mark's `applied` listing the fields that hold sensitive values (names, not values)."""


def digest(value: Any) -> str:
    """A short, stable digest of a JSON value."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def user_metadata(metadata: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metadata.items() if k != MARK_KEY}


def has_secret(value: Any) -> bool:
    if isinstance(value, Sensitive):
        return True
    if isinstance(value, Mapping):
        return any(has_secret(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(has_secret(v) for v in value)
    return False


def sensitive_fields(config: Mapping[str, Any]) -> frozenset[str]:
    """Fields of a declared block or agent that hold sensitive values: `description`, `system`,
    `metadata.<key>`."""
    out = {k for k in ("description", "system") if has_secret(config.get(k))}
    metadata = config.get("metadata")
    if isinstance(metadata, Mapping):
        out |= {f"metadata.{k}" for k, v in metadata.items() if has_secret(v)}
    return frozenset(out)


def block_applied(db: DesiredBlock) -> dict[str, Any]:
    """Digests of the configuration letta-apply writes for a block, and its protection. A field
    holding a sensitive value gets no digest (marks are shown in plans and saved in plan files);
    a difference in it is attributed to the manifest."""
    out: dict[str, Any] = {"label": digest(db.label), **_config_digests(db.config, BLOCK_FIELDS)}
    if db.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **_sensitive_names(db.config)}


def _config_digests(config: Mapping[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    """Digests of the plain fields, metadata and tags a block or an agent declares; fields
    holding sensitive values get none."""
    out: dict[str, Any] = {}
    for k in fields:
        if k in config and not has_secret(config[k]):
            out[k] = digest(config[k])
    if "metadata" in config and not has_secret(config["metadata"]):
        out["metadata"] = digest(dict(config["metadata"]))
    if "tags" in config:
        out["tags"] = digest(sorted(config["tags"]))
    return out


def _sensitive_names(config: Mapping[str, Any]) -> dict[str, Any]:
    names = sensitive_fields(config)
    return {SENSITIVE_FIELDS_KEY: sorted(names)} if names else {}


def agent_applied(da: DesiredAgent) -> dict[str, Any]:
    """Digests of the configuration letta-apply writes for an agent, the shared blocks it
    attaches (as addresses), the configuration of its own blocks, and its protection."""
    out: dict[str, Any] = {"name": digest(da.name), **_config_digests(da.config, AGENT_FIELDS)}
    if "tools" in da.config:
        out["tools"] = digest(sorted(da.config["tools"]))
    if "tool_rules" in da.config:
        out["tool_rules"] = digest(rule_keys(da.config["tool_rules"]))
    if da.include_base_tools is not None:
        out["include_base_tools"] = da.include_base_tools
    out["blocks"] = sorted(da.blocks)
    out["memory_blocks"] = {b.label: block_applied(b) for b in da.memory_blocks}
    if da.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **_sensitive_names(da.config)}


def tool_applied(dt: DesiredTool) -> dict[str, Any]:
    """Digests of what letta-apply writes for a custom tool, and its protection."""
    out: dict[str, Any] = {"name": digest(dt.name), "source_code": digest(dt.source_code)}
    for k in TOOL_FIELDS:
        if k in dt.config:
            out[k] = digest(dt.config[k])
    if "tags" in dt.config:
        out["tags"] = digest(sorted(dt.config["tags"]))
    if "pip_requirements" in dt.config:
        out["pip_requirements"] = digest(pip_requirements(dt.config["pip_requirements"]))
    if dt.prevent_destroy:
        out["prevent_destroy"] = True
    return out


def pip_requirements(reqs: Iterable[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    """Pip requirements as compared: the server writes a missing version as null."""
    return [{k: v for k, v in r.items() if v is not None} for r in reqs or ()]


def rule_compared(rule: Mapping[str, Any]) -> dict[str, Any]:
    """A tool rule as compared: without fields at their server default (null, an ignored
    prompt template, require_output_mapping false)."""
    return {
        k: v
        for k, v in rule.items()
        if v is not None
        and k != "prompt_template"
        and not (k == "require_output_mapping" and v is False)
    }


def rules_shown(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    """Tool rules as a plan shows them: `type(tool, field=value...)`, sorted."""
    out = []
    for r in map(rule_compared, rules):
        extra = [
            f"{k}={v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
            for k, v in sorted(r.items())
            if k not in ("type", "tool_name")
        ]
        out.append(f"{r.get('type')}({', '.join([str(r.get('tool_name')), *extra])})")
    return sorted(out)


def rule_keys(rules: Iterable[Mapping[str, Any]]) -> list[str]:
    return sorted(
        json.dumps(rule_compared(r), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        for r in rules
    )


def _server_rule(rule: Mapping[str, Any], declared_names: set[str], base_tools: set[str]) -> bool:
    """A rule the server adds by itself (loop rules of its base tools, approval rules of tools
    that ask for it), on a tool the manifest's rules leave alone: kept, never compared."""
    if rule.get("tool_name") in declared_names:
        return False
    kind = rule.get("type")
    return kind == "requires_approval" or (
        kind in ("continue_loop", "exit_loop") and rule.get("tool_name") in base_tools
    )


def tool_rules_update(
    declared: Iterable[Mapping[str, Any]],
    live: Iterable[Mapping[str, Any]],
    base_tools: Iterable[str],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """When an agent's rules differ from the declared ones: (the live rules compared, the whole
    list to write: the declared rules plus the server's own). None when they match."""
    wanted = [rule_compared(r) for r in declared]
    names = {r["tool_name"] for r in wanted}
    base = set(base_tools)
    live_rules = [rule_compared(r) for r in live]
    compared = [r for r in live_rules if not _server_rule(r, names, base)]
    if rule_keys(compared) == rule_keys(wanted):
        return None
    return compared, wanted + [r for r in live_rules if _server_rule(r, names, base)]


def mark_metadata(
    stack: str, address: str, applied: Mapping[str, Any], **extra: Any
) -> dict[str, Any]:
    return {MARK_KEY: {"stack": stack, "address": address, "applied": dict(applied), **extra}}


def applied_of(resource: LiveAgent | LiveBlock | LiveTool) -> Mapping[str, Any] | None:
    applied = resource.mark.get("applied")
    return applied if isinstance(applied, Mapping) else None
