"""Groups in the manifests letta-apply writes (kinds.writing): the groups made only of exported
agents, and the groups of an Agent File (but the sleep-time groups Letta makes itself), each
naming its agents by key. Their shared blocks are left out: Letta does not report them, and an
Agent File names them by the ids of the server it came from."""

from __future__ import annotations

from ...core.jsonish import JsonObject, obj, opt_text
from ...errors import ApiError, route_gone
from ..agent.sleeptime_file import sleeptime_groups
from ..writing import Conversion, Export, Written
from .kind import GroupKind
from .model import ALLOWED, SETTINGS, LiveGroup
from .requests import ROUTE

_AGENT = "agent"  # the kind whose keys a group's members are named by


def export_groups(kind: GroupKind, ex: Export) -> JsonObject:
    """One listing, only when agents are exported. A stack's group has the stack's agents in
    it, which are never exported, so none of these is a stack's. A server that does not offer
    groups (Letta Cloud marks them deprecated) has none to export."""
    agent_keys = ex.keys.get(_AGENT, {})
    if not agent_keys:
        return {}
    try:
        listed = list(ROUTE.list(ex.client))
    except ApiError as e:
        if route_gone(e):
            return {}
        raise
    out: JsonObject = {}
    for raw in listed:
        group = LiveGroup.from_api(raw)
        members = [*group.agent_ids, *([group.manager_agent_id] if group.manager_agent_id else [])]
        if members and all(a in agent_keys for a in members):
            _entry(kind, ex, group, out)
    return out


def convert_groups(kind: GroupKind, conv: Conversion) -> JsonObject:
    sleeptime = sleeptime_groups(conv)
    out: JsonObject = {}
    for i, g in enumerate(conv.entities("groups")):
        mc = obj(g.get("manager_config"))
        manager = opt_text(mc.get("manager_agent_id"))
        if manager is not None and manager in sleeptime and g["agent_ids"] == sleeptime[manager]:
            conv.note(f"groups[{i}]: Letta's sleep-time group; not converted (Letta makes it "
                      "again from `enable_sleeptime: true`)")  # fmt: skip
            continue
        manager_type = mc.get("manager_type") or "round_robin"
        if not isinstance(manager_type, str) or manager_type not in ALLOWED:
            conv.note(f"groups[{i}]: manager type {str(manager_type)!r} not converted")
            continue
        flat = {
            "id": g["id"], "manager_type": manager_type, "agent_ids": g["agent_ids"],
            "manager_agent_id": mc.get("manager_agent_id"), "description": g.get("description"),
            **{k: mc[k] for k in SETTINGS if mc.get(k) is not None},
        }  # fmt: skip
        _entry(kind, conv, LiveGroup.from_api(flat), out)
        if g.get("shared_block_ids"):
            conv.note(f"groups[{i}].shared_block_ids: not converted (Letta's export names "
                      "them by the ids of the server it came from)")  # fmt: skip
    return out


def _entry(kind: GroupKind, w: Written, group: LiveGroup, out: JsonObject) -> None:
    """The group's entry in `out`, its agents by key, keyed after its manager (or its first
    member)."""
    agent_keys = w.keys.get(_AGENT, {})
    entry = kind.export(group)
    agents = [agent_keys[a] for a in group.agent_ids]
    entry["agents"] = agents
    manager = agent_keys[group.manager_agent_id] if group.manager_agent_id else None
    if manager is not None:
        entry["manager_agent"] = manager
    first = manager or (agents or ["group"])[0]
    out[w.key(kind.name, group.id, f"{first}_group")] = entry
