"""An agent's secrets (kinds.agent): Letta's `secrets` (and their older name,
`tool_exec_environment_variables`), the environment its tools run with.

What Letta 0.16.8 does with them decides how they are compared:
- it returns their values in plain with `include=agent.secrets`, so a declared value is compared
  with the live one in memory, and neither is ever put in a change, a mark or a plan file;
- a PATCH of `secrets` replaces the whole set, and every PATCH of it, whoever sends it, gives
  every secret a new row id (`agent-env-...`); other PATCHes keep them.

So the marks keep, for each secret letta-apply wrote, its name and the id of the row the server
made for it: never the value nor a hash of it. A secret whose row id is still the recorded one
and whose value differs changed in the manifest; one whose row id changed was rewritten on the
server since (drift). Secrets on the agent that the stack never wrote (set by hand) are left
alone: an update carries them over, read again at apply time (`LIVE`), and the plan notes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...core.changes import DRIFT, MANIFEST, FieldDiff, Why
from ...core.jsonish import JsonObject, obj, objs
from ...core.model import MARK_KEY, Sensitive, is_secret
from ...core.sensitive import MASKED
from ...errors import define

if TYPE_CHECKING:
    from ...errors import Diagnostic
    from ...manifest.files import Document
    from ..context import Context, Update
    from .model import DesiredAgent, LiveAgent

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
# fmt: on

NAMES = ("secrets", "tool_exec_environment_variables")
"""The manifest's names for an agent's secrets (Letta keeps both in one place)."""

LIVE = "$live_secret"
"""In an update's body, a secret set by hand: its value is read again when the update is made."""

WRITTEN = "$written"
"""In a mark, a secret this change writes: the server's row id is recorded once it is made."""


@dataclass(frozen=True)
class LiveSecret:
    """A secret on an agent: the server's row id and the value (masked wherever it is shown)."""

    id: str
    value: Sensitive


def live_secrets(raw: object) -> dict[str, LiveSecret]:
    """The secrets of an agent as the server returns them (`include=agent.secrets`)."""
    out: dict[str, LiveSecret] = {}
    for s in objs(raw):
        key = s.get("key")
        if isinstance(key, str):
            out[key] = LiveSecret(str(s.get("id") or ""), Sensitive(s.get("value") or ""))
    return out


def declared_secrets(spec: Mapping[str, object]) -> JsonObject | None:
    """The secrets an agent declares under either name, or None when it declares none."""
    found = [obj(spec[n]) for n in NAMES if n in spec]
    if not found:
        return None
    return {k: v for d in found for k, v in d.items()}


def recorded(applied: Mapping[str, object] | None) -> dict[str, str]:
    """Name -> row id of the secrets letta-apply last wrote, from an agent's mark."""
    got = (applied or {}).get("secrets")
    return {str(k): str(v) for k, v in got.items()} if isinstance(got, Mapping) else {}


def _field(key: str) -> str:
    return f"secrets['{key}']"


def plan_secrets(ctx: Context, u: Update, da: DesiredAgent, la: LiveAgent) -> dict[str, str]:
    """Compare the declared secrets with the agent's; add the differences and the request that
    converges them to `u`. Returns what the agent's mark records for them (name -> row id, or
    WRITTEN)."""
    was = recorded(u.applied)
    if "secrets" in da.ignore or (da.config.get("secrets") is None and not was):
        return was
    declared = obj(da.config.get("secrets"))
    diffs: list[FieldDiff] = []
    for key, value in sorted(declared.items()):
        live = la.secrets.get(key)
        if live is None:
            # Written before and gone now: removed on the server.
            diffs.append(FieldDiff(_field(key), None, value, DRIFT if key in was else MANIFEST))
        elif live.value != value:
            why: Why = MANIFEST if was.get(key) == live.id else DRIFT
            diffs.append(FieldDiff(_field(key), MASKED, value, why))
    removed = sorted(k for k in was if k not in declared and k in la.secrets)
    diffs.extend(FieldDiff(_field(k), MASKED, None, MANIFEST) for k in removed)
    by_hand = sorted(k for k in la.secrets if k not in declared and k not in was)
    for key in by_hand:
        ctx.notes.append(
            f"{da.address}: secret '{key}' was set on the server, not by this stack; left alone"
        )
    if not diffs:
        return {k: la.secrets[k].id for k in declared}
    u.diffs.extend(diffs)
    u.body["secrets"] = {**{k: {LIVE: k} for k in by_hand}, **declared}
    return dict.fromkeys(declared, WRITTEN)


def with_recorded(metadata: Mapping[str, object], ids: Mapping[str, str]) -> JsonObject:
    """`metadata` with the mark recording the secrets' row ids `ids`."""
    mark = dict(obj(metadata.get(MARK_KEY)))
    mark["applied"] = {**obj(mark.get("applied")), "secrets": dict(ids)}
    return {**metadata, MARK_KEY: mark}


def written_ids(
    metadata: Mapping[str, object], answer: Mapping[str, object]
) -> dict[str, str] | None:
    """The row ids the server gave the secrets a change wrote (from its answer), for the mark;
    None when the mark records none to fill in."""
    mark = metadata.get(MARK_KEY)
    applied = mark.get("applied") if isinstance(mark, Mapping) else None
    wanted = recorded(applied if isinstance(applied, Mapping) else None)
    if WRITTEN not in wanted.values():
        return None
    made = live_secrets(answer.get("secrets"))
    return {k: made[k].id if k in made else "" for k in wanted}


def carried_over(body: Mapping[str, object], live: Mapping[str, LiveSecret]) -> JsonObject:
    """The secrets an update sends: those set by hand as they are on the agent now (those gone
    since the plan are left out)."""
    out: JsonObject = {}
    for k, v in body.items():
        if isinstance(v, Mapping) and LIVE in v:
            if k in live:
                out[k] = live[k].value
        else:
            out[k] = v
    return out


def check_secrets(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
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
