"""An agent of the stack's listing as a plan keeps it: only the fields planning reads.

Letta lists each agent whole (about 22 KB: its tools with their source code, its configurations,
its memory twice over); at 10,000 agents that is more than a gigabyte held until the plan is
made. Each agent is cut down to what `LiveAgent.from_api` and the blocks' state read as its page
arrives, so a listing holds one page and the cut-down agents; the repeated strings (a system
prompt, a shared block's value, the stack's tag) are kept once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from ...core.jsonish import JsonObject
from .settings import SETTINGS

_TOOL = ("id", "name", "tool_type")
_BLOCK = ("id", "label", "value", "description", "limit", "read_only", "metadata", "tags")
_GROUP = ("id", "manager_type", "agent_ids")
_NESTED: dict[str, tuple[str, ...]] = {
    "llm_config": ("handle",),
    "embedding_config": ("handle",),
}
# Settings are read where the server reports them (kinds.agent.settings): at the top, or inside
# an object of which only those keys are kept.
for _path in SETTINGS.values():
    if len(_path) == 2:
        _NESTED[_path[0]] = (*_NESTED.get(_path[0], ()), _path[1])
_TOP = (
    "id", "name", "description", "system", "model", "embedding", "agent_type", "tags",
    "metadata", "tool_rules", "identity_ids",
    *(p[0] for p in SETTINGS.values() if len(p) == 1),
)  # fmt: skip
_LISTS = {"tools": _TOOL, "blocks": _BLOCK, "secrets": ("key", "id", "value")}
_GROUPS = ("managed_group", "multi_agent_group")
# Top-level objects most agents hold alike (a configuration, rules): kept once.
_OBJECTS = ("model_settings", "compaction_settings", "response_format", "tool_rules")


class Shared:
    """What the agents of one listing share: equal strings, and equal cut-down parts (the base
    tools every agent lists, a shared block as each of its agents shows it, configurations)."""

    def __init__(self) -> None:
        self.strings: dict[str, str] = {}
        self.parts: dict[tuple[str, str], object] = {}

    def part(self, kind: str, value: object) -> object:
        """`value` (cut down), or the equal one of `kind` seen before (equal as the JSON they
        came as, key order included)."""
        return self.parts.setdefault((kind, json.dumps(value)), value)

    def block(self, value: JsonObject) -> object:
        """A block as an agent shows it: the first agent's view of it stands for every other
        (the blocks' state reads the first one; an agent reads only its id)."""
        return self.parts.setdefault(("block", str(value.get("id"))), value)


def slim_agent(raw: Mapping[str, object], shared: Shared) -> JsonObject:
    """`raw` (an agent as the listing gives it) with only what planning reads, its repeated
    parts shared with the other agents of the listing through `shared`."""
    memo = shared.strings
    out: JsonObject = {k: _shared(raw[k], memo) for k in _TOP if k in raw}
    for key in _OBJECTS:
        if isinstance(out.get(key), (dict, list)):
            out[key] = shared.part(key, out[key])
    for key, kept in _NESTED.items():
        value = raw.get(key)
        if isinstance(value, Mapping):
            out[key] = shared.part(key, {k: _shared(value[k], memo) for k in kept if k in value})
    for key, kept in _LISTS.items():
        value = raw.get(key)
        if isinstance(value, list):
            out[key] = [_item(key, v, kept, shared) for v in value]
    for key in _GROUPS:
        value = raw.get(key)
        if isinstance(value, Mapping):
            out[key] = {k: _shared(value[k], memo) for k in _GROUP if k in value}
    ids = raw.get("message_ids")
    if isinstance(ids, list):
        # Only how many there are is read (messages in context): their ids are not kept.
        out["message_ids"] = [None] * len(ids)
    return out


def _item(key: str, value: object, kept: tuple[str, ...], shared: Shared) -> object:
    """An item of one of the agent's lists, cut down and shared."""
    if not isinstance(value, Mapping):
        return value
    item = {k: _shared(value[k], shared.strings) for k in kept if k in value}
    if key == "blocks":
        return shared.block(item)
    if key == "tools":
        return shared.part(key, item)
    return item  # secrets: never shared, nor made into a key


def _shared(value: object, memo: dict[str, str]) -> object:
    """`value` with each string replaced by the equal one `memo` already holds."""
    if isinstance(value, str):
        return memo.setdefault(value, value)
    if isinstance(value, dict):
        return {memo.setdefault(k, k): _shared(v, memo) for k, v in value.items()}
    if isinstance(value, list):
        return [_shared(v, memo) for v in value]
    return value
