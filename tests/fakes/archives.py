"""Archive routes of the fake Letta server (tests/fakes/server.py): archives, their passages, the
passage search (no query: oldest first, tags filtered after the limit, as Letta 0.16.8 does) and
agents' archive attachments. Letta attaches one archive per agent (409 on a second)."""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.fakes.common import Http, _public

_EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def _time(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


class FakeArchives:
    """The archive half of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    archives: dict[str, dict[str, Any]]
    passages: dict[str, dict[str, Any]]

    def init_archives(self) -> None:
        self.archives = {}
        self.passages = {}

    def hold_archives(self, state: Mapping[str, Any], seq: Callable[[], int]) -> None:
        """Archives of a case's live.json: each with its "passages" and "agent_ids"."""
        for a in state.get("archives", ()):
            spec = {k: v for k, v in a.items() if k not in ("passages", "agent_ids")}
            self.archives[a["id"]] = {"_seq": seq(), "description": None, "metadata": None, **spec}
            for p in a.get("passages", ()):
                self._store_passage(a["id"], p, seq())
            for aid in a.get("agent_ids", ()):
                self.agents[aid]["archive_ids"] = [a["id"]]

    def archive_routes(
        self, request: httpx.Request, body: Any, seq: Callable[[], int]
    ) -> list[tuple[str, str, Callable[..., Any]]]:
        q = request.url.params
        return [
            ("GET", r"/v1/archives/", lambda: self._list_archives(q)),
            ("POST", r"/v1/archives/", lambda: self._create_archive(body, seq())),
            ("PATCH", r"/v1/archives/(archive-[^/]+)", lambda i: self._patch_archive(i, body)),
            ("DELETE", r"/v1/archives/(archive-[^/]+)", self._delete_archive),
            ("GET", r"/v1/archives/(archive-[^/]+)/agents", lambda i: self._archive_agents(i, q)),
            (
                "POST",
                r"/v1/archives/(archive-[^/]+)/passages",
                lambda i: _public(self._store_passage(i, body, seq())),
            ),
            (
                "POST",
                r"/v1/archives/(archive-[^/]+)/passages/batch",
                lambda i: self._store_batch(i, body["passages"], seq),
            ),
            (
                "DELETE",
                r"/v1/archives/(archive-[^/]+)/passages/(passage-[^/]+)",
                self._delete_passage,
            ),
            ("POST", r"/v1/passages/search", lambda: self._search(body)),
            (
                "PATCH",
                r"/v1/agents/(agent-[^/]+)/archives/(attach|detach)/(archive-[^/]+)",
                self._agent_archive,
            ),
        ]

    def _archive(self, aid: str) -> dict[str, Any]:
        if aid not in self.archives:
            raise Http(404, f"{aid} not found")
        return self.archives[aid]

    def _list_archives(self, q: httpx.QueryParams) -> list[dict[str, Any]]:
        items = sorted(self.archives.values(), key=lambda a: a["_seq"])
        if q.get("after"):
            ids = [a["id"] for a in items]
            items = items[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        return [_public(a) for a in items[: int(q.get("limit") or 50)]]

    def _create_archive(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        aid = f"archive-{uuid.uuid4()}"
        self.archives[aid] = {
            "_seq": n, "id": aid, "name": body["name"], "description": body.get("description"),
            "metadata": None,
            "embedding_config": body.get("embedding_config") or {"handle": body.get("embedding")},
        }  # fmt: skip
        return _public(self.archives[aid])

    def _patch_archive(self, aid: str, body: dict[str, Any]) -> dict[str, Any]:
        a = self._archive(aid)
        a.update({k: v for k, v in body.items() if k in ("name", "description") and v is not None})
        return _public(a)

    def _delete_archive(self, aid: str) -> None:
        self._archive(aid)
        del self.archives[aid]
        for pid in [p for p, x in self.passages.items() if x["archive_id"] == aid]:
            del self.passages[pid]
        for a in self.agents.values():
            a["archive_ids"] = [x for x in a.get("archive_ids", ()) if x != aid]

    def _archive_agents(self, aid: str, q: httpx.QueryParams) -> list[dict[str, Any]]:
        self._archive(aid)
        items = [a for a in self.agents.values() if aid in a.get("archive_ids", ())]
        if q.get("after"):
            ids = [a["id"] for a in items]
            items = items[ids.index(q["after"]) + 1 :] if q["after"] in ids else []
        return [{"id": a["id"], "name": a["name"], "tags": a["tags"]} for a in items]

    def _store_batch(
        self, aid: str, specs: list[Mapping[str, Any]], seq: Callable[[], int]
    ) -> list[dict[str, Any]]:
        # As in Letta, every passage of one batch gets the same creation time, unless given one.
        at = seq()
        return [_public(self._store_passage(aid, p, seq(), at)) for p in specs]

    def _store_passage(
        self, aid: str, spec: Mapping[str, Any], n: int, at: int | None = None
    ) -> dict[str, Any]:
        self._archive(aid)
        # Creation times a second apart: the search pages by them.
        made = (_EPOCH + datetime.timedelta(seconds=n if at is None else at)).isoformat()
        p = {
            "_seq": n, "id": spec.get("id") or f"passage-{uuid.uuid4()}", "archive_id": aid,
            "text": spec["text"], "tags": spec.get("tags"), "metadata": spec.get("metadata") or {},
            "created_at": spec.get("created_at") or made,
        }  # fmt: skip
        self.passages[p["id"]] = p
        return p

    def _delete_passage(self, aid: str, pid: str) -> None:
        if self.passages.get(pid, {}).get("archive_id") != aid:
            raise Http(404, f"{pid} not found")
        del self.passages[pid]

    def _search(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        # As in Letta: oldest first, by creation time then id; start_date is inclusive.
        items = sorted(self.passages.values(), key=lambda p: (_time(p["created_at"]), p["id"]))
        if body.get("archive_id"):
            items = [p for p in items if p["archive_id"] == body["archive_id"]]
        if body.get("start_date"):
            start = _time(body["start_date"])
            items = [p for p in items if _time(p["created_at"]) >= start]
        items = items[: int(body.get("limit") or 50)]
        if body.get("tags"):  # after the limit, as Letta does
            items = [p for p in items if set(body["tags"]) & set(p.get("tags") or ())]
        return [{"passage": _public(p), "score": 0.0, "metadata": {}} for p in items]

    def _agent_archive(self, aid: str, verb: str, archive: str) -> None:
        if aid not in self.agents:
            raise Http(404, f"{aid} not found")
        self._archive(archive)
        have = self.agents[aid].setdefault("archive_ids", [])
        if verb == "attach" and archive not in have:
            if have:
                raise Http(409, f"{aid} already has an archive")
            have.append(archive)
        elif verb == "detach" and archive in have:
            have.remove(archive)
