"""Archives: validation with positions, seeded passages (per file or per separated part), and
apply against the fake server: passages inserted in one batch, a changed source's passages
replaced, a removed source's deleted, an agent's own passages never touched, the mark block, a
converged plan with no writes, paging of a large archive, prune."""

from __future__ import annotations

from pathlib import Path

import pytest

from letta_apply.apply.runner import apply_plan
from letta_apply.core.changes import CREATE, DELETE, UPDATE
from letta_apply.errors import LettaApplyError
from letta_apply.kinds.archive.kind import MARK_LABEL, DesiredArchive
from letta_apply.pipeline import load_manifest, plan_for
from tests.fakes import FakeLetta
from tests.helpers import at, diagnostics, only

HEAD = """version: 1
stack: kb-unit
archives:
  kb:
    embedding: letta/letta-free
    passages: {files: ["kb/*.md"], separator: "\\n---\\n"}
agents:
  support: {model: letta/letta-free, embedding: letta/letta-free, archives: [kb]}
"""


def write(root: Path, files: dict[str, str | bytes], text: str = HEAD) -> Path:
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    path = root / "m.yaml"
    path.write_text(text, encoding="utf-8")
    return path


KB = {
    "kb/refunds.md": "30 days.\n---\nTo the card.\n---\n30 days.\n",
    "kb/shipping.md": "3 days.\n",
}


def archive(path: Path) -> DesiredArchive:
    found: DesiredArchive = load_manifest(str(path)).of("archive")["archive.kb"]
    return found


def test_passages_are_split_by_the_separator(tmp_path: Path) -> None:
    a = archive(write(tmp_path, KB))
    # A text repeated in one file is one passage.
    assert [(p.source, p.text) for p in a.passages] == [
        ("refunds.md", "30 days."), ("refunds.md", "To the card."), ("shipping.md", "3 days."),
    ]  # fmt: skip
    assert a.agents == ("agent.support",)


def test_without_a_separator_a_file_is_one_passage(tmp_path: Path) -> None:
    text = HEAD.replace(', separator: "\\n---\\n"', "")
    a = archive(write(tmp_path, KB, text))
    assert [p.text for p in a.passages] == ["30 days.\n---\nTo the card.\n---\n30 days.", "3 days."]


def error_of(path: Path) -> tuple[tuple[int, int], str]:
    d = only(diagnostics(path, lambda p: load_manifest(str(p))))
    return at(d), d.message


def test_an_agent_gets_one_archive(tmp_path: Path) -> None:
    text = HEAD.replace("archives: [kb]", "archives: [kb, other]")
    text = text.replace(
        "archives:\n  kb:", "archives:\n  other: {embedding: letta/letta-free}\n  kb:"
    )
    position, message = error_of(write(tmp_path, KB, text))
    assert message == "agents.support.archives: Letta attaches one archive per agent; 2 are named"
    assert position == (9, 82)  # the second one


def test_an_undeclared_archive(tmp_path: Path) -> None:
    position, message = error_of(
        write(tmp_path, KB, HEAD.replace("archives: [kb]", "archives: [kbx]"))
    )
    assert message == "agents.support.archives[0]: no archive 'kbx' is declared; did you mean 'kb'?"
    assert position == (8, 78)


def test_seed_files_must_be_text(tmp_path: Path) -> None:
    position, message = error_of(write(tmp_path, {"kb/a.md": b"\xff\xfe binary"}))
    assert message.startswith("archives.kb.passages: '") and message.endswith("is not UTF-8 text")
    assert position == (6, 23)


def test_a_passage_too_long(tmp_path: Path) -> None:
    _, message = error_of(write(tmp_path, {"kb/a.md": "x" * 100_001}))
    assert message.endswith(
        "holds a passage over 100000 characters; declare a separator to split it"
    )


def test_no_seed_file(tmp_path: Path) -> None:
    _, message = error_of(write(tmp_path, {}))
    assert (
        message == "archives.kb.passages.files[0]: 'kb/*.md' matches no file (kb is not a folder)"
    )


def test_the_mark_label_is_reserved(tmp_path: Path) -> None:
    text = HEAD + f"blocks:\n  x: {{label: {MARK_LABEL}, value: v}}\n"
    _, message = error_of(write(tmp_path, KB, text))
    assert MARK_LABEL in message


# -- apply against the fake --------------------------------------------------------------------


def apply(fake: FakeLetta, path: Path) -> None:
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))))


def converged(fake: FakeLetta, path: Path) -> None:
    with fake.client() as c:
        fake.counts.clear()
        assert plan_for(c, load_manifest(str(path))).changes == ()
    assert fake.writes == 0


def texts(fake: FakeLetta) -> list[str]:
    return sorted(p["text"] for p in fake.passages.values())


def test_seeded_then_kept_in_step_around_an_agents_own_passages(tmp_path: Path) -> None:
    path = write(tmp_path, KB)
    fake = FakeLetta()
    apply(fake, path)
    (aid,) = fake.archives
    assert texts(fake) == ["3 days.", "30 days.", "To the card."]
    assert [p for m, p in fake.calls if m == "POST" and "passages" in p] == [
        f"/v1/archives/{aid}/passages/batch"
    ]
    (mark,) = [b for b in fake.blocks.values() if b["label"] == MARK_LABEL]
    assert mark["metadata"]["letta_apply"] == {
        "stack": "kb-unit", "address": "archive.kb", "archive": aid,
    }  # fmt: skip
    assert [a["name"] for a in fake.agents.values() if aid in a.get("archive_ids", ())] == [
        "support"
    ]
    converged(fake, path)
    # An agent's own passage, then the sources change: only the seeded passages move.
    fake._store_passage(aid, {"text": "Bob prefers email."}, 999)
    write(tmp_path, {"kb/refunds.md": "45 days.\n---\nTo the card.\n"})
    (tmp_path / "kb/shipping.md").unlink()
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        (change,) = plan.changes
        assert change.action == UPDATE
        assert sorted(((d.before, d.after) for d in change.diffs), key=str) == sorted(
            [(None, "45 days."), ("30 days.", None), ("3 days.", None)], key=str
        )
        fake.calls.clear()
        apply_plan(c, plan)
    assert texts(fake) == ["45 days.", "Bob prefers email.", "To the card."]
    assert sorted(m for m, _ in fake.calls if m != "GET") == ["DELETE", "DELETE", "POST"]
    converged(fake, path)


def test_a_large_archive_is_read_in_pages(tmp_path: Path) -> None:
    files = {f"kb/{i:03}.md": f"fact {i}\n" for i in range(150)}
    path = write(tmp_path, files)
    fake = FakeLetta()
    apply(fake, path)
    (aid,) = fake.archives
    for i in range(120):  # an agent's own passages, interleaved before and after
        fake._store_passage(aid, {"text": f"note {i}"}, 1000 + i)
    converged(fake, path)
    searches = [p for m, p in fake.calls if p == "/v1/passages/search"]
    assert len(searches) == 3  # 271 passages: pages of 100, and the short last one


def test_pruned_with_its_mark_block(tmp_path: Path) -> None:
    path = write(tmp_path, KB)
    fake = FakeLetta()
    apply(fake, path)
    path.write_text(HEAD.split("archives:")[0] + "agents: {}\n")
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        assert [(ch.action, ch.address) for ch in plan.changes if ch.kind == "archive"] == [
            (DELETE, "archive.kb")
        ]
        apply_plan(c, plan)
    assert fake.archives == {} and fake.passages == {}
    assert [b for b in fake.blocks.values() if b["label"] == MARK_LABEL] == []


def test_a_stack_without_archives_reads_none(tmp_path: Path) -> None:
    path = write(tmp_path, {}, "version: 1\nstack: kb-unit\nagents: {}\n")
    fake = FakeLetta()
    with fake.client() as c:
        plan_for(c, load_manifest(str(path)))
    assert not [p for _, p in fake.calls if "archive" in p or "passages" in p]


def test_create_plan(tmp_path: Path) -> None:
    with FakeLetta().client() as c:
        plan = plan_for(c, load_manifest(str(write(tmp_path, KB))))
    change = next(ch for ch in plan.changes if ch.kind == "archive")
    assert change.action == CREATE
    assert [d.after for d in change.diffs if d.field.startswith("passages")] == [
        "30 days.", "To the card.", "3 days.",
    ]  # fmt: skip


@pytest.mark.parametrize("field", ["description", "passages"])
def test_ignore_changes(tmp_path: Path, field: str) -> None:
    text = HEAD.replace(
        "    embedding:", f"    ignore_changes: [{field}]\n    description: a\n    embedding:"
    )
    path = write(tmp_path, KB, text)
    fake = FakeLetta()
    apply(fake, path)
    path.write_text(text.replace("description: a", "description: b"))
    write(tmp_path, {"kb/shipping.md": "4 days.\n"}, path.read_text())
    with fake.client() as c:
        (change,) = plan_for(c, load_manifest(str(path))).changes
    assert field not in {d.field.split("[")[0] for d in change.diffs}


def test_a_file_of_many_passages_converges_without_duplicates(tmp_path: Path) -> None:
    # One batch of 250: Letta gives them all one creation time, by which the search pages.
    text = HEAD.replace('separator: "\\n---\\n"', 'separator: "\\n"')
    path = write(tmp_path, {"kb/lines.md": "".join(f"line {i}\n" for i in range(250))}, text)
    fake = FakeLetta()
    for _ in range(3):
        apply(fake, path)
    assert len(fake.passages) == 250
    converged(fake, path)


def test_more_than_a_page_made_at_one_instant_is_an_error_not_a_short_listing(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, KB)
    fake = FakeLetta()
    apply(fake, path)
    (aid,) = fake.archives
    fake._store_batch(aid, [{"text": f"note {i}"} for i in range(101)], lambda: 5000)
    with fake.client() as c, pytest.raises(LettaApplyError, match="made at one instant"):
        plan_for(c, load_manifest(str(path)))
