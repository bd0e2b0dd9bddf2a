"""The agents running on a provider a plan deletes or replaces (kinds.provider). Letta deletes a
provider's models with it, and the agents on them keep their model settings and fail on their
next step. So a provider is kept (a problem) while agents the stack does not manage run on its
models."""

from __future__ import annotations

from collections.abc import Sequence

from ...core.changes import Problem
from ...errors import define
from ...server.client import LettaClient
from ..block.kind import our_agent_ids, stack_of
from ..context import Context, Users
from .model import LiveProvider, ProviderState, uses

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA641", "Problem", "a provider agents of others run on",
       "A provider the plan deletes or replaces serves the models of agents this stack does "
       "not manage: they would fail on their next step, so it is not deleted.",
       "Move those agents to another model first, or keep the provider.")
# fmt: on


def agents_using(client: LettaClient, state: ProviderState, ids: Sequence[str]) -> dict[str, Users]:
    """The agents running on each provider of `ids`, by provider id: one listing of every
    agent (Letta has no route for a provider's agents)."""
    names = {str(p["id"]): str(p.get("name")) for p in state.providers}
    out: dict[str, list[tuple[str, str, str | None]]] = {i: [] for i in ids}
    for a in client.list_agents(include=("agent.tags",)):
        for pid in ids:
            if uses(a, names.get(pid, "")):
                out[pid].append((str(a["id"]), str(a.get("name") or ""), stack_of(a)))
    return {i: tuple(u) for i, u in out.items()}


def kept_for_agents(
    ctx: Context, address: str, lp: LiveProvider, users: Users, *, destroy: bool
) -> bool:
    """Whether the provider at `address` is kept for the agents running on it (`users`): a
    problem for those the stack does not manage (LA641)."""
    ours = our_agent_ids(ctx)
    foreign = [u for u in users if u[0] not in ours]
    if foreign:
        names = ", ".join(f"{name} ({aid})" for aid, name, _ in foreign)
        ctx.problems.append(
            Problem(
                address,
                f"not deleted: agents this stack does not manage run on its models: {names}",
                "move those agents to another model first, or keep the provider",
                code="LA641",
            )
        )
    return bool(foreign)
