"""Identity routes of the fake Letta server (tests/fakes/server.py). Identities: unique identifier
keys; agents link to them with identity_ids, blocks with the attach route. As in Letta 0.16.8,
an identity's own agent_ids and block_ids read empty."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from tests.fakes.common import Http, Route, _public


class FakeIdentities:
    """The identity part of the fake server; FakeLetta mixes it in."""

    blocks: dict[str, dict[str, Any]]
    identities: dict[str, dict[str, Any]]
    _seq: itertools.count[int]
    _list: Callable[[dict[str, dict[str, Any]], httpx.QueryParams], list[dict[str, Any]]]
    _get: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]
    _delete: Callable[[dict[str, dict[str, Any]], str], None]

    def identity_routes(self, q: httpx.QueryParams, body: Any) -> list[Route]:
        return [
            ("GET", r"/v1/identities/", lambda: self._list(self.identities, q)),
            ("POST", r"/v1/identities/", lambda: self._create_identity(body)),
            ("GET", r"/v1/identities/(identity-[^/]+)", lambda i: self._get(self.identities, i)),
            ("PATCH", r"/v1/identities/(identity-[^/]+)", lambda i: self._patch_identity(i, body)),
            (
                "DELETE",
                r"/v1/identities/(identity-[^/]+)",
                lambda i: self._delete(self.identities, i),
            ),
            (
                "GET",
                r"/v1/identities/(identity-[^/]+)/blocks",
                lambda i: [_public(self.blocks[b]) for b in self._get_raw(i)["block_ids"]],
            ),
            (
                "PATCH",
                r"/v1/blocks/(block-[^/]+)/identities/(attach|detach)/(identity-[^/]+)",
                self._block_identity,
            ),
        ]

    def _create_identity(self, body: dict[str, Any]) -> dict[str, Any]:
        if any(i["identifier_key"] == body["identifier_key"] for i in self.identities.values()):
            raise Http(409, "A unique constraint was violated for Identity")
        iid = f"identity-{uuid.uuid4()}"
        self.identities[iid] = {
            "id": iid, "_seq": next(self._seq), "agent_ids": [], "block_ids": [],
            "properties": [], **body,
        }  # fmt: skip
        return self._identity_view(iid)

    def _patch_identity(self, iid: str, body: dict[str, Any]) -> dict[str, Any]:
        identity = self._get_raw(iid)
        for k in ("identifier_key", "name", "identity_type", "properties"):
            if body.get(k) is not None:
                identity[k] = body[k]
        return self._identity_view(iid)

    def _identity_view(self, iid: str) -> dict[str, Any]:
        return {**_public(self.identities[iid]), "agent_ids": [], "block_ids": []}

    def _get_raw(self, iid: str) -> dict[str, Any]:
        if iid not in self.identities:
            raise Http(404, f"{iid} not found")
        return self.identities[iid]

    def _block_identity(self, bid: str, verb: str, iid: str) -> dict[str, Any]:
        linked = self._get_raw(iid)["block_ids"]
        if verb == "attach" and bid not in linked:
            linked.append(bid)
        elif verb == "detach" and bid in linked:
            linked.remove(bid)
        return _public(self.blocks[bid])
