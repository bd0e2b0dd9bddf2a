"""Groups as letta-apply sees them (kinds.group): the manager types and their settings, the
declared and live groups, the groups' state as listed with their mark blocks, and the marks
letta-apply writes. See kinds.group for what Letta 0.16.8 does with them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ...core.jsonish import JsonObject, items, obj, opt_text, strings, text
from ...core.marks import digest
from ...core.model import MARK_KEY
from ..mark_blocks import MarkBlock, resolve, with_marks

MARK_LABEL = "letta-apply-group"
MANAGER_TYPES = ("supervisor", "round_robin", "dynamic", "sleeptime", "voice_sleeptime")
SETTINGS = (
    "max_turns",
    "termination_token",
    "sleeptime_agent_frequency",
    "max_message_buffer_length",
    "min_message_buffer_length",
)
# The manager's settings each manager type takes (Letta's *Manager schemas).
ALLOWED: Mapping[str, tuple[str, ...]] = {
    "supervisor": (),
    "round_robin": ("max_turns",),
    "dynamic": ("max_turns", "termination_token"),
    "sleeptime": ("sleeptime_agent_frequency",),
    "voice_sleeptime": ("max_message_buffer_length", "min_message_buffer_length"),
}
PLAIN = ("description", *SETTINGS)
BUFFERS = ("max_message_buffer_length", "min_message_buffer_length")  # sent together


@dataclass(frozen=True)
class DesiredGroup:
    """A group as the manifest declares it. `config` holds manager_type, description, agents
    (agent addresses, in turn order), and when declared manager_agent (an address), blocks
    (block addresses) and the manager's settings."""

    address: str
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()

    @property
    def manager_type(self) -> str:
        return text(self.config.get("manager_type"))

    @property
    def description(self) -> str:
        return text(self.config.get("description"))

    @property
    def agents(self) -> list[str]:
        """The member agents' addresses, in turn order."""
        return strings(self.config.get("agents"))

    @property
    def manager(self) -> str | None:
        """The manager agent's address (None: the group has none)."""
        return opt_text(self.config.get("manager_agent"))

    @property
    def blocks(self) -> list[str]:
        """The shared blocks' addresses, sorted."""
        return strings(self.config.get("blocks"))


@dataclass(frozen=True)
class LiveGroup:
    id: str
    manager_type: str
    description: str
    agent_ids: tuple[str, ...]
    blocks: tuple[str, ...]  # shared blocks letta-apply attached, by address (from the mark)
    manager_agent_id: str | None
    settings: Mapping[str, object] = field(default_factory=dict)
    mark: Mapping[str, object] = field(default_factory=dict)
    mark_block: str | None = None  # the id of the block holding the mark

    @classmethod
    def from_api(cls, raw: Mapping[str, object], mark: MarkBlock | None = None) -> LiveGroup:
        """A group as listed, with the mark block naming it (None: no mark names it)."""
        marked = mark.mark if mark else {}
        return cls(
            str(raw["id"]),
            str(raw.get("manager_type") or ""),
            str(raw.get("description") or ""),
            tuple(strings(raw.get("agent_ids"))),
            tuple(map(str, items(marked.get("blocks")))),
            opt_text(raw.get("manager_agent_id")),
            {k: raw[k] for k in SETTINGS if raw.get(k) is not None},
            dict(marked),
            mark.id if mark else None,
        )


@dataclass(frozen=True)
class GroupState:
    """Every group on the server (they cannot be filtered by mark), and the stack's mark
    blocks, oldest first."""

    groups: tuple[Mapping[str, object], ...] = ()
    marks: tuple[MarkBlock, ...] = ()
    listed: bool = True  # False: the groups were not listed (the stack has none to read)

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by a group given it (kinds.mark_blocks)."""
        return resolve(self.marks, self.groups, claimed)

    def live(self) -> list[LiveGroup]:
        """Groups with their marks (a group no mark block names has none)."""
        return with_marks(self.groups, self.resolved(), LiveGroup.from_api)


def group_applied(dg: DesiredGroup) -> JsonObject:
    """Digests of what letta-apply writes for a group, as the manifest says it (fields under
    ignore_changes apart: a change of them must not write the marks)."""
    config = sorted((k, v) for k, v in dg.config.items() if k not in dg.ignore)
    out: JsonObject = {k: digest(v) for k, v in config}
    if dg.prevent_destroy:
        out["prevent_destroy"] = True
    return out


def mark_body(stack: str, dg: DesiredGroup, **extra: str) -> JsonObject:
    """The mark block's metadata, without the group id (known once the group is made)."""
    mark: JsonObject = {"stack": stack, "address": dg.address, **extra}
    mark["applied"] = group_applied(dg)
    # The record of what letta-apply attached (Letta does not report it). Under
    # ignore_changes it is dropped: attaching again, once compared, is harmless.
    if "blocks" in dg.config and "blocks" not in dg.ignore:
        mark["blocks"] = dg.blocks
    return {MARK_KEY: mark}


def claims(sent: Mapping[str, object]) -> JsonObject:
    """What identifies a group a create sent (groups have no name): its intent's claims."""
    config = obj(sent.get("manager_config"))
    return {
        "manager_type": config.get("manager_type"),
        "agent_ids": items(sent.get("agent_ids")),
        "manager_agent_id": config.get("manager_agent_id"),
        "description": sent.get("description"),
    }


def claimed(claims: Mapping[str, object], raw: Mapping[str, object]) -> bool:
    """Whether a group, as listed, answers a create's claims."""
    return (
        raw.get("manager_type") == claims.get("manager_type")
        and items(raw.get("agent_ids")) == items(claims.get("agent_ids"))
        and raw.get("manager_agent_id") == claims.get("manager_agent_id")
        and (raw.get("description") or "") == claims.get("description")
    )
