"""What the kinds whose resources the server keeps unique by name share: a name held by a
resource the stack does not own is refused, never taken over (folders, identities, MCP servers,
providers); and, for those whose marks live in mark blocks (MCP servers, providers), the declared
resource (its name apart from the fields it sends), its secrets as Sensitive, and the digests
its mark records."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..core.changes import Problem
from ..core.jsonish import JsonObject
from ..core.marks import digest, sensitive_names
from ..core.model import Sensitive
from .context import Context


@dataclass(frozen=True)
class DesiredNamed:
    """A resource as the manifest declares it: its address, the unique name it takes on the
    server, and the fields it sends (`config`, secrets as Sensitive)."""

    address: str
    name: str
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


def secret(value: object) -> Sensitive:
    """A value that is always a secret, whether or not it came from a sensitive variable."""
    return value if isinstance(value, Sensitive) else Sensitive(str(value))


def named_applied(
    declared: DesiredNamed, name_field: str, plain: Iterable[str], hidden: frozenset[str]
) -> JsonObject:
    """Digests of what letta-apply writes (the name under `name_field`, the `plain` fields
    declared and not under ignore_changes), and the names of the sensitive ones (`hidden`)."""
    out: JsonObject = {name_field: digest(declared.name)}
    for k in plain:
        if k in declared.config and k not in declared.ignore:
            out[k] = digest(declared.config[k])
    if declared.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **sensitive_names(hidden)}


def refuse_taken(
    ctx: Context, address: str, what: str, holders: Iterable[str], hint: str
) -> None:
    """Refuse to make `address`: `what` (the resource as named, "a folder named 'x'") already
    exists on the server, held by `holders` outside the stack."""
    ctx.refused.add(address)
    ctx.problems.append(
        Problem(
            address,
            f"{what} already exists on the server and is not managed by stack '{ctx.stack}' "
            f"({', '.join(holders)})",
            hint,
            code="LA626",
        )
    )
