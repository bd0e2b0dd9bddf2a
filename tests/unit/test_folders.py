"""Folders and their files: glob resolution, every error kind with its position, the plan's
per-file changes, and apply against the fake server (uploads once, re-sends only what changed,
waits for processing, reports failures, retries only them)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from letta_apply.apply.runner import apply_plan
from letta_apply.core.changes import CREATE, DELETE, UPDATE
from letta_apply.core.model import Desired
from letta_apply.errors import ApplyError, LettaApplyError, ManifestError
from letta_apply.kinds import kind
from letta_apply.kinds.flags import flag_address, flag_label
from letta_apply.kinds.folder.kind import DesiredFolder
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import load_manifest, plan_for
from tests.fakes import FakeLetta
from tests.fakes.folders import FAIL_MARKER
from tests.helpers import Clock, at, diagnostics, only

FLAG_LABEL = flag_label(kind("folder"))  # letta-apply-folders, as stacks made before carry it
FLAG_ADDRESS = flag_address(kind("folder"))
HEAD = """version: 1
stack: docs-unit
folders:
  handbook:
    embedding: letta/letta-free
    files: [{files}]
agents:
  support: {model: letta/letta-free, embedding: letta/letta-free, folders: [handbook]}
  triage: {model: letta/letta-free, embedding: letta/letta-free, folders: [handbook]}
"""


def tree(root: Path, files: dict[str, str | bytes]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode())


def manifest(root: Path, files: str, text: str = HEAD) -> Path:
    path = root / "m.yaml"
    path.write_text(text.replace("{files}", files), encoding="utf-8")
    return path


def folder(path: Path, options: Options | None = None) -> DesiredFolder:
    found: DesiredFolder = load_manifest(str(path), options).of("folder")["folder.handbook"]
    return found


DOCS = {
    "docs/welcome.md": "# Welcome\n",
    "docs/policies/refunds.md": "# Refunds\n30 days.\n",
    "docs/policies/deep/shipping.txt": "3 to 5 days\n",
    "docs/.hidden.md": "not uploaded",
    "docs/.git/HEAD.md": "not uploaded",
    "other.md": "# Other\n",
}


# -- glob resolution ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ('"docs/**/*.md"', ["policies/refunds.md", "welcome.md"]),
        ('"docs/**"', ["policies/deep/shipping.txt", "policies/refunds.md", "welcome.md"]),
        ('"docs/*.md"', ["welcome.md"]),
        ('"docs/policies/**/*.txt"', ["deep/shipping.txt"]),
        ('"**/*.md"', ["docs/policies/refunds.md", "docs/welcome.md", "other.md"]),
        ('"docs/policies/[r]efunds.m?"', ["refunds.md"]),
        ("docs/policies/refunds.md", ["refunds.md"]),
        ('"docs/*.md", docs/welcome.md', ["welcome.md"]),  # one file named twice: one file
    ],
)
def test_globs_name_files_below_their_literal_folder(
    tmp_path: Path, pattern: str, names: list[str]
) -> None:
    tree(tmp_path, DOCS)
    found = folder(manifest(tmp_path, pattern))
    assert [f.name for f in found.files] == names
    assert found.agents == ("agent.support", "agent.triage")


def test_files_are_content_addressed(tmp_path: Path) -> None:
    tree(tmp_path, {"a.md": "same", "b/a2.md": "same", "c.md": "other"})
    files = folder(manifest(tmp_path, '"*.md", "b/*.md"')).files
    digests = {f.name: f.digest for f in files}
    assert digests["a.md"] == digests["a2.md"] != digests["c.md"]
    assert {f.name: f.size for f in files} == {"a.md": 4, "a2.md": 4, "c.md": 5}


def test_a_symlinked_folder_is_not_entered(tmp_path: Path) -> None:
    tree(tmp_path, {"docs/a.md": "a", "elsewhere/b.md": "b"})
    os.symlink(tmp_path / "elsewhere", tmp_path / "docs" / "linked")
    os.symlink(tmp_path / "docs", tmp_path / "docs" / "loop")  # a loop never ends the walk
    assert [f.name for f in folder(manifest(tmp_path, '"docs/**/*.md"')).files] == ["a.md"]


def test_outside_files_are_read_with_the_flag(tmp_path: Path) -> None:
    tree(tmp_path, {"outside.md": "x"})
    (tmp_path / "m").mkdir()
    path = manifest(tmp_path / "m", "../outside.md")
    assert folder(path, Options(allow_outside_files=True)).files[0].name == "outside.md"


# -- errors ------------------------------------------------------------------------------------


def error_of(path: Path) -> tuple[tuple[int, int], str]:
    d = only(diagnostics(path, lambda p: load_manifest(str(p))))
    return at(d), d.message


@pytest.mark.parametrize(
    ("files", "tree_files", "message"),
    [
        ('"docs/*.pdf"', DOCS, "folders.handbook.files[0]: 'docs/*.pdf' matches no file"),
        (
            '"nope/**/*.md"',
            DOCS,
            "folders.handbook.files[0]: 'nope/**/*.md' matches no file (nope is not a folder)",
        ),
        (
            "docs/missing.md",
            DOCS,
            "folders.handbook.files[0]: no such file: {root}/docs/missing.md",
        ),
        (
            "docs",
            DOCS,
            "folders.handbook.files[0]: 'docs': Letta does not take a file with no "
            "extension (it takes .md, .txt, .pdf, .json, .csv, source code and the "
            "like)",
        ),
        (
            "/etc/hosts.md",
            DOCS,
            "folders.handbook.files[0]: '/etc/hosts.md': write paths relative "
            "to the manifest, with '/'",
        ),
        (
            "tool.exe",
            {"tool.exe": b"MZ"},
            "folders.handbook.files[0]: 'tool.exe': Letta does not "
            "take type '.exe' (it takes .md, .txt, .pdf, .json, .csv, source code and the like)",
        ),
        (
            "docs/.hidden.md",
            DOCS,
            "folders.handbook.files[0]: 'docs/.hidden.md': Letta refuses names starting with '.'",
        ),
        (
            '"a/*.md", "b/*.md"',
            {"a/x.md": "1", "b/x.md": "2"},
            "folders.handbook.files[1]: 'b/x.md' and 'a/x.md' (files[0]) would both be named "
            "'x.md' in the folder; Letta keys files by name",
        ),
    ],
    ids=[
        "no-match",
        "no-folder",
        "missing",
        "extensionless",
        "absolute",
        "type",
        "dotfile",
        "same-name",
    ],
)
def test_bad_files_are_refused_at_their_entry(
    tmp_path: Path, files: str, tree_files: dict[str, str | bytes], message: str
) -> None:
    tree(tmp_path, tree_files)
    position, text = error_of(manifest(tmp_path, files))
    assert position == (6, 23 if ", " in files else 13)
    assert text == message.format(root=tmp_path)


def test_a_directory_named_as_a_file(tmp_path: Path) -> None:
    tree(tmp_path, {"d.md/x.md": "x"})
    _, text = error_of(manifest(tmp_path, "d.md"))
    assert text == f"folders.handbook.files[0]: {tmp_path}/d.md is a directory, not a file"


def test_outside_the_tree_without_the_flag(tmp_path: Path) -> None:
    tree(tmp_path, {"outside.md": "x", "m/inside.md": "y"})
    os.symlink(tmp_path / "outside.md", tmp_path / "m" / "link.md")
    for files in ("../outside.md", "link.md", '"../*.md"'):
        _, text = error_of(manifest(tmp_path / "m", files))
        assert "is outside" in text and "pass --allow-outside-files to read it" in text, text


def test_an_agent_names_an_undeclared_folder(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    text = HEAD.replace("folders: [handbook]}\n  triage", "folders: [handbok]}\n  triage")
    position, message = error_of(manifest(tmp_path, "other.md", text))
    assert position == (8, 77)
    assert (
        message
        == "agents.support.folders[0]: no folder 'handbok' is declared; did you mean 'handbook'?"
    )


def test_two_folders_may_not_share_a_name(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    text = HEAD + "  # a second folder\n"
    other = "  other: {name: handbook, embedding: letta/letta-free, files: [other.md]}\n"
    text = text.replace("folders:\n", "folders:\n" + other)
    position, message = error_of(manifest(tmp_path, "other.md", text))
    assert message == (
        "folders.handbook: name 'handbook' is already used by folders.other; folder names are "
        "unique on a Letta server"
    )
    assert position == (5, 3)


def test_the_schema_refuses_unknown_fields_and_bad_embeddings(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    text = HEAD.replace(
        "embedding: letta/letta-free\n    files", "embedding: {model: x}\n    files"
    )
    with pytest.raises(ManifestError) as info:
        load_manifest(str(manifest(tmp_path, "other.md", text)))
    assert info.value.diagnostics[0].line == 5


# -- plan and apply against the fake -----------------------------------------------------------


def plan_apply(fake: FakeLetta, path: Path) -> tuple[int, int]:
    """Plan and apply `path`; the (reads, writes) the apply made (its plan's reads apart)."""
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        fake.counts.clear()
        apply_plan(c, plan)
    return fake.counts["GET"], fake.writes


def uploads(fake: FakeLetta) -> list[str]:
    return [p for m, p in fake.calls if m == "POST" and p.endswith("/upload")]


def converged(fake: FakeLetta, path: Path) -> Desired:
    desired = load_manifest(str(path))
    with fake.client() as c:
        fake.counts.clear()
        assert plan_for(c, desired).changes == ()
    assert fake.writes == 0
    return desired


def test_uploaded_once_for_two_agents_then_converged(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, '"docs/**"')
    fake = FakeLetta()
    plan_apply(fake, path)
    assert len(uploads(fake)) == 3
    (fid,) = fake.folders
    assert sorted(a["name"] for a in fake.agents.values() if fid in a.get("folder_ids", ())) == [
        "support",
        "triage",
    ]
    assert {f["processing_status"] for f in fake.files.values()} == {"completed"}
    converged(fake, path)


def test_one_file_edited_one_removed_one_by_hand(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, '"docs/**"')
    fake = FakeLetta()
    plan_apply(fake, path)
    (fid,) = fake.folders
    fake.files["file-by-hand"] = {"_seq": 99, "_fails": False, "id": "file-by-hand",
                                  "source_id": fid, "original_file_name": "notes.md",
                                  "file_name": "notes.md", "file_size": 3,
                                  "processing_status": "completed"}  # fmt: skip
    tree(tmp_path, {"docs/welcome.md": "# Welcome, edited\n"})
    (tmp_path / "docs/policies/deep/shipping.txt").unlink()
    fake.calls.clear()
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
    (change,) = plan.changes
    assert change.action == UPDATE
    assert [(d.field, d.before is None, d.after is None) for d in change.diffs] == [
        ("files['welcome.md']", False, False),
        ("files['policies/deep/shipping.txt']", False, True),
    ]
    assert "folder.handbook: file 'notes.md' was put in the folder by hand; left alone" in (
        plan.notes
    )
    with fake.client() as c:
        apply_plan(c, plan)
    assert len(uploads(fake)) == 1
    assert [m for m, p in fake.calls if "/file-" in p] == ["DELETE"]
    names = sorted(f["original_file_name"] for f in fake.files.values())
    assert names == ["notes.md", "policies/refunds.md", "welcome.md"]
    converged(fake, path)


def test_a_failed_file_is_an_error_and_only_it_is_sent_again(tmp_path: Path) -> None:
    tree(tmp_path, {**DOCS, "docs/bad.md": b"# Bad\n" + FAIL_MARKER})
    path = manifest(tmp_path, '"docs/*.md"')
    fake = FakeLetta()
    with pytest.raises(ApplyError) as info:
        plan_apply(fake, path)
    assert info.value.failures == [
        "folder.handbook: create: file 'bad.md' failed processing: the parser could not read it "
        "[LA725]"
    ]
    assert len(uploads(fake)) == 2
    tree(tmp_path, {"docs/bad.md": "# Bad, fixed\n"})
    fake.calls.clear()
    plan_apply(fake, path)
    assert len(uploads(fake)) == 1
    converged(fake, path)


def test_a_file_changed_after_the_plan_is_not_sent(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, "other.md")
    fake = FakeLetta()
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        tree(tmp_path, {"other.md": "changed meanwhile"})
        with pytest.raises(LettaApplyError, match=r"other\.md changed since the plan was made"):
            apply_plan(c, plan)
    assert uploads(fake) == []


def test_waiting_is_bounded_and_told(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    fake = FakeLetta()
    fake.stalled = True
    clock = Clock()
    told: list[str] = []
    path = manifest(tmp_path, "other.md")
    with fake.client(sleep=clock.sleep, clock=clock, on_retry=told.append) as c:
        c.wait_timeout = 12.0
        plan = plan_for(c, load_manifest(str(path)))
        with pytest.raises(ApplyError) as info:
            apply_plan(c, plan)
    assert info.value.failures == [
        "folder.handbook: create: Letta is still processing other.md after 12 s; apply again "
        "later to see how it ended [LA724]"
    ]
    assert told == ["folder.handbook: Letta is processing 1 of 1 file(s)"] * 2
    fake.stalled = False
    told.clear()
    # The file the stopped apply sent is the stack's by the intent written before it: recorded,
    # not sent again.
    with fake.client(on_retry=told.append) as c:
        plan = plan_for(c, load_manifest(str(path)))
        assert any("file 'other.md' adopted" in n for n in plan.notes)
        apply_plan(c, plan)
    assert told == [] and len(uploads(fake)) == 1
    (folder,) = fake.folders.values()
    mark = folder["metadata"]["letta_apply"]
    assert list(mark["files"]) == ["other.md"] and "pending" not in mark


def test_an_agent_leaving_detaches_and_prune_deletes(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, "other.md")
    fake = FakeLetta()
    plan_apply(fake, path)
    path.write_text(path.read_text().replace(", folders: [handbook]}\n  triage", "}\n  triage"))
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        assert [(c.action, c.body.get("detach")) for c in plan.changes] == [
            (UPDATE, [a for a, v in fake.agents.items() if v["name"] == "support"])
        ]
        apply_plan(c, plan)
    converged(fake, path)
    path.write_text(path.read_text().split("folders:")[0] + "agents: {}\n")
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        deletes = [(ch.action, ch.address) for ch in plan.changes if ch.kind == "folder"]
        assert deletes == [(DELETE, "folder.handbook")]
        apply_plan(c, plan)
    assert fake.folders == {} and fake.files == {}


def flags(fake: FakeLetta) -> list[str]:
    return [b["id"] for b in fake.blocks.values() if b.get("label") == FLAG_LABEL]


def folder_listings(fake: FakeLetta) -> int:
    return len([p for m, p in fake.calls if m == "GET" and p == "/v1/folders/"])


def test_a_stack_holding_folders_is_flagged_once_and_unflagged_with_the_last(
    tmp_path: Path,
) -> None:
    for n in range(4):
        tree(tmp_path, {f"f{n}/doc.md": f"doc {n}"})
    text = "version: 1\nstack: docs-unit\nfolders:\n" + "".join(
        f'  f{n}: {{embedding: letta/letta-free, files: ["f{n}/*.md"]}}\n' for n in range(4)
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    fake = FakeLetta()
    with fake.client() as c:
        apply_plan(c, plan_for(c, load_manifest(str(path))), parallelism=8)
    assert len(flags(fake)) == 1  # four creates at once, one flag
    # Out of the manifest, the folders are still found (the flag says the stack holds some)
    # and pruned; the flag goes after the last.
    path.write_text("version: 1\nstack: docs-unit\n")
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        assert sorted(ch.address for ch in plan.changes) == [
            FLAG_ADDRESS,
            *(f"folder.f{n}" for n in range(4)),
        ]
        apply_plan(c, plan, parallelism=8)
    assert fake.folders == {} and flags(fake) == []
    fake.calls.clear()
    with fake.client() as c:
        assert plan_for(c, load_manifest(str(path))).changes == ()
    assert folder_listings(fake) == 0  # a stack without folders never lists the server's


def test_destroy_deletes_the_flag_after_the_folders_it_deletes(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, "other.md")
    fake = FakeLetta()
    plan_apply(fake, path)
    assert len(flags(fake)) == 1
    fake.calls.clear()
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)), destroy=True)
        apply_plan(c, plan)
    assert fake.folders == {} and flags(fake) == []
    deletes = [p for m, p in fake.calls if m == "DELETE"]
    # The flag goes last: a folder delete that failed would have left it.
    assert deletes[-1].startswith("/v1/blocks/") and "/v1/folders/" in deletes[0]


@pytest.mark.parametrize("destroy", [False, True])
def test_a_flag_left_without_folders_is_deleted(tmp_path: Path, destroy: bool) -> None:
    tree(tmp_path, DOCS)
    path = manifest(tmp_path, "other.md")
    fake = FakeLetta()
    plan_apply(fake, path)
    fake.folders.clear()  # deleted by hand: the flag alone says the stack held folders
    if not destroy:
        path.write_text("version: 1\nstack: docs-unit\n")
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)), destroy=destroy)
        assert [(ch.address, ch.action) for ch in plan.changes if ch.kind != "agent"] == [
            (FLAG_ADDRESS, DELETE)
        ]
        apply_plan(c, plan)
    assert flags(fake) == []
    fake.calls.clear()
    with fake.client() as c:
        assert plan_for(c, load_manifest(str(path)), destroy=destroy).changes == ()
    if not destroy:
        assert folder_listings(fake) == 0  # the flag gone, folders are no longer listed


def test_the_flag_stays_while_a_folder_does(tmp_path: Path) -> None:
    tree(tmp_path, {"a/doc.md": "a", "b/doc.md": "b"})
    path = tmp_path / "m.yaml"
    path.write_text(
        "version: 1\nstack: docs-unit\nfolders:\n"
        '  a: {name: a, embedding: letta/letta-free, files: ["a/*.md"]}\n'
        '  b: {name: b, embedding: letta/letta-free, files: ["b/*.md"]}\n'
    )
    fake = FakeLetta()
    plan_apply(fake, path)
    (b,) = [fid for fid, f in fake.folders.items() if f["name"] == "b"]
    with fake.client() as c:  # an agent outside the stack uses b: b is kept
        hand = c.request("POST", "/v1/agents/", json={"name": "hand", "model": "letta/letta-free"})
        c.request("PATCH", f"/v1/agents/{hand['id']}/folders/attach/{b}")
    path.write_text("version: 1\nstack: docs-unit\n")
    with fake.client() as c:
        plan = plan_for(c, load_manifest(str(path)))
        assert [ch.address for ch in plan.changes] == ["folder.a"]
        apply_plan(c, plan)
    assert list(fake.folders) == [b] and len(flags(fake)) == 1
    fake.calls.clear()
    with fake.client() as c:
        plan_for(c, load_manifest(str(path)))
    assert folder_listings(fake) == 2  # b is still the stack's: a page and the empty one


def test_reads_stay_pages_not_files(tmp_path: Path) -> None:
    # 10 folders of 60 files each: a converged plan reads a few pages per folder, never a file.
    for n in range(10):
        tree(tmp_path, {f"f{n}/doc{i}.md": f"{n}-{i}" for i in range(60)})
    text = "version: 1\nstack: docs-unit\nfolders:\n" + "".join(
        f'  f{n}: {{embedding: letta/letta-free, files: ["f{n}/*.md"]}}\n' for n in range(10)
    )
    path = tmp_path / "m.yaml"
    path.write_text(text)
    fake = FakeLetta()
    plan_apply(fake, path)
    desired = converged(fake, path)
    # The server's tools (2 pages), blocks (the folder flag: 2 pages), agents and folders (2
    # pages); per folder one page of files and the empty one, and its agents.
    assert fake.counts["GET"] == 2 + 2 + 1 + 2 + 10 * (2 + 1)
    assert len(desired.of("folder")) == 10


def test_create_plan_shows_each_file_and_the_agents(tmp_path: Path) -> None:
    tree(tmp_path, DOCS)
    with FakeLetta().client() as c:
        plan = plan_for(c, load_manifest(str(manifest(tmp_path, '"docs/*.md"'))))
    change = next(ch for ch in plan.changes if ch.kind == "folder")
    assert change.action == CREATE
    shown = {d.field: d.after for d in change.diffs}
    assert shown["files['welcome.md']"].startswith("10 B sha256:")
    assert shown["agents"] == ["agent.support", "agent.triage"]
    assert change.body["attach"] == [{"$ref": "agent.support"}, {"$ref": "agent.triage"}]
