"""Unit tests for letta_apply.manifest.files: YAML text and files into a Document with positions,
and every way a file can fail to be a manifest, reported as file:line:col diagnostics."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from textwrap import dedent

import pytest
import yaml

from letta_apply.errors import Diagnostic, ManifestError
from letta_apply.manifest import parse
from letta_apply.manifest.files import Document, Position
from letta_apply.manifest.parse import Parsing
from tests.helpers import at, diagnostics, only, write

DEFAULT_LOADER = parse.YAML_LOADER
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shared-memory.yaml"

LOADERS = [pytest.param(yaml.SafeLoader, id="pure-python")]
if getattr(yaml, "__with_libyaml__", False):
    LOADERS.append(pytest.param(yaml.CSafeLoader, id="libyaml"))


PARSING = Parsing()  # how this module's tests read YAML: set per test by `loader`


@pytest.fixture(params=LOADERS, autouse=True)
def loader(request: pytest.FixtureRequest) -> Iterator[type]:
    """Every test runs with each YAML parser available: positions must not depend on it."""
    global PARSING
    PARSING = Parsing(loader=request.param)
    yield request.param
    PARSING = Parsing()


def load_file(path: str | Path) -> Document:
    return parse.load_file(path, PARSING)


def load_text(text: str, file: str) -> Document:
    return parse.load_text(text, file, PARSING)


def errors(tmp_path: Path, text: str | bytes) -> list[Diagnostic]:
    return diagnostics(write(tmp_path, text), load_file)


def error(tmp_path: Path, text: str | bytes) -> Diagnostic:
    return only(errors(tmp_path, text))


# ---------------------------------------------------------------------------------------------
# A valid file


def test_example_loads_with_positions_of_values_and_keys() -> None:
    doc = load_file(EXAMPLE)
    assert isinstance(doc, Document)
    assert doc.file == str(EXAMPLE)
    assert doc.data["version"] == 1
    assert doc.data["stack"] == "shared-memory-example"
    assert doc.data["agents"]["worker"]["blocks"] == ["organization"]
    assert doc.data["agents"]["supervisor"]["memory_blocks"] == [
        {"label": "persona", "value": "I am a supervisor"}
    ]
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    version_line = lines.index("version: 1") + 1
    assert doc.keys[("version",)] == Position(version_line, 1)
    assert doc.values[("version",)] == Position(version_line, 10)
    worker_line = lines.index("  worker:") + 1
    assert doc.keys[("agents", "worker")] == Position(worker_line, 3)
    # `blocks: [organization]` under worker: the list and its first item.
    blocks_line = worker_line + 6
    assert lines[blocks_line - 1] == "    blocks: [organization]"
    assert doc.values[("agents", "worker", "blocks")] == Position(blocks_line, 13)
    assert doc.values[("agents", "worker", "blocks", 0)] == Position(blocks_line, 14)


def test_where_falls_back_to_the_nearest_enclosing_value() -> None:
    doc = load_text("version: 1\nstack: s\nagents:\n  a:\n    model: x/y\n", "m.yaml")
    assert doc.where(("agents", "a", "model")) == Position(5, 12)
    assert doc.where(("agents", "a", "model"), key=True) == Position(5, 5)
    # Not in the document: the nearest enclosing value that is.
    assert doc.where(("agents", "a", "name")) == Position(5, 5)
    assert doc.where(("agents", "a", "name"), key=True) == Position(5, 5)
    d = doc.diag(("agents", "a"), "boom", code="LA302", key=True)
    assert d == Diagnostic("m.yaml", 4, 3, "boom", code="LA302")
    assert str(d) == "m.yaml:4:3: boom"


def test_positions_count_characters_not_bytes_and_crlf_lines() -> None:
    doc = load_text("version: 1\r\nstack: s\r\nblocks:\r\n  b: {value: é, label: ü}\r\n", "m")
    assert doc.values[("blocks", "b", "label")] == Position(4, 24)
    doc = load_text("a: 'ééé'\nb: x\n", "m")
    assert doc.values[("b",)] == Position(2, 4)


def test_utf8_byte_order_mark_is_accepted_and_does_not_shift_columns(tmp_path: Path) -> None:
    path = write(tmp_path, b"\xef\xbb\xbfversion: 1\nstack: s\n")
    doc = load_file(path)
    assert doc.data == {"version": 1, "stack": "s"}
    assert doc.values[("version",)] == Position(1, 10)


def test_plain_scalars_keep_their_json_types() -> None:
    doc = load_text("a: 1\nb: 1.5\nc: true\nd: null\ne: '2024-01-01'\nf: [x, 2]\n", "m")
    assert doc.data == {"a": 1, "b": 1.5, "c": True, "d": None, "e": "2024-01-01", "f": ["x", 2]}


# ---------------------------------------------------------------------------------------------
# Malformed YAML


def test_bad_indentation(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          b:
            value: a
           label: x
        """,
    )
    assert at(d) == (6, 4)
    assert d.message.startswith("invalid YAML: ")
    assert "line 4, column 3" in d.message  # the mapping the line does not fit in
    assert "indentation" in d.message


def test_key_indented_under_a_plain_value(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          b:
            value: a
              label: x
        """,
    )
    assert at(d) == (6, 12)
    assert "mapping values are not allowed" in d.message
    assert "quote" in d.message


def test_unclosed_double_quote_points_at_the_opening_quote(tmp_path: Path) -> None:
    d = error(tmp_path, 'version: 1\nstack: s\nblocks:\n  b:\n    value: "abc\n    label: x\n')
    assert at(d) == (5, 12)
    assert d.message == "invalid YAML: unclosed quote: this string never ends"


def test_unclosed_single_quote(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\ndescription: 'it never\n# ends\n")
    assert at(d) == (3, 14)
    assert "unclosed quote" in d.message


def test_unclosed_bracket_points_at_the_bracket(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents:\n  a:\n    blocks: [x, y\n")
    assert at(d) == (5, 13)
    assert d.message == "invalid YAML: unclosed '[': no matching ']'"


def test_unclosed_brace_points_at_the_brace(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents:\n  a: {model: x/y\n# trailing comment\n")
    assert at(d) == (4, 6)
    assert d.message == "invalid YAML: unclosed '{': no matching '}'"


@pytest.mark.parametrize(
    ("text", "position", "bracket"),
    [
        pytest.param("a: [\n", (1, 4), "'[': no matching ']'", id="empty-list"),
        pytest.param("a: [x,\n", (1, 4), "'[': no matching ']'", id="after-comma"),
        pytest.param("a: {b: 1,\n\n", (1, 4), "'{': no matching '}'", id="mapping-after-comma"),
        pytest.param("a: [[x], [y\n", (1, 10), "'[': no matching ']'", id="inner-list"),
        pytest.param("a: [[x], y\n", (1, 4), "'[': no matching ']'", id="outer-list"),
        pytest.param("a: [{b: 1}, {c: [d]\n", (1, 13), "'{': no matching '}'", id="inner-map"),
    ],
)
def test_unclosed_flow_collections_point_at_the_open_one(
    tmp_path: Path, text: str, position: tuple[int, int], bracket: str
) -> None:
    d = error(tmp_path, text)
    assert at(d) == position
    assert d.message == f"invalid YAML: unclosed {bracket}"


def test_unclosed_bracket_followed_by_more_yaml(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents:\n  a:\n    blocks: [x, y\n  b: {}\n")
    assert at(d) == (6, 4)
    assert "flow sequence at line 5, column 13" in d.message


def test_tab_indentation(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents:\n\ta: {}\n")
    assert at(d) == (4, 1)
    assert d.message == "invalid YAML: tab character: YAML indents with spaces only"


def test_undefined_alias(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nblocks: *defaults\n")
    assert at(d) == (3, 9)
    assert "'*defaults'" in d.message and "'&defaults'" in d.message


def test_syntax_error_reports_one_diagnostic_and_no_partial_data(tmp_path: Path) -> None:
    found = errors(tmp_path, "version: 1\nstack: s\nx: [\ny: 1: 2\n")
    assert len(found) == 1
    assert found[0].message.startswith("invalid YAML")


# ---------------------------------------------------------------------------------------------
# Files that are not one mapping


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("\n\n   \n", id="blank"),
        pytest.param("# only a comment\n# and another\n", id="comment"),
        pytest.param("---\n", id="document-marker"),
        pytest.param("~\n", id="null"),
    ],
)
def test_empty_manifest(tmp_path: Path, text: str) -> None:
    d = error(tmp_path, text)
    assert at(d) == (1, 1)
    assert d.message.startswith("the manifest is empty")
    assert "version: 1" in d.message


def test_top_level_list_loads_as_a_list() -> None:
    # load accepts any YAML document; validate says it must be a mapping (tested there).
    assert load_text("- a\n- b\n", "m").data == ["a", "b"]


def test_two_documents(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: a\n---\nversion: 1\nstack: b\n")
    assert at(d) == (3, 1)
    assert "one YAML document" in d.message
    assert "second" in d.message


def test_document_end_marker_then_nothing_is_one_document(tmp_path: Path) -> None:
    doc = load_file(write(tmp_path, "---\nversion: 1\nstack: s\n...\n"))
    assert doc.data == {"version": 1, "stack": "s"}


# ---------------------------------------------------------------------------------------------
# Duplicate keys


def test_duplicate_top_level_key(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: a\nstack: b\n")
    assert at(d) == (3, 1)
    assert d.message == "duplicate key 'stack' (first defined at line 2, column 1)"


def test_duplicate_key_deep_inside_an_agent(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        agents:
          a:
            model: x/y
            embedding: x/y
            model: x/z
        """,
    )
    assert at(d) == (7, 5)
    assert "duplicate key 'model'" in d.message
    assert "line 5" in d.message


def test_duplicate_key_inside_a_list_item(tmp_path: Path) -> None:
    d = error(
        tmp_path,
        """\
        version: 1
        stack: s
        agents:
          a:
            memory_blocks:
              - label: p
                value: x
                label: q
        """,
    )
    assert at(d) == (8, 9)
    assert "duplicate key 'label'" in d.message
    assert "line 6" in d.message


def test_duplicate_agent_key_in_flow_mapping(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents: {a: {}, b: {}, a: {}}\n")
    assert at(d) == (3, 24)
    assert "duplicate key 'a'" in d.message and "line 3" in d.message


def test_every_duplicate_is_reported(tmp_path: Path) -> None:
    found = errors(tmp_path, "a: 1\nb: 2\na: 3\nc:\n  d: 1\n  d: 2\nb: 4\n")
    assert [at(d) for d in found] == [(3, 1), (6, 3), (7, 1)]
    assert [d.message.split(" (")[0] for d in found] == [
        "duplicate key 'a'",
        "duplicate key 'd'",
        "duplicate key 'b'",
    ]


def test_merge_key_values_can_be_overridden_without_a_duplicate_error() -> None:
    doc = load_text(
        dedent(
            """\
            defaults: &defaults
              model: letta/letta-free
              embedding: letta/letta-free
            agents:
              a:
                <<: *defaults
                model: openai/gpt-4o
            """
        ),
        "m",
    )
    assert doc.data["agents"]["a"] == {"model": "openai/gpt-4o", "embedding": "letta/letta-free"}
    assert doc.values[("agents", "a", "model")] == Position(7, 12)
    assert doc.values[("agents", "a", "embedding")] == Position(3, 14)  # where it was written


def test_merge_of_a_list_of_mappings_earlier_wins() -> None:
    doc = load_text("x: &x {a: 1, b: 1}\ny: &y {b: 2, c: 2}\nz:\n  <<: [*x, *y]\n", "m")
    assert doc.data["z"] == {"a": 1, "b": 1, "c": 2}


def test_merge_of_a_scalar_is_an_error(tmp_path: Path) -> None:
    d = error(tmp_path, "a:\n  <<: 5\n")
    assert at(d) == (2, 7)
    assert "'<<' can only merge mappings" in d.message


def test_aliased_mapping_with_a_duplicate_is_reported_once(tmp_path: Path) -> None:
    found = errors(tmp_path, "a: &x {k: 1, k: 2}\nb: *x\nc: *x\n")
    assert [at(d) for d in found] == [(1, 14)]


# ---------------------------------------------------------------------------------------------
# Bytes and characters


def test_non_utf8_byte_position(tmp_path: Path) -> None:
    d = error(tmp_path, b"version: 1\nstack: s\ndescription: caf\xe9\n")
    assert at(d) == (3, 17)
    assert "not valid UTF-8" in d.message and "0xe9" in d.message


def test_non_utf8_column_counts_characters_before_the_bad_byte(tmp_path: Path) -> None:
    # "é" is two bytes but one column.
    d = error(tmp_path, b"version: 1\n# \xc3\xa9\xe9\n")
    assert at(d) == (2, 4)


def test_non_utf8_after_a_byte_order_mark(tmp_path: Path) -> None:
    d = error(tmp_path, b"\xef\xbb\xbfab: \xff\n")
    assert at(d) == (1, 5)
    assert "0xff" in d.message


def test_utf16_file(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\n".encode("utf-16"))
    assert at(d) == (1, 1)
    assert "UTF-16" in d.message


def test_raw_nul_character(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nblocks:\n  b:\n    value: a\x00b\n")
    assert at(d) == (5, 13)
    assert "NUL" in d.message


@pytest.mark.parametrize("char", ["\x07", "\x1b", "\x7f", "\ufffe"])
def test_control_characters(tmp_path: Path, char: str) -> None:
    d = error(tmp_path, f"version: 1\nstack: s{char}\n")
    assert at(d) == (2, 9)
    assert f"U+{ord(char):04X}" in d.message
    assert "not allowed" in d.message


# ---------------------------------------------------------------------------------------------
# YAML values and keys that have no JSON equivalent


@pytest.mark.parametrize(
    ("value", "what"),
    [
        pytest.param("2024-01-01", "a date", id="date"),
        pytest.param("2024-01-01 10:00:00", "a date", id="datetime"),
        pytest.param("!!binary aGVsbG8=", "binary data", id="binary"),
        pytest.param(".inf", "not a finite number", id="inf"),
        pytest.param(".nan", "not a finite number", id="nan"),
    ],
)
def test_unsupported_values_ask_for_quotes(tmp_path: Path, value: str, what: str) -> None:
    d = error(tmp_path, f"version: 1\nstack: s\nblocks:\n  b:\n    value: {value}\n")
    assert at(d) == (5, 12)
    assert f"({what})" in d.message
    assert "quote it" in d.message


@pytest.mark.parametrize(
    ("value", "what"),
    [
        pytest.param("2024-13-45", "as a date", id="impossible-date"),
        pytest.param("1" + "0" * 5000, "as an integer", id="huge-integer"),
        pytest.param("!!int abc", "as an integer", id="bad-int-tag"),
        pytest.param("!!bool maybe", "as true or false", id="bad-bool-tag"),
        pytest.param("!!timestamp soon", "as a date", id="bad-timestamp-tag"),
        pytest.param("!custom x", "unsupported YAML tag '!custom'", id="unknown-tag"),
    ],
)
def test_values_the_yaml_constructors_cannot_build(tmp_path: Path, value: str, what: str) -> None:
    d = error(tmp_path, f"version: 1\nstack: s\nlimit: {value}\n")
    assert at(d) == (3, 8)
    assert what in d.message
    assert "quote it" in d.message


@pytest.mark.parametrize(
    ("text", "what"),
    [
        pytest.param("blocks: !!set {a, b}\n", "'!!set' on a mapping", id="set"),
        pytest.param("blocks: !!omap [a: 1]\n", "'!!omap' on a list", id="omap"),
        pytest.param(
            "blocks: !!python/object:os.system {}\n",
            "'!!python/object:os.system' on a mapping",
            id="python-object",
        ),
    ],
)
def test_unsupported_collection_tags(tmp_path: Path, text: str, what: str) -> None:
    d = error(tmp_path, "version: 1\nstack: s\n" + text)
    assert at(d) == (3, 9)
    assert f"unsupported YAML tag {what}" in d.message


@pytest.mark.parametrize(
    ("key", "what"),
    [
        pytest.param("2024-01-01", "(a date)", id="date"),
        pytest.param("1", "(an integer)", id="int"),
        pytest.param("1.5", "(a number)", id="float"),
        pytest.param("yes", "(true or false)", id="yaml11-bool"),
        pytest.param("~", "(null)", id="null"),
    ],
)
def test_non_string_keys(tmp_path: Path, key: str, what: str) -> None:
    d = error(tmp_path, f"version: 1\nstack: s\nagents:\n  {key}: {{}}\n")
    assert at(d) == (4, 3)
    assert d.message.startswith(f"keys must be strings, got '{key}' {what}")
    assert "quote it" in d.message


def test_collection_keys(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\n? [a, b]\n: c\n")
    assert at(d) == (3, 3)
    assert d.message == "keys must be strings, got a list"


def test_quoted_keys_and_values_are_strings() -> None:
    doc = load_text("'1': '2024-01-01'\n'yes': 'no'\n", "m")
    assert doc.data == {"1": "2024-01-01", "yes": "no"}


def test_several_load_errors_are_reported_at_once(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """\
        version: 1
        stack: s
        blocks:
          b:
            value: 2024-01-01
            value: x
          1: {value: x}
        """,
    )
    assert [at(d) for d in found] == [(5, 12), (6, 5), (7, 3)]


# ---------------------------------------------------------------------------------------------
# Hostile YAML: cycles, depth, alias bombs


def test_recursive_alias(tmp_path: Path) -> None:
    d = error(tmp_path, "version: 1\nstack: s\nagents: &a\n  x: *a\n")
    assert at(d) == (3, 9)
    assert "contains it" in d.message


def test_recursive_merge(tmp_path: Path) -> None:
    d = error(tmp_path, "agents:\n  a: &a\n    <<: *a\n")
    assert at(d) == (3, 5)
    assert "contains it" in d.message


def test_deep_nesting_is_refused_without_a_crash(tmp_path: Path) -> None:
    d = error(tmp_path, "x: " + "[" * 150 + "]" * 150 + "\n")
    assert "nested more than 100 levels" in d.message


def test_very_deep_nesting_is_refused_without_a_crash(tmp_path: Path) -> None:
    d = error(tmp_path, "x: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nest" in d.message


def test_alias_bomb_is_cut_short(tmp_path: Path) -> None:
    global PARSING
    PARSING = replace(PARSING, max_values=10_000)
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    d = error(tmp_path, "\n".join(lines) + "\n")
    assert "more than 10000 values" in d.message


# ---------------------------------------------------------------------------------------------
# Size and speed


def megabytes(loader: type, size: int) -> int:
    """`size` for libyaml; a twentieth of it for the pure-Python parser, which scans about a
    megabyte a second by itself (letta-apply's own reading adds a few percent to that): what
    holds for a twentieth holds for the whole, without ten seconds of waiting."""
    return size // 20 if loader is yaml.SafeLoader else size


def test_ten_megabyte_value_loads(tmp_path: Path, loader: type) -> None:
    size = megabytes(loader, 10_000_000)
    value = "word " * (size // 5)  # with spaces: the slowest kind for a YAML scanner
    path = write(tmp_path, f"version: 1\nstack: s\nblocks:\n  b:\n    value: {value}\n")
    doc = load_file(path)
    assert len(doc.data["blocks"]["b"]["value"]) == size - 1
    assert doc.values[("blocks", "b", "value")] == Position(5, 12)


def test_default_parser_is_libyaml_when_available() -> None:
    # The pure-Python parser needs ~6 s for a 10 MB value; libyaml a fraction of a second.
    expected = yaml.CSafeLoader if getattr(yaml, "__with_libyaml__", False) else yaml.SafeLoader
    assert DEFAULT_LOADER is expected


def test_huge_values_are_never_echoed(tmp_path: Path, loader: type) -> None:
    size = megabytes(loader, 1_000_000)
    huge = "k" * size
    # Implicit keys are limited to 1024 characters by YAML itself: these are explicit ones.
    found = errors(
        tmp_path,
        f"? {huge}\n: 1\n? {huge}\n: 2\nx: !!binary {'QUFB' * (size // 4)}\ny: {'9' * 100_000}\n",
    )
    assert len(found) == 3
    assert all(len(d.message) < 200 for d in found)


def test_file_over_the_size_limit(tmp_path: Path) -> None:
    global PARSING
    PARSING = replace(PARSING, max_bytes=100)
    d = error(tmp_path, "description: " + "x" * 200 + "\n")
    assert at(d) == (1, 1)
    assert "the limit is 100" in d.message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_file(tmp_path / "nope.yaml")
    (d,) = info.value.diagnostics
    assert (d.file, at(d)) == (str(tmp_path / "nope.yaml"), (1, 1))
    assert "cannot read" in d.message and "No such file" in d.message


def test_directory_instead_of_a_file(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as info:
        load_file(tmp_path)
    (d,) = info.value.diagnostics
    assert "is a directory" in d.message


def test_load_text_names_the_file_it_was_given() -> None:
    with pytest.raises(ManifestError) as info:
        load_text("a: 1\na: 2\n", "dir/manifest.yaml")
    assert str(info.value) == (
        "dir/manifest.yaml:2:1: duplicate key 'a' (first defined at line 1, column 1)"
    )
