"""Plain data the pipeline passes along: the desired state (from the manifest), the live state
(from the server) and the marks that tie the two together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

MARK_KEY = "letta_apply"
"""Key in a resource's `metadata` under which letta-apply records its stack and address."""

DEFAULT_BLOCK_LIMIT = 100000
"""Letta's default block character limit (CreateBlock.limit)."""


SHOWN = "(sensitive)"
"""What outputs show in place of a sensitive value."""


class Sensitive(str):
    """A string that is, or was interpolated from, the value of a variable declared
    `sensitive: true`. The type travels with the value so that every output can mask it."""

    __slots__ = ()

    def __repr__(self) -> str:  # a stray repr() in a message shows nothing
        return SHOWN


def stack_tag(stack: str) -> str:
    """The tag every resource of `stack` carries; list calls filter on it."""
    return f"letta-apply:{stack}"


def marks(stack: str, address: str) -> dict[str, Any]:
    """The metadata entry that says which stack and manifest address own a resource."""
    return {MARK_KEY: {"stack": stack, "address": address}}


def is_base_tool_type(tool_type: str) -> bool:
    """Tools the server provides itself (memory, search...): letta-apply never owns them."""
    return tool_type.startswith("letta")


def owned_block_address(agent_address: str, label: str) -> str:
    """Address of a block an agent owns alone (declared under its `memory_blocks`)."""
    return f"{agent_address}.memory_blocks.{label}"


# ---------------------------------------------------------------------------------------------
# Desired state


@dataclass(frozen=True)
class DesiredBlock:
    """A memory block as the manifest declares it. `config` holds only the fields the manifest
    sets (description, limit, read_only, metadata, tags): fields left out are the server's."""

    address: str
    label: str
    value: str
    enforce_value: bool = False
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


@dataclass(frozen=True)
class DesiredAgent:
    """An agent as the manifest declares it. `config` holds only the fields the manifest sets
    (description, system, model, embedding, tags, metadata, tools)."""

    address: str
    name: str
    config: Mapping[str, Any] = field(default_factory=dict)
    include_base_tools: bool | None = None
    memory_blocks: tuple[DesiredBlock, ...] = ()
    blocks: tuple[str, ...] = ()  # addresses of shared blocks, in manifest order
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


@dataclass(frozen=True)
class DesiredTool:
    """A custom tool declared under `tools:`, from a Python source file. `name` is the function
    Letta makes the tool from (the last one in the file); `config` holds only the fields the
    manifest sets (description, tags, return_char_limit, pip_requirements,
    default_requires_approval)."""

    address: str
    name: str
    source_code: str
    source_file: str = ""
    config: Mapping[str, Any] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


@dataclass(frozen=True)
class Import:
    """Adopt an unmarked live resource at `address`, found by `id` or (agents) by `name`."""

    address: str
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class Desired:
    """Everything one manifest declares, by address."""

    stack: str
    blocks: Mapping[str, DesiredBlock]
    agents: Mapping[str, DesiredAgent]
    imports: tuple[Import, ...] = ()
    moved: Mapping[str, str] = field(default_factory=dict)  # from-address -> to-address
    tools: Mapping[str, DesiredTool] = field(default_factory=dict)  # custom tools, by address
    files: tuple[str, ...] = ()  # the manifest files it was read from
    digest: str = ""  # of every file read and every variable value, sensitive ones apart
    secrets: tuple[str, ...] = field(default=(), repr=False)  # sensitive values, to mask

    @property
    def tag(self) -> str:
        return stack_tag(self.stack)

    def agent_tools(self, agent: DesiredAgent) -> list[str]:
        """Addresses of the declared tools an agent uses (in `tools` or `tool_rules`)."""
        used = agent_tool_names(agent)
        return sorted(t.address for t in self.tools.values() if t.name in used)


def rule_tool_names(rule: Mapping[str, Any]) -> list[str]:
    """Every tool a tool rule names: its own, and children for the rules that have them."""
    names = [rule["tool_name"], *rule.get("children", ())]
    if rule.get("default_child"):
        names.append(rule["default_child"])
    names += list((rule.get("child_output_mapping") or {}).values())
    return names


def agent_tool_names(agent: DesiredAgent) -> set[str]:
    """Tool names an agent uses, in `tools` or in `tool_rules`."""
    names = set(agent.config.get("tools", ()))
    for rule in agent.config.get("tool_rules", ()):
        names.update(rule_tool_names(rule))
    return names


# ---------------------------------------------------------------------------------------------
# Live state


@dataclass(frozen=True)
class LiveBlock:
    id: str
    label: str
    value: str
    description: str | None = None
    limit: int | None = None
    read_only: bool = False
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @property
    def mark(self) -> Mapping[str, Any]:
        m = self.metadata.get(MARK_KEY) if isinstance(self.metadata, Mapping) else None
        return m if isinstance(m, Mapping) else {}

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> LiveBlock:
        return cls(
            id=d["id"],
            label=d.get("label") or "",
            value=d.get("value") or "",
            description=d.get("description"),
            limit=d.get("limit"),
            read_only=bool(d.get("read_only")),
            metadata=d.get("metadata") or {},
            tags=tuple(d.get("tags") or ()),
        )


@dataclass(frozen=True)
class LiveTool:
    id: str
    name: str
    tool_type: str = "custom"
    source_code: str | None = None
    description: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    return_char_limit: int | None = None
    pip_requirements: tuple[Mapping[str, Any], ...] | None = None
    default_requires_approval: bool | None = None

    @property
    def is_base(self) -> bool:
        """Tools the server provides itself (memory, search...); letta-apply leaves them alone."""
        return is_base_tool_type(self.tool_type)

    @property
    def mark(self) -> Mapping[str, Any]:
        m = self.metadata.get(MARK_KEY) if isinstance(self.metadata, Mapping) else None
        return m if isinstance(m, Mapping) else {}

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> LiveTool:
        pip = d.get("pip_requirements")
        return cls(
            id=d["id"],
            name=d.get("name") or "",
            tool_type=d.get("tool_type") or "custom",
            source_code=d.get("source_code"),
            description=d.get("description"),
            tags=tuple(d.get("tags") or ()),
            metadata=d.get("metadata_") or {},
            return_char_limit=d.get("return_char_limit"),
            pip_requirements=None if pip is None else tuple(pip),
            default_requires_approval=d.get("default_requires_approval"),
        )


@dataclass(frozen=True)
class LiveAgent:
    id: str
    name: str
    description: str | None = None
    system: str | None = None
    model: str | None = None
    embedding: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, Any] = field(default_factory=dict)
    tools: tuple[LiveTool, ...] = ()
    block_ids: tuple[str, ...] = ()
    tool_rules: tuple[Mapping[str, Any], ...] = ()

    @property
    def mark(self) -> Mapping[str, Any]:
        m = self.metadata.get(MARK_KEY) if isinstance(self.metadata, Mapping) else None
        return m if isinstance(m, Mapping) else {}

    @classmethod
    def from_api(cls, d: Mapping[str, Any]) -> LiveAgent:
        llm = d.get("llm_config") or {}
        emb = d.get("embedding_config") or {}
        return cls(
            id=d["id"],
            name=d.get("name") or "",
            description=d.get("description"),
            system=d.get("system"),
            model=d.get("model") or llm.get("handle"),
            embedding=d.get("embedding") or emb.get("handle"),
            tags=tuple(d.get("tags") or ()),
            metadata=d.get("metadata") or {},
            tools=tuple(
                LiveTool(t["id"], t.get("name") or "", t.get("tool_type") or "custom")
                for t in d.get("tools") or ()
            ),
            block_ids=tuple(b["id"] for b in d.get("blocks") or ()),
            tool_rules=tuple(d.get("tool_rules") or ()),
        )


@dataclass(frozen=True)
class Live:
    """What the server holds that concerns one stack.

    `blocks` has every block attached to one of the stack's agents (or to an agent being
    imported) plus every block carrying the stack's tag; `agents` has every agent carrying the
    stack's tag; `clashes` maps a declared agent name to unmarked agents that already use it;
    `tools` maps tool names the manifest uses to ids; `custom_tools` has every custom tool on
    the server (ownership of the stack's tools, and name clashes of declared ones);
    `tool_users` maps the id of a tool a plan may delete to the agents that use it.
    """

    blocks: Mapping[str, LiveBlock] = field(default_factory=dict)
    agents: tuple[LiveAgent, ...] = ()
    tagged_block_ids: frozenset[str] = frozenset()
    clashes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tools: Mapping[str, str] = field(default_factory=dict)
    # Resources named by `imports:` (address -> what was found, or why nothing was).
    imported: Mapping[str, LiveAgent | LiveBlock | LiveTool | str] = field(default_factory=dict)
    # Agents each block is attached to, read for the blocks a plan may delete: block id ->
    # (agent id, agent name, the agent's stack or None).
    users: Mapping[str, tuple[tuple[str, str, str | None], ...]] = field(default_factory=dict)
    custom_tools: tuple[LiveTool, ...] = ()
    tool_users: Mapping[str, tuple[tuple[str, str, str | None], ...]] = field(default_factory=dict)
