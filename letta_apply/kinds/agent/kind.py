"""Agents: `agents:`, addressed agent.<key>, with the blocks each owns alone (`memory_blocks`,
addressed agent.<key>.memory_blocks.<label>), the shared blocks it attaches (`blocks`), its
tools, tool rules and identities.

Marks: the stack's tag in `tags`, and stack, address and digests in `metadata` (with the
configuration of its own blocks: Letta drops the metadata of blocks created inline with an
agent until letta-apply writes it). Agent names may repeat in Letta: a declared name taken by an
agent the stack does not own is refused with the hint to import it. What an agent is made with
and cannot change (`agent_type`, ...: kinds.agent.create_only) replaces it, create-first. What
Letta makes beside an agent with `enable_sleeptime` goes with it (kinds.agent.sleeptime).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

from ...core.changes import (
    CREATE,
    DESTROY,
    DRIFT,
    REPLACE,
    UPDATE,
    Change,
    Plan,
    Why,
)
from ...core.jsonish import JsonObject, obj, objs, strings, text
from ...core.marks import digest, sensitive_fields
from ...core.model import Desired, Import, Live, stack_tag
from ...errors import Diagnostic
from ...manifest.files import Document
from ...manifest.sections import KeyDefault
from ...server.client import LettaClient, Query
from ...server.routes import AGENTS
from ..base import TAGGED_AT_ONCE, Field, Kind, Link, Shape, by_tags, shown_hidden, tagged
from ..block.kind import (
    BLOCKS,
    BlockKind,
    blanked,
    declare_block,
    owned_block_address,
    owned_of,
)
from ..context import Context, Matched, Run, unmark_tagged
from ..resource import applied_of, mark_of
from ..tool.kind import TOOLS_DECLARED
from ..tool.rules import check_rules, rule_by_name, rule_keys
from ..writing import Conversion, Export, Selected, Selection
from . import create_only as agent_create_only
from . import plan as agent_plan
from . import update as agent_update
from .checks import check_agents
from .matching import completed, find_agent, left, match_agents, names_taken
from .mcp_tools import check_mcp_tools, declared_mcp_tools, mcp_servers_of
from .memory import AgentMemory
from .model import (
    CONFIG,
    WITHOUT_TOOLS,
    AgentState,
    DesiredAgent,
    LiveAgent,
    StackAgents,
    agent_tool_names,
    identities_of,
    listed_with,
    match_of,
)
from .models import check_models, models_from, resolve_models
from .plan import HANDLES
from .requests import apply_change, settle_agents
from .secrets import NAMES, check_secrets, declared_secrets
from .settings import SETTINGS, check_timezones
from .slim import Shared, slim_agent


class AgentKind(Kind[DesiredAgent, LiveAgent, AgentState], AgentMemory):
    name: ClassVar[str] = "agent"
    section: ClassVar[str] = "agents"
    id_prefix: ClassVar[str] = "agent-"
    depends_on: ClassVar[tuple[str, ...]] = ("block", "tool", "identity", "mcp_server")
    nested: ClassVar[Mapping[str, str]] = {"memory_blocks": "block"}
    attaches: ClassVar[str] = "block"  # shared blocks
    instance_refs: ClassVar[Mapping[str, str]] = {"blocks": "blocks"}
    fields: ClassVar[tuple[Field, ...]] = (
        Field("name"),
        Field("description"),
        Field("system"),
        Field("model"),
        Field("embedding"),
        Field("tags"),
        Field("metadata"),
        Field("tools"),
        Field("tool_rules"),
        Field("identities"),
        Field("mcp_tools"),
        Field("blocks"),
        Field("memory_blocks"),
        Field("agent_type", "replace"),
        Field("include_base_tools", "replace"),
        Field("include_base_tool_rules", "replace"),
        Field("initial_message_sequence", "create"),
        *(Field(name) for name in SETTINGS),
        *(Field(name, "sensitive") for name in NAMES),
    )
    marks: ClassVar[str] = "the stack's tag in `tags`; stack, address and digests in `metadata`"
    import_by_name: ClassVar[bool] = True
    shape: ClassVar[Shape] = "rounded"
    tagged: ClassVar[bool] = True
    root: ClassVar[bool] = True  # export and convert write manifests around agents
    templated: ClassVar[bool] = True
    # Names must be unique: an instance of a template is named key-index.
    key_fields: ClassVar[Mapping[str, KeyDefault]] = {"name": "instance"}
    file_fields: ClassVar[Mapping[str, str]] = {
        "system_file": "system",
        "description_file": "description",
    }
    sensitive_in: ClassVar[tuple[str, ...]] = ("description", "system", "metadata", *NAMES)
    # Rules are shown and compared whole: a rule's args cannot hide a secret.
    shown_whole: ClassVar[Mapping[str, str]] = {
        "tool_rules": "tool rules are shown whole in every plan; keep secrets out of them"
    }

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        return [
            *check_agents(doc, data),
            *check_rules(doc, data),
            *check_secrets(doc, data),
            *check_mcp_tools(doc, data),
            *check_timezones(doc, data),
            *agent_create_only.check_create_only(doc, data),
            *check_models(doc, data),
        ]

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredAgent]:
        return {
            f"agent.{key}": _declared(f"agent.{key}", key, obj(spec))
            for key, spec in obj(data.get("agents")).items()
        }

    def references(self, declared: DesiredAgent, desired: Desired) -> list[str]:
        used = agent_tool_names(declared)
        tools = sorted(t.address for t in TOOLS_DECLARED.of(desired).values() if t.name in used)
        identities = identities_of(declared)
        return [
            *declared.blocks, *tools, *identities, *mcp_servers_of(declared.config),
            *models_from(declared, desired),
        ]  # fmt: skip

    def links(self, declared: DesiredAgent, desired: Desired) -> list[Link]:
        """Shared blocks as shared memory; tools it names that the manifest does not declare
        are the server's (base tools, tools made by hand), linked by name."""
        declared_tools = {t.name: t.address for t in TOOLS_DECLARED.of(desired).values()}
        tools = [
            Link(declared_tools[n]) if n in declared_tools else Link(n, outside="tool")
            for n in sorted(agent_tool_names(declared))
        ]
        return [
            *(Link(b, shared=True) for b in declared.blocks),
            *tools,
            *(Link(i) for i in identities_of(declared)),
            *(Link(s) for s in mcp_servers_of(declared.config)),
            *(Link(m) for m in models_from(declared, desired)),
        ]

    def resolve(self, desired: Desired) -> Desired:
        """Agents may name a declared tool by its key: write the tool's name instead; and a
        model of a declared resource by its key (kinds.agent.models): write its handle."""
        by_key = {a.split(".", 1)[1]: t.name for a, t in TOOLS_DECLARED.of(desired).items()}

        def name_of(ref: str) -> str:
            return by_key.get(ref, ref)

        agents: dict[str, DesiredAgent] = {}
        for address, agent in self.declared(desired).items():
            if "tools" not in agent.config and "tool_rules" not in agent.config:
                agents[address] = agent  # nothing named by key: as declared
                continue
            config = dict(agent.config)
            if "tools" in config:
                config["tools"] = list(dict.fromkeys(name_of(t) for t in strings(config["tools"])))
            if "tool_rules" in config:
                rules = objs(config["tool_rules"])
                config["tool_rules"] = [rule_by_name(r, name_of) for r in rules]
            agents[address] = replace(agent, config=config)
        agents = resolve_models(agents, desired)
        return replace(desired, resources={**desired.resources, self.name: agents})

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        """The stack's agents, each cut down to what planning reads as its page arrives
        (kinds.agent.slim): a big stack's listing is never held whole; with their tools only
        when the stack manages some (model.listed_with)."""
        shared = Shared()
        include = listed_with([desired] if desired is not None else [])
        params = {"include": list(include), "tags": [stack_tag(stack)]}
        return [slim_agent(a, shared) for a in AGENTS.list(client, params)]

    def read_many(
        self, client: LettaClient, stacks: Sequence[str], desired: Sequence[Desired] = ()
    ) -> dict[str, object]:
        """Each stack's agents, as `read` lists them for one: by the stacks' tags (any of them)
        when they are few, else from one listing of every agent."""
        if len(stacks) > TAGGED_AT_ONCE:
            return super().read_many(client, stacks, desired)
        owners = {stack_tag(s): s for s in stacks}
        params: dict[str, Query] = {"include": list(listed_with(desired)), "tags": list(owners)}
        return by_tags(_slimmed(AGENTS.list(client, params)), owners, stacks)

    def read_whole(self, client: LettaClient, desired: Sequence[Desired] = ()) -> object:
        """Every agent some stack owns."""
        return _whole(client, listed_with(desired))

    def read_ahead(self, client: LettaClient) -> object:
        """Every agent some stack owns, without their tools: most fleets manage none, and
        listing them is two thirds of what listing agents costs Letta (model.listed_with)."""
        return _whole(client, WITHOUT_TOOLS)

    def covers(self, whole: object, desired: Sequence[Desired]) -> bool:
        return isinstance(whole, Whole) and set(listed_with(desired)) <= set(whole.include)

    def split(self, whole: object, stacks: Sequence[str]) -> dict[str, object]:
        """Each stack's agents, with the names of the server's unmarked agents: a stack's
        plan that creates an agent need not look its name up (a name every tenant's agent
        bears would make that a listing of every tenant's agent, stack after stack)."""
        assert isinstance(whole, Whole)
        split = by_tags(whole.agents, {stack_tag(s): s for s in stacks}, stacks)
        return {s: StackAgents(objs(agents), whole.unmarked) for s, agents in split.items()}

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveAgent | str, object]:
        """An agent by id, or the one unmarked agent of a name; with the agent as read (its
        blocks go to the blocks' state)."""
        return find_agent(client, imp)

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> AgentState:
        listed = raw["agent"]
        unmarked = listed.unmarked if isinstance(listed, StackAgents) else None
        return AgentState(tuple(LiveAgent.from_api(a) for a in objs(listed)), unmarked=unmarked)

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> AgentState:
        """Unmarked agents whose name a declared, not yet created agent would take; the agents
        of the sleep-time groups of those the plan may delete (kinds.agent.sleeptime)."""
        return completed(client, desired, live, self.match(desired.stack, live))

    def facts(self, client: LettaClient, plan: Plan) -> Mapping[str, frozenset[str]] | None:
        """The model and embedding handles the server serves, when a change sets one the
        server does not serve (all served: None, and the plan stands as made)."""
        wanted: dict[str, set[str]] = {}
        for c in plan.changes:
            if c.kind == "agent" and c.action in (CREATE, REPLACE, UPDATE):
                for name in HANDLES:
                    handle = c.body.get(name)
                    if isinstance(handle, str):
                        wanted.setdefault(name, set()).add(handle)
        served = {name: client.handles(HANDLES[name], wanted[name]) for name in sorted(wanted)}
        return served if any(wanted[n] - served[n] for n in served) else None

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> AgentState:
        """The state with the unmarked agents that hold any of `names` (agent names may
        repeat: the listing cannot say)."""
        return names_taken(client, self.state_of(live), names)

    def resources(self, state: AgentState) -> Iterable[LiveAgent]:
        return state.agents

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveAgent]:
        """Should two agents carry one address, the one that replaces the other wins (an
        interrupted replacement), else the oldest; the others are reported and left alone."""
        return match_agents(stack, live)

    def create(self, ctx: Context, declared: DesiredAgent) -> None:
        agent_plan.create(ctx, declared)

    def update(
        self, ctx: Context, declared: DesiredAgent, found: LiveAgent, *, adopt: bool
    ) -> None:
        agent_update.update(ctx, declared, found)

    def delete(self, ctx: Context, address: str, found: LiveAgent, why: Why) -> None:
        agent_plan.delete(ctx, address, found, why, self.declared(ctx.desired).get(address))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        extra = match_of(ctx)
        for address, la in extra.superseded:
            agent_plan.delete(ctx, address, la, "replace")
        if not destroy:
            agent_plan.prune_own_blocks(ctx)
        agent_plan.prune_leftovers(ctx, DESTROY if destroy else DRIFT)

    def forget(self, ctx: Context, address: str, found: LiveAgent) -> None:
        """The agent and its own blocks: none is left marked for an agent the stack no longer
        sees (it would delete them as its leftovers)."""
        super().forget(ctx, address, found)
        extra = match_of(ctx)
        blocks = BlockKind()
        for owned, b in sorted(extra.owned.items()):
            if owned.startswith(address + "."):
                blocks.forget(ctx, owned, b)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        """The agents' own blocks a plan may delete (Letta leaves them behind an agent), those
        whose agent is gone included."""
        m = self.match(desired.stack, live)
        extra = left(m)
        keep = set() if destroy else {*self.declared(desired), *desired.moved}
        blocks = BLOCKS.of(live)
        shared = {b.id for b in blocks.blocks.values() if b.id in blocks.tagged} - {
            b.id for b in extra.owned.values()
        }
        out: set[str] = {b.id for _, b in extra.leftovers}
        # A removed agent is let go of with its own blocks, never deleted.
        kept = [(a, r) for a, r in m.pool.items() if a not in desired.removed]
        for address, agent in [*kept, *extra.superseded]:
            declared = self.declared(desired).get(desired.moved.get(address, address))
            labels: set[str] = set()
            if declared is not None and address in keep:
                if "memory_blocks" in declared.ignore:
                    continue
                labels = {b.label for b in declared.memory_blocks}
            out |= {b.id for b in owned_of(agent, blocks, shared) if b.label not in labels}
        return out

    def fingerprint(self, resource: LiveAgent, blank: frozenset[str]) -> str:
        a = resource
        parts: list[object] = [
            a.id, a.name, blanked(a.description, "description", blank),
            blanked(a.system, "system", blank), a.model, a.embedding, sorted(a.tags),
            blanked(dict(a.metadata), "metadata", blank), sorted(a.block_ids),
        ]  # fmt: skip
        if a.tool_rules:  # left out when empty: fingerprints of plans made before tool rules hold
            parts.append(rule_keys(a.tool_rules))
        if a.identity_ids:  # likewise for identities
            parts.append(sorted(a.identity_ids))
        if a.settings:  # likewise for settings
            parts.append(dict(a.settings))
        if a.secrets:  # names and row ids only: a rewrite on the server changes the ids
            parts.append(sorted((k, s.id) for k, s in a.secrets.items()))
        if a.sleeptime:  # what Letta deletes with it
            parts.append([a.sleeptime_group, sorted(a.sleeptime)])
        return digest(parts)

    def watched(self, change: Change) -> str:
        # A plan lists an agent's tools only when its stack manages some (model.listed_with), so
        # fingerprints leave them out; a saved plan's check lists them: a change writing them
        # has them checked.
        return "tool_ids" if "tool_ids" in change.body else ""

    def hidden(self, declared: DesiredAgent) -> frozenset[str]:
        return super().hidden(declared) | sensitive_fields(declared.config, (), ("secrets",))

    def blanks(self, live: Live) -> dict[str, frozenset[str]]:
        """Sensitive fields of the agents and of their own blocks (named in the agent's mark)."""
        out = super().blanks(live)
        blocks = BLOCKS.of(live)
        for a in self.state_of(live).agents:
            own = (applied_of(a) or {}).get("memory_blocks")
            if not isinstance(own, Mapping):
                continue
            for i in a.block_ids:
                b = blocks.blocks.get(i)
                entry = own.get(b.label) if b is not None else None
                names = entry.get("sensitive") if isinstance(entry, Mapping) else None
                if isinstance(names, list):
                    out[i] = out.get(i, frozenset()) | frozenset(map(str, names))
        return out

    def created_name(self, change: Change) -> str:
        return str(change.body.get("name", ""))

    def show(self, desired: Desired, live: Live) -> list[tuple[str, str, str]]:
        """The agents, then their own blocks."""
        rows = super().show(desired, live)
        extra = left(self.match(desired.stack, live))
        blocks, marked = BlockKind(), self.blanks(live)  # the agent's marks name its blocks'
        for address, b in sorted(extra.owned.items()):
            hidden = shown_hidden(blocks, desired, address, b.id, marked)
            rows.append((address, b.id, blocks.describe(b, live, hidden)))
        return rows

    def describe(self, resource: LiveAgent, live: Live, hidden: frozenset[str]) -> str:
        blocks = BLOCKS.of(live)
        # By label: the server lists an agent's blocks in no stable order.
        attached = sorted(
            (blocks.blocks[i].label, i) for i in resource.block_ids if i in blocks.blocks
        )
        labels = ", ".join(f"{label} ({i})" for label, i in attached)
        return f"name={resource.name!r}  blocks: {labels}"

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state: AgentState = self.state_of(live)
        return state.clashes.get(name, ())

    # -- applying --------------------------------------------------------------------------

    def settle(self, run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
        return settle_agents(run, made)

    def unmark(self, run: Run, change: Change) -> None:
        route = AGENTS.at(str(change.remote_id))
        unmark_tagged(run, route, params={"include": ["agent.tags"]})

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        return apply_change(run, change, body)

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_selection(self, client: LettaClient, selection: Selection) -> Selected:
        from .writing import selected_agents  # builds on this module

        return selected_agents(client, selection)

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_agents

        return export_agents(ex)

    def from_agent_file(self, conv: Conversion) -> JsonObject:
        from .agent_file import convert_agents

        return convert_agents(conv)


def _declared(address: str, key: str, spec: Mapping[str, object]) -> DesiredAgent:
    """One agent of a manifest that passed every check."""
    own = tuple(
        declare_block(mb, owned_block_address(address, text(mb["label"])), text(mb["label"]))
        for mb in objs(spec.get("memory_blocks"))
    )
    config: JsonObject = {k: spec[k] for k in CONFIG if k in spec}
    secrets = declared_secrets(spec)
    if secrets is not None:
        config["secrets"] = secrets
    if "identities" in config:
        config["identities"] = [f"identity.{k}" for k in strings(config["identities"])]
    if "mcp_tools" in spec:
        config["mcp_tools"] = declared_mcp_tools(spec["mcp_tools"])
    return DesiredAgent(
        address=address,
        name=text(spec.get("name"), key),
        config=config,
        created=agent_create_only.declared(spec),
        memory_blocks=own,
        blocks=tuple(f"block.{ref}" for ref in strings(spec.get("blocks"))),
        prevent_destroy=bool(spec.get("prevent_destroy", False)),
        # Either name of the secrets ignores them (they are one place on the server).
        ignore=frozenset(
            "secrets" if f == NAMES[1] else f for f in strings(spec.get("ignore_changes"))
        ),
    )


@dataclass(frozen=True)
class Whole:
    """Every agent some stack owns, what their listing included, and the names of the agents
    no stack marks (name -> ids)."""

    include: tuple[str, ...]
    agents: list[Mapping[str, object]]
    unmarked: Mapping[str, tuple[str, ...]]


def _whole(client: LettaClient, include: tuple[str, ...]) -> Whole:
    unmarked: dict[str, list[str]] = {}

    def noting(listed: Iterable[JsonObject]) -> Iterator[JsonObject]:
        for a in listed:
            if not mark_of(a.get("metadata")):
                unmarked.setdefault(str(a.get("name")), []).append(str(a.get("id")))
            yield a

    listed = noting(AGENTS.list(client, {"include": list(include)}))
    mine = tagged(_slimmed(listed), (stack_tag(""),))
    return Whole(include, mine, {name: tuple(ids) for name, ids in unmarked.items()})


def _slimmed(listed: Iterable[Mapping[str, object]]) -> Iterator[JsonObject]:
    """The agents of a listing cut down as they come (kinds.agent.slim): held until each stack
    is planned."""
    shared = Shared()
    return (slim_agent(a, shared) for a in listed)
