"""The agents running on a provider a plan deletes or replaces (kinds.provider). Letta deletes a
provider's models with it, and the agents on them keep their model settings and fail on their
next step. So a provider is kept (a problem) while agents the stack does not manage run on its
models, or while an agent the manifest still declares stays on one of them; the stack's agents
this same plan deletes, or moves to another model, are no reason to keep it (they are changed
first: a provider's deletes run after those of every kind using models)."""

from __future__ import annotations

from collections.abc import Sequence

from ...core.changes import Problem
from ...errors import define
from ...server.client import LettaClient
from ..agent.model import AGENT_POOL, AGENTS_DECLARED, DesiredAgent, LiveAgent
from ..agent.update import same_handle
from ..block.kind import our_agent_ids, stack_of
from ..context import Context, Users
from . import handles
from .model import LiveProvider, ProviderState, uses

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA641", "Problem", "a provider agents of others run on",
       "A provider the plan deletes or replaces serves the models of agents this stack does "
       "not manage: they would fail on their next step, so it is not deleted.",
       "Move those agents to another model first, or keep the provider.")
define("LA643", "Problem", "a provider agents of the stack stay on",
       "A provider the plan deletes or replaces serves the model or embedding an agent the "
       "manifest still declares keeps after the plan: the agent would fail on its next step, "
       "so the provider is not deleted.",
       "Declare the provider again, or move those agents to another model (or remove them) in "
       "the same change.")
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
    problem for those the stack does not manage (LA641), and one for the stack's agents the
    plan leaves on its models (LA643; none in a destroy, which deletes them all)."""
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
    staying = [] if destroy else _staying(ctx, lp, users)
    if staying:
        ctx.problems.append(
            Problem(
                address,
                f"not deleted: agents of this stack stay on its models: {', '.join(staying)}",
                "declare the provider again, or move those agents to another model (or remove "
                "them) in the same change",
                code="LA643",
            )
        )
    return bool(foreign or staying)


def _staying(ctx: Context, lp: LiveProvider, users: Users) -> list[str]:
    """The stack's agents among `users` still declared and on a model of `lp` once the plan is
    applied, each as `<address> (<id>) on <handles>`. An agent the plan deletes (no longer
    declared, or left behind by an interrupted replacement) is not in the pool or not declared."""
    declared = AGENTS_DECLARED.of(ctx.desired)
    pool = {a.id: (address, a) for address, a in AGENT_POOL.of(ctx).items()}
    out = []
    for aid, _, _ in users:
        address, la = pool.get(aid, ("", None))
        da = declared.get(address)
        if la is not None and da is not None:
            on = _on(lp, da, la)
            if on:
                out.append(f"{address} ({aid}) on {', '.join(on)}")
    return out


def _on(lp: LiveProvider, da: DesiredAgent, la: LiveAgent) -> list[str]:
    """The handles of `lp`'s models the agent runs on once the plan is applied."""
    now = {"model": la.model, "embedding": la.embedding}
    after = {name: _after(da, name, live) for name, live in now.items()}
    on = [
        h for name, h in after.items()
        if h is not None and _serves(lp, h, embedding=name == "embedding")
    ]  # fmt: skip
    if on or after != now:
        return on
    # Left as it is, it runs on `lp` now (the listing says so), whatever its handles look like.
    return [h for h in now.values() if h]


def _after(da: DesiredAgent, name: str, live: str | None) -> str | None:
    """The agent's model (or embedding) handle once the plan is applied: the declared one when
    the plan writes it, else the live one."""
    wanted = da.config.get(name)
    if name in da.ignore or not isinstance(wanted, str) or same_handle(wanted, live):
        return live
    return wanted


def _serves(lp: LiveProvider, handle: str, *, embedding: bool) -> bool:
    """Whether Letta names a model of `lp` `handle` (an OpenAI-compatible endpoint's models are
    all `openai-proxy/<model>`: such a handle is taken as any of those providers', which keeps a
    provider rather than breaking an agent)."""
    return handles.serves(lp.name, lp.provider_type, lp.base_url, handle, embedding=embedding)
