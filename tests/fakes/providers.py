"""Provider routes of the fake Letta server (tests/fakes/server.py), as Letta 0.16.8 serves them
(letta/services/provider_manager.py): names unique (409, the refused row quoted whole, its key
included), a create with a deleted provider's name restoring that one (its id), a PATCH that
requires `api_key` and ignores nulls, `updated_at` moved by every write, and keys listed as
stored: in plain, or, with `provider_encryption`, as a ciphertext that changes only when the key
does. A provider serves the models its endpoint offers (`provider_offers`, by base_url), listed
when it is made or refreshed under Letta's handles (an `openai` provider with another base_url as
`openai-proxy/<model>`, the rest as `<name>/<model>`; an `openai` provider's embeddings as
`<name>/text-embedding-3-small`), and an agent made on one of them runs on that provider."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.fakes.common import Http

FIELDS = ("base_url", "region", "api_version")
DEFAULT_BASE_URL = {"openai": "https://api.openai.com/v1"}


class FakeProviders:
    """The provider half of the fake server; FakeLetta mixes it in."""

    providers: dict[str, dict[str, Any]]
    models: set[str]  # FakeLetta's: the handles GET /v1/models/ lists
    embeddings: set[str]

    def init_providers(self) -> None:
        self.providers = {}
        self.deleted_providers: dict[str, dict[str, Any]] = {}
        self.provider_encryption = False  # LETTA_ENCRYPTION_KEY set on the server
        self.provider_writes = 0  # what moves updated_at
        self.refreshed: list[str] = []  # ids whose models were listed again
        self.provider_offers: dict[str, list[str]] = {}  # base_url -> the models it lists

    def hold_providers(self, state: Mapping[str, Any], seq: Callable[[], int]) -> None:
        """Providers of a case's live.json, each as the listing shows it ("api_key_enc")."""
        for p in state.get("providers", ()):
            self.providers[p["id"]] = {**self._provider_defaults(seq()), **p}

    def provider_routes(
        self, request: httpx.Request, body: Any, seq: Callable[[], int]
    ) -> list[tuple[str, str, Callable[..., Any]]]:
        q = request.url.params
        return [
            ("GET", r"/v1/providers/", lambda: self._list_providers(q)),
            ("POST", r"/v1/providers/", lambda: self._create_provider(body, seq())),
            ("GET", r"/v1/providers/(provider-[^/]+)", self._get_provider),
            ("PATCH", r"/v1/providers/(provider-[^/]+)", lambda i: self._patch_provider(i, body)),
            ("DELETE", r"/v1/providers/(provider-[^/]+)", self._delete_provider),
            ("PATCH", r"/v1/providers/(provider-[^/]+)/refresh", self._refresh_provider),
        ]

    def _provider_defaults(self, n: int) -> dict[str, Any]:
        return {
            "_seq": n, "provider_category": "byok", "api_key": None, "base_url": None,
            "access_key": None, "region": None, "api_version": None, "api_key_enc": None,
            "access_key_enc": None, "updated_at": self._stamp(), "last_synced": None,
        }  # fmt: skip

    def _stamp(self) -> str:
        self.provider_writes += 1
        return f"2026-12-01T10:00:00.{self.provider_writes:06d}Z"

    def _stored(self, key: str | None) -> str | None:
        if key is None or not self.provider_encryption:
            return key
        # salt + iv + ciphertext + tag, base64: a new one at every encryption.
        return base64.b64encode(os.urandom(28) + key.encode()[::-1] + os.urandom(16)).decode()

    def _plain(self, stored: str | None) -> str | None:
        if stored is None or not self.provider_encryption:
            return stored
        return base64.b64decode(stored)[28:-16][::-1].decode()

    def _view(self, p: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in p.items() if not k.startswith("_")}

    def _list_providers(self, q: httpx.QueryParams) -> list[dict[str, Any]]:
        found = sorted(self.providers.values(), key=lambda p: p["_seq"])
        if q.get("name"):
            found = [p for p in found if p["name"] == q["name"]]
        if q.get("after"):
            ids = [p["id"] for p in found]
            found = found[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        return [self._view(p) for p in found[: int(q.get("limit") or 50)]]

    def _create_provider(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        missing = [k for k in ("name", "provider_type", "api_key") if not body.get(k)]
        if missing:
            raise Http(422, f"missing {missing}")
        taken = [p for p in self.providers.values() if p["name"] == body["name"]]
        if taken:
            # As Letta does: the refused row quoted whole, its key among the parameters.
            raise Http(
                409,
                "A unique constraint was violated for Provider. [parameters: "
                f"('{body['name']}', '{body['provider_type']}', '{body['api_key']}')]",
            )
        restored = next(
            (i for i, p in self.deleted_providers.items() if p["name"] == body["name"]), None
        )
        pid = restored or f"provider-{uuid.uuid4()}"
        if restored:
            del self.deleted_providers[restored]
        base_url = body.get("base_url") or DEFAULT_BASE_URL.get(body["provider_type"])
        self.providers[pid] = {
            **self._provider_defaults(n), "id": pid, "name": body["name"],
            "provider_type": body["provider_type"], "base_url": base_url,
            **{k: body[k] for k in ("region", "api_version") if body.get(k)},
            "api_key_enc": self._stored(body["api_key"]),
            "access_key_enc": self._stored(body.get("access_key")),
        }  # fmt: skip
        self._refresh_provider(pid)
        return self._view(self.providers[pid])

    def _get_provider(self, pid: str) -> dict[str, Any]:
        if pid not in self.providers:
            raise Http(404, f"Provider not found with id='{pid}'")
        return self._view(self.providers[pid])

    def _patch_provider(self, pid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._get_provider(pid)
        if not body.get("api_key"):
            raise Http(422, "[{'type': 'missing', 'loc': ('body', 'api_key')}]")
        p = self.providers[pid]
        for k in ("api_key", "access_key"):
            if body.get(k) is not None and self._plain(p[f"{k}_enc"]) != body[k]:
                p[f"{k}_enc"] = self._stored(body[k])
        p.update((k, body[k]) for k in FIELDS if body.get(k) is not None)
        p["updated_at"] = self._stamp()
        return self._view(p)

    def _delete_provider(self, pid: str) -> dict[str, Any]:
        self._get_provider(pid)
        self._unserve(self.providers[pid])
        self.deleted_providers[pid] = self.providers.pop(pid)
        return {"message": f"Provider id={pid} successfully deleted"}

    def _refresh_provider(self, pid: str) -> dict[str, Any]:
        self._get_provider(pid)
        self.refreshed.append(pid)
        p = self.providers[pid]
        p["last_synced"] = "2026-12-01T10:00:00Z"  # updated_at unmoved
        self._unserve(p)
        offered = self.provider_offers.get(p["base_url"] or "", [])
        proxied = p["provider_type"] == "openai" and p["base_url"] != DEFAULT_BASE_URL["openai"]
        head = "openai-proxy" if proxied else p["name"]
        llm = {f"{head}/{m}" for m in offered}
        emb = {f"{p['name']}/text-embedding-3-small"} if p["provider_type"] == "openai" else set()
        self.models |= llm
        self.embeddings |= emb
        p["_handles"] = sorted(llm | emb)
        return self._view(p)

    def _unserve(self, p: dict[str, Any]) -> None:
        for h in p.pop("_handles", ()):
            self.models.discard(h)
            self.embeddings.discard(h)

    def served_by(self, agent: dict[str, Any]) -> None:
        """An agent made on a model of a provider runs on it (its llm_config says which)."""
        for p in self.providers.values():
            if agent.get("model") in p.get("_handles", ()):
                llm = agent.setdefault("llm_config", {})
                llm.update(handle=agent["model"], provider_name=p["name"])
                llm["provider_category"] = "byok"
