"""Shell completion: scripts generated from the command line's parser (a new command or option
completes without being listed anywhere), run in a real bash, and the hidden command that gives
them a manifest's addresses without asking any server."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from letta_apply.cli.arguments import SHELLS, parser
from letta_apply.cli.completion import script, spec
from letta_apply.cli.completion.addresses import ADDRESSES_COMMAND
from letta_apply.pipeline import load_manifest
from letta_apply.plan.targets import expand_targets, target_addresses
from tests.helpers import SEED, Cli, write

BASH = shutil.which("bash")
FLEET = """\
version: 1
stack: fleet
variables:
  regions: {type: list, default: [eu, us]}
blocks:
  organization: {value: shared}
  region: {for_each: "${var.regions}", value: "facts about ${each.key}"}
agents:
  worker:
    for_each: ${var.regions}
    model: letta/letta-free
    embedding: letta/letta-free
    blocks: [organization, "region[${each.key}]"]
  odd:
    for_each: ["0", "two words"]
    model: letta/letta-free
    embedding: letta/letta-free
"""


def _commands() -> list[str]:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


# -- the addresses ------------------------------------------------------------------------------


def test_target_addresses_are_easy_to_type_and_each_one_is_accepted_by_target(
    tmp_path: Path,
) -> None:
    d = load_manifest([str(write(tmp_path, FLEET))])
    found = target_addresses(d)
    assert found == [
        "block.organization", "block.region", "block.region[eu]", "block.region[us]",
        "agent.worker", "agent.worker[eu]", "agent.worker[us]",
        "agent.odd", 'agent.odd["0"]', 'agent.odd["two words"]',
    ]  # fmt: skip
    for address in found:
        assert expand_targets(d, [address])


def test_hidden_command_prints_addresses_and_asks_no_server(cli: Cli, tmp_path: Path) -> None:
    path = write(tmp_path, FLEET)
    r = cli(ADDRESSES_COMMAND, "-f", str(path), "--var", "regions=[eu]")
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [
        "block.organization", "block.region", "block.region[eu]",
        "agent.worker", "agent.worker[eu]",
        "agent.odd", 'agent.odd["0"]', 'agent.odd["two words"]',
    ]  # fmt: skip
    assert cli.fake.calls == [] and cli.clients == []


def test_hidden_command_falls_back_to_the_keys_when_the_manifest_does_not_load(
    cli: Cli, tmp_path: Path
) -> None:
    """A variable with no value yet (a secret not exported in this shell): still the keys."""
    path = write(tmp_path, FLEET.replace("{type: list, default: [eu, us]}", "{type: list}"))
    r = cli(ADDRESSES_COMMAND, "-f", str(path))
    assert (r.code, r.err) == (0, "")
    assert r.out.splitlines() == [
        "block.organization", "block.region", "agent.worker", "agent.odd",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([], id="no-manifest"),
        pytest.param(["-f", "missing.yaml"], id="missing-file"),
        pytest.param(["-f", "{broken}"], id="unreadable-yaml"),
        pytest.param(["-f", "m.yaml", "--max-instances", "x"], id="bad-option"),
        pytest.param(["-f", "m.yaml", "--var", "no-equals"], id="bad-var"),
    ],
)
def test_hidden_command_prints_nothing_on_error(
    argv: list[str],
    cli: Cli,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "version: 1\nstack: s\nblocks: {b: {value: [unclosed\n")
    (tmp_path / "{broken}").write_text(": : :\n")
    r = cli(ADDRESSES_COMMAND, *argv)
    assert (r.code, r.out, r.err) == (1, "", "")
    assert capsys.readouterr() == ("", "")  # nor on the process's own streams


def test_hidden_command_is_not_shown_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["--help"])
    out = capsys.readouterr().out
    assert "completion" in out and ADDRESSES_COMMAND not in out


# -- the scripts ----------------------------------------------------------------------------------


def test_completion_command_prints_each_script(cli: Cli) -> None:
    for shell in SHELLS:
        r = cli("completion", shell)
        assert (r.code, r.err) == (0, "")
        assert r.out == script(shell, parser())
        for command in _commands():
            assert command in r.out
        assert ADDRESSES_COMMAND in r.out


def test_scripts_follow_the_parser() -> None:
    """A command or option added to the parser completes with no other change."""
    p = parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    sp = sub.add_parser("frobnicate", help="a command added later")
    sp.add_argument("--widget", choices=["left", "right"])
    sp.add_argument("--into", metavar="ADDRESS")
    s = spec(p)
    (added,) = [c for c in s.commands if c.name == "frobnicate"]
    assert [(f.names, f.values.kind, f.values.words) for f in added.flags] == [
        (("-h", "--help"), "none", ()),
        (("--widget",), "words", ("left", "right")),
        (("--into",), "addresses", ()),
    ]
    for shell in SHELLS:
        text = script(shell, p)
        assert "frobnicate" in text and ("--widget" in text or "-l widget" in text)
        assert "left right" in text


def test_scripts_do_not_depend_on_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults taken from the environment (LETTA_BASE_URL) stay out of the descriptions."""
    before = {shell: script(shell, parser()) for shell in SHELLS}
    monkeypatch.setenv("LETTA_BASE_URL", "http://secret-host.example:1234")
    for shell in SHELLS:
        after = script(shell, parser())
        assert after == before[shell]
        assert "secret-host" not in after


def _syntax(shell: str, text: str, tmp_path: Path) -> None:
    path = tmp_path / f"completion.{shell}"
    path.write_text(text)
    binary = shutil.which(shell)
    assert binary is not None
    proc = subprocess.run([binary, "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


# Each script is parsed by its own shell where that shell is installed (bash always is); the
# structure tests below hold everywhere.
@pytest.mark.parametrize("shell", [s for s in SHELLS if shutil.which(s)])
def test_script_is_valid_for_its_shell(shell: str, tmp_path: Path) -> None:
    _syntax(shell, script(shell, parser()), tmp_path)


def _quotes_balance(line: str) -> bool:
    """Single quotes open and close on each line (comments aside)."""
    return line.lstrip().startswith("#") or line.replace("'\\''", "").count("'") % 2 == 0


def test_zsh_script_structure() -> None:
    """Checked by `zsh -n` where zsh is installed; this holds everywhere."""
    text = script("zsh", parser())
    assert text.startswith("#compdef letta-apply\n")
    for command in _commands():
        fn = f"_letta_apply_cmd_{command.replace('-', '_')}"
        assert f"\n{fn}() {{\n" in text
        assert f"({command}) {fn} && ret=0 ;;" in text
        assert f"    '{command}:" in text
    assert re.search(r"'\*'--target'\[[^']*\]:address:_letta_apply_addresses'", text)
    assert "'*'{-f,--file}'[" in text and ":path:_files'" in text
    assert "--format'[output format]:format:(text json markdown)'" in text
    assert "compdef _letta_apply letta-apply" in text
    assert all(_quotes_balance(line) for line in text.splitlines())
    assert text.count("{") == text.count("}")


def test_fish_script_structure() -> None:
    """Checked by `fish -n` where fish is installed; this holds everywhere."""
    text = script("fish", parser())
    lines = text.splitlines()
    for command in _commands():
        assert any(f"__fish_use_subcommand -a {command} -d " in line for line in lines)
    target = [line for line in lines if "-l target" in line]
    assert target and all("-x -a '(__letta_apply_addresses)'" in line for line in target)
    assert {line.split("-n ")[1].split("'")[1] for line in target} == {
        "__fish_seen_subcommand_from plan", "__fish_seen_subcommand_from apply",
    }  # fmt: skip
    assert any("-s f -l file -r -F" in line for line in lines)
    assert all(_quotes_balance(line.replace("\\'", "")) for line in lines)
    assert text.count("\nfunction ") == text.count("\nend\n")


# -- bash, for real -------------------------------------------------------------------------------


def _complete(script_path: Path, words: list[str], cwd: Path) -> list[str]:
    """What bash offers for `words` (the last one being completed), as a user's Tab would."""
    program = (
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _letta_apply; '
        'printf "%s\\n" "${COMPREPLY[@]}"'
    )
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    assert BASH is not None
    proc = subprocess.run(
        [BASH, "--norc", "--noprofile", "-c", program, "_", str(script_path), *words],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    return [line for line in proc.stdout.splitlines() if line]


def test_bash_completes_commands_flags_values_and_addresses(tmp_path: Path) -> None:
    completion = tmp_path / "letta-apply.bash"
    completion.write_text(script("bash", parser()))
    write(tmp_path, FLEET, "fleet.yaml")
    (tmp_path / "plan.json").write_text("{}")

    def tab(*words: str) -> list[str]:
        return _complete(completion, ["letta-apply", *words], tmp_path)

    assert tab("") == _commands()
    assert tab("d") == ["destroy", "drift"]
    assert tab("--v") == ["--version"]
    plan_flags = tab("plan", "--")
    assert {"--file", "--target", "--out", "--detailed-exitcode", "--destroy"} <= set(plan_flags)
    assert "--auto-approve" not in plan_flags
    assert tab("plan", "--d") == ["--detach-unmanaged-blocks", "--destroy", "--detailed-exitcode"]
    assert tab("plan", "--format", "") == ["text", "json", "markdown", "sarif"]
    assert tab("plan", "--format", "=", "j") == ["json"]  # --format=j, as bash splits it
    assert tab("export", "--format", "") == ["yaml", "json", "af"]
    assert tab("apply", "--lock", "") == ["true", "false"]
    assert tab("completion", "") == list(SHELLS)
    assert tab("plan", "-f", "fl") == ["fleet.yaml"]
    assert tab("apply", "pl") == ["plan.json"]  # the saved plan, a positional argument
    assert tab("plan", "--var", "") == []  # a value with nothing to suggest: not the options

    # Addresses, from the manifest -f names (and its variables), escaped for the shell.
    assert tab("plan", "--target", "") == []  # no manifest named yet
    assert tab("plan", "-f", "fleet.yaml", "--target", "agent.w") == [
        "agent.worker", "agent.worker\\[eu\\]", "agent.worker\\[us\\]",
    ]  # fmt: skip
    assert tab("apply", "--file", "=", "fleet.yaml", "--var", "regions=[eu]", "--target", "b") == [
        "block.organization", "block.region", "block.region\\[eu\\]",
    ]  # fmt: skip
    assert tab("plan", "-f", "fleet.yaml", "--target", "agent.odd[") == [
        "agent.odd\\[\\\"0\\\"\\]", "agent.odd\\[\\\"two\\ words\\\"\\]",
    ]  # fmt: skip
    assert tab("plan", "-f", "fleet.yaml", "--target", "'agent.worker[") == [
        "agent.worker[eu]", "agent.worker[us]",
    ]  # fmt: skip
    assert tab("plan", "-f", "missing.yaml", "--target", "") == []


def test_bash_completion_works_with_the_seed_example(tmp_path: Path) -> None:
    completion = tmp_path / "letta-apply.bash"
    completion.write_text(script("bash", parser()))
    path = write(tmp_path, SEED)
    found = _complete(
        completion, ["letta-apply", "plan", "-f", str(path), "--target", ""], tmp_path
    )
    assert found == ["block.organization", "agent.supervisor", "agent.worker"]
