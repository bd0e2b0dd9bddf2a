"""Memory blocks as letta-apply holds them: declared (`DesiredBlock`), live (`LiveBlock`, read from
Letta's answers with their types checked) and the blocks' state; the typed keys other kinds read
them through; and whose a live block is (the stack's agents, an agent's own blocks).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Protocol

from ...core.jsonish import integer, obj, opt_text, strings, text
from ...core.model import Resource, stack_tag
from ..context import Context, DeclaredOf, ExtraOf, PoolOf, StateOf, Users
from ..resource import mark_of

DEFAULT_LIMIT = 100000
"""Letta's default block character limit (CreateBlock.limit)."""
# What Letta 0.16.8 fills in when a block or agent leaves them out (letta/constants.py).
DEFAULT_DESCRIPTIONS = {
    "persona": "The persona block: Stores details about your current persona, guiding how you "
    "behave and respond. This helps you to maintain consistency and personality in your "
    "interactions.",
    "human": "The human block: Stores key details about the person you are conversing with, "
    "allowing for more personalized and friend-like conversation.",
}
FIELDS = ("description", "limit", "read_only")
CONFIG = ("description", "limit", "read_only", "metadata", "tags", "identities")


@dataclass(frozen=True)
class DesiredBlock:
    """A memory block as the manifest declares it. `config` holds only the fields the manifest
    sets (description, limit, read_only, metadata, tags, identities): fields left out are the
    server's."""

    address: str
    label: str
    value: str
    enforce_value: bool = False
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()  # ignore_changes: set at creation, never compared

    @property
    def identities(self) -> list[str]:
        """The addresses of the identities it declares (identity.<key>), as declared."""
        return strings(self.config.get("identities"))


@dataclass(frozen=True)
class LiveBlock:
    id: str
    label: str
    value: str
    description: str | None = None
    limit: int | None = None
    read_only: bool = False
    metadata: Mapping[str, object] = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    @cached_property  # read a score of times per resource by a plan of thousands
    def mark(self) -> Mapping[str, object]:
        return mark_of(self.metadata)

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LiveBlock:
        """A block as Letta's API returns it (the fields letta-apply reads)."""
        return cls(
            id=text(raw["id"]),
            label=text(raw.get("label")),
            value=text(raw.get("value")),
            description=opt_text(raw.get("description")),
            limit=integer(raw.get("limit")),
            read_only=bool(raw.get("read_only")),
            metadata=obj(raw.get("metadata")),
            tags=tuple(strings(raw.get("tags"))),
        )


@dataclass(frozen=True)
class BlockState:
    """Every block the stack's reads saw, by id: those carrying its tag, and those attached to
    its agents (an agent's view of a block omits tags: the tagged copy wins). `users` maps the
    id of a block a plan may delete to the agents attached to it."""

    blocks: Mapping[str, LiveBlock] = field(default_factory=dict)
    tagged: frozenset[str] = frozenset()
    users: Mapping[str, Users] = field(default_factory=dict)


BLOCKS = StateOf[BlockState]("block")
"""The blocks' live state, typed (for the kinds that read it)."""
BLOCKS_DECLARED = DeclaredOf[DesiredBlock]("block")
"""The declared blocks, typed (for the kinds that read them)."""


class AgentLike(Protocol):
    """What blocks need to know of an agent (see kinds.agent, which imports this package)."""

    @property
    def id(self) -> str: ...

    @property
    def block_ids(self) -> tuple[str, ...]: ...


class AgentsLike(Protocol):
    """What blocks need to know of the agents' live state (see kinds.agent)."""

    def ours(self, stack: str) -> list[AgentLike]: ...


class AgentMatchLike(Protocol):
    """What blocks need to know of what the agents' match left (see kinds.agent): the agents
    an interrupted replacement left behind, and the sleep-time agents Letta made for them."""

    @property
    def superseded(self) -> Sequence[tuple[str, AgentLike]]: ...

    @property
    def companions(self) -> Iterable[str]: ...


class IdentitiesLike(Protocol):
    """What blocks need to know of the identities' live state (see kinds.identity)."""

    @property
    def blocks(self) -> Mapping[str, Sequence[str]]: ...


# Other kinds' data, as blocks read it (the agent and identity kinds import this package).
AGENT_POOL = PoolOf[AgentLike]("agent")
AGENTS = StateOf[AgentsLike]("agent")
AGENT_MATCH = ExtraOf[AgentMatchLike]("agent")
IDENTITY_POOL = PoolOf[Resource]("identity")
IDENTITIES = StateOf[IdentitiesLike]("identity")


def owned_block_address(agent_address: str, label: str) -> str:
    """Address of a block an agent owns alone (declared under its `memory_blocks`)."""
    return f"{agent_address}.memory_blocks.{label}"


def our_agent_ids(ctx: Context) -> set[str]:
    """Ids of the stack's agents, those an interrupted replacement left behind and the
    sleep-time agents Letta made for them (kinds.agent.sleeptime) included."""
    agents = AGENT_POOL.of(ctx).values()
    extra = AGENT_MATCH.of(ctx)
    superseded = extra.superseded if extra is not None else ()
    companions = extra.companions if extra is not None else ()
    return {a.id for a in agents} | {a.id for _, a in superseded} | set(companions)


def stack_of(agent: Mapping[str, object]) -> str | None:
    """The stack an agent (as the server lists it) belongs to, or None."""
    stack = mark_of(agent.get("metadata")).get("stack")
    return stack if isinstance(stack, str) else None


def leftover_own_blocks(
    state: BlockState, agents: Iterable[AgentLike], stack: str
) -> list[tuple[str, LiveBlock]]:
    """The stack's own blocks whose agent is gone (deleted by hand, or by a run stopped before
    it deleted them too), with their addresses: blocks carrying the stack's tag and its mark
    for an own block's address, attached to none of the stack's agents (`agents`: every agent
    carrying its tag, both sides of a replacement included). A block made inline with an agent
    has no mark of its own until letta-apply writes one (Letta drops it): without its agent,
    nothing tells it from a block tagged by hand, and it is left alone. Blocks attached
    outside the stack are told apart later (`users`)."""
    in_use = {i for a in agents for i in a.block_ids}
    out: list[tuple[str, LiveBlock]] = []
    for i in sorted(state.tagged - in_use):
        b = state.blocks[i]
        address = b.mark.get("address")
        if (
            stack_tag(stack) in b.tags
            and b.mark.get("stack") == stack
            and isinstance(address, str)
            and address.startswith("agent.")
            and ".memory_blocks." in address
        ):
            out.append((address, b))
    return out


def owned_of(agent: AgentLike, state: BlockState, shared_ids: set[str]) -> list[LiveBlock]:
    """An agent's own blocks: attached, carrying the stack's tag, not a shared block (one the
    plan manages as such, or whose mark names a shared block: one `removed:` lets go of, say,
    which stays attached and is no agent's own)."""
    return [
        state.blocks[i]
        for i in agent.block_ids
        if i in state.blocks and i in state.tagged and i not in shared_ids
        and not str(state.blocks[i].mark.get("address", "")).startswith("block.")
    ]  # fmt: skip
