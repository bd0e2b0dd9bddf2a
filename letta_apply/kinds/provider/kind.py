"""BYOK providers: `providers:`, addressed provider.<key> (Letta's `/v1/providers/`): the model
providers an organization brings its own keys for (OpenAI or any OpenAI-compatible endpoint,
Anthropic, Azure, Bedrock, Ollama...), whose models agents then run on.

Where the marks live: providers carry no tags and no metadata. The mark (stack, address, the
provider's id, digests of its plain fields, the names of its sensitive ones, the provider's
`updated_at` as letta-apply's last write left it) is kept in a *mark block* (kinds.mark_blocks)
labelled `letta-apply-provider`, as MCP servers do. Ownership of a provider is that block naming
its id, nothing else:

- a provider made by hand or by another tool is named by no mark block, so it is never changed,
  pruned or destroyed, even when its name is the declared one; Letta keeps names unique in an
  organization, so a declared name held by a provider the stack does not own is a clash, refused
  with the hint to import it;
- a create's mark cannot travel with it: the mark block is written first, as an intent naming
  the name sent, so a run killed right after the create leaves a provider the next run adopts
  (and an intent nothing answers is reused by the next create, or deleted).

What Letta 0.16.8 does decides the rest (letta/services/provider_manager.py,
letta/server/rest_api/routers/v1/providers.py):

- a create stores the provider, then asks the provider itself for its models (best effort: a
  key that does not work still makes the provider, with no models). An `openai` provider whose
  base_url is not api.openai.com serves its models as `openai-proxy/<model>` (its embeddings as
  `<name>/<model>`); the other types as `<name>/<model>`;
- a create with the name of a provider deleted before restores that one (the same id);
- PATCH takes api_key (always required), access_key, base_url, region, api_version; a null is
  ignored (a field cannot be cleared), and the models are not listed again: letta-apply asks for
  that (`PATCH .../refresh`) after each update it sends;
- name and provider_type cannot be changed: a new name replaces the provider, the new one made
  first (its mark names the one it replaces, so a run stopped before deleting that one leaves
  it to the next run's prune), then the old one deleted; a new type under the same name is
  refused, Letta holding one provider of a name;
- the listing returns every key as the server stores it: in plain on a server without
  LETTA_ENCRYPTION_KEY (0.16.8's default), encrypted otherwise (Letta Cloud). A plain key is
  compared in memory, never shown, digested or put in a mark; whether it differs because the
  manifest changed or because it was rewritten on the server is told by `updated_at` (moved by
  every write, and recorded in the mark after letta-apply's): moved, with no other field
  rewritten, the key was. An encrypted key cannot be compared: it is sent with the create and
  with every update, and a plan says so;
- an error may quote what the request sent (a duplicate name's error echoes the key): the
  errors of requests that carry keys are masked;
- a delete removes the provider's models; agents using them keep their model settings and fail
  on their next step, so a provider is not deleted while agents outside the stack use it, or
  while an agent the manifest still declares stays on one of its models (kinds.provider.users).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from ...core.changes import (
    CREATE,
    DELETE,
    DESTROY,
    DRIFT,
    IMPORT,
    MANIFEST,
    NEW,
    REPLACE,
    UPDATE,
    Change,
    FieldDiff,
    Problem,
    Why,
)
from ...core.jsonish import JsonObject, obj, objs, opt_text, strings, text
from ...core.marks import digest
from ...core.model import Desired, Import, Live
from ...core.sensitive import MASKED
from ...errors import Diagnostic, define
from ...manifest.files import Document
from ...server.client import LettaClient
from ..base import Field, Kind, Listing, Shape
from ..context import Context, Matched, Run, Update
from ..mark_blocks import (
    MarkedLeft,
    drop_marks,
    left_of,
    prune_leftovers,
    prune_marks,
    read_marks,
    reuse,
    unanswered,
)
from ..matching import replacement_wins
from ..resource import applied_of
from ..serves_models import ServesModels
from ..writing import Export
from . import handles, requests
from .model import (
    MARK_LABEL,
    PLAIN,
    SECRETS,
    SECTION,
    DesiredProvider,
    LiveProvider,
    ProviderState,
    check_providers,
    create_body,
    hidden_fields,
    key_to_send,
    mark_body,
    provider_applied,
    replaced_by,
    secret,
)
from .requests import ROUTE
from .users import agents_using, kept_for_agents

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA642", "Problem", "a provider's type changed under its name",
       "The manifest declares another provider_type for a provider of the same name: Letta "
       "can neither change a provider's type nor hold two providers of one name.",
       "Give it a new name (it is then replaced, the new one made first), or remove it from "
       "the manifest, apply, and declare it again.")
# fmt: on

__all__ = ["MARK_LABEL", "LiveProvider", "ProviderKind", "ProviderState"]


class ProviderKind(Kind[DesiredProvider, LiveProvider, ProviderState], ServesModels):
    name: ClassVar[str] = "provider"
    section: ClassVar[str] = SECTION
    id_prefix: ClassVar[str] = "provider-"
    same_listing: ClassVar[bool] = True  # the server's whole list: stacks share it
    fields: ClassVar[tuple[Field, ...]] = (
        Field("name", "replace"),
        Field("provider_type", "replace"),
        Field("api_key", "sensitive"),
        Field("access_key", "sensitive"),
        *(Field(k) for k in PLAIN),
    )
    marks: ClassVar[str] = (
        f"the metadata of a `{MARK_LABEL}` block tagged with the stack (providers have no tags "
        "and no metadata)"
    )
    shape: ClassVar[Shape] = "hexagon"
    import_by_name: ClassVar[bool] = True
    listing: ClassVar[Listing] = "marks"
    mark_label: ClassVar[str] = MARK_LABEL
    sensitive_in: ClassVar[tuple[str, ...]] = ("api_key", "access_key")

    # -- the manifest ----------------------------------------------------------------------

    def check(self, doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
        return check_providers(doc, data)

    def declare(self, doc: Document, data: Mapping[str, object]) -> dict[str, DesiredProvider]:
        out: dict[str, DesiredProvider] = {}
        for key, entry in obj(data.get(self.section)).items():
            spec = obj(entry)
            config: JsonObject = {"provider_type": spec["provider_type"]}
            config.update((k, spec[k]) for k in PLAIN if k in spec)
            # Keys are always sensitive, from a variable or written in the manifest.
            config.update((k, secret(spec[k])) for k in SECRETS if k in spec)
            address = f"{self.name}.{key}"
            out[address] = DesiredProvider(
                address, str(spec.get("name", key)), config,
                bool(spec.get("prevent_destroy", False)),
                frozenset(strings(spec.get("ignore_changes"))),
            )  # fmt: skip
        return out

    def hidden(self, declared: DesiredProvider) -> frozenset[str]:
        return hidden_fields(declared.config)

    # -- the models it serves (kinds.serves_models) ---------------------------------------------

    def model_handle(
        self, desired: Desired, address: str, model: str, *, embedding: bool
    ) -> str | None:
        dp = self.declared(desired).get(address)
        if dp is None:
            return None
        return handles.handle(dp.name, dp.provider_type, dp.base_url, model, embedding=embedding)

    def serving(self, desired: Desired, handle: str, *, embedding: bool) -> list[str]:
        return [
            address for address, dp in self.declared(desired).items()
            if handles.serves(dp.name, dp.provider_type, dp.base_url, handle, embedding=embedding)
        ]  # fmt: skip

    def lists_models(self, change: Change) -> bool:
        """Letta lists a provider's models when it makes it, and letta-apply asks it to after
        an update that writes something (requests.update)."""
        if change.action in (CREATE, REPLACE):
            return True
        return change.action in (UPDATE, IMPORT) and bool(change.body.get("patch"))

    # -- reading ---------------------------------------------------------------------------

    def read(self, client: LettaClient, stack: str, desired: Desired | None) -> object:
        return list(ROUTE.list(client))

    def marked(self, blocks: Sequence[Mapping[str, object]], stack: str) -> bool:
        return bool(read_marks(blocks, stack, MARK_LABEL, self.name))

    def state(
        self, raw: Mapping[str, object], seen: Mapping[str, object], stack: str
    ) -> ProviderState:
        marks = read_marks(objs(raw.get("block")), stack, MARK_LABEL, self.name)
        listing = raw.get(self.name)
        return ProviderState(tuple(objs(listing)), marks, listing is not None)

    def find(
        self, client: LettaClient, imp: Import, raw: Mapping[str, object]
    ) -> tuple[LiveProvider | str, object]:
        """From the listing already read: by id, or by name."""
        for p in objs(raw.get(self.name)):
            if p.get("id") == imp.id or (imp.name is not None and p.get("name") == imp.name):
                return LiveProvider.from_api(p), None
        return f"no such provider on the server: {imp.id or imp.name}", None

    def complete(
        self, client: LettaClient, desired: Desired, live: Live, doomed: set[str]
    ) -> ProviderState:
        """The agents using each provider a plan may delete or replace, read only then."""
        state = self.state_of(live)
        ids = sorted(i for i in doomed if i.startswith(self.id_prefix))
        if not ids:
            return state
        users = agents_using(client, state, ids)
        return ProviderState(state.providers, state.marks, state.listed, users)

    def deletion_candidates(self, desired: Desired, live: Live, *, destroy: bool) -> set[str]:
        """What prune deletes, and what a change of name or provider_type replaces."""
        out = super().deletion_candidates(desired, live, destroy=destroy)
        declared = self.declared(desired)
        matched = self.match(desired.stack, live)
        for address, found in matched.pool.items():
            dp = declared.get(address)
            if dp is not None and replaced_by(dp, found):
                out.add(found.id)
        return out | {p.id for _, p in left_of(matched).leftovers}

    def resources(self, state: ProviderState) -> Iterable[LiveProvider]:
        return state.live()

    # -- planning --------------------------------------------------------------------------

    def match(self, stack: str, live: Live) -> Matched[LiveProvider]:
        """A provider is the stack's when one of its mark blocks names it. Should two carry one
        address (a replacement interrupted before it deleted the old one), the replacement
        wins and the one it replaces is left for prune to finish."""
        state = self.state_of(live)
        pool, leftovers = replacement_wins(state.live(), stack, self.name)
        ids = [str(p["id"]) for p in state.providers]
        stale = unanswered(state.resolved(), ids) if state.listed else ()
        extra = MarkedLeft(stale, leftovers)
        return Matched(pool, {a: p.id for a, p in pool.items()}, extra=extra)

    def _kept_for_agents(
        self, ctx: Context, address: str, lp: LiveProvider, *, destroy: bool
    ) -> bool:
        """Keep a provider agents still run on (kinds.provider.users): a problem."""
        users = self.state_of(ctx.live).users.get(lp.id, ())
        return kept_for_agents(ctx, address, lp, users, destroy=destroy)

    def _holders(self, ctx: Context, name: str, own: str | None = None) -> list[str]:
        """Ids of providers named `name` that are not the stack's (nor `own`)."""
        ours = {p.id for p in self.pool_of(ctx).values()}
        return [
            p.id for p in self.state_of(ctx.live).live()
            if p.name == name and p.id not in ours and p.id != own
        ]  # fmt: skip

    def _clash(self, ctx: Context, dp: DesiredProvider, holders: list[str]) -> None:
        ctx.refused.add(dp.address)
        ctx.problems.append(
            Problem(
                dp.address,
                f"a provider named '{dp.name}' already exists on the server and is not managed "
                f"by stack '{ctx.stack}' ({', '.join(holders)})",
                f"adopt it with an `imports:` entry ({{to: {dp.address}, name: {dp.name}}}), or "
                "declare another name",
                code="LA626",
            )
        )

    def create(self, ctx: Context, declared: DesiredProvider) -> None:
        dp = declared
        holders = self._holders(ctx, dp.name)
        if holders:
            self._clash(ctx, dp, holders)
            return
        body = {
            "provider": create_body(dp),
            "mark": mark_body(ctx.stack, dp),
            **reuse(ctx, self.name, dp.address),
        }
        diffs = [FieldDiff("name", None, dp.name, NEW)]
        diffs += [FieldDiff(k, None, v, NEW) for k, v in dp.config.items()]
        ctx.changes.append(
            Change(dp.address, CREATE, diffs=tuple(diffs), body=body, why=(NEW,), kind=self.name)
        )

    def update(
        self, ctx: Context, declared: DesiredProvider, found: LiveProvider, *, adopt: bool
    ) -> None:
        dp, lp = declared, found
        if replaced_by(dp, lp):
            self._replace(ctx, dp, lp)
            return
        u = Update(ctx, dp, None if adopt else applied_of(lp))
        u.fields(lp, PLAIN)
        # Written on the server since letta-apply's last write (its updated_at moved), and no
        # plain field says by what: a key that differs was rewritten there. Else the manifest's
        # key changed.
        moved = not adopt and lp.written not in (None, lp.updated_at)
        key_why: Why = DRIFT if moved and all(d.why != DRIFT for d in u.diffs) else MANIFEST
        for k in SECRETS:
            if not u.managed(k):
                continue
            live, wanted = getattr(lp, k), dp.config[k]
            if live is not None and live == wanted:
                continue
            if live is not None and lp.encrypted(k):
                ctx.notes.append(
                    f"{dp.address}: the server keeps its {k} encrypted (LETTA_ENCRYPTION_KEY; "
                    "Letta Cloud), so it cannot be compared with the manifest's: it is written "
                    "when the provider is made and with each of its updates"
                )
                continue
            u.diffs.append(FieldDiff(k, None if live is None else MASKED, wanted, key_why))
            u.body[k] = wanted
        patch = dict(u.body)
        if patch:
            # Letta takes no update without the key: the declared one, or the stored one when
            # the manifest lets it be (never the ciphertext of an encrypted one).
            patch = dict(sorted({"api_key": key_to_send(dp, lp), **patch}.items()))
        u.protection(bool(lp.mark) or adopt)
        marks_stale = not adopt and (u.applied or {}) != provider_applied(dp)
        if u.needed(adopt=adopt, also=bool(patch) or marks_stale):
            # A replacement's mark keeps naming what it replaced while that may still exist.
            kept = {k: lp.mark[k] for k in ("replaces",) if k in lp.mark}
            u.body = {
                "patch": patch, "mark": mark_body(ctx.stack, dp, **kept),
                "mark_block": lp.mark_block,
                "updated_at": lp.updated_at, "keys": _keys(dp, lp),
            }  # fmt: skip
            u.emit(self.name, lp.id, adopt=adopt)

    def _replace(self, ctx: Context, dp: DesiredProvider, lp: LiveProvider) -> None:
        """Make the provider under its new name, then delete the old one (see the module's
        docstring). Under the same name Letta cannot hold both: a new type alone is refused."""
        if lp.name == dp.name:
            ctx.refused.add(dp.address)
            ctx.problems.append(
                Problem(
                    dp.address,
                    f"the provider is of type {lp.provider_type}, and Letta can neither change "
                    f"that to {dp.provider_type} nor make a second provider named "
                    f"'{dp.name}' beside it",
                    "give it a new name (it is then replaced: the new one made first), or "
                    "remove it from the manifest, apply, and declare it again",
                    code="LA642",
                )
            )
            return
        if ctx.protected(lp, dp):
            ctx.refuse_destroy(dp.address, "replace")
            return
        if self._kept_for_agents(ctx, dp.address, lp, destroy=False):
            return
        holders = self._holders(ctx, dp.name, own=lp.id)
        if holders:
            self._clash(ctx, dp, holders)
            return
        reason = FieldDiff("name", lp.name, dp.name, ctx.why(applied_of(lp), "name", lp.name))
        made = [FieldDiff(k, None, v) for k, v in dp.config.items()]
        body: JsonObject = {
            "provider": create_body(dp),
            "mark": mark_body(ctx.stack, dp, replaces=lp.id),
            "replaces": {"provider": lp.id, "mark_block": lp.mark_block},
            **reuse(ctx, self.name, dp.address),
        }
        ctx.changes.append(
            Change(
                dp.address, REPLACE, lp.id, (reason, *made), body, why=(reason.why,),
                kind=self.name,
            )
        )  # fmt: skip
        ctx.replacing.add(dp.address)

    def prune(self, ctx: Context, *, destroy: bool) -> None:
        super().prune(ctx, destroy=destroy)
        prune_leftovers(ctx, self.name)  # what an interrupted replacement left behind
        prune_marks(ctx, self.name)

    def delete(self, ctx: Context, address: str, found: LiveProvider, why: Why) -> None:
        if ctx.protected(found, self.declared(ctx.desired).get(address)):
            ctx.refuse_destroy(address)
            return
        if self._kept_for_agents(ctx, address, found, destroy=why == DESTROY):
            return
        body = {"mark_block": found.mark_block}
        ctx.changes.append(Change(address, DELETE, found.id, body=body, why=(why,), kind=self.name))

    def fingerprint(self, resource: LiveProvider, blank: frozenset[str]) -> str:
        p = resource
        # Keys left out (a plain hash of a short key gives it away): `updated_at` changes with
        # every write, a key's included, so a saved plan still notices one.
        return digest(
            [p.id, p.name, p.provider_type, p.base_url, p.region, p.api_version,
             p.api_key is not None, p.access_key is not None, p.updated_at, dict(p.mark),
             p.mark_block]
        )  # fmt: skip

    def describe(self, resource: LiveProvider, live: Live, hidden: frozenset[str]) -> str:
        p = resource
        return f"name={p.name!r}  {p.provider_type}" + (f" {p.base_url}" if p.base_url else "")

    def created_name(self, change: Change) -> str:
        return str(obj(change.body.get("provider")).get("name", ""))

    def clash(self, live: Live, name: str) -> tuple[str, ...]:
        state = self.state_of(live)
        return tuple(p.id for p in state.live() if p.name == name and not p.mark)

    def names_taken(self, client: LettaClient, live: Live, names: set[str]) -> ProviderState:
        state = self.state_of(live)
        if names and not state.listed:
            return ProviderState(tuple(ROUTE.list(client)), state.marks)
        return state

    # -- applying --------------------------------------------------------------------------

    def unmark(self, run: Run, change: Change) -> None:
        drop_marks(run, MARK_LABEL, self.name, change.address)

    def apply(self, run: Run, change: Change, body: JsonObject) -> str:
        rid = change.remote_id or ""
        if change.action in (CREATE, REPLACE):
            made = requests.create(run, change, body)
            old = obj(body.get("replaces"))
            if old:
                requests.delete(run, text(old["provider"]), opt_text(old["mark_block"]))
            return made
        if change.action == DELETE:
            requests.delete(run, rid, opt_text(body.get("mark_block")))
            return rid or str(body.get("mark_block"))
        requests.update(run, change, body)
        return rid

    # -- export ----------------------------------------------------------------------------

    def export(self, found: LiveProvider) -> JsonObject:
        """The provider without its keys: they are declared from sensitive variables, never
        written into a manifest."""
        out: JsonObject = {"name": found.name, "provider_type": found.provider_type}
        out.update((k, getattr(found, k)) for k in PLAIN if getattr(found, k))
        return out

    def export_section(self, ex: Export) -> JsonObject:
        from .writing import export_providers  # builds on this module

        return export_providers(self, ex)


def _keys(dp: DesiredProvider, lp: LiveProvider) -> str | None:
    """How the server keeps the provider's keys, as far as is known without writing one: as
    its mark says, or in plain when the stored key is the declared one."""
    said = lp.mark.get("keys")
    if isinstance(said, str):
        return said
    plain = lp.api_key is not None and lp.api_key == dp.config.get("api_key")
    return "plain" if plain else None
