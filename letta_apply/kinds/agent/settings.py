"""An agent's settings (kinds.agent): the knobs teams tune, under Letta's request names, and where
Letta 0.16.8 reports each one back.

Letta takes some settings at the top of `CreateAgent`/`UpdateAgent` but reports them inside
`llm_config` (`context_window_limit` comes back as `llm_config.context_window`); it fills defaults
in the objects it keeps (`model_settings`, `compaction_settings`, `response_format`). Comparing
the request with the answer as-is would show a change on every plan, so each setting is read from
where the server reports it, and an object is compared on the keys the manifest declares only.
"""

from __future__ import annotations

import difflib
import zoneinfo
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING

from ...core.jsonish import JsonObject
from ...errors import define

if TYPE_CHECKING:
    from ...errors import Diagnostic
    from ...manifest.files import Document

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA418", "ManifestError", "unknown time zone",
       "An agent's `timezone` is not an IANA time zone name; Letta would fail the create.",
       "Write a name such as `Europe/Paris` or `UTC` (the message suggests one).")
# fmt: on

SETTINGS: dict[str, tuple[str, ...]] = {
    "context_window_limit": ("llm_config", "context_window"),
    "max_tokens": ("llm_config", "max_tokens"),
    "parallel_tool_calls": ("llm_config", "parallel_tool_calls"),
    "model_settings": ("model_settings",),
    "compaction_settings": ("compaction_settings",),
    "response_format": ("response_format",),
    "enable_sleeptime": ("enable_sleeptime",),
    "message_buffer_autoclear": ("message_buffer_autoclear",),
    "timezone": ("timezone",),
    "max_files_open": ("max_files_open",),
    "per_file_view_window_char_limit": ("per_file_view_window_char_limit",),
}
"""Setting (its name in CreateAgent and UpdateAgent) -> where AgentState reports it."""

OBJECTS = ("model_settings", "compaction_settings", "response_format")
"""Settings the server keeps as objects it completes with defaults: compared on declared keys."""


def live_settings(raw: Mapping[str, object]) -> JsonObject:
    """The settings an agent, as the server returns it, reports (those it reports at all)."""
    out: JsonObject = {}
    for name, path in SETTINGS.items():
        value: object = raw
        for step in path:
            value = value.get(step) if isinstance(value, Mapping) else None
        if value is not None:
            out[name] = value
    return out


def compared(declared: object, live: object) -> object:
    """The live value as far as the manifest declares it: for a mapping, only the declared keys
    (nested mappings likewise), so what the server fills in is never a difference."""
    if isinstance(declared, Mapping) and isinstance(live, Mapping):
        return {k: compared(v, live.get(k)) for k, v in declared.items()}
    if (
        isinstance(declared, float)
        and isinstance(live, (int, float))
        and not isinstance(live, bool)
    ):
        return float(live)
    return live


@cache
def _zones() -> dict[str, str]:
    """IANA zone names as this machine knows them (the system's database, or the tzdata
    package), by lowercase name. Empty where neither is installed: then nothing is checked."""
    try:
        names = zoneinfo.available_timezones()
    except Exception:  # an unreadable database: checked by the server alone, as before
        names = set()
    return {n.lower(): n for n in names}


def check_timezones(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """A timezone Letta cannot read fails the agent's create with an HTTP 500 (it stores the
    name, then fails to use it): an IANA zone name is checked here instead."""
    from ...manifest.files import clip, where

    agents = data.get("agents")
    errors: list[Diagnostic] = []
    for key, spec in (agents if isinstance(agents, dict) else {}).items():
        tz = spec.get("timezone") if isinstance(spec, dict) else None
        if not isinstance(tz, str) or not tz:
            continue  # the schema reports what is not a string
        zones = _zones()  # read once, and only when an agent names a zone
        if not zones or zones.get(tz.lower()) == tz:
            continue
        at = ("agents", key, "timezone")
        same = zones.get(tz.lower())
        if same:
            hint = f"; write it {same!r}"
        else:
            close = difflib.get_close_matches(tz, list(zones.values()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else " (e.g. 'Europe/Paris', 'UTC')"
        message = f"{where(at)}: {clip(tz)} is not an IANA time zone name{hint}"
        errors.append(doc.diag(at, message, code="LA418"))
    return errors
