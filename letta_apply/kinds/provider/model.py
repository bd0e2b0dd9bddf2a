"""Providers as letta-apply sees them (kinds.provider): the declared and live providers, the rules
a manifest's `providers:` must follow, and the marks letta-apply writes. See kinds.provider for
what Letta 0.16.8 does with them."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...core.jsonish import JsonObject, obj, opt_text, text
from ...core.marks import digest, sensitive_names
from ...core.model import MARK_KEY, Sensitive
from ...errors import Diagnostic, define
from ...manifest.files import Document
from ..context import Users
from ..mark_blocks import MarkBlock, resolve, same, with_marks

# The problems this module reports, by code (docs/errors.md).
# fmt: off
define("LA481", "ManifestError", "provider name used twice",
       "Two providers of the manifest have the same name (their key, unless `name` is set); "
       "Letta keeps provider names unique in an organization.",
       "Give each provider its own name.")
# fmt: on

SECTION = "providers"
MARK_LABEL = "letta-apply-provider"
PLAIN = ("base_url", "region", "api_version")  # updated in place, compared as they are
SECRETS = ("api_key", "access_key")  # write-only: compared in memory, never shown or digested

# Letta's own test for a stored secret that is its ciphertext (letta/helpers/crypto_utils.py,
# is_encrypted): base64 of salt (16) + iv (12) + tag (16) + at least one byte.
_CIPHERTEXT_MIN = 16 + 12 + 16 + 1
_KEY_PREFIXES = (
    "sk-", "pk-", "api-", "key-", "token-", "Bearer ", "xoxb-", "xoxp-", "ghp_", "gho_", "ghu_",
    "ghs_", "ghr_", "AKIA", "ABIA", "ACCA", "ASIA",
)  # fmt: skip


@dataclass(frozen=True)
class DesiredProvider:
    """A provider as the manifest declares it. `config` holds provider_type and the fields
    declared: api_key, access_key (Sensitive), base_url, region, api_version."""

    address: str
    name: str
    config: Mapping[str, object] = field(default_factory=dict)
    prevent_destroy: bool = False
    ignore: frozenset[str] = frozenset()

    @property
    def provider_type(self) -> str:
        return text(self.config.get("provider_type"))

    @property
    def base_url(self) -> str | None:
        return opt_text(self.config.get("base_url"))


@dataclass(frozen=True)
class LiveProvider:
    """A provider as the listing shows it. Its keys are what the server stores: the key itself
    on a server without an encryption key (Letta 0.16.8's default), else its ciphertext."""

    id: str
    name: str
    provider_type: str
    base_url: str | None = None
    region: str | None = None
    api_version: str | None = None
    api_key: Sensitive | None = field(default=None, repr=False)
    access_key: Sensitive | None = field(default=None, repr=False)
    updated_at: str | None = None
    mark: Mapping[str, object] = field(default_factory=dict)
    mark_block: str | None = None

    @classmethod
    def from_api(cls, raw: Mapping[str, object], mark: MarkBlock | None = None) -> LiveProvider:
        def secret(name: str) -> Sensitive | None:
            # `api_key` itself is deprecated and listed as null: the stored form is `_enc`.
            value = raw.get(f"{name}_enc") or raw.get(name)
            return Sensitive(value) if isinstance(value, str) and value else None

        return cls(
            str(raw["id"]),
            str(raw.get("name") or ""),
            str(raw.get("provider_type") or ""),
            opt_text(raw.get("base_url")),
            opt_text(raw.get("region")),
            opt_text(raw.get("api_version")),
            secret("api_key"),
            secret("access_key"),
            opt_text(raw.get("updated_at")),
            dict(mark.mark) if mark else {},
            mark.id if mark else None,
        )

    @property
    def written(self) -> str | None:
        """When letta-apply last wrote the provider (its `updated_at` then), from its mark."""
        value = self.mark.get("written")
        return value if isinstance(value, str) else None

    def encrypted(self, name: str) -> bool:
        """Whether the server keeps the key `name` encrypted (so it cannot be compared): as
        the server's answer to letta-apply's last write showed (its mark), else by Letta's own
        test of the stored value."""
        said = self.mark.get("keys")
        if said in ("plain", "encrypted"):
            return bool(said == "encrypted")
        value: Sensitive | None = getattr(self, name)
        return value is not None and ciphertext(value)


@dataclass(frozen=True)
class ProviderState:
    """Every BYOK provider of the organization (they cannot be filtered by mark), the stack's
    mark blocks, and the agents using the providers a plan may delete (by provider id)."""

    providers: tuple[Mapping[str, object], ...] = ()
    marks: tuple[MarkBlock, ...] = ()
    listed: bool = True
    users: Mapping[str, Users] = field(default_factory=dict)

    def resolved(self) -> tuple[MarkBlock, ...]:
        """The marks, each intent answered by a provider given it (kinds.mark_blocks): provider
        names are unique in an organization, so the name the create sent identifies it."""
        return resolve(self.marks, self.providers, same("name"))

    def live(self) -> list[LiveProvider]:
        return with_marks(self.providers, self.resolved(), LiveProvider.from_api)


def ciphertext(value: str) -> bool:
    """Whether a stored key is Letta's ciphertext of one (its own heuristic): such a key
    cannot be compared with a declared one."""
    if value.startswith(_KEY_PREFIXES):
        return False
    try:
        return len(base64.b64decode(value, validate=True)) >= _CIPHERTEXT_MIN
    except (binascii.Error, ValueError):
        return False


def secret(value: object) -> Sensitive:
    return value if isinstance(value, Sensitive) else Sensitive(str(value))


def hidden_fields(config: Mapping[str, object]) -> frozenset[str]:
    return frozenset(k for k in SECRETS if k in config)


def provider_applied(dp: DesiredProvider) -> JsonObject:
    """Digests of the plain fields letta-apply writes, and the names of the sensitive ones."""
    out: JsonObject = {"name": digest(dp.name)}
    for k in ("provider_type", *PLAIN):
        if k in dp.config and k not in dp.ignore:
            out[k] = digest(dp.config[k])
    if dp.prevent_destroy:
        out["prevent_destroy"] = True
    return {**out, **sensitive_names(hidden_fields(dp.config))}


def mark_body(stack: str, dp: DesiredProvider, **extra: object) -> JsonObject:
    """The mark letta-apply writes (`replaces`: the id of the provider a replacement deletes
    once it is made)."""
    mark = {"stack": stack, "address": dp.address, "applied": provider_applied(dp), **extra}
    return {MARK_KEY: mark}


def create_body(dp: DesiredProvider) -> JsonObject:
    """What `POST /v1/providers/` is sent (keys sorted, as a saved plan reads it back)."""
    return dict(sorted({"name": dp.name, **dp.config}.items()))


def check_providers(doc: Document, data: Mapping[str, object]) -> list[Diagnostic]:
    """Names unique in the manifest (Letta keeps them unique in an organization)."""
    errors: list[Diagnostic] = []
    names: dict[str, str] = {}
    section = data.get(SECTION)
    for key, spec in (section if isinstance(section, dict) else {}).items():
        if not isinstance(spec, dict):
            continue
        name = spec.get("name", key)
        if not isinstance(name, str):
            continue  # the schema says
        if name in names:
            errors.append(
                doc.diag(
                    (SECTION, key),
                    f"{SECTION}.{key}: name {name!r} is already used by {SECTION}.{names[name]}; "
                    "provider names are unique on a server",
                    code="LA481",
                    key=True,
                )
            )
        else:
            names[name] = key
    return errors


def replaced_by(dp: DesiredProvider, lp: LiveProvider) -> bool:
    return lp.name != dp.name or lp.provider_type != dp.provider_type


def key_to_send(dp: DesiredProvider, lp: LiveProvider) -> Sensitive:
    """The api_key an update carries when the key itself is not changed: the declared one,
    unless `ignore_changes` leaves the key to the server and the server's is readable."""
    if "api_key" in dp.ignore and lp.api_key is not None and not lp.encrypted("api_key"):
        return lp.api_key
    return secret(dp.config["api_key"])


def uses(agent: Mapping[str, object], name: str) -> bool:
    """Whether an agent (as listed) runs on a model or embeds with a model of provider `name`."""
    llm = obj(agent.get("llm_config"))
    handle = obj(agent.get("embedding_config")).get("handle")
    return bool(name) and (
        llm.get("provider_name") == name
        or (isinstance(handle, str) and handle.startswith(f"{name}/"))
    )
