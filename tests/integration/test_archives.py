"""Archives against the real server: an archive seeded from files (embedded by the local
embedding endpoint on 127.0.0.1), attached to an agent, converged; one source changed moves only
its passages, and passages written outside letta-apply (as an agent writes them) are untouched;
prune deletes the archive and its mark block.

Each test names its archives after its stack, and deletes what is left.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.conftest import Run

MANIFEST = """\
version: 1
stack: {stack}
archives:
  facts:
    name: {stack}-facts
    description: Facts about Acme.
    embedding:
      embedding_endpoint_type: openai
      embedding_endpoint: {endpoint}
      embedding_model: hashed-words
      embedding_dim: 384
    passages: {files: ["kb/*.md"], separator: "\\n---\\n"}
agents:
  support:
    name: {stack}-support
    model: letta/letta-free
    embedding: letta/letta-free
    archives: [facts]
"""

KB = {
    "kb/customers.md": "Most customers are small shops.\n---\nInvoices go out monthly.\n",
    "kb/products.md": "Rocket Skates come in sizes 36 to 46.\n---\nAnvils ship by freight.\n",
}


@pytest.fixture
def cleanup(api: httpx.Client, stack: str) -> Iterator[None]:
    yield
    for a in api.get("/v1/archives/", params={"limit": 1000}).json():
        if a["name"].startswith(stack):
            api.delete(f"/v1/archives/{a['id']}")


def passages(api: httpx.Client, archive_id: str) -> dict[str, dict[str, Any]]:
    found = api.post("/v1/passages/search", json={"archive_id": archive_id, "limit": 100}).json()
    return {r["passage"]["text"]: r["passage"] for r in found}


def test_archive_seeded_kept_in_step_and_pruned(
    run: Run, api: httpx.Client, stack: str, endpoint: str, tmp_path: Path, cleanup: None
) -> None:
    for name, text in KB.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    path = tmp_path / "m.yaml"
    path.write_text(MANIFEST.replace("{stack}", stack).replace("{endpoint}", endpoint))
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    (archive,) = api.get("/v1/archives/", params={"name": f"{stack}-facts"}).json()
    first = passages(api, archive["id"])
    assert sorted(first) == [
        "Anvils ship by freight.", "Invoices go out monthly.", "Most customers are small shops.",
        "Rocket Skates come in sizes 36 to 46.",
    ]  # fmt: skip
    assert all(p["tags"] == [f"letta-apply:{stack}"] for p in first.values())
    (agent,) = api.get("/v1/agents/", params={"name": f"{stack}-support"}).json()
    attached = api.get(f"/v1/archives/{archive['id']}/agents").json()
    assert [a["id"] for a in attached] == [agent["id"]]
    # The seeded passages are embedded: the archive's search finds them by meaning.
    hit = api.post(
        "/v1/passages/search",
        json={"archive_id": archive["id"], "query": "skates sizes", "limit": 1},
    ).json()
    assert hit[0]["passage"]["text"] == "Rocket Skates come in sizes 36 to 46."

    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0 and r.writes == 0, r.err

    # Passages written outside letta-apply (an agent's own, inserted here by hand) stay.
    own = api.post(f"/v1/archives/{archive['id']}/passages", json={"text": "Bob prefers email."})
    assert own.status_code == 200, own.text
    (tmp_path / "kb/products.md").write_text(
        "Rocket Skates come in sizes 35 to 47.\n---\nAnvils ship by freight.\n"
    )
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    assert r.writes == 2, r.err  # the changed passage deleted, the new one inserted
    second = passages(api, archive["id"])
    assert sorted(second) == sorted(
        [*(t for t in first if not t.startswith("Rocket")), "Rocket Skates come in sizes 35 to 47.",
         "Bob prefers email."]
    )  # fmt: skip
    unchanged = [t for t in first if not t.startswith("Rocket")]
    assert {t: second[t]["id"] for t in unchanged} == {t: first[t]["id"] for t in unchanged}
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0 and r.writes == 0, r.err

    # Pruned: the archive and its mark block go (the agent with it).
    path.write_text(MANIFEST.replace("{stack}", stack).split("archives:")[0] + "agents: {}\n")
    r = run("apply", "-f", str(path), "--auto-approve")
    assert r.code == 0, r.err
    assert api.get("/v1/archives/", params={"name": f"{stack}-facts"}).json() == []
    marks = api.get("/v1/blocks/", params={"tags": [f"letta-apply:{stack}"]}).json()
    assert [b for b in marks if b["label"] == "letta-apply-archive"] == []


def test_an_archive_of_over_a_thousand_passages_converges_without_duplicates(
    run: Run, api: httpx.Client, stack: str, endpoint: str, tmp_path: Path, cleanup: None
) -> None:
    # One batch insert: Letta gives every passage of it one creation time, and its passage
    # search pages by creation time. Each passage gets its own, so the listing sees them all.
    lines = "".join(f"Fact number {i} about Acme.\n" for i in range(1001))
    (tmp_path / "kb").mkdir()
    (tmp_path / "kb" / "facts.md").write_text(lines)
    text = MANIFEST.replace("{stack}", stack).replace("{endpoint}", endpoint)
    path = tmp_path / "m.yaml"
    path.write_text(text.replace('separator: "\\n---\\n"', 'separator: "\\n"'))
    first = run("apply", "-f", str(path), "--auto-approve")
    assert first.code == 0, first.err
    again = run("apply", "-f", str(path), "--auto-approve")
    assert again.code == 0, again.err
    assert again.writes == 0, again.out
    # Counted by the server's own listing of the attached agent's archival memory.
    (agent,) = api.get("/v1/agents/", params={"name": f"{stack}-support"}).json()
    seen: list[str] = []
    after = None
    while True:
        params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
        page = api.get(f"/v1/agents/{agent['id']}/archival-memory", params=params).json()
        if not page:
            break
        seen += [p["text"] for p in page]
        after = page[-1]["id"]
    assert len(seen) == len(set(seen)) == 1001
    api.delete(f"/v1/agents/{agent['id']}")
