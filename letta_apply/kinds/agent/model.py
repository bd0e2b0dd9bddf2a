"""The agent kind's model: an agent as a manifest declares it, as the server lists it, the
agents' live state and what their match leaves for planning, and the typed keys other kinds and
this kind's modules read them by."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from ...core.jsonish import obj, objs, opt_text, strings, text
from ...core.model import Desired
from ..block.kind import DesiredBlock, LiveBlock
from ..context import Context, DeclaredOf, ExtraOf, PoolOf, StateOf
from ..resource import mark_of
from ..tool.kind import LiveTool
from ..tool.rules import rule_tool_names
from . import sleeptime as agent_sleeptime
from .secrets import LiveSecret, live_secrets
from .settings import SETTINGS, live_settings

AGENT_INCLUDE = (
    "agent.blocks", "agent.identities", "agent.managed_group", "agent.tags", "agent.tools",
)  # fmt: skip
CONFIG = (
    "description", "system", "model", "embedding", "tags", "metadata", "tools", "tool_rules",
    "identities", *SETTINGS,
)  # fmt: skip
FIELDS = ("description", "system", "model", "embedding")
# What plan and import read: secrets come back in plain, compared in memory and never kept
# (kinds.agent.secrets). Export reads without them: it never writes a secret's value.
WITH_SECRETS = (*AGENT_INCLUDE, "agent.secrets")


@dataclass(frozen=True)
class DesiredAgent:
    """An agent as the manifest declares it. `config` holds only the fields the manifest sets
    (description, system, model, embedding, tags, metadata, tools, tool_rules, identities)."""

    address: str
    name: str
    config: Mapping[str, object] = field(default_factory=dict)
    created: Mapping[str, object] = field(default_factory=dict)  # create-only fields it sets
    memory_blocks: tuple[DesiredBlock, ...] = ()
    blocks: tuple[str, ...] = ()  # addresses of shared blocks, in manifest order
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared


@dataclass(frozen=True)
class LiveAgent:
    id: str
    name: str
    description: str | None = None
    system: str | None = None
    model: str | None = None
    embedding: str | None = None
    agent_type: str | None = None
    tags: tuple[str, ...] = ()
    metadata: Mapping[str, object] = field(default_factory=dict)
    tools: tuple[LiveTool, ...] = ()
    block_ids: tuple[str, ...] = ()
    tool_rules: tuple[Mapping[str, object], ...] = ()
    identity_ids: tuple[str, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)  # as reported (agent_settings)
    secrets: Mapping[str, LiveSecret] = field(default_factory=dict, repr=False)
    # Messages in its context window, as listed (what a plan deleting it says it holds).
    in_context: int | None = None
    # The sleep-time group Letta made for it (`enable_sleeptime`), and the agents in it.
    sleeptime_group: str = ""
    sleeptime: tuple[str, ...] = ()

    @cached_property  # read a score of times per resource by a plan of thousands
    def mark(self) -> Mapping[str, object]:
        return mark_of(self.metadata)

    @property
    def tool_ids(self) -> list[str]:
        return sorted(t.id for t in self.tools)

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LiveAgent:
        """An agent as Letta's API returns it with `include=` AGENT_INCLUDE (what is not of the
        shape Letta gives reads as absent)."""
        group, sleepers = agent_sleeptime.group_of(raw)
        llm, emb = obj(raw.get("llm_config")), obj(raw.get("embedding_config"))
        ids = raw.get("message_ids")
        return cls(
            id=text(raw.get("id")),
            name=text(raw.get("name")),
            description=opt_text(raw.get("description")),
            system=opt_text(raw.get("system")),
            model=opt_text(raw.get("model")) or opt_text(llm.get("handle")),
            embedding=opt_text(raw.get("embedding")) or opt_text(emb.get("handle")),
            agent_type=opt_text(raw.get("agent_type")),
            tags=tuple(strings(raw.get("tags"))),
            metadata=obj(raw.get("metadata")),
            tools=tuple(
                LiveTool(
                    text(t.get("id")), text(t.get("name")), text(t.get("tool_type")) or "custom"
                )
                for t in objs(raw.get("tools"))
            ),
            block_ids=tuple(text(b.get("id")) for b in objs(raw.get("blocks"))),
            tool_rules=tuple(objs(raw.get("tool_rules"))),
            identity_ids=tuple(strings(raw.get("identity_ids"))),
            settings=live_settings(raw),
            secrets=live_secrets(raw.get("secrets")),
            in_context=len(ids) if isinstance(ids, list) else None,
            sleeptime_group=group,
            sleeptime=sleepers,
        )


class StackAgents(list[Mapping[str, object]]):
    """A stack's agents out of a listing of every agent on the server, with the names of the
    server's unmarked agents that listing saw (`unmarked`: name -> ids): the stack's plan
    looks up no name then (matching.names_taken)."""

    def __init__(
        self, agents: Iterable[Mapping[str, object]], unmarked: Mapping[str, tuple[str, ...]]
    ) -> None:
        super().__init__(agents)
        self.unmarked = unmarked


@dataclass(frozen=True)
class AgentState:
    """The agents carrying the stack's tag, and the unmarked agents already holding the names of
    declared agents that do not exist yet (`clashes`: name -> ids); the agents of the sleep-time
    groups of those a plan may delete, as read then (`sleeptime`: agent id -> them).
    `unmarked`: every unmarked agent's name on the server, when a listing of every agent gave
    them (StackAgents)."""

    agents: tuple[LiveAgent, ...] = ()
    clashes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    sleeptime: Mapping[str, tuple[agent_sleeptime.SleeptimeAgent, ...]] = field(
        default_factory=dict
    )
    unmarked: Mapping[str, tuple[str, ...]] | None = None

    def ours(self, stack: str) -> list[LiveAgent]:
        """The agents whose marks say they are `stack`'s."""
        return [a for a in self.agents if a.mark.get("stack") == stack]

    @cached_property
    def by_id(self) -> Mapping[str, LiveAgent]:
        """The agents by id: a plan deleting thousands looks each up once, not in a scan."""
        return {a.id: a for a in self.agents}


@dataclass(frozen=True)
class AgentMatch:
    """What matching leaves for planning: agents superseded by an interrupted replacement, and
    the agents' own blocks by address, and the own blocks left behind by agents now gone; the
    ids of the sleep-time agents Letta made for the stack's agents (kinds.agent.sleeptime)."""

    superseded: tuple[tuple[str, LiveAgent], ...] = ()
    owned: Mapping[str, LiveBlock] = field(default_factory=dict)
    leftovers: tuple[tuple[str, LiveBlock], ...] = ()  # own blocks whose agent is gone
    companions: frozenset[str] = frozenset()


def tools_of(agent: DesiredAgent) -> list[str]:
    """The tool names the agent declares in `tools` (empty when it declares none)."""
    return strings(agent.config.get("tools"))


def rules_of(agent: DesiredAgent) -> list[Mapping[str, object]]:
    """The tool rules the agent declares (empty when it declares none)."""
    return objs(agent.config.get("tool_rules"))


def identities_of(agent: DesiredAgent) -> list[str]:
    """The addresses of the identities the agent declares (empty when it declares none)."""
    return strings(agent.config.get("identities"))


def agent_tool_names(agent: DesiredAgent) -> set[str]:
    """Tool names an agent uses, in `tools` or in `tool_rules`."""
    names = set(tools_of(agent))
    for rule in rules_of(agent):
        names.update(rule_tool_names(rule))
    return names


# This kind's data as the generic core holds it, typed (kinds.context): for its own modules and
# the kinds that read agents without importing the agent kind's module.
AGENTS = StateOf[AgentState]("agent")
AGENTS_DECLARED = DeclaredOf[DesiredAgent]("agent")
AGENT_POOL = PoolOf[LiveAgent]("agent")
AGENT_MATCH = ExtraOf[AgentMatch]("agent")
# What a plan of a stack none of whose agents manages tools leaves out of its agent listing.
_TOOLS_INCLUDE = "agent.tools"
WITHOUT_TOOLS = tuple(i for i in WITH_SECRETS if i != _TOOLS_INCLUDE)
_MANAGING_TOOLS = ("tools", "tool_rules", "mcp_tools")


def listed_with(desired: Sequence[Desired]) -> tuple[str, ...]:
    """What a listing of the agents of the stacks `desired` declares includes. An agent's tools
    (each with its JSON schema and source code) are about two thirds of what Letta spends
    listing it; only `tools`, `tool_rules` and `mcp_tools` compare them, so stacks whose agents
    declare none of these list their agents without. A listing made before the manifests are
    known (none given) has them."""
    declared = (a for d in desired for a in AGENTS_DECLARED.of(d).values())
    if not desired or any(k in a.config for a in declared for k in _MANAGING_TOOLS):
        return WITH_SECRETS
    return WITHOUT_TOOLS


def match_of(ctx: Context) -> AgentMatch:
    """What the agents' match left for planning (it always leaves one)."""
    found = AGENT_MATCH.of(ctx)
    assert found is not None, "the agents' match left nothing"
    return found
