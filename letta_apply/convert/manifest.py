"""`letta-apply convert AGENT.af`: a manifest from an Agent File, so that an agent downloaded or
handed over as a file becomes a versioned, reviewable stack that `apply` creates.

What a manifest declares is converted: agents (name, description, system prompt, model and
embedding handles, type, tags, metadata, tool rules, settings), blocks one agent holds alone as
its `memory_blocks`, blocks several agents hold as shared `blocks:`, custom tools as `tools:`
with their Python sources written beside the manifest, the server's own tools an agent asks for
(`web_search`...) by name, MCP servers without their credentials, groups, and, when asked, an
agent's messages as its `initial_message_sequence`. What the file holds that a manifest does not
manage (message history, folders, skills, identities...) is reported, one note a line. Agent
secrets never reach the manifest: each becomes a sensitive variable without a value.

Pure: the Agent File in, the manifest, the tool sources and the notes out (memory.convert_files
writes them)."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from ..errors import escape_controls
from ..kinds.agent.create_only import DEFAULT_AGENT_TYPE
from ..kinds.group.kind import ALLOWED, SETTINGS, GroupKind, LiveGroup
from ..kinds.mcp_server.model import MCP_TOOL
from ..kinds.tool.kind import is_base_tool_type
from ..kinds.tool.rules import RULE_FIELDS, rule_by_name, rule_compared
from ..kinds.tool.source import MAX_TOOL_NAME, function_name
from ..manifest.published import manifest_schema_id
from ..memory.af_format import AgentFile
from ..read.export import ON_REQUEST, ManifestDumper, manifest_key
from .fields import (
    Ref,
    block_entry,
    literal,
    mcp_server_entry,
    metadata_of,
    pip_entry,
    settings_of,
    tags_of,
)
from .messages import initial_messages

BASE_TYPES = ("letta_core", "letta_memory_core", "letta_sleeptime_core")
"""Tool types of the base tools Letta adds to an agent unless `include_base_tools: false`."""
RETURN_CHAR_LIMIT = 50000  # Letta 0.16.8's default return_char_limit of a tool
SLEEPTIME = {"sleeptime": "sleeptime_agent", "voice_sleeptime": "voice_sleeptime_agent"}
"""The groups Letta makes for `enable_sleeptime`, and the type of the agents it puts in them."""
_HANDLE = re.compile(r"[^/\s]+/\S+")
_SECRET_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True)
class Converted:
    """A manifest made from an Agent File: the document, the tool sources it names (by path
    relative to the manifest), the notes on what was not converted, and the sensitive
    variables made for agent secrets (their values are the user's to give)."""

    document: dict[str, Any]
    sources: dict[str, str]
    notes: tuple[str, ...]
    secrets: tuple[str, ...]
    source_name: str

    @property
    def agents(self) -> int:
        return len(self.document.get("agents") or ())

    def text(self) -> str:
        """The manifest as YAML, headed by the schema line (for editors) and its origin."""
        origin = escape_controls(self.source_name).replace("\n", " ")
        header = (
            f"# yaml-language-server: $schema={manifest_schema_id()}\n"
            f"# Written by `letta-apply convert` from {origin}. Review it, then\n"
            "# `letta-apply apply -f` this file creates the stack's agents.\n"
        )
        body = yaml.dump(
            self.document, Dumper=ManifestDumper, sort_keys=False, allow_unicode=True, width=100
        )
        return header + body


def convert(
    af: AgentFile, stack: str, *, messages: bool = False, tools_dir: str = "tools"
) -> Converted:
    """The manifest of stack `stack` declaring what `af` holds. `messages`: keep the agents'
    user and assistant messages as their initial_message_sequence. Tool sources go under
    `tools_dir` (relative to the manifest)."""
    c = _Converter(af, messages, tools_dir)
    doc: dict[str, Any] = {"version": 1, "stack": stack}
    blocks = c.shared_blocks()
    tools = c.tools()
    mcp = c.mcp_servers()
    agents = c.agents()
    groups = c.groups()
    c.unconverted()
    for section, value in (
        ("variables", c.variables), ("blocks", blocks), ("tools", tools),
        ("mcp_servers", mcp), ("agents", agents), ("groups", groups),
    ):  # fmt: skip
        if value:
            doc[section] = value
    return Converted(literal(doc), dict(c.sources), tuple(c.notes), tuple(c.variables), af.name)


class _Converter:
    def __init__(self, af: AgentFile, messages: bool, tools_dir: str) -> None:
        self.af, self.messages, self.tools_dir = af, messages, tools_dir.rstrip("/") or "."
        self.notes: list[str] = []
        self.variables: dict[str, Any] = {}
        self.sources: dict[str, str] = {}
        self.blocks = af.by_id("blocks")
        self.sleeptime = _sleeptime_groups(af)
        made = {a for members in self.sleeptime.values() for a in members}
        self.held = {b for a in af.entities("agents") for b in a.get("block_ids") or ()}
        self.holders: dict[str, set[int]] = {}  # by the agents converted
        for i, agent in enumerate(af.entities("agents")):
            if agent["id"] in made:
                continue  # Letta makes it again, with the blocks it shares
            for bid in agent.get("block_ids") or ():
                self.holders.setdefault(bid, set()).add(i)
        self.block_keys: dict[str, str] = {}  # shared blocks, by file id
        self.tool_refs: dict[str, str] = {}  # what an agent's `tools:` names, by file id
        self.tool_names: dict[str, str] = {}  # declared tools' keys, by tool name (rules)
        self.mcp_tools: dict[str, tuple[str, str]] = {}  # file id -> (server key, tool name)
        self.agent_keys: dict[str, str] = {}

    def note(self, text: str) -> None:
        self.notes.append(text)

    # -- blocks, tools, MCP servers ----------------------------------------------------------

    def shared_blocks(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        taken: set[str] = set()
        for i, b in enumerate(self.af.entities("blocks")):
            held = len(self.holders.get(b["id"], ()))
            if b["id"] not in self.held:
                self.note(f"blocks[{i}] ({b['label']!r}): held by no agent; not converted")
            if held < 2:
                continue
            key = manifest_key(b["label"], taken)
            self.block_keys[b["id"]] = key
            out[key] = block_entry(b, label=key != b["label"])
        return out

    def tools(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        taken: set[str] = set()
        for i, t in enumerate(self.af.entities("tools")):
            kind = t.get("tool_type") or "custom"
            if kind in ON_REQUEST:
                self.tool_refs[t["id"]] = t["name"]
            elif is_base_tool_type(kind) or kind == MCP_TOOL:
                continue  # the server adds its own; MCP tools follow their server
            elif kind != "custom":
                self.tool_refs[t["id"]] = t["name"]
                self.note(
                    f"tools[{i}] ({t['name']!r}): a {kind} tool, named in its agents' tools: "
                    "it must be on the server apply runs on"
                )
            else:
                entry = self._custom_tool(i, t, taken)
                if entry is not None:
                    out[self.tool_refs[t["id"]]] = entry
        return out

    def _custom_tool(self, i: int, t: dict[str, Any], taken: set[str]) -> dict[str, Any] | None:
        where = f"tools[{i}] ({t['name']!r})"
        source = t.get("source_code")
        # Letta writes source_type "json" for Python sources made from their docstring too.
        if t.get("source_type") == "typescript" or not source:
            what = "has no source" if not source else "is TypeScript, not Python"
            self.note(f"{where}: {what}; not converted, and its agents go without it")
            return None
        try:
            func = function_name(ast.parse(source))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            func = None
        if func is None or not ast.get_docstring(func) or len(func.name) > MAX_TOOL_NAME:
            self.note(
                f"{where}: its source has no function with a docstring (letta-apply derives "
                "the tool's arguments from it); not converted, and its agents go without it"
            )
            return None
        if func.name != t["name"]:
            self.note(f"{where}: its source makes the tool {func.name!r}; converted so")
        key = manifest_key(func.name, taken)
        self.tool_refs[t["id"]] = self.tool_names[t["name"]] = key
        path = f"{self.tools_dir}/{key}.py"
        self.sources[path] = source if source.endswith("\n") else source + "\n"
        entry: dict[str, Any] = {"source_file": path}
        derived = (t.get("json_schema") or {}).get("description")
        if t.get("description") and t["description"] != derived:
            entry["description"] = t["description"]
        if tags_of(t.get("tags")):
            entry["tags"] = tags_of(t.get("tags"))
        limit = t.get("return_char_limit")
        if limit is not None and limit != RETURN_CHAR_LIMIT:
            entry["return_char_limit"] = limit
        pips = [pip_entry(p) for p in t.get("pip_requirements") or () if p.get("name")]
        if pips:
            entry["pip_requirements"] = pips
        if t.get("default_requires_approval"):
            entry["default_requires_approval"] = True
        return entry

    def mcp_servers(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        keys: dict[str, str] = {}
        taken: set[str] = set()
        for i, s in enumerate(self.af.entities("mcp_servers")):
            entry = mcp_server_entry(s)
            if entry is None:
                self.note(f"mcp_servers[{i}] ({s['server_name']!r}): its transport is not "
                          "given in full; not converted")  # fmt: skip
                continue
            key = keys[s["server_name"]] = manifest_key(s["server_name"], taken)
            if entry["server_name"] == key:
                del entry["server_name"]
            out[key] = entry
            self.note(
                f"mcp_servers[{i}] ({s['server_name']!r}): credentials (token, headers, env) "
                "are never in an Agent File: declare them from sensitive variables if it needs "
                "them"
            )
        for i, t in enumerate(self.af.entities("tools")):
            if t.get("tool_type") != MCP_TOOL:
                continue
            mcp = (t.get("metadata_") or {}).get("mcp")
            server = mcp.get("server_name") if isinstance(mcp, dict) else None
            if isinstance(server, str) and server in keys:
                self.mcp_tools[t["id"]] = (keys[server], t["name"])
            else:
                self.note(f"tools[{i}] ({t['name']!r}): an MCP tool of no MCP server in the "
                          "file; not converted")  # fmt: skip
        return out

    # -- agents and groups -------------------------------------------------------------------

    def agents(self) -> dict[str, Any]:
        taken: set[str] = set()
        made = {a: m for m, members in self.sleeptime.items() for a in members}
        for agent in self.af.entities("agents"):
            self.agent_keys[agent["id"]] = manifest_key(agent.get("name") or "agent", taken)
        out: dict[str, Any] = {}
        for i, agent in enumerate(self.af.entities("agents")):
            key = self.agent_keys[agent["id"]]
            if agent["id"] in made:
                self.note(
                    f"agents[{i}] ({agent.get('name')!r}): the sleep-time agent Letta made for "
                    f"agent.{self.agent_keys[made[agent['id']]]}; not converted (Letta makes it "
                    "again from `enable_sleeptime: true`)"
                )
                continue
            spec = self._agent(i, agent, key)
            if agent["id"] in self.sleeptime:
                spec["enable_sleeptime"] = True
            spec.update(self._memory(agent))
            spec.update(self._agent_tools(i, agent))
            spec.update(self._secrets(i, agent, key))
            spec.update(settings_of(agent))
            spec.update(self._messages(i, agent))
            self._agent_notes(i, agent)
            out[key] = spec
        return out

    def _agent(self, i: int, a: dict[str, Any], key: str) -> dict[str, Any]:
        """What the agent is: the fields a person writes first."""
        spec: dict[str, Any] = {}
        if a.get("name") and a["name"] != key:
            spec["name"] = a["name"]
        for field in ("description", "system"):
            if a.get(field):
                spec[field] = a[field]
        for field, config in (("model", "llm_config"), ("embedding", "embedding_config")):
            handle = a.get(field) or (a.get(config) or {}).get("handle")
            if isinstance(handle, str) and _HANDLE.fullmatch(handle):
                spec[field] = handle
            elif a.get(config) or handle:
                self.note(
                    f"agents[{i}].{config}: no handle (provider/name) to convert it to; declare "
                    f"`{field}:` before apply"
                )
        if a.get("agent_type") and a["agent_type"] != DEFAULT_AGENT_TYPE:
            spec["agent_type"] = a["agent_type"]
        if tags_of(a.get("tags")):
            spec["tags"] = tags_of(a.get("tags"))
        if metadata_of(a.get("metadata")):
            spec["metadata"] = metadata_of(a.get("metadata"))
        return spec

    def _memory(self, a: dict[str, Any]) -> dict[str, Any]:
        """The agent's own blocks and the shared blocks it holds."""
        out: dict[str, Any] = {}
        ids = list(dict.fromkeys(a.get("block_ids") or ()))
        own = [self.blocks[b] for b in ids if b not in self.block_keys]
        if own:
            out["memory_blocks"] = [block_entry(b, label=True) for b in sorted(own, key=_label)]
        shared = sorted({self.block_keys[b] for b in ids if b in self.block_keys})
        if shared:
            out["blocks"] = shared
        return out

    def _agent_tools(self, i: int, a: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        tools = self.af.by_id("tools")
        ids = list(dict.fromkeys(a.get("tool_ids") or ()))
        kinds = {tools[t].get("tool_type") or "custom" for t in ids}
        if not kinds & set(BASE_TYPES):
            out["include_base_tools"] = False  # made without them: a copy goes without too
        named = sorted({self.tool_refs[t] for t in ids if t in self.tool_refs})
        if named:
            out["tools"] = named
        by_server: dict[str, list[str]] = {}
        for t in ids:
            if t in self.mcp_tools:
                server, name = self.mcp_tools[t]
                by_server.setdefault(server, []).append(name)
        if by_server:
            out["mcp_tools"] = [
                {"server": s, "tools": sorted(set(n))} for s, n in sorted(by_server.items())
            ]
        base = {tools[t]["name"] for t in ids if is_base_tool_type(tools[t].get("tool_type") or "")}
        rules = [
            self._rule(r, base, f"agents[{i}].tool_rules[{j}]")
            for j, r in enumerate(a.get("tool_rules") or ())
        ]
        if any(rules):
            out["tool_rules"] = [r for r in rules if r]
        return out

    def _rule(self, rule: Mapping[str, Any], base: set[str], where: str) -> dict[str, Any] | None:
        """A tool rule in the manifest's shape, or None for the rules Letta adds itself (loop
        rules of its base tools, approval rules of tools that ask for it) and those of a kind
        the manifest does not take."""
        kind, tool = rule.get("type"), rule.get("tool_name")
        if not isinstance(kind, str) or kind not in RULE_FIELDS or not isinstance(tool, str):
            self.note(f"{where}: a rule of type {str(kind)!r}, not converted (not a kind "
                      "Letta 0.16.8 takes)")  # fmt: skip
            return None
        if kind == "requires_approval" or (kind in ("continue_loop", "exit_loop") and tool in base):
            return None
        kept = {k: v for k, v in rule_compared(rule).items() if k in ("type", "tool_name",
                *RULE_FIELDS[kind])}  # fmt: skip
        try:
            return rule_by_name(kept, lambda n: self.tool_names.get(n, n))
        except (TypeError, AttributeError):  # children that are not names
            self.note(f"{where}: a {kind} rule naming tools by other than names; not converted")
            return None

    def _secrets(self, i: int, a: dict[str, Any], key: str) -> dict[str, Any]:
        """Agent secrets as sensitive variables without values: their values, blank in Letta's
        export, never come from a file."""
        names = {**(a.get("tool_exec_environment_variables") or {}), **(a.get("secrets") or {})}
        made: dict[str, Any] = {}
        listed: list[str] = []
        for name in sorted(names):
            if not _SECRET_NAME.fullmatch(name) or len(name) > 200:
                self.note(f"agents[{i}].secrets: {name!r} is not an environment variable name; "
                          "not converted")  # fmt: skip
                continue
            var = re.sub(r"[^A-Za-z0-9_]", "_", f"{key}_{name}")
            while var in self.variables:
                var += "_"
            self.variables[var] = {
                "sensitive": True,
                "description": f"{name} for the tools of agent.{key} (from the Agent File)",
            }
            made[name] = Ref(f"${{var.{var}}}")
            listed.append(f"{name} (var.{var})")
        if made:
            self.note(
                f"agents[{i}].secrets: {', '.join(listed)}: made sensitive variables without "
                "values, never written from the file; give each with LETTA_APPLY_VAR_<name> or "
                "--var before apply"
            )
            return {"secrets": made}
        return {}

    def _messages(self, i: int, a: dict[str, Any]) -> dict[str, Any]:
        held = a.get("messages") or []
        if not held:
            return {}
        if not self.messages:
            self.note(
                f"agents[{i}].messages: {len(held)} message(s) not converted (history is not "
                "configuration; --messages makes the user and assistant ones the agent's "
                "initial_message_sequence)"
            )
            return {}
        kept = initial_messages(held)
        left = len(held) - len(kept)
        if left:
            self.note(
                f"agents[{i}].messages: {len(kept)} of {len(held)} kept as "
                f"initial_message_sequence; {left} not (the compiled system prompt, tool calls "
                "and returns, heartbeats and alerts)"
            )
        return {"initial_message_sequence": kept} if kept else {}

    def _agent_notes(self, i: int, a: dict[str, Any]) -> None:
        """What an agent carries that a manifest does not manage."""
        where = f"agents[{i}]"
        if a.get("identity_ids"):
            self.note(f"{where}.identity_ids: {len(a['identity_ids'])} identities not "
                      "converted (an Agent File does not describe them)")  # fmt: skip
        folders = set(a.get("source_ids") or ()) | set(a.get("folder_ids") or ())
        if folders:
            self.note(f"{where}: {len(folders)} folder(s) attached, not converted (see sources)")
        for field in ("model_settings", "compaction_settings"):
            if a.get(field):
                self.note(f"{where}.{field}: not converted (declare `{field}:` to manage it)")

    def groups(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        taken: set[str] = set()
        kind = GroupKind()
        for i, g in enumerate(self.af.entities("groups")):
            mc = g.get("manager_config") or {}
            if (
                mc.get("manager_agent_id") in self.sleeptime
                and g["agent_ids"] == self.sleeptime[mc["manager_agent_id"]]
            ):
                self.note(f"groups[{i}]: Letta's sleep-time group; not converted (Letta makes it "
                          "again from `enable_sleeptime: true`)")  # fmt: skip
                continue
            manager_type = mc.get("manager_type") or "round_robin"
            if not isinstance(manager_type, str) or manager_type not in ALLOWED:
                self.note(f"groups[{i}]: manager type {str(manager_type)!r} not converted")
                continue
            flat = {
                "id": g["id"], "manager_type": manager_type, "agent_ids": g["agent_ids"],
                "manager_agent_id": mc.get("manager_agent_id"), "description": g.get("description"),
                **{k: mc[k] for k in SETTINGS if mc.get(k) is not None},
            }  # fmt: skip
            entry = kind.export(LiveGroup.from_api(flat))
            entry["agents"] = [self.agent_keys[a] for a in entry["agents"]]
            if "manager_agent" in entry:
                entry["manager_agent"] = self.agent_keys[entry["manager_agent"]]
            first = entry.get("manager_agent") or (entry["agents"] or ["group"])[0]
            out[manifest_key(f"{first}_group", taken)] = entry
            if g.get("shared_block_ids"):
                self.note(f"groups[{i}].shared_block_ids: not converted (Letta's export names "
                          "them by the ids of the server it came from)")  # fmt: skip
        return out

    def unconverted(self) -> None:
        files: dict[str, int] = {}
        for f in self.af.entities("files"):
            files[f["source_id"]] = files.get(f["source_id"], 0) + 1
        for i, s in enumerate(self.af.entities("sources")):
            self.note(
                f"sources[{i}] ({s.get('name')!r}): a folder of {files.get(s['id'], 0)} "
                "file(s), not converted (declare it under `folders:` with its files)"
            )
        skills = self.af.data.get("skills") or []
        if skills:
            self.note(f"skills: {len(skills)} skill(s) not converted (a manifest has none)")


def _sleeptime_groups(af: AgentFile) -> dict[str, list[str]]:
    """The groups Letta makes itself for an agent with `enable_sleeptime` (a sleep-time group
    of its own sleep-time agents): their members by manager."""
    agents = af.by_id("agents")
    out: dict[str, list[str]] = {}
    for g in af.entities("groups"):
        mc = g.get("manager_config") or {}
        kind = mc.get("manager_type")
        manager = mc.get("manager_agent_id")
        members = g["agent_ids"]
        own = SLEEPTIME.get(kind) if isinstance(kind, str) else None
        if (
            own
            and isinstance(manager, str)
            and manager not in out
            and members
            and all(agents[a].get("agent_type") == own and a != manager for a in members)
        ):
            out[manager] = list(members)
    return out


def _label(block: Mapping[str, Any]) -> str:
    return str(block["label"])
