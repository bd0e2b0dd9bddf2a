"""Agents in the manifest convert writes from an Agent File (kinds.writing): name, description,
system prompt, model and embedding handles, type, tags, metadata, their own blocks and the shared
ones they hold, tools and MCP tools by key, tool rules, settings, and, when asked, their messages
as their `initial_message_sequence`. Agent secrets never reach the manifest: each becomes a
sensitive variable without a value. What an agent carries that a manifest does not manage is
noted, a line each."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from ...core.jsonish import JsonObject, items, obj, objs, strings, text
from ..block.kind import BlockKind
from ..block.writing import block_entry
from ..mcp_server.kind import McpServerKind
from ..tool.kind import ToolKind, is_base_tool_type
from ..tool.rules import RULE_FIELDS, rule_by_name, rule_compared
from ..tool.writing import ToolNames
from ..writing import Conversion, Ref, metadata_of, tags_of
from .create_only import DEFAULT_AGENT_TYPE
from .first_messages import initial_messages
from .kind import AgentKind
from .sleeptime_file import made_by_letta, sleeptime_groups

BASE_TYPES = ("letta_core", "letta_memory_core", "letta_sleeptime_core")
"""Tool types of the base tools Letta adds to an agent unless `include_base_tools: false`."""
DEFAULT_TIMEZONE = "UTC"
_HANDLE = re.compile(r"[^/\s]+/\S+")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def convert_agents(conv: Conversion) -> JsonObject:
    """Every agent of the file but the sleep-time agents Letta makes itself, by a key made from
    its name (every agent gets one: the notes name them)."""
    for agent in conv.entities("agents"):
        conv.key(AgentKind.name, str(agent["id"]), text(agent.get("name")) or "agent")
    keys = conv.keys[AgentKind.name]
    made = made_by_letta(conv)
    sleeptime = sleeptime_groups(conv)
    out: JsonObject = {}
    for i, agent in enumerate(conv.entities("agents")):
        aid = str(agent["id"])
        key = keys[aid]
        if aid in made:
            conv.note(
                f"agents[{i}] ({agent.get('name')!r}): the sleep-time agent Letta made for "
                f"agent.{keys[made[aid]]}; not converted (Letta makes it "
                "again from `enable_sleeptime: true`)"
            )
            continue
        spec = _agent(conv, i, agent, key)
        if aid in sleeptime:
            spec["enable_sleeptime"] = True
        spec.update(_memory(conv, agent))
        spec.update(_agent_tools(conv, i, agent))
        spec.update(_secrets(conv, i, agent, key))
        spec.update(settings_of(agent))
        spec.update(_messages(conv, i, agent))
        _agent_notes(conv, i, agent)
        out[key] = spec
    return out


def _agent(conv: Conversion, i: int, a: Mapping[str, object], key: str) -> JsonObject:
    """What the agent is: the fields a person writes first."""
    spec: JsonObject = {}
    name = a.get("name")
    if name and name != key:
        spec["name"] = name
    for field in ("description", "system"):
        if a.get(field):
            spec[field] = a[field]
    for field, config in (("model", "llm_config"), ("embedding", "embedding_config")):
        handle = a.get(field) or obj(a.get(config)).get("handle")
        if isinstance(handle, str) and _HANDLE.fullmatch(handle):
            spec[field] = handle
        elif a.get(config) or handle:
            conv.note(
                f"agents[{i}].{config}: no handle (provider/name) to convert it to; declare "
                f"`{field}:` before apply"
            )
    agent_type = a.get("agent_type")
    if agent_type and agent_type != DEFAULT_AGENT_TYPE:
        spec["agent_type"] = agent_type
    if tags_of(a.get("tags")):
        spec["tags"] = tags_of(a.get("tags"))
    if metadata_of(a.get("metadata")):
        spec["metadata"] = metadata_of(a.get("metadata"))
    return spec


def _memory(conv: Conversion, a: Mapping[str, object]) -> JsonObject:
    """The agent's own blocks and the shared blocks it holds."""
    blocks = conv.by_id("blocks")
    shared = conv.keys.get(BlockKind.name, {})
    out: JsonObject = {}
    ids = list(dict.fromkeys(strings(a.get("block_ids"))))
    own = [blocks[b] for b in ids if b not in shared]
    if own:
        out["memory_blocks"] = [block_entry(b, label=True) for b in sorted(own, key=_label)]
    named = sorted({shared[b] for b in ids if b in shared})
    if named:
        out["blocks"] = named
    return out


def _agent_tools(conv: Conversion, i: int, a: Mapping[str, object]) -> JsonObject:
    out: JsonObject = {}
    tools = conv.by_id("tools")
    names: ToolNames = conv.extra.get(ToolKind.name) or ToolNames()
    mcp_tools: Mapping[str, tuple[str, str]] = conv.extra.get(McpServerKind.name) or {}
    ids = list(dict.fromkeys(strings(a.get("tool_ids"))))
    kinds = {text(tools[t].get("tool_type")) or "custom" for t in ids}
    if not kinds & set(BASE_TYPES):
        out["include_base_tools"] = False  # made without them: a copy goes without too
    named = sorted({names.refs[t] for t in ids if t in names.refs})
    if named:
        out["tools"] = named
    by_server: dict[str, list[str]] = {}
    for t in ids:
        if t in mcp_tools:
            server, name = mcp_tools[t]
            by_server.setdefault(server, []).append(name)
    if by_server:
        out["mcp_tools"] = [
            {"server": s, "tools": sorted(set(n))} for s, n in sorted(by_server.items())
        ]
    base = {
        str(tools[t]["name"]) for t in ids if is_base_tool_type(text(tools[t].get("tool_type")))
    }
    rules = [
        _rule(conv, names, obj(r), base, f"agents[{i}].tool_rules[{j}]")
        for j, r in enumerate(items(a.get("tool_rules")))
    ]
    if any(rules):
        out["tool_rules"] = [r for r in rules if r]
    return out


def _rule(
    conv: Conversion, names: ToolNames, rule: Mapping[str, object], base: set[str], where: str
) -> JsonObject | None:
    """A tool rule in the manifest's shape, or None for the rules Letta adds itself (loop
    rules of its base tools, approval rules of tools that ask for it) and those of a kind
    the manifest does not take."""
    kind, tool = rule.get("type"), rule.get("tool_name")
    if not isinstance(kind, str) or kind not in RULE_FIELDS or not isinstance(tool, str):
        conv.note(f"{where}: a rule of type {str(kind)!r}, not converted (not a kind "
                  "Letta 0.16.8 takes)")  # fmt: skip
        return None
    if kind == "requires_approval" or (kind in ("continue_loop", "exit_loop") and tool in base):
        return None
    kept = {k: v for k, v in rule_compared(rule).items() if k in ("type", "tool_name",
            *RULE_FIELDS[kind])}  # fmt: skip
    try:
        return rule_by_name(kept, lambda n: names.keys.get(n, n))
    except (TypeError, AttributeError):  # children that are not names
        conv.note(f"{where}: a {kind} rule naming tools by other than names; not converted")
        return None


def _secrets(conv: Conversion, i: int, a: Mapping[str, object], key: str) -> JsonObject:
    """Agent secrets as sensitive variables without values: their values, blank in Letta's
    export, never come from a file."""
    names = {**obj(a.get("tool_exec_environment_variables")), **obj(a.get("secrets"))}
    made: JsonObject = {}
    listed: list[str] = []
    for name in sorted(names):
        if not _SECRET_NAME.fullmatch(name) or len(name) > 200:
            conv.note(f"agents[{i}].secrets: {name!r} is not an environment variable name; "
                      "not converted")  # fmt: skip
            continue
        var = re.sub(r"[^A-Za-z0-9_]", "_", f"{key}_{name}")
        while var in conv.variables:
            var += "_"
        conv.variables[var] = {
            "sensitive": True,
            "description": f"{name} for the tools of agent.{key} (from the Agent File)",
        }
        made[name] = Ref(f"${{var.{var}}}")
        listed.append(f"{name} (var.{var})")
    if made:
        conv.note(
            f"agents[{i}].secrets: {', '.join(listed)}: made sensitive variables without "
            "values, never written from the file; give each with LETTA_APPLY_VAR_<name> or "
            "--var before apply"
        )
        return {"secrets": made}
    return {}


def _messages(conv: Conversion, i: int, a: Mapping[str, object]) -> JsonObject:
    held = items(a.get("messages"))
    if not held:
        return {}
    if not conv.messages:
        conv.note(
            f"agents[{i}].messages: {len(held)} message(s) not converted (history is not "
            "configuration; --messages makes the user and assistant ones the agent's "
            "initial_message_sequence)"
        )
        return {}
    kept = initial_messages(objs(held))
    left = len(held) - len(kept)
    if left:
        conv.note(
            f"agents[{i}].messages: {len(kept)} of {len(held)} kept as "
            f"initial_message_sequence; {left} not (the compiled system prompt, tool calls "
            "and returns, heartbeats and alerts)"
        )
    return {"initial_message_sequence": kept} if kept else {}


def _agent_notes(conv: Conversion, i: int, a: Mapping[str, object]) -> None:
    """What an agent carries that a manifest does not manage."""
    where = f"agents[{i}]"
    identities = items(a.get("identity_ids"))
    if identities:
        conv.note(f"{where}.identity_ids: {len(identities)} identities not "
                  "converted (an Agent File does not describe them)")  # fmt: skip
    folders = set(strings(a.get("source_ids"))) | set(strings(a.get("folder_ids")))
    if folders:
        conv.note(f"{where}: {len(folders)} folder(s) attached, not converted (see sources)")
    for field in ("model_settings", "compaction_settings"):
        if a.get(field):
            conv.note(f"{where}.{field}: not converted (declare `{field}:` to manage it)")


def _file_defaults(context_window: object) -> tuple[int, int]:
    """What Letta 0.16.8 gives an agent for max_files_open and per_file_view_window_char_limit
    by its model's context window (letta/utils.py), so that only a choice is converted."""
    if not isinstance(context_window, int) or context_window <= 0:
        return 5, 15_000
    for bound, defaults in ((8_000, (3, 5_000)), (32_000, (5, 15_000)), (128_000, (10, 25_000)),
                            (200_000, (10, 40_000))):  # fmt: skip
        if context_window <= bound:
            return defaults
    return 15, 40_000


def settings_of(a: Mapping[str, object]) -> JsonObject:
    """The settings the agent was given, where they are not Letta's defaults."""
    out: JsonObject = {}
    if a.get("timezone") and a["timezone"] != DEFAULT_TIMEZONE:
        out["timezone"] = a["timezone"]
    if a.get("message_buffer_autoclear"):
        out["message_buffer_autoclear"] = True
    files, window = _file_defaults(obj(a.get("llm_config")).get("context_window"))
    if a.get("max_files_open") not in (None, files):
        out["max_files_open"] = a["max_files_open"]
    if a.get("per_file_view_window_char_limit") not in (None, window):
        out["per_file_view_window_char_limit"] = a["per_file_view_window_char_limit"]
    fmt = {k: v for k, v in obj(a.get("response_format")).items() if v is not None}
    if fmt.get("type") in ("json_object", "json_schema"):
        out["response_format"] = json.loads(json.dumps(fmt))
    return out


def _label(block: Mapping[str, object]) -> str:
    return str(block["label"])
