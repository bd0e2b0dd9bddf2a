"""How convert (memory.convert) writes the fields of an Agent File's entities in a manifest:
Letta's defaults and letta-apply's own marks left out, every string kept literal."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..core.model import MARK_KEY, RESERVED_TAG_PREFIXES
from ..kinds.block.kind import LiveBlock, export_block

DEFAULT_TIMEZONE = "UTC"


def stack_name(path: str) -> str | None:
    """A stack name made from an Agent File's name (`Customer Support.af` gives
    `customer-support`), or None when nothing of it can make one."""
    stem = Path(path).name
    for suffix in (".af", ".json"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^a-z0-9_.-]+", "-", stem.lower()).strip("-._")[:63].rstrip("-._")
    return name if re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,62}", name) else None


class Ref(str):
    """A `${var.NAME}` reference convert writes itself: never escaped."""


def literal(value: Any) -> Any:
    """Every string from the file written so the manifest language takes it as it is: `${`
    would be read as a reference (`${env.HOME}` in a prompt would pull the environment in)."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, str):
        return value.replace("${", "$${")
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def tags_of(tags: Any) -> list[str]:
    """Tags without letta-apply's marks (an Agent File exported from a stack)."""
    kept = {t for t in tags or () if not t.startswith(RESERVED_TAG_PREFIXES)}
    return sorted(kept)


def metadata_of(metadata: Any) -> dict[str, Any]:
    return {k: v for k, v in (metadata or {}).items() if k != MARK_KEY}


def block_entry(b: Mapping[str, Any], *, label: bool) -> dict[str, Any]:
    """A block as a manifest declares it (Letta's defaults and letta-apply's marks left out)."""
    clean = {**b, "metadata": metadata_of(b.get("metadata")), "tags": tags_of(b.get("tags"))}
    return export_block(LiveBlock.from_api(clean), label=label)


def pip_entry(p: Mapping[str, Any]) -> dict[str, Any]:
    return {k: p[k] for k in ("name", "version") if p.get(k)}


def mcp_server_entry(s: Mapping[str, Any]) -> dict[str, Any] | None:
    kind = s.get("server_type")
    out: dict[str, Any] = {"server_name": s["server_name"], "mcp_server_type": kind}
    if kind in ("streamable_http", "sse") and s.get("server_url"):
        out["server_url"] = s["server_url"]
        return out
    stdio = s.get("stdio_config") or {}
    if kind == "stdio" and isinstance(stdio.get("command"), str):
        out["command"] = stdio["command"]
        if isinstance(stdio.get("args"), list):
            out["args"] = [str(a) for a in stdio["args"]]
        return out
    return None


def _file_defaults(context_window: Any) -> tuple[int, int]:
    """What Letta 0.16.8 gives an agent for max_files_open and per_file_view_window_char_limit
    by its model's context window (letta/utils.py), so that only a choice is converted."""
    if not isinstance(context_window, int) or context_window <= 0:
        return 5, 15_000
    for bound, defaults in ((8_000, (3, 5_000)), (32_000, (5, 15_000)), (128_000, (10, 25_000)),
                            (200_000, (10, 40_000))):  # fmt: skip
        if context_window <= bound:
            return defaults
    return 15, 40_000


def settings_of(a: Mapping[str, Any]) -> dict[str, Any]:
    """The settings the agent was given, where they are not Letta's defaults."""
    out: dict[str, Any] = {}
    if a.get("timezone") and a["timezone"] != DEFAULT_TIMEZONE:
        out["timezone"] = a["timezone"]
    if a.get("message_buffer_autoclear"):
        out["message_buffer_autoclear"] = True
    files, window = _file_defaults((a.get("llm_config") or {}).get("context_window"))
    if a.get("max_files_open") not in (None, files):
        out["max_files_open"] = a["max_files_open"]
    if a.get("per_file_view_window_char_limit") not in (None, window):
        out["per_file_view_window_char_limit"] = a["per_file_view_window_char_limit"]
    fmt = {k: v for k, v in (a.get("response_format") or {}).items() if v is not None}
    if fmt.get("type") in ("json_object", "json_schema"):
        out["response_format"] = json.loads(json.dumps(fmt))
    return out
