"""Identities: `identities:`, addressed identity.<key> (Letta's `/v1/identities/`: the users,
organizations and others agents act for). Agents and shared blocks name theirs by key
(`identities: [key]`).

Where the marks live: Letta's identities carry no tags and no metadata, so the mark (stack,
address, field digests) is one entry of the identity's own `properties`, under the reserved key
`letta_apply` with type `json`. That is safe: the manifest may not declare that key, Letta never
writes it, and an identity made by hand or by another tool does not carry it, so ownership never
rests on a name or an identifier_key matching. `identifier_key` is unique per project on the
server: a declared key already held by an identity the stack does not own is a clash, refused
with the hint to import it, never taken over.

An agent's identities are a field of the agent (`identity_ids`). A shared block's are attached
with the block routes; they are read from each of the stack's identities' block listing, only
when some block declares identities.

Identities are listed (one listing of the server's: they cannot be filtered by mark) only for a
stack that declares identities or carries the identities flag (kinds.flags): a stack without
any never asks `/v1/identities/`, which Letta Cloud marks deprecated.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from ...core.changes import (
    CREATE,
    DELETE,
    NEW,
    Change,
    FieldDiff,
    Why,
)
from ...core.jsonish import JsonObject, obj, objs, text
from ...core.marks import digest, has_secret, sensitive_fields, sensitive_names
from ...core.model import MARK_KEY, SHOWN, Desired, Import, Live
from ...errors import ApiError, Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ...server.routes import Route
from ..base import Field, Kind, Listing, Shape
from ..block.kind import BLOCKS_DECLARED
from ..context import Context, Matched, Run, Update
from ..declaring import entries, ignored, prevents_destroy, same_names
from ..matching import one_per_address
from ..named import refuse_taken
from ..resource import applied_of
from ..writing import Export

ROUTE = Route("/v1/identities/")

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA451", "ManifestError", "identifier_key used twice",
       "Two identities of the manifest have the same identifier_key (their key, unless set); "
       "identifier keys are unique on a server.",
       "Give each identity its own identifier_key.")
define("LA452", "ManifestError", "identities on an agent's own block",
       "An entry of an agent's `memory_blocks` sets `identities`; identities belong to shared "
       "blocks and to agents.",
       "Set them on the agent, or make the block a shared one.")
define("LA453", "ManifestError", "no such identity",
       "An agent's or shared block's `identities` names a key that `identities:` does not "
       "declare.",
       "Declare the identity, or fix the key.")
# fmt: on

FIELDS = ("identifier_key", "name", "identity_type")
_PROPERTY_TYPES = ((bool, "boolean"), ((int, float), "number"), (str, "string"))


@dataclass(frozen=True)
class DesiredIdentity:
    """An identity as the manifest declares it; `config` holds identifier_key, name,
    identity_type and, when declared, properties (a mapping of key to value)."""

    address: str
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()


@dataclass(frozen=True)
class LiveIdentity:
    id: str
    identifier_key: str
    name: str
    identity_type: str
    properties: Mapping[str, object] = field(default_factory=dict)  # key -> value, mark apart
    mark: Mapping[str, object] = field(default_factory=dict)

    @classmethod
    def from_api(cls, raw: Mapping[str, object]) -> LiveIdentity:
        """An identity as Letta lists it: its properties (`key`, `value`, `type` each), one of
        them the mark."""
        props: JsonObject = {}
        mark: Mapping[str, object] = {}
        for p in objs(raw.get("properties")):
            key, value = p.get("key"), p.get("value")
            if key == MARK_KEY and isinstance(value, Mapping):
                mark = value
            elif isinstance(key, str):
                props[key] = value
        return cls(
            str(raw["id"]), text(raw.get("identifier_key")), text(raw.get("name")),
            text(raw.get("identity_type")), props, mark,
        )  # fmt: skip


@dataclass(frozen=True)
class IdentityState:
    """Every identity on the server (they cannot be filtered by mark), and the blocks attached
    to each of the stack's identities (read only when a block declares identities)."""

    identities: tuple[LiveIdentity, ...] = ()
    blocks: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def properties(values: Mapping[str, object], mark: Mapping[str, object]) -> list[JsonObject]:
    """Letta's property list: each value with its type, and the mark as one more property."""
    out: list[JsonObject] = [{"key": k, "value": v, "type": _type_of(v)} for k, v in values.items()]
    return [*out, {"key": MARK_KEY, "value": dict(mark), "type": "json"}]


def _type_of(value: object) -> str:
    for types, name in _PROPERTY_TYPES:
        if isinstance(value, types):
            return name
    return "json"


def identity_applied(di: DesiredIdentity) -> JsonObject:
    """Digests of what letta-apply writes for an identity; fields holding sensitive values (a
    property's value) get none."""
    out: JsonObject = {k: digest(di.config[k]) for k in FIELDS}
    props = di.config.get("properties")
    if props is not None and not has_secret(props):
        out["properties"] = digest(dict(obj(props)))
    if di.prevent_destroy:
        out["prevent_destroy"] = True
    names = sensitive_fields(di.config, plain=(), mappings=("properties",))
    return {**out, **sensitive_names(names)}


def mark(stack: str, di: DesiredIdentity) -> JsonObject:
    return {"stack": stack, "address": di.address, "applied": identity_applied(di)}


class IdentityKind(Kind[DesiredIdentity, LiveIdentity, IdentityState]):
    name: ClassVar[str] = "identity"
    section: ClassVar[str] = "identities"
    id_prefix: ClassVar[str] = "identity-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
    fields: ClassVar[tuple[Field, ...]] = (
        Field("identifier_key"),
        Field("name"),
        Field("identity_type"),
        Field("properties"),
    )
    marks: ClassVar[str] = f"the `{MARK_KEY}` entry of `properties` (identities have no tags)"
    shape: ClassVar[Shape] = "parallelogram"
    import_by_name: ClassVar[bool] = True  # by identifier_key
    # Identities cannot be listed by the stack's tag, and Letta Cloud marks their routes
    # deprecated: a stack that holds none never lists them (kinds.flags).
    listing: ClassVar[Listing] = "flag"
    sensitive_in: ClassVar[tuple[str, ...]] = ("properties",)

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        """identifier_keys are unique on the server: two entries may not share one."""
        names = [
            (key, spec.get("identifier_key", key), "identifier_key" in spec)
            for key, spec in obj(data.get(self.section)).items()
            if isinstance(spec, dict)
        ]
        unique = "identifier keys are unique on a Letta server"
        errors = same_names(doc, self.section, names, "identifier_key", "LA451", unique)
        return errors + _references(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredIdentity]:
        out: dict[str, DesiredIdentity] = {}
        for key, spec in entries(data, self.section):
            config: JsonObject = {
                "identifier_key": spec.get("identifier_key", key),
                "name": spec.get("name", key),
                "identity_type": spec["identity_type"],
            }
            if "properties" in spec:
                config["properties"] = dict(obj(spec["properties"]))
            out[f"identity.{key}"] = DesiredIdentity(
                f"identity.{key}", config, prevents_destroy(spec), ignored(spec)
            )
        return out

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        return list(ROUTE.list(client))

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveIdentity | str, object]:
        """From the listing already read: by id, or by identifier_key (given as `name`)."""
        for found in map(LiveIdentity.from_api, objs(raw.get("identity"))):
            if found.id == imp.id or (imp.name is not None and found.identifier_key == imp.name):
                return found, None
        return f"no such identity on the server: {imp.id or imp.name}", None

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> IdentityState:
        return IdentityState(tuple(map(LiveIdentity.from_api, objs(raw.get("identity")))))

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> IdentityState:
        state = self.state_of(live)
        if not any("identities" in b.config for b in BLOCKS_DECLARED.of(desired).values()):
            return state
        ours = self.match(desired.stack, live).pool.values()
        blocks = {
            i.id: tuple(str(b["id"]) for b in ROUTE.at(i.id, "blocks").list(client)) for i in ours
        }
        return IdentityState(state.identities, blocks)

    def resources(self, state: IdentityState) -> Iterable[LiveIdentity]:
        return state.identities

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveIdentity]:
        found = self.state_of(live).identities
        pool, notes = one_per_address(found, stack, self.name, "identity")
        return Matched(pool, {a: i.id for a, i in pool.items()}, notes)

    def create(self, ctx: Context, declared: DesiredIdentity) -> None:
        di = declared
        key = text(di.config["identifier_key"])
        holder = self.clash(ctx.live, key)
        if holder:
            what = f"an identity with identifier_key '{key}'"
            hint = (
                f"adopt it with an `imports:` entry ({{to: {di.address}, name: {key}}}), or "
                "declare another identifier_key"
            )
            refuse_taken(ctx, di.address, what, holder, hint)
            return
        body: JsonObject = {k: di.config[k] for k in FIELDS}
        body["properties"] = properties(obj(di.config.get("properties")), mark(ctx.stack, di))
        diffs = [FieldDiff(k, None, di.config[k], NEW) for k in FIELDS]
        if "properties" in di.config:
            diffs.append(FieldDiff("properties", None, dict(obj(di.config["properties"])), NEW))
        ctx.changes.append(
            Change(di.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,), kind=self.name)
        )

    def update(
        self, ctx: Context, declared: DesiredIdentity, found: LiveIdentity, *, adopt: bool
    ) -> None:
        di, li = declared, found
        u = Update(ctx, di, None if adopt else applied_of(li))
        u.fields(li, FIELDS)
        u.mapping("properties", li.properties)
        u.protection(bool(li.mark) or adopt)
        if u.needed(adopt=adopt):
            # The mark is a property: properties are written whole, the live ones kept when
            # the manifest leaves them out.
            values = obj(di.config["properties"]) if "properties" in di.config else li.properties
            u.body["properties"] = properties(values, mark(ctx.stack, di))
            u.emit(self.name, li.id, adopt=adopt)

    def delete(self, ctx: Context, address: str, found: LiveIdentity, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        ctx.changes.append(Change(address, DELETE, found.id, why=(why,), kind=self.name))

    def fingerprint(self, resource: LiveIdentity, blank: frozenset[str]) -> str:
        i = resource
        props = {k: SHOWN if f"properties.{k}" in blank else v for k, v in i.properties.items()}
        return digest([i.id, i.identifier_key, i.name, i.identity_type, props, dict(i.mark)])

    def describe(self, resource: LiveIdentity, live: Live, hidden: frozenset[str]) -> str:
        return f"identifier_key={resource.identifier_key!r}  name={resource.name!r}"

    def created_name(self, change: Change) -> str:
        return str(change.body.get("identifier_key", ""))

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state = self.state_of(live)
        return tuple(i.id for i in state.identities if i.identifier_key == name and not i.mark)

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        """The mark is one of the properties: they are written back whole without it."""
        route = ROUTE.at(str(change.remote_id))
        try:
            found = obj(route.get(run.client))
        except ApiError as e:
            if e.status == 404:
                return
            raise
        kept = [p for p in objs(found.get("properties")) if p.get("key") != MARK_KEY]
        route.patch(run.client, {"properties": kept})

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        c = run.client
        if change.action == CREATE:
            created = ROUTE.post(c, body, find=lambda: _find(run, change))
            rid = str(obj(created)["id"])
            run.record(change.address, rid)
            return rid
        rid = change.remote_id or ""
        if change.action == DELETE:
            ROUTE.at(rid).delete(c)
        else:
            ROUTE.at(rid).patch(c, body)
        return rid

    def export(self, found: LiveIdentity) -> JsonObject:
        out: JsonObject = {"identifier_key": found.identifier_key, "name": found.name}
        out["identity_type"] = found.identity_type
        if found.properties:
            out["properties"] = dict(found.properties)
        return out

    # -- writing a manifest (kinds.writing) ----------------------------------------------------

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_identities  # builds on this module

        return export_identities(self, ex)


def _find(run: Run, change: Change) -> JsonObject | None:
    """The identity an ambiguous create may have made: identifier keys are unique, so one
    filtered listing says, and its mark says whether it is ours."""
    key = text(change.body["identifier_key"])
    for raw in ROUTE.list(run.client, {"identifier_key": key}):
        found = LiveIdentity.from_api(raw)
        if (found.mark.get("stack"), found.mark.get("address")) == (run.stack, change.address):
            return dict(raw)
    return None


def _references(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Agents' and shared blocks' `identities:` name declared identities."""
    section = data.get("identities")
    declared = sorted(section) if isinstance(section, dict) else []
    errors: list[Diagnostic] = []
    agents = data.get("agents")
    for key, spec in (agents if isinstance(agents, dict) else {}).items():
        own = spec.get("memory_blocks") if isinstance(spec, dict) else None
        for i, mb in enumerate(own if isinstance(own, list) else []):
            if isinstance(mb, dict) and "identities" in mb:
                at = ("agents", key, "memory_blocks", i, "identities")
                errors.append(
                    doc.diag(
                        at,
                        f"agents.{key}.memory_blocks[{i}].identities: identities belong to "
                        "shared blocks (under `blocks:`) and to agents, not to an agent's own "
                        "blocks",
                        code="LA452",
                        key=True,
                    )
                )
    for kind in ("agents", "blocks"):
        entries = data.get(kind)
        for key, spec in (entries if isinstance(entries, dict) else {}).items():
            refs = spec.get("identities") if isinstance(spec, dict) else None
            for i, ref in enumerate(refs if isinstance(refs, list) else []):
                if not isinstance(ref, str) or ref in declared:
                    continue
                hint = difflib.get_close_matches(ref, declared, n=1)
                known = (
                    f"; did you mean '{hint[0]}'?" if hint
                    else f" (declared: {', '.join(declared)})" if declared
                    else " (the manifest declares no identities under 'identities')"
                )  # fmt: skip
                errors.append(
                    doc.diag(
                        (kind, key, "identities", i),
                        f"{kind}.{key}.identities[{i}]: no identity {ref!r} is declared{known}",
                        code="LA453",
                    )
                )
    return errors
