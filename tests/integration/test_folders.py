"""Folders against the real server: five markdown files uploaded once for two agents, processed
by a local embedding endpoint (scripts/embedding-server on 127.0.0.1, which the folder's
embedding configuration points at: nothing off the machine is reached), then an edit re-uploads
only the edited file, a removal deletes only the removed one, a file added by hand survives,
re-applying writes nothing, and prune deletes the folder.

Folder names are unique on a server: each test names its folders after its stack, and deletes
what is left.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Run

DOCS = {
    "handbook/welcome.md": "# Welcome\n\nYou help Acme customers with orders and refunds.\n",
    "handbook/tone.md": "# Tone\n\nApologise once, then fix the problem.\n",
    "handbook/escalation.md": "# Escalation\n\nEscalate lost orders over 500 EUR to a human.\n",
    "handbook/policies/refunds.md": "# Refunds\n\nReturns within 30 days get a full refund.\n",
    "handbook/policies/shipping.md": "# Shipping\n\nStandard shipping takes 3 to 5 days.\n",
}

MANIFEST = """\
version: 1
stack: {stack}
folders:
  handbook:
    name: {stack}-handbook
    description: Acme's support handbook.
    embedding:
      embedding_endpoint_type: openai
      embedding_endpoint: {endpoint}
      embedding_model: hashed-words
      embedding_dim: 384
      embedding_chunk_size: 300
    files: ["handbook/**/*.md"]
agents:
  support:
    name: {stack}-support
    model: letta/letta-free
    embedding: letta/letta-free
    folders: [handbook]
  triage:
    name: {stack}-triage
    model: letta/letta-free
    embedding: letta/letta-free
    folders: [handbook]
"""


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    for name, text in DOCS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    """Delete the folders named after the stack, whoever made them."""
    yield
    for f in api.get("/v1/folders/", params={"limit": 1000}).json():
        if f["name"].startswith(stack):
            api.delete(f"/v1/folders/{f['id']}")


def folder(api: httpx.Client, name: str) -> dict[str, Any]:
    (found,) = api.get("/v1/folders/", params={"name": name}).json()
    return dict(found)


def files(api: httpx.Client, fid: str) -> dict[str, dict[str, Any]]:
    listed = api.get(f"/v1/folders/{fid}/files", params={"limit": 1000}).json()
    return {f["original_file_name"]: f for f in listed}


def agent_ids(api: httpx.Client, names: list[str]) -> list[str]:
    return [api.get("/v1/agents/", params={"name": n}).json()[0]["id"] for n in names]


def test_folder_files_are_uploaded_once_and_kept_in_step(
    run: Run,
    manifest: Callable[[str], str],
    api: httpx.Client,
    stack: str,
    endpoint: str,
    docs: Path,
    cleanup: None,
) -> None:
    path = docs / "m.yaml"
    path.write_text(MANIFEST.replace("{stack}", stack).replace("{endpoint}", endpoint))
    started = time.monotonic()
    r = run("apply", "-f", str(path), "--auto-approve")
    took = time.monotonic() - started
    assert r.code == 0, r.err
    f = folder(api, f"{stack}-handbook")
    first = files(api, f["id"])
    # Uploaded once for both agents, and processed: parsed, chunked and embedded here.
    assert sorted(first) == sorted(n.removeprefix("handbook/") for n in DOCS)
    assert {x["processing_status"] for x in first.values()} == {"completed"}
    assert all(x["chunks_embedded"] and x["chunks_embedded"] >= 1 for x in first.values())
    passages = api.get(f"/v1/folders/{f['id']}/passages", params={"limit": 1000}).json()
    assert {p["file_id"] for p in passages} == {x["id"] for x in first.values()}
    assert any("30 days" in p["text"] for p in passages)
    support, triage = agent_ids(api, [f"{stack}-support", f"{stack}-triage"])
    attached = sorted(api.get(f"/v1/folders/{f['id']}/agents").json())
    assert attached == sorted([support, triage])
    for aid in (support, triage):
        # Attached agents see the files with their file tools (open, grep, search).
        seen = api.get(f"/v1/agents/{aid}/files", params={"limit": 100}).json()
        names = {x["file_name"] for x in seen.get("files", seen) if isinstance(x, dict)}
        assert {n.rsplit("/", 1)[-1] for n in names} >= {"refunds.md", "welcome.md"}, seen
    print(f"\nfirst apply: {r.reads} reads, {r.writes} writes, {took:.1f} s")

    # Converged: nothing to do, nothing written.
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0 and r.writes == 0, r.err
    assert "No changes" in r.out

    # One file edited: only it is sent again (and the mark records its new id).
    (docs / "handbook/policies/refunds.md").write_text("# Refunds\n\nWithin 45 days now.\n")
    r = run("plan", "-f", str(path))
    assert "files['policies/refunds.md']" in r.out and "files['welcome.md']" not in r.out
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    assert r.writes == 3, r.err  # the intent to upload (in the mark), the upload, the mark
    second = files(api, f["id"])
    assert second["policies/refunds.md"]["id"] != first["policies/refunds.md"]["id"]
    assert {n: x["id"] for n, x in second.items() if n != "policies/refunds.md"} == {
        n: x["id"] for n, x in first.items() if n != "policies/refunds.md"
    }
    assert second["policies/refunds.md"]["processing_status"] == "completed"

    # A file added by hand survives; one removed from the tree is deleted, alone.
    hand = api.post(
        f"/v1/folders/{f['id']}/upload",
        params={"name": "notes-by-hand.md"},
        files={"file": ("notes-by-hand.md", b"# Notes\n\nWritten by a person.\n", "text/markdown")},
    )
    assert hand.status_code == 200, hand.text
    (docs / "handbook/tone.md").unlink()
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    assert r.writes == 2, r.err  # the delete, the folder's mark
    assert "file 'notes-by-hand.md' was put in the folder by hand; left alone" in r.out
    third = files(api, f["id"])
    assert sorted(third) == sorted([*(n for n in second if n != "tone.md"), "notes-by-hand.md"])
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0 and r.writes == 0, r.err

    # Pruned: the folder goes when no agent outside the stack uses it.
    path.write_text(MANIFEST.replace("{stack}", stack).split("folders:")[0] + "agents: {}\n")
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    assert api.get("/v1/folders/", params={"name": f"{stack}-handbook"}).json() == []


def test_a_folder_an_outside_agent_uses_is_kept(
    run: Run,
    api: httpx.Client,
    stack: str,
    endpoint: str,
    docs: Path,
    cleanup: None,
) -> None:
    path = docs / "m.yaml"
    text = MANIFEST.replace("{stack}", stack).replace("{endpoint}", endpoint)
    path.write_text(text.replace('["handbook/**/*.md"]', "[handbook/welcome.md]"))
    assert run("apply", "-f", str(path), "--auto-approve").code == 0
    f = folder(api, f"{stack}-handbook")
    outsider = api.post(
        "/v1/agents/",
        json={"name": f"{stack}-outsider", "model": "letta/letta-free",
              "embedding": "letta/letta-free"},
    ).json()  # fmt: skip
    try:
        api.patch(f"/v1/agents/{outsider['id']}/folders/attach/{f['id']}").raise_for_status()
        path.write_text(text.split("folders:")[0] + "agents: {}\n")
        r = run("apply", "-f", str(path), "--auto-approve")
        # Refused, as for a shared block: the rest is applied, the refusal is an error.
        assert r.code == 1, r.err
        assert (
            f"folder.handbook: not deleted: still attached to agents this stack does not manage: "
            f"{outsider['id']}" in r.err
        )
        assert folder(api, f"{stack}-handbook")["id"] == f["id"]
        assert api.get("/v1/agents/", params={"name": f"{stack}-support"}).json() == []
    finally:
        api.delete(f"/v1/agents/{outsider['id']}")
