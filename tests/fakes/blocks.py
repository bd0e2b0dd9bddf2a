"""Block routes of the fake Letta server (tests/fakes/server.py): blocks listed by tag, label and
how many agents hold them; deleting one detaches it from every agent."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.fakes.common import Http, Route, _public


class FakeBlocks:
    """The block part of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    blocks: dict[str, dict[str, Any]]
    _seq: itertools.count[int]
    _list: Callable[[dict[str, dict[str, Any]], httpx.QueryParams], list[dict[str, Any]]]
    _get: Callable[[dict[str, dict[str, Any]], str], dict[str, Any]]

    def block_routes(self, q: httpx.QueryParams, body: Any) -> list[Route]:
        return [
            ("GET", r"/v1/blocks/", lambda: self._list(self.blocks, q)),
            ("GET", r"/v1/blocks/(block-[^/]+)", lambda i: self._get(self.blocks, i)),
            ("GET", r"/v1/blocks/(block-[^/]+)/agents", self._block_agents),
            ("POST", r"/v1/blocks/", lambda: self._create_block(body)),
            ("DELETE", r"/v1/blocks/(block-[^/]+)", self._delete_block),
            ("PATCH", r"/v1/blocks/(block-[^/]+)", lambda i: self._patch_block(i, body)),
        ]

    def _new_block(self, spec: Mapping[str, Any], *, keep_metadata: bool = True) -> dict[str, Any]:
        bid = spec.get("id") or f"block-{uuid.uuid4()}"
        self.blocks[bid] = {
            "id": bid,
            "_seq": next(self._seq),
            "label": spec["label"],
            "value": spec.get("value", ""),
            "description": spec.get("description"),
            "limit": spec.get("limit", 100000),
            "read_only": spec.get("read_only", False),
            "metadata": (spec.get("metadata") or {}) if keep_metadata else {},
            "tags": spec.get("tags") or [],
        }
        return self.blocks[bid]

    def _create_block(self, body: dict[str, Any]) -> dict[str, Any]:
        return _public(self._new_block(body))

    def _patch_block(self, bid: str, body: dict[str, Any]) -> dict[str, Any]:
        if bid not in self.blocks:
            raise Http(404, f"{bid} not found")
        self.blocks[bid].update({k: v for k, v in body.items() if v is not None})
        return _public(self.blocks[bid])

    def _attached(self, bid: str) -> int:
        return sum(1 for a in self.agents.values() if bid in a["block_ids"])

    def _block_agents(self, bid: str) -> list[dict[str, Any]]:
        self._get(self.blocks, bid)
        return [_public(a) for a in self.agents.values() if bid in a["block_ids"]]

    def _delete_block(self, bid: str) -> None:
        self._get(self.blocks, bid)
        del self.blocks[bid]
        for a in self.agents.values():  # deleting a block detaches it everywhere
            if bid in a["block_ids"]:
                a["block_ids"].remove(bid)
