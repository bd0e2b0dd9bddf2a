"""Input the server would refuse, or that would crash letta-apply, is reported by `validate` with
its position: never a traceback, never a 4xx or 5xx halfway through an apply."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from letta_apply.kinds.folder import files as folder_files_module
from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write

HEAD = "version: 1\nstack: s\n"
AGENT = "    model: letta/letta-free\n    embedding: letta/letta-free\n"


def errors(tmp_path: Path, text: str | Path) -> list[tuple[tuple[int, int], str]]:
    path = text if isinstance(text, Path) else write(tmp_path, text)
    found = diagnostics(path, lambda p: load_manifest(str(p)))
    return [(at(d), d.message) for d in found]


# ---------------------------------------------------------------------------------------------
# The shape of the whole document


@pytest.mark.parametrize(
    ("text", "got"),
    [("hello\n", "a string"), ("- a\n- b\n", "a list"), ("42\n", "an integer")],
)
def test_a_manifest_that_is_not_a_mapping_is_an_error(
    cli: Cli, tmp_path: Path, text: str, got: str
) -> None:
    path = write(tmp_path, text)
    r = cli("validate", "-f", str(path))
    assert r.code == 1
    assert f"{path}:1:1: manifest: expected a mapping, got {got}" in r.out + r.err
    assert "Traceback" not in r.out + r.err


# ---------------------------------------------------------------------------------------------
# What Letta refuses


def test_a_timezone_is_an_iana_zone_name(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        HEAD + "agents:\n"
        "  a:\n" + AGENT + "    timezone: Mars/Olympus\n"
        "  b:\n" + AGENT + "    timezone: europe/paris\n"
        "  c:\n" + AGENT + "    timezone: Europe/Pariss\n"
        "  d:\n" + AGENT + "    timezone: UTC\n"
        "  e:\n" + AGENT + "    timezone: America/Argentina/Buenos_Aires\n",
    )
    assert found == [
        ((7, 15), "agents.a.timezone: 'Mars/Olympus' is not an IANA time zone name "
         "(e.g. 'Europe/Paris', 'UTC')"),
        ((11, 15), "agents.b.timezone: 'europe/paris' is not an IANA time zone name; "
         "write it 'Europe/Paris'"),
        ((15, 15), "agents.c.timezone: 'Europe/Pariss' is not an IANA time zone name; "
         "did you mean 'Europe/Paris'?"),
    ]  # fmt: skip


def test_a_folder_needs_an_embedding(tmp_path: Path) -> None:
    found = errors(tmp_path, HEAD + "folders:\n  docs:\n    description: d\n")
    assert found == [((4, 3), "folders.docs: missing required key 'embedding'")]


def test_a_stdio_mcp_server_needs_args(tmp_path: Path) -> None:
    text = HEAD + "mcp_servers:\n  run:\n    mcp_server_type: stdio\n    command: uvx\n"
    assert errors(tmp_path, text) == [((4, 3), "mcp_servers.run: a stdio server needs `args` "
                                       "(args: [] for none)")]  # fmt: skip
    load_manifest(str(write(tmp_path, text + "    args: []\n")))


@pytest.mark.parametrize(
    ("section", "field"),
    [("folders", "embedding"), ("folders", "files"), ("archives", "embedding")],
)
def test_ignore_changes_names_only_what_it_can_ignore(
    tmp_path: Path, section: str, field: str
) -> None:
    text = (
        HEAD + f"{section}:\n  x:\n    embedding: letta/letta-free\n    ignore_changes: [{field}]\n"
    )
    ((pos, message),) = errors(tmp_path, text)
    assert pos == (6, 22)
    assert message.startswith(f"{section}.x.ignore_changes[0]: ")
    assert field in message


@pytest.mark.parametrize(("section", "field"), [("folders", "name"), ("archives", "name")])
def test_ignore_changes_keeps_what_it_honours(tmp_path: Path, section: str, field: str) -> None:
    text = (
        HEAD + f"{section}:\n  x:\n    embedding: letta/letta-free\n    ignore_changes: [{field}]\n"
    )
    kind = section[:-1]
    assert load_manifest(str(write(tmp_path, text))).of(kind)[f"{kind}.x"].ignore == {field}


# ---------------------------------------------------------------------------------------------
# Bounded time


def folder_manifest(tmp_path: Path, pattern: str) -> Path:
    files = HEAD + f"folders:\n  docs:\n    embedding: letta/letta-free\n    files: ['{pattern}']\n"
    return write(tmp_path, files)


def folder_files(path: Path) -> list[str]:
    return sorted(f.name for f in load_manifest(str(path)).of("folder")["folder.docs"].files)


def test_a_glob_is_matched_in_linear_time(tmp_path: Path) -> None:
    # As a regex this glob backtracked for 21 s on one 44-character name.
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / ("a" * 44)).write_text("x")
    (tmp_path / "k" / ("a" * 12 + "b.md")).write_text("x")
    started = time.monotonic()
    found = folder_files(folder_manifest(tmp_path, "k/" + "*a" * 10 + "*b.md"))
    assert time.monotonic() - started < 5
    assert found == ["a" * 12 + "b.md"]


def test_a_glob_of_thousands_of_stars_ends(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / ("a" * 44)).write_text("x")
    started = time.monotonic()
    ((pos, message),) = errors(tmp_path, folder_manifest(tmp_path, "k/" + "*a" * 5000 + "*b.md"))
    assert time.monotonic() - started < 5
    assert pos == (6, 13)
    assert message.startswith("folders.docs.files[0]: 'k/*a*a") and "matches no file" in message


def test_a_glob_matches_what_it_says(tmp_path: Path) -> None:
    for name in ("k/aXbYc.md", "k/acb.md", "k/abc.md", "k/x/y/b/c.md", "k/b/d.md", "k/x/e.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    cases = {
        "k/a*b*c.md": ["aXbYc.md", "abc.md"],
        "k/**/b/*.md": ["b/d.md", "x/y/b/c.md"],
        "k/*/*.md": ["b/d.md", "x/e.md"],
        "k/[!a]*.md": [],
        "k/[a]?b.md": ["acb.md"],
        "k/**": ["aXbYc.md", "abc.md", "acb.md", "b/d.md", "x/e.md", "x/y/b/c.md"],
    }
    for pattern, names in cases.items():
        if not names:
            assert "matches no file" in errors(tmp_path, folder_manifest(tmp_path, pattern))[0][1]
            continue
        assert folder_files(folder_manifest(tmp_path, pattern)) == names, pattern


def test_a_bad_glob_class_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    assert errors(tmp_path, folder_manifest(tmp_path, "k/[z-a].md")) == [
        ((6, 13), "folders.docs.files[0]: invalid character class '[z-a]': bad character "
         "range z-a at position 1"),
    ]  # fmt: skip


def test_a_duplicate_in_a_long_list_is_found_in_linear_time(tmp_path: Path) -> None:
    tags = [f"t{i}" for i in range(20_000)] + ["t5"]
    text = HEAD + "agents:\n  a:\n" + AGENT + f"    tags: {json.dumps(tags)}\n"
    started = time.monotonic()
    ((_, message),) = errors(tmp_path, text)
    assert time.monotonic() - started < 5  # quadratic, it took over a minute
    assert message == "agents.a.tags[20000]: 't5' is listed twice (first at line 7)"


def big_tree(tmp_path: Path) -> Path:
    for name in ("0.md", *(f"node_modules/{i}.js" for i in range(9)), "z/b.md"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    return folder_manifest(tmp_path, "**/*.md")


def test_a_glob_over_a_big_tree_drops_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The walk used to stop after MAX_FILES files, matched or not: z/b.md was left out, and
    # plan deleted it from the Letta folder.
    monkeypatch.setattr(folder_files_module, "MAX_FILES", 5)
    assert folder_files(big_tree(tmp_path)) == ["0.md", "z/b.md"]


def test_a_glob_over_the_limits_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = big_tree(tmp_path)
    monkeypatch.setattr(folder_files_module, "MAX_FILES", 1)
    assert errors(tmp_path, path) == [
        ((6, 13), "folders.docs.files[0]: '**/*.md' matches 2 files, over the limit of 1")
    ]
    monkeypatch.setattr(folder_files_module, "MAX_ENTRIES", 5)
    assert errors(tmp_path, path) == [
        ((6, 13), "folders.docs.files[0]: '**/*.md': stopped after 5 files and folders under "
         ".; name a narrower folder"),
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# No traceback, no forged output


def test_a_server_url_that_names_no_server_is_an_error(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        HEAD + "mcp_servers:\n"
        '  a: {mcp_server_type: sse, server_url: "http://[::1/"}\n'
        '  b: {mcp_server_type: streamable_http, server_url: "http://"}\n'
        '  c: {mcp_server_type: streamable_http, server_url: "https://h:99999/x"}\n',
    )
    assert [m for _, m in found] == [
        "mcp_servers.a.server_url: 'http://[::1/' is not a valid URL (Invalid IPv6 URL)",
        "mcp_servers.b.server_url: 'http://' names no host",
        "mcp_servers.c.server_url: 'https://h:99999/x' is not a valid URL (Port out of range "
        "0-65535)",
    ]


@pytest.mark.parametrize(
    ("entry", "where"),
    [
        ("blocks:\n  b: {value_file: NAME.txt}\n", "blocks.b.value_file"),
        ("agents:\n  a: {system_file: NAME.txt}\n", "agents.a.system_file"),
        ("tools:\n  t: {source_file: NAME.py}\n", "tools.t.source_file"),
        ("folders:\n  f: {embedding: a/b, files: [d/NAME/x.md]}\n", "folders.f.files[0]"),
        ("folders:\n  f: {embedding: a/b, files: ['NAME/*.md']}\n", "folders.f.files[0]"),
    ],
)
def test_a_file_name_over_the_system_limit_is_an_error(
    tmp_path: Path, entry: str, where: str
) -> None:
    (message,) = [m for _, m in errors(tmp_path, HEAD + entry.replace("NAME", "x" * 300))]
    assert message.startswith(f"{where}: '")
    assert message.endswith("cannot be read: a file or folder name in it is over 255 bytes")
    deep = "y/" * 3000
    (message,) = [m for _, m in errors(tmp_path, HEAD + entry.replace("NAME", deep))]
    assert message.endswith("cannot be read: the path is over 4096 bytes")


def test_file_names_cannot_forge_plan_lines(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "a\n  + agent.forged.md").write_text("x")
    (tmp_path / "k" / "\x1b[31mred.md").write_text("x")
    path = folder_manifest(tmp_path, "k/*.md")
    r = cli("plan", "-f", str(path), "--no-color")
    assert r.code == 0, r.err
    assert "files['a\\x0a  + agent.forged.md']" in r.out
    assert "files['\\x1b[31mred.md']" in r.out
    assert "\x1b" not in r.out
    assert not [line for line in r.out.splitlines() if line.lstrip().startswith("+ agent.")]


def test_passage_file_names_cannot_forge_plan_lines(cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "k").mkdir()
    (tmp_path / "k" / "a\n  + agent.forged.md").write_text("x")
    (tmp_path / "k" / "\x1b[31mred.md").write_text("y")
    path = write(
        tmp_path,
        HEAD + "archives:\n  kb:\n    embedding: letta/letta-free\n"
        "    passages: {files: ['k/*.md']}\n",
    )

    def escaped(out: str, times: int) -> None:
        # Escaped as a folder's file names are (kinds.folder.files.shown_name).
        assert out.count("passages['a\\x0a  + agent.forged.md']") == times, out
        assert out.count("passages['\\x1b[31mred.md']") == times, out
        assert "\x1b" not in out
        assert not [line for line in out.splitlines() if line.lstrip().startswith("+ agent.")]

    r = cli("plan", "-f", str(path), "--no-color")
    assert r.code == 0, r.err
    escaped(r.out, 1)
    assert cli("apply", "-f", str(path), "--auto-approve").code == 0
    # Changed files: the passages inserted go, named by the source their marks on the server
    # hold, and new ones come.
    for f in (tmp_path / "k").iterdir():
        f.write_text("changed " + f.read_text())
    r = cli("plan", "-f", str(path), "--no-color")
    assert r.code == 0, r.err
    escaped(r.out, 2)


def test_a_group_names_instances_of_templated_agents(cli: Cli, tmp_path: Path) -> None:
    text = (
        HEAD + "blocks:\n  region: {for_each: [eu, us], value: x}\n"
        "agents:\n  w:\n    count: 2\n" + AGENT + "  boss:\n    for_each: [eu]\n" + AGENT
        + "groups:\n  g:\n    manager_type: supervisor\n    manager_agent: 'boss[\"eu\"]'\n"
        "    agents: ['w[0]', 'w[1]']\n    blocks: ['region[\"eu\"]']\n"
    )  # fmt: skip
    group = load_manifest(str(write(tmp_path, text))).of("group")["group.g"]
    assert group.config["agents"] == ["agent.w[0]", "agent.w[1]"]
    assert group.config["manager_agent"] == 'agent.boss["eu"]'
    r = cli("plan", "-f", str(tmp_path / "m.yaml"), "--no-color")
    assert r.code == 0, r.err
    assert "+ group.g" in r.out


GROUPED = (
    HEAD + "blocks:\n  region: {for_each: [eu, us], value: x}\n"
    "agents:\n  w:\n    count: 2\n" + AGENT + "  boss:\n    for_each: [eu, us]\n" + AGENT
    + "groups:\n  g:\n    manager_type: supervisor\n    manager_agent: MANAGER\n"
    "    agents:\n      - MEMBER\n    blocks:\n      - BLOCK\n"
)  # fmt: skip


def grouped(**refs: str) -> str:
    """A group naming instances, the references given as they are written (unquoted: in a block
    list, YAML takes `w[0]` as it is)."""
    text = GROUPED
    for name, ref in {
        "MANAGER": "boss[us]",
        "MEMBER": "w[0]",
        "BLOCK": "region[eu]",
        **refs,
    }.items():
        text = text.replace(name, ref)
    return text


@pytest.mark.parametrize(
    ("refs", "members", "blocks"),
    [
        # Every spelling an agent's `blocks:` takes.
        ({"MEMBER": "w[1]"}, ["agent.w[1]"], ['block.region["eu"]']),
        ({"MANAGER": "boss['us']", "MEMBER": "boss[eu]", "BLOCK": "region['us']"},
         ['agent.boss["eu"]'], ['block.region["us"]']),
        ({"MANAGER": 'boss["us"]', "MEMBER": 'boss["eu"]', "BLOCK": "region[*]"},
         ['agent.boss["eu"]'], ['block.region["eu"]', 'block.region["us"]']),
        ({"MANAGER": "'boss[\"us\"]'", "MEMBER": "w[*]", "BLOCK": "'region[\"eu\"]'"},
         ["agent.w[0]", "agent.w[1]"], ['block.region["eu"]']),
    ],
)  # fmt: skip
def test_a_group_names_instances_as_agents_name_blocks(
    tmp_path: Path, refs: dict[str, str], members: list[str], blocks: list[str]
) -> None:
    group = load_manifest(str(write(tmp_path, grouped(**refs)))).of("group")["group.g"]
    assert group.config["manager_agent"] == 'agent.boss["us"]'
    assert group.config["agents"] == members
    assert group.config["blocks"] == blocks


@pytest.mark.parametrize(
    ("refs", "message", "fix"),
    [
        ({"MANAGER": "boss"},
         "groups.g.manager_agent: agent.boss has for_each: name one instance, boss[eu]",
         {"MANAGER": "boss[eu]"}),
        ({"MANAGER": "boss[*]"},
         "groups.g.manager_agent: agent.boss has for_each: name one instance, boss[eu]",
         {"MANAGER": "boss[eu]"}),
        ({"MEMBER": "w"},
         "groups.g.agents[0]: agent.w has count: name one instance, w[0], or every one, w[*]",
         {"MEMBER": "w[*]"}),
        ({"BLOCK": "region"},
         "groups.g.blocks[0]: block.region has for_each: name one instance, region[eu], or every "
         "one, region[*]",
         {"BLOCK": "region[eu]"}),
        ({"MANAGER": "bos[us]"},
         "groups.g.manager_agent: no agent 'bos[\"us\"]' is declared; did you mean "
         "'boss[\"us\"]'?",
         {"MANAGER": "'boss[\"us\"]'"}),
        ({"MEMBER": "w[2]"},
         "groups.g.agents[0]: no agent 'w[2]' is declared; did you mean 'w[1]'?",
         {"MEMBER": "'w[1]'"}),
    ],
)  # fmt: skip
def test_a_group_hint_suggests_what_a_group_accepts(
    tmp_path: Path, refs: dict[str, str], message: str, fix: dict[str, str]
) -> None:
    assert [m for _, m in errors(tmp_path, grouped(**refs))] == [message]
    # What the message suggests, written as it writes it, is taken.
    assert all(ref in message for ref in fix.values())
    load_manifest(str(write(tmp_path, grouped(**fix))))
