"""What a rule's expressions read about one resource (README, Policies):

- `resource`: the resource as the manifest declares it (templates expanded, variables
  interpolated; `{}` when it is no longer declared, a delete), every sensitive value in it
  replaced by "(sensitive)": a rule may test that one is there, never read it;
- `sensitive`: the paths (`auth_token`, `env.API_KEY`) of the values from sensitive variables;
- `change`: the planned change: `action` (create, update, replace, delete, import, attach,
  detach, forget, drift, none), `actions`, `fields` (name -> {before, after}, masked),
  `memory` (what a delete loses: messages, passages, written, unknown) and
  `allow_memory_loss`;
- `stack`: `name`, `counts` (kind -> resources declared), `templates` (template -> instances);
- `address`, `kind`, `template` (`agent.worker` for `agent.worker[eu]`; "" for none).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..core.changes import Change, Drift, Held, Plan
from ..core.model import SHOWN, Desired, is_secret, kind_of
from ..core.sensitive import Masker, is_sensitive

_TOP = re.compile(r"[a-z_]+\.[^.\[]+(?:\[[^\]]*\])?")
# Which action a resource's changes show as one, the first found winning.
_PRECEDENCE = ("replace", "delete", "create", "import", "update", "attach", "detach", "forget")

if TYPE_CHECKING:
    import cel


@dataclass(frozen=True)
class Subject:
    """One resource as rules see it: what applies_to matches, and the context expressions
    are evaluated in (built once, shared by every rule)."""

    address: str
    kind: str
    action: str
    tags: tuple[str, ...]
    context: cel.Context
    file: str = ""
    line: int = 0
    col: int = 0


def top_address(address: str) -> str:
    """The declared resource an address is in: `agent.x` for `agent.x.memory_blocks.persona`."""
    m = _TOP.match(address)
    return m.group(0) if m else address


def template_of(address: str) -> str:
    return address.split("[", 1)[0] if address.endswith("]") else ""


def plain(value: object, masker: Masker, path: str = "", found: list[str] | None = None) -> object:
    """`value` as CEL takes it (dicts, lists, text, numbers), each sensitive value replaced by
    SHOWN and its path added to `found`."""
    if is_secret(value) or (isinstance(value, str) and is_sensitive(value, masker)):
        if found is not None:
            found.append(path)
        return SHOWN
    if isinstance(value, Mapping):
        return {
            str(k): plain(v, masker, f"{path}.{k}" if path else str(k), found)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [plain(v, masker, f"{path}[{i}]", found) for i, v in enumerate(value)]
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    return str(value)


def _memory(held: Held | None) -> dict[str, object]:
    if held is None:
        return {"messages": 0, "passages": 0, "written": [], "unknown": []}
    return {
        "messages": held.messages or 0,
        "passages": (held.passages or 0) + (held.agent_passages or 0),
        "written": list(held.written),
        "unknown": list(held.unknown),
    }


def _stack(desired: Desired) -> dict[str, object]:
    addresses = list(desired.entries) or desired.addresses
    templates = Counter(t for a in addresses if (t := template_of(a)))
    return {
        "name": desired.stack,
        "counts": dict(Counter(kind_of(a) for a in addresses)),
        "templates": dict(templates),
    }


def subjects(
    desired: Desired,
    plan: Plan | None = None,
    *,
    drift: bool = False,
) -> list[Subject]:
    """Every resource the manifest declares and every other one the plan changes (a delete),
    as rules see them; with `drift`, each declared resource as the server now holds it (its
    drifted fields at their live values) and the action `drift` where it drifted."""
    import cel  # only once rules compiled: the library is there

    masker = Masker(desired.secrets)
    changes: dict[str, list[Change]] = {}
    drifts: dict[str, list[Drift]] = {}
    held: dict[str, Held] = {}
    if plan is not None:
        for c in plan.changes:
            changes.setdefault(top_address(c.address), []).append(c)
        for d in plan.drift:
            drifts.setdefault(top_address(d.address), []).append(d)
        held = {h.address: h for h in plan.memory}
    stack = _stack(desired)
    allowed = set(desired.allow_memory_loss)
    out = []
    for address in [*desired.entries, *(a for a in changes if a not in desired.entries)]:
        entry = desired.entries.get(address)
        found: list[str] = []
        resource = plain(entry.data if entry else {}, masker, "", found)
        assert isinstance(resource, dict)
        mine = changes.get(address, [])
        change = _change(mine, drifts.get(address, []) if drift else [], masker)
        facts = change.facts(_memory(held.get(address)), address in allowed)
        if drift:
            for name, diff in change.fields.items():
                if name in resource:
                    resource[name] = diff["after"]
        tags = resource.get("tags")
        context = cel.Context(
            {
                "resource": resource, "change": facts, "stack": stack, "address": address,
                "kind": kind_of(address), "template": template_of(address), "sensitive": found,
            }
        )  # fmt: skip
        out.append(
            Subject(
                address, kind_of(address), change.action,
                tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else (),
                context, *((entry.file, entry.line, entry.col) if entry else ("", 0, 0)),
            )
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class _Planned:
    action: str
    actions: list[str]
    fields: dict[str, dict[str, object]]

    def facts(self, memory: dict[str, object], allow_memory_loss: bool) -> dict[str, object]:
        return {
            "action": self.action, "actions": self.actions, "fields": self.fields,
            "memory": memory, "allow_memory_loss": allow_memory_loss,
        }  # fmt: skip


def _change(mine: Sequence[Change], drifted: Sequence[Drift], masker: Masker) -> _Planned:
    actions = sorted({c.action for c in mine}, key=_PRECEDENCE.index)
    fields: dict[str, dict[str, object]] = {}
    for c in mine:
        for d in c.diffs:
            fields[d.field] = _diff(d.before, d.after, masker)
    for dr in drifted:
        fields[dr.field] = _diff(dr.declared, dr.live, masker)
    action = actions[0] if actions else ("drift" if drifted else "none")
    return _Planned(action, list(actions), fields)


def _diff(before: object, after: object, masker: Masker) -> dict[str, object]:
    """A field's two sides; both masked when either is sensitive (the live side may hold an
    older secret, which the masker does not know)."""
    if is_sensitive(before, masker) or is_sensitive(after, masker):
        return {
            "before": None if before is None else SHOWN, "after": None if after is None else SHOWN
        }  # fmt: skip
    return {"before": plain(before, masker), "after": plain(after, masker)}
