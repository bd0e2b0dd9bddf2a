"""Input the server would refuse, or that would crash letta-apply, is reported by `validate` with
its position: never a traceback, never a 4xx or 5xx halfway through an apply."""

from __future__ import annotations

from pathlib import Path

import pytest

from letta_apply.pipeline import load_manifest
from tests.helpers import Cli, at, diagnostics, write

HEAD = "version: 1\nstack: s\n"
AGENT = "    model: letta/letta-free\n    embedding: letta/letta-free\n"


def errors(tmp_path: Path, text: str) -> list[tuple[tuple[int, int], str]]:
    found = diagnostics(write(tmp_path, text), lambda p: load_manifest(str(p)))
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
