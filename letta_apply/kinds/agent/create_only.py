"""What an agent is made with and can never change (kinds.agent): `agent_type`,
`include_base_tools`, `include_base_tool_rules` and `initial_message_sequence`.

Letta's `UpdateAgent` has none of them. `agent_type` is reported on the agent: a declared type
the agent does not have replaces it, create-first. The two `include_*` flags only decide what
the create adds (base tools; loop rules for base tools), and the agent does not report them:
their declared value is recorded in the marks, and a change of it replaces the agent.
`initial_message_sequence` is the agent's first messages: sent with its create (and with a
replacement's), never compared afterwards (the agent's messages are its own from then on).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...core.changes import MANIFEST, NEW, FieldDiff
from ...core.jsonish import JsonObject, items, obj
from ...errors import define

if TYPE_CHECKING:
    from ...errors import Diagnostic
    from ...manifest.files import Document
    from .model import DesiredAgent, LiveAgent

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA411", "ManifestError", "voice_convo_agent without sleeptime",
       "A `voice_convo_agent` needs `enable_sleeptime: true`; Letta refuses it otherwise.",
       "Set `enable_sleeptime: true`, or another agent_type.")
define("LA412", "ManifestError", "split_thread_agent without system",
       "A `split_thread_agent` has no default system prompt in Letta.",
       "Set `system` (or `system_file`).")
define("LA413", "ManifestError", "workflow_agent keeping its messages",
       "A `workflow_agent` always clears its message buffer: a declared "
       "`message_buffer_autoclear: false` would never hold.",
       "Leave `message_buffer_autoclear` out.")
# fmt: on

CREATE_ONLY = (
    "agent_type", "include_base_tools", "include_base_tool_rules", "initial_message_sequence",
)  # fmt: skip
RECORDED = ("include_base_tools", "include_base_tool_rules")
"""Flags the agent does not report: recorded in its marks (plain booleans) to see a change."""
DEFAULT_AGENT_TYPE = "letta_v1_agent"
"""What Letta 0.16.8 and Letta Cloud make when no type is asked for."""


def declared(spec: Mapping[str, object]) -> JsonObject:
    """The create-only fields an agent's manifest entry sets."""
    return {k: spec[k] for k in CREATE_ONLY if k in spec}


def recorded(da: DesiredAgent) -> JsonObject:
    """What the marks record of them."""
    return {k: da.created[k] for k in RECORDED if k in da.created}


def create_diffs(da: DesiredAgent) -> list[FieldDiff]:
    """How a create shows them: one line per initial message (its text may span lines)."""
    out = [
        FieldDiff(k, None, v, NEW) for k, v in da.created.items() if k != "initial_message_sequence"
    ]
    messages = da.created.get("initial_message_sequence")
    if messages == []:
        out.append(FieldDiff("initial_message_sequence", None, [], NEW))
    for i, m in enumerate(items(messages)):
        out.append(FieldDiff(f"initial_message_sequence[{i}]", None, dict(obj(m)), NEW))
    return out


def replacement(
    da: DesiredAgent, la: LiveAgent, applied: Mapping[str, object] | None
) -> FieldDiff | None:
    """The first create-only field whose declared value the live agent does not have (None:
    the agent stands). A field the manifest leaves out is the server's, never a reason."""
    kind = da.created.get("agent_type")
    if kind is not None and la.agent_type and la.agent_type != kind:
        return FieldDiff("agent_type", la.agent_type, kind, MANIFEST)
    for name in RECORDED:
        was, now = (applied or {}).get(name), da.created.get(name)
        if now is not None and was is not None and was != now:
            return FieldDiff(name, was, now, MANIFEST)
    return None


def check_create_only(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """What Letta 0.16.8 refuses or overrides for an agent type, found before any request:
    `voice_convo_agent` needs `enable_sleeptime: true` (422), `split_thread_agent` has no
    default system prompt (400 without `system`), and `workflow_agent` always clears its
    message buffer (a declared `message_buffer_autoclear: false` would never hold)."""
    from ...manifest.files import where

    errors: list[Diagnostic] = []
    agents = data.get("agents")
    for key, spec in agents.items() if isinstance(agents, Mapping) else ():
        kind = spec.get("agent_type") if isinstance(spec, Mapping) else None
        at = ("agents", key, "agent_type")
        problem = code = None
        if kind == "voice_convo_agent" and spec.get("enable_sleeptime") is not True:
            code = "LA411"
            problem = (
                "a voice_convo_agent needs `enable_sleeptime: true` (Letta refuses it otherwise)"
            )
        elif kind == "split_thread_agent" and not spec.get("system"):
            code = "LA412"
            problem = "a split_thread_agent needs a `system` prompt (Letta has no default for it)"
        elif kind == "workflow_agent" and spec.get("message_buffer_autoclear") is False:
            at = ("agents", key, "message_buffer_autoclear")
            code = "LA413"
            problem = (
                "a workflow_agent always clears its message buffer (Letta sets "
                "message_buffer_autoclear: true at its creation); leave it out"
            )
        if problem and code:
            errors.append(doc.diag(at, f"{where(at)}: {problem}", code=code))
    return errors
