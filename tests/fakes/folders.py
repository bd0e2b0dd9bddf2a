"""Folder routes of the fake Letta server (tests/fakes/server.py): folders, multipart uploads, file
listings, agents' folder attachments, as Letta 0.16.8 answers them.

An upload is listed as `parsing` and processed on the next listing of the folder's files (one
look later), so apply's wait is exercised; a file whose bytes hold FAIL_MARKER fails processing.
Folder names are unique (409 on a second one).
"""

from __future__ import annotations

import email.parser
import email.policy
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from tests.fakes.common import Http, _public

FAIL_MARKER = b"FAIL-PROCESSING"
EXTENSIONS = (".md", ".txt", ".pdf", ".json", ".csv", ".py")


def multipart_file(request: httpx.Request) -> tuple[str, bytes]:
    """The file of a multipart upload: its name and bytes."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + request.content)
    for part in msg.iter_parts():
        name = part.get_filename()
        if name is not None:
            payload = part.get_payload(decode=True)
            return name, payload if isinstance(payload, bytes) else b""
    raise Http(422, "no file in the upload")


class FakeFolders:
    """The folder half of the fake server; FakeLetta mixes it in."""

    agents: dict[str, dict[str, Any]]
    folders: dict[str, dict[str, Any]]
    files: dict[str, dict[str, Any]]

    def init_folders(self) -> None:
        self.folders = {}
        self.files = {}
        self.stalled = False  # uploads are never processed (apply's wait runs out)

    def hold_folders(self, state: Mapping[str, Any], seq: Callable[[], int]) -> None:
        """Folders of a case's live.json: each with its "files" (as listed) and "agent_ids"."""
        for f in state.get("folders", ()):
            spec = {k: v for k, v in f.items() if k not in ("files", "agent_ids")}
            self.folders[f["id"]] = {"_seq": seq(), "description": None, "instructions": None,
                                     "metadata": {}, "embedding_config": {}, **spec}  # fmt: skip
            for file in f.get("files", ()):
                self.files[file["id"]] = {"_seq": seq(), "source_id": f["id"],
                                          "processing_status": "completed", **file}  # fmt: skip
            for aid in f.get("agent_ids", ()):
                self.agents[aid].setdefault("folder_ids", []).append(f["id"])

    def folder_routes(
        self, request: httpx.Request, body: Any, seq: Callable[[], int]
    ) -> list[tuple[str, str, Callable[..., Any]]]:
        return [
            ("GET", r"/v1/folders/", self._list_folders),
            ("POST", r"/v1/folders/", lambda: self._create_folder(body, seq())),
            ("GET", r"/v1/folders/(source-[^/]+)", lambda i: self._folder(i)),
            ("PATCH", r"/v1/folders/(source-[^/]+)", lambda i: self._patch_folder(i, body)),
            ("DELETE", r"/v1/folders/(source-[^/]+)", self._delete_folder),
            (
                "POST",
                r"/v1/folders/(source-[^/]+)/upload",
                lambda i: self._upload(i, request, seq()),
            ),
            ("GET", r"/v1/folders/(source-[^/]+)/files", lambda i: self._list_files(i, request)),
            ("DELETE", r"/v1/folders/(source-[^/]+)/(file-[^/]+)", self._delete_file),
            ("GET", r"/v1/folders/(source-[^/]+)/agents", self._folder_agents),
            (
                "PATCH",
                r"/v1/agents/(agent-[^/]+)/folders/(attach|detach)/(source-[^/]+)",
                self._agent_folder,
            ),
        ]

    def _list_folders(self) -> list[dict[str, Any]]:
        return [_public(f) for f in sorted(list(self.folders.values()), key=lambda f: f["_seq"])]

    def _folder(self, fid: str) -> dict[str, Any]:
        if fid not in self.folders:
            raise Http(404, f"{fid} not found")
        return _public(self.folders[fid])

    def _create_folder(self, body: dict[str, Any], n: int) -> dict[str, Any]:
        if any(f["name"] == body["name"] for f in list(self.folders.values())):
            raise Http(409, f"a folder named {body['name']} exists")
        fid = f"source-{uuid.uuid4()}"
        emb = body.get("embedding_config") or {"handle": body.get("embedding")}
        self.folders[fid] = {
            "_seq": n, "id": fid, "name": body["name"], "description": body.get("description"),
            "instructions": body.get("instructions"), "metadata": body.get("metadata") or {},
            "embedding_config": emb,
        }  # fmt: skip
        return _public(self.folders[fid])

    def _patch_folder(self, fid: str, body: dict[str, Any]) -> dict[str, Any]:
        self._folder(fid)
        for k, v in body.items():
            if v is not None:
                self.folders[fid][k] = v
        return _public(self.folders[fid])

    def _delete_folder(self, fid: str) -> None:
        self._folder(fid)
        del self.folders[fid]
        for i in [i for i, f in list(self.files.items()) if f["source_id"] == fid]:
            del self.files[i]
        for a in self.agents.values():
            a["folder_ids"] = [x for x in a.get("folder_ids", ()) if x != fid]

    def _upload(self, fid: str, request: httpx.Request, n: int) -> dict[str, Any]:
        self._folder(fid)
        given, data = multipart_file(request)
        name = request.url.params.get("name") or given
        if not name.endswith(EXTENSIONS):
            raise Http(415, f"Unsupported file type (filename: {given})")
        same = [i for i, f in list(self.files.items()) if f["source_id"] == fid and
                f["original_file_name"] == name]  # fmt: skip
        if same and request.url.params.get("duplicate_handling") == "replace":
            del self.files[same[0]]
        made = {
            "_seq": n, "_fails": FAIL_MARKER in data, "id": f"file-{uuid.uuid4()}",
            "source_id": fid, "file_name": name, "original_file_name": name,
            "file_size": len(data), "processing_status": "parsing", "error_message": None,
        }  # fmt: skip
        self.files[made["id"]] = made
        return _public(made)

    def _list_files(self, fid: str, request: httpx.Request) -> list[dict[str, Any]]:
        self._folder(fid)
        items = sorted(
            (f for f in list(self.files.values()) if f["source_id"] == fid), key=lambda f: f["_seq"]
        )
        after = request.url.params.get("after")
        if after:
            ids = [f["id"] for f in items]
            items = items[ids.index(after) + 1 :] if after in ids else []
        page = [_public(f) for f in items[: int(request.url.params.get("limit") or 50)]]
        for f in items:  # processed once listed: the next look sees the outcome
            if f["processing_status"] == "parsing" and not self.stalled:
                failed = f["_fails"]
                f["processing_status"] = "error" if failed else "completed"
                f["error_message"] = "the parser could not read it" if failed else None
        return page

    def _delete_file(self, fid: str, file_id: str) -> None:
        if self.files.get(file_id, {}).get("source_id") != fid:
            raise Http(404, f"{file_id} not found")
        del self.files[file_id]

    def _folder_agents(self, fid: str) -> list[str]:
        self._folder(fid)
        return [a["id"] for a in self.agents.values() if fid in a.get("folder_ids", ())]

    def _agent_folder(self, aid: str, verb: str, fid: str) -> dict[str, Any]:
        if aid not in self.agents:
            raise Http(404, f"{aid} not found")
        self._folder(fid)
        have = self.agents[aid].setdefault("folder_ids", [])
        if verb == "attach" and fid not in have:
            have.append(fid)
        elif verb == "detach" and fid in have:
            have.remove(fid)
        return {"id": aid}
