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

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

from ...core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DESTROY,
    DETACH,
    DRIFT,
    REPLACE,
    UPDATE,
    Change,
    Plan,
    Why,
)
from ...core.marks import digest, sensitive_fields
from ...core.model import Desired, Import, Live, is_secret
from ...core.sensitive import Masker
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...manifest.sections import KeyDefault
from ...server.client import LettaClient
from ..base import Field, Kind, Link, Shape, shown_hidden
from ..block.kind import (
    BLOCKS,
    BlockKind,
    blanked,
    declare_block,
    leftover_own_blocks,
    owned_block_address,
    owned_of,
)
from ..context import Context, Matched, Run, unmark_tagged
from ..resource import applied_of, carries, mark_of, settle
from ..tool.kind import TOOLS_DECLARED, is_base_tool_type
from ..tool.rules import (
    RULES_INTERIM,
    check_rules,
    rule_by_name,
    rule_keys,
    rules_missing,
    rules_shown,
    tool_rules_update,
)
from ..writing import Conversion, Export, Selected, Selection
from . import create_only as agent_create_only
from . import plan as agent_plan
from . import sleeptime as agent_sleeptime
from .checks import check_agents
from .mcp_tools import check_mcp_tools, declared_mcp_tools, expand, mcp_servers_of
from .memory import AgentMemory
from .model import (
    AGENT_MATCH,
    AGENTS_DECLARED,
    CONFIG,
    WITH_SECRETS,
    AgentMatch,
    AgentState,
    DesiredAgent,
    LiveAgent,
    agent_tool_names,
)
from .models import check_models, models_from, resolve_models
from .plan import HANDLES
from .secrets import (
    LIVE,
    NAMES,
    carried_over,
    declared_secrets,
    live_secrets,
    with_recorded,
    written_ids,
)
from .settings import SETTINGS, check_timezones

# Above this many missing agents one full listing is cheaper than one lookup per name.
_NAME_LOOKUPS_MAX = 5

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA414", "ManifestError", "secrets under two names",
       "An agent declares both `secrets` and `tool_exec_environment_variables` (Letta's two "
       "names for one set).",
       "Keep one of them.")
define("LA415", "ManifestError", "a secret written in the manifest",
       "An agent's secret is written as a plain value, which would sit in the manifest's "
       "history.",
       "Give it from a sensitive variable: `${var.NAME}` declared with `sensitive: true`.")
define("LA722", "ApiError", "tool rules the server did not keep",
       "After an agent's update, the server's agent lacks tool rules that were written.",
       "Check the rules against the server's version (a rule type it does not know); apply "
       "again.")
# fmt: on


class AgentKind(Kind[DesiredAgent, LiveAgent, AgentState], AgentMemory):
    name: ClassVar[str] = "agent"
    section: ClassVar[str] = "agents"
    id_prefix: ClassVar[str] = "agent-"
    depends_on: ClassVar[tuple[str, ...]] = ("block", "tool", "identity", "mcp_server")
    nested: ClassVar[Mapping[str, str]] = {"memory_blocks": "block"}
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

    def check(self, doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
        return [
            *check_agents(doc, data),
            *check_rules(doc, data),
            *_check_secrets(doc, data),
            *check_mcp_tools(doc, data),
            *check_timezones(doc, data),
            *agent_create_only.check_create_only(doc, data),
            *check_models(doc, data),
        ]

    def declare(self, doc: Document, data: Mapping[str, Any]) -> dict[str, Any]:
        agents: dict[str, DesiredAgent] = {}
        for key, spec in (data.get("agents") or {}).items():
            address = f"agent.{key}"
            own = tuple(
                declare_block(mb, owned_block_address(address, mb["label"]), mb["label"])
                for mb in spec.get("memory_blocks") or []
            )
            config = {k: spec[k] for k in CONFIG if k in spec}
            secrets = declared_secrets(spec)
            if secrets is not None:
                config["secrets"] = secrets
            if "identities" in config:
                config["identities"] = [f"identity.{k}" for k in config["identities"]]
            if "mcp_tools" in spec:
                config["mcp_tools"] = declared_mcp_tools(spec["mcp_tools"])
            agents[address] = DesiredAgent(
                address=address,
                name=spec.get("name", key),
                config=config,
                created=agent_create_only.declared(spec),
                memory_blocks=own,
                blocks=tuple(f"block.{ref}" for ref in spec.get("blocks") or []),
                prevent_destroy=bool(spec.get("prevent_destroy", False)),
                # Either name of the secrets ignores them (they are one place on the server).
                ignore=frozenset(
                    "secrets" if f == NAMES[1] else f for f in spec.get("ignore_changes", ())
                ),
            )
        return agents

    def references(self, declared: DesiredAgent, desired: Desired) -> list[str]:
        used = agent_tool_names(declared)
        tools = sorted(t.address for t in TOOLS_DECLARED.of(desired).values() if t.name in used)
        identities = declared.config.get("identities", ())
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
            *(Link(i) for i in declared.config.get("identities", ())),
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
            config = dict(agent.config)
            if "tools" in config:
                config["tools"] = list(dict.fromkeys(name_of(t) for t in config["tools"]))
            if "tool_rules" in config:
                config["tool_rules"] = [rule_by_name(r, name_of) for r in config["tool_rules"]]
            agents[address] = replace(agent, config=config)
        agents = resolve_models(agents, desired)
        return replace(desired, resources={**desired.resources, self.name: agents})

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> Any:
        return client.list_agents(tag=f"letta-apply:{stack}", include=WITH_SECRETS)

    def find(self, client: LettaClient, imp: Import, raw: Mapping[str, Any]) -> tuple[Any, Any]:
        """An agent by id, or the one unmarked agent of a name; with the agent as read (its
        blocks go to the blocks' state)."""
        if imp.id is not None:
            try:
                found = client.get_agent(imp.id, WITH_SECRETS)
            except ApiError as e:
                if e.status == 404:
                    return f"no such resource on the server: {imp.id}", None
                raise
            return LiveAgent.from_api(found), found
        assert imp.name is not None
        named = [
            a for a in client.list_agents(name=imp.name, include=WITH_SECRETS)
            if not LiveAgent.from_api(a).mark
        ]  # fmt: skip
        if len(named) != 1:
            return (
                f"{len(named)} unmarked agents are named {imp.name!r}; import by id instead",
                None,
            )
        return LiveAgent.from_api(named[0]), named[0]

    def state(self, raw: Mapping[str, Any], seen: Mapping[str, Any], stack: str) -> AgentState:
        return AgentState(tuple(LiveAgent.from_api(a) for a in raw["agent"]))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> AgentState:
        """Unmarked agents whose name a declared, not yet created agent would take; the agents
        of the sleep-time groups of those the plan may delete (kinds.agent.sleeptime)."""
        m = self.match(desired.stack, live)
        imported = {imp.address for imp in desired.imports}
        missing = {
            a.name
            for address, a in self.declared(desired).items()
            if address not in m.pool and address not in imported
        }
        state = self.names_taken(client, live, missing)
        ours = {a.id for a in state.ours(desired.stack)}
        read = {
            a.id: agent_sleeptime.read(client, a, desired.stack, ours)
            for a in agent_sleeptime.at_risk(_deletable(desired, m))
        }
        return replace(state, sleeptime=read)

    def facts(self, client: LettaClient, plan: Plan) -> Mapping[str, frozenset[str]] | None:
        """The model and embedding handles the server serves, when a change sets one the
        server does not serve (all served: None, and the plan stands as made)."""
        wanted: dict[str, set[str]] = {}
        for c in plan.changes:
            if c.kind == "agent" and c.action in (CREATE, REPLACE, UPDATE):
                for name in HANDLES:
                    if isinstance(c.body.get(name), str):
                        wanted.setdefault(name, set()).add(c.body[name])
        served = {
            name: frozenset(
                m["handle"]
                for m in client.request("GET", HANDLES[name])
                if isinstance(m, Mapping) and isinstance(m.get("handle"), str)
            )
            for name in sorted(wanted)
        }
        return served if any(wanted[n] - served[n] for n in served) else None

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> AgentState:
        """The state with the unmarked agents that hold any of `names` (agent names may
        repeat: the listing cannot say)."""
        state: AgentState = self.state_of(live)
        missing = names
        if not missing:
            return state
        if len(missing) <= _NAME_LOOKUPS_MAX:
            found = [
                a
                for n in sorted(missing)
                for a in client.list_agents(name=n, include=("agent.tags",))
            ]
        else:
            found = client.list_agents(include=("agent.tags",))
        out: dict[str, list[str]] = {}
        for raw in found:
            agent = LiveAgent.from_api(raw)
            if agent.name in missing and not agent.mark:
                out.setdefault(agent.name, []).append(agent.id)
        return AgentState(state.agents, {name: tuple(ids) for name, ids in out.items()})

    def resources(self, state: Any) -> Iterable[LiveAgent]:
        agents: AgentState = state
        return agents.agents

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveAgent]:
        """Should two agents carry one address, the one that replaces the other wins (an
        interrupted replacement), else the oldest; the others are reported and left alone."""
        state: AgentState = self.state_of(live)
        tag = f"letta-apply:{stack}"
        candidates: dict[str, list[LiveAgent]] = {}
        for a in state.agents:
            address = a.mark.get("address")
            ours = tag in a.tags and a.mark.get("stack") == stack
            if ours and isinstance(address, str) and address.startswith("agent."):
                candidates.setdefault(address, []).append(a)
        pool: dict[str, LiveAgent] = {}
        superseded: list[tuple[str, LiveAgent]] = []
        notes: list[str] = []
        for address, found in candidates.items():
            replaced = {a.mark.get("replaces") for a in found}
            winner = next((a for a in found if a.mark.get("replaces")), found[0])
            pool[address] = winner
            for a in found:
                if a is winner:
                    continue
                if a.id in replaced:
                    superseded.append((address, a))
                else:
                    notes.append(
                        f"{address}: more than one agent carries this address ({winner.id}, "
                        f"{a.id}); using {winner.id}, the other is left alone"
                    )
        blocks = BLOCKS.of(live)
        shared = {
            b.id
            for b in blocks.blocks.values()
            if b.id in blocks.tagged and str(b.mark.get("address", "")).startswith("block.")
            and b.mark.get("stack") == stack
        }  # fmt: skip
        owned = {
            owned_block_address(address, b.label): b
            for address, a in pool.items()
            for b in owned_of(a, blocks, shared)
        }
        ids = {a: r.id for a, r in pool.items()} | {a: b.id for a, b in owned.items()}
        leftovers = tuple(leftover_own_blocks(blocks, state.agents, stack))
        # Who another stack's marks claim, as the users of blocks a plan may delete say.
        elsewhere = {
            u for users in blocks.users.values() for u, _, s in users if s not in (None, stack)
        }
        companions = agent_sleeptime.companions(
            state, [*pool.values(), *(a for _, a in superseded)], elsewhere
        )
        extra = AgentMatch(tuple(superseded), owned, leftovers, companions)
        return Matched(pool, ids, tuple(notes), extra)

    def create(self, ctx: Context, declared: DesiredAgent) -> None:
        agent_plan.create(ctx, declared)

    def update(
        self, ctx: Context, declared: DesiredAgent, found: LiveAgent, *, adopt: bool
    ) -> None:
        agent_plan.update(ctx, declared, found)

    def delete(self, ctx: Context, address: str, found: LiveAgent, why: Why) -> None:
        agent_plan.delete(ctx, address, found, why, self.declared(ctx.desired).get(address))

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        extra = _match_left(ctx)
        for address, la in extra.superseded:
            agent_plan.delete(ctx, address, la, "replace")
        if not destroy:
            agent_plan.prune_own_blocks(ctx)
        agent_plan.prune_leftovers(ctx, DESTROY if destroy else DRIFT)

    def forget(self, ctx: Context, address: str, found: LiveAgent) -> None:
        """The agent and its own blocks: none is left marked for an agent the stack no longer
        sees (it would delete them as its leftovers)."""
        super().forget(ctx, address, found)
        extra = _match_left(ctx)
        blocks = BlockKind()
        for owned, b in sorted(extra.owned.items()):
            if owned.startswith(address + "."):
                blocks.forget(ctx, owned, b)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        """The agents' own blocks a plan may delete (Letta leaves them behind an agent), those
        whose agent is gone included."""
        m = self.match(desired.stack, live)
        extra = _left(m)
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
        parts: list[Any] = [
            a.id, a.name, blanked(a.description, "description", blank),
            blanked(a.system, "system", blank), a.model, a.embedding, sorted(a.tags),
            blanked(dict(a.metadata), "metadata", blank), sorted(t.id for t in a.tools),
            sorted(a.block_ids),
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

    def hidden(self, declared: Any) -> frozenset[str]:
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
        extra = _left(self.match(desired.stack, live))
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
        path = f"/v1/agents/{change.remote_id}"
        unmark_tagged(run, path, params={"include": ["agent.tags"]})

    def apply(self, run: Run, change: Change, body: dict[str, Any]) -> str:
        c = run.client
        rid = change.remote_id or ""
        body = expand(run, body)  # MCP tools registered by this apply, by id
        if change.action in (CREATE, REPLACE):
            replaces = body.pop("replaces", None)
            rid = _create(run, change, body)
            if replaces:
                # Create-first: the new agent exists, wired to its blocks, before the old goes;
                # its own blocks before it (stopped in between, the old agent is still seen).
                for block_id in replaces["blocks"]:
                    c.delete_block(block_id)
                c.delete_agent(replaces["agent"])
        elif change.action == DELETE:
            # The blocks Letta made for its sleep-time agents, which outlive them.
            for block_id in body.get(agent_sleeptime.BLOCKS, ()):
                c.delete_block(block_id)
            c.delete_agent(rid)
        elif change.action in (ATTACH, DETACH):
            assert change.block
            # `block` is an address, or the id of a block the stack does not manage.
            agent_id, block_id = run.id_of(change.address), run.id_of(change.block)
            (c.attach_block if change.action == ATTACH else c.detach_block)(agent_id, block_id)
            rid = block_id
        else:
            _update(run, rid, body)
        return rid

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_selection(self, client: LettaClient, selection: Selection) -> Selected:
        from .writing import selected_agents  # builds on this module

        return selected_agents(client, selection)

    def export_section(self, ex: Export) -> dict[str, Any]:
        from .writing import export_agents

        return export_agents(ex)

    def from_agent_file(self, conv: Conversion) -> dict[str, Any]:
        from .agent_file import convert_agents

        return convert_agents(conv)


def _deletable(desired: Desired, m: Matched[LiveAgent]) -> list[LiveAgent]:
    """The stack's agents a plan may delete: those no longer declared (all, for destroy), those
    an interrupted replacement left behind, and those a create-only field now replaces."""
    extra = _left(m)
    out = [a for _, a in extra.superseded]
    for address, la in m.pool.items():
        if address in desired.removed:
            continue  # let go of, never deleted
        da = AGENTS_DECLARED.of(desired).get(desired.moved.get(address, address))
        if da is None or agent_create_only.replacement(da, la, applied_of(la)) is not None:
            out.append(la)
    return out


def _candidates(run: Run, change: Change, body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Agents carrying the change's address, oldest first (see `_carrying`): one narrow list
    call, by stack tag and name."""
    found = run.client.list_agents(
        tag=run.tag, name=body["name"], include=("agent.blocks", "agent.tags")
    )
    return _carrying(run, change, body, found)


def _carrying(
    run: Run, change: Change, body: Mapping[str, Any], agents: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Those of `agents` carrying the change's address (for a replacement: the replacements
    of the same agent)."""
    replaces = mark_of(body["metadata"]).get("replaces")
    return [
        a for a in agents
        if carries(a, run.stack, change.address)
        and (mark_of(a["metadata"]).get("replaces") == replaces or not replaces)
    ]  # fmt: skip


def settle_agents(run: Run, made: Sequence[tuple[Change, str]]) -> dict[str, str]:
    """Agents made by this stage that another run made too (for a replacement: the same
    replacement): the oldest stays, and every run that made one computes the same winner, so
    each deletes only its own, with its own blocks. One listing of the stack's agents for the
    whole stage."""
    listing = run.client.list_agents(
        tag=run.tag, include=("agent.blocks", "agent.managed_group", "agent.tags")
    )
    moved: dict[str, str] = {}
    for change, rid in made:
        winner = settle({"id": rid}, _carrying(run, change, change.body, listing))
        if winner["id"] == rid:
            continue
        ours = next((a for a in listing if a["id"] == rid), {})
        kept = {b["id"] for b in winner.get("blocks") or ()}
        for b in ours.get("blocks") or ():
            if b["id"] not in kept:
                run.client.delete_block(b["id"])
        if ours:  # and the block Letta made for its sleep-time agent (kinds.agent.sleeptime)
            letta_made = agent_sleeptime.made_blocks(
                run.client, LiveAgent.from_api(ours), run.stack
            )
            for block_id in letta_made:
                run.client.delete_block(block_id)
        run.client.delete_agent(rid)
        # What ours was given after its create, theirs gets too (their run may have stopped
        # before giving it).
        moved[change.address] = _finish(run, change, run.resolve(change.body), winner)
    return moved


def _create(run: Run, change: Change, body: dict[str, Any]) -> str:
    created = run.client.create_agent(
        body, find=lambda: next(iter(_candidates(run, change, body)), None)
    )
    return _finish(run, change, body, created)


def _finish(run: Run, change: Change, body: Mapping[str, Any], created: dict[str, Any]) -> str:
    """Record an agent just made, and write what Letta's create leaves out."""
    c = run.client
    rid: str = created["id"]
    run.record(change.address, rid)
    _record_secrets(run, rid, body, created)
    for b in created.get("blocks") or ():
        run.record(owned_block_address(change.address, b["label"]), b["id"])
    # Letta drops `metadata` of blocks created inline with an agent; set it afterwards.
    wanted = {b["label"]: b.get("metadata") for b in change.body.get("memory_blocks", ())}
    for b in created.get("blocks") or ():
        md = wanted.get(b["label"])
        if md and b.get("metadata") != md:
            c.update_block(b["id"], {"metadata": md})
    # Letta adds loop rules for its base tools to the declared ones, even on tools the declared
    # rules already govern: write the declared rules back for those.
    if "tool_rules" in body:
        base = [
            t["name"]
            for t in created.get("tools") or ()
            if is_base_tool_type(t.get("tool_type") or "custom")
        ]
        update = tool_rules_update(body["tool_rules"], created.get("tool_rules") or (), base)
        if update is not None:
            c.update_agent(rid, {"tool_rules": update[1]})
    return rid


def _update(run: Run, rid: str, body: dict[str, Any]) -> None:
    c = run.client
    by_hand: list[str] = []
    if any(isinstance(v, Mapping) and LIVE in v for v in (body.get("secrets") or {}).values()):
        # Letta replaces the whole set: the secrets set by hand go along, as they are now.
        now = live_secrets(c.get_agent(rid, ("agent.secrets",)).get("secrets"))
        wanted = body["secrets"]
        by_hand = [now[k].value for k, v in wanted.items() if isinstance(v, Mapping) and k in now]
        body["secrets"] = carried_over(wanted, now)
    interim = body.pop(RULES_INTERIM, None)
    if interim is not None:
        c.update_agent(rid, {"tool_rules": interim})
    try:
        answer = c.update_agent(rid, body)
    except ApiError as e:
        if not by_hand:
            raise
        # No sensitive variable holds those: mask them here, should the server quote them.
        masker = Masker(by_hand)
        detail = masker.text(e.detail)
        raise ApiError(detail, status=e.status, method=e.method, path=e.path, code=e.code) from None
    missing = rules_missing(body.get("tool_rules") or (), answer.get("tool_rules") or ())
    if "tool_rules" in body and missing:
        raise ApiError(
            f"the server did not take the tool_rules written: {', '.join(rules_shown(missing))} "
            "missing from the agent's rules after the update",
            method="PATCH",
            path=f"/v1/agents/{rid}",
            code="LA722",
        )
    _record_secrets(run, rid, body, answer)


def _record_secrets(run: Run, rid: str, body: Mapping[str, Any], answer: Mapping[str, Any]) -> None:
    """Record in the mark the row ids the server gave the secrets just written (how a later
    rewrite on the server is told from a change of the manifest)."""
    ids = written_ids(body.get("metadata") or {}, answer)
    if ids is not None:
        run.client.update_agent(rid, {"metadata": with_recorded(body["metadata"], ids)})


def _check_secrets(doc: Document, data: Mapping[str, Any]) -> list[Diagnostic]:
    """Secrets come from sensitive variables (a plain value would sit in the manifest's
    history), under one of Letta's two names."""
    errors: list[Diagnostic] = []
    agents = data.get("agents")
    for key, spec in agents.items() if isinstance(agents, Mapping) else ():
        if not isinstance(spec, Mapping):
            continue
        if all(n in spec for n in NAMES):
            errors.append(
                doc.diag(
                    ("agents", key, NAMES[1]),
                    f"agents.{key}: declare secrets under `secrets` or "
                    "`tool_exec_environment_variables`, not both",
                    code="LA414",
                    key=True,
                )
            )
        for name in NAMES:
            given = spec.get(name)
            # The schema reports a secrets entry that is no mapping; checks run beside it.
            for k, v in given.items() if isinstance(given, Mapping) else ():
                if not is_secret(v):
                    errors.append(
                        doc.diag(
                            ("agents", key, name, k),
                            f"agents.{key}.{name}.{k}: a secret's value must come from a "
                            "sensitive variable (${var.NAME} with `sensitive: true`), never "
                            "be written in the manifest",
                            code="LA415",
                        )
                    )
    return errors


def _left(m: Matched[LiveAgent]) -> AgentMatch:
    """What the agents' match left for planning (it always leaves an AgentMatch)."""
    assert isinstance(m.extra, AgentMatch), "the agents' match left no AgentMatch"
    return m.extra


def _match_left(ctx: Context) -> AgentMatch:
    found = AGENT_MATCH.of(ctx)
    assert found is not None, "the agents' match left nothing"
    return found
