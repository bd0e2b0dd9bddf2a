"""Sleep-time agents in the fake Letta server (tests/fakes/server.py), as Letta 0.16.8 makes and
deletes them (letta/server/server.py create_sleeptime_agent_async, letta/services/agent_manager.py
delete_agent_async and attach_block_async):

- An agent created with `enable_sleeptime: true` (or updated to it while it manages no group)
  gets an agent `<name>-sleeptime` of type `sleeptime_agent` (`voice_sleeptime_agent` beside a
  `voice_convo_agent`), no tags, no metadata, holding the agent's blocks and a new block
  `memory_persona`, and a group of manager_type `sleeptime` it manages with that agent in it.
- A listing or read with `include=agent.managed_group` shows that group as `managed_group`.
- Attaching a block to the agent attaches it to its `sleeptime_agent` too; a detach is not
  passed on.
- Deleting the agent deletes the group and the agents in it (never blocks); deleting one of those
  agents deletes the group and clears the agent's `enable_sleeptime`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes.common import _public

TYPES = ("sleeptime_agent", "voice_sleeptime_agent")
GROUPS = ("sleeptime", "voice_sleeptime")


class FakeSleeptime:
    """The sleep-time half of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    groups: dict[str, dict[str, Any]]
    _new_block: Callable[..., dict[str, Any]]
    _new_agent: Callable[..., dict[str, Any]]
    _group_defaults: Callable[[], dict[str, Any]]

    def managed_group(self, aid: str) -> dict[str, Any] | None:
        """The sleep-time group an agent manages, as the server stores it."""
        for g in self.groups.values():
            if g.get("manager_agent_id") == aid and g.get("manager_type") in GROUPS:
                return g
        return None

    def make_sleeptime(self, agent: dict[str, Any]) -> None:
        """What `enable_sleeptime: true` makes beside `agent` (when it manages no group yet)."""
        if self.managed_group(agent["id"]) is not None or not agent.get("embedding"):
            return
        voice = agent.get("agent_type") == "voice_convo_agent"
        persona = self._new_block({"label": "memory_persona", "value": "I manage memory."})
        sleeper = self._new_agent({
            "name": f"{agent['name']}-sleeptime", "model": agent.get("model"),
            "embedding": agent.get("embedding"), "agent_type": TYPES[voice],
            "block_ids": [*agent["block_ids"], persona["id"]],
        })  # fmt: skip
        gid = f"group-{uuid.uuid4()}"
        self.groups[gid] = {
            **self._group_defaults(), "id": gid, "agent_ids": [sleeper["id"]],
            "manager_type": GROUPS[voice],
            "manager_agent_id": agent["id"], "sleeptime_agent_frequency": 5,
        }  # fmt: skip

    def sleeptime_view(self, out: dict[str, Any], include: list[str] | None) -> None:
        """Add the group an agent's view shows (only when asked for, as Letta)."""
        group = self.managed_group(out["id"])
        asked = include is not None and "agent.managed_group" in include
        out["managed_group"] = _public(group) if group is not None and asked else None

    def attach_sleeptime(self, aid: str, bid: str) -> None:
        """An attach to an agent reaches its `sleeptime_agent` too."""
        group = self.managed_group(aid)
        for other in group["agent_ids"] if group else ():
            a = self.agents.get(other)
            if a and a.get("agent_type") == "sleeptime_agent" and bid not in a["block_ids"]:
                a["block_ids"].append(bid)

    def delete_sleeptime(self, aid: str) -> None:
        """What deleting agent `aid` takes with it (called before it is deleted)."""
        group = self.managed_group(aid)
        if group is not None:
            del self.groups[group["id"]]
            for other in group["agent_ids"]:
                self.agents.pop(other, None)  # their blocks stay, as in Letta
            return
        if self.agents[aid].get("agent_type") not in TYPES:
            return
        for gid, g in list(self.groups.items()):
            if aid in g["agent_ids"] and g.get("manager_type") in GROUPS:
                del self.groups[gid]
                manager = self.agents.get(g.get("manager_agent_id") or "")
                if manager is not None:
                    manager["enable_sleeptime"] = None

    def sleeptime_patched(self, agent: dict[str, Any], body: Mapping[str, Any]) -> None:
        if body.get("enable_sleeptime"):
            self.make_sleeptime(agent)
