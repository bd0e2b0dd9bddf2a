"""Manifests that could make letta-apply destroy what the user meant to keep, or exhaust the
machine: a template with no value is an error (never zero instances), instance counts are capped,
and the checks over a template's instances stay linear."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from letta_apply.errors import ManifestError
from letta_apply.manifest.variables import Options
from letta_apply.pipeline import load_manifest
from tests.fakes import FakeLetta
from tests.helpers import Cli, write

HEAD = "version: 1\nstack: s\n"
AGENT = "    model: letta/letta-free\n    embedding: letta/letta-free\n"


def problems(path: Path, **options: object) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load_manifest(str(path), Options(**options))  # type: ignore[arg-type]
    return [str(d) for d in e.value.diagnostics]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("count:", "agents.w.count: no value (empty or null); write 0 for no instances"),
        ("count: null", "agents.w.count: no value (empty or null); write 0 for no instances"),
        ("for_each:", "agents.w.for_each: no value (empty or null); write [] for no instances"),
        ("for_each: ~", "agents.w.for_each: no value (empty or null); write [] for no instances"),
    ],
)
def test_a_template_with_no_value_is_an_error(tmp_path: Path, template: str, message: str) -> None:
    text = HEAD + "agents:\n  w:\n    " + template + "\n" + AGENT
    (found,) = problems(write(tmp_path, text))
    assert found.startswith(f"{tmp_path / 'm.yaml'}:5:") and message in found


def test_an_empty_count_on_a_live_stack_deletes_nothing(tmp_path: Path, cli: Cli) -> None:
    # The failure this guards against: `count:` emptied by mistake planned every instance's
    # deletion. It is a manifest error now: exit 1, no request.
    full = write(tmp_path, HEAD + "agents:\n  w:\n    count: 3\n" + AGENT, "full.yaml")
    assert cli("apply", "-f", str(full), "--auto-approve").code == 0
    assert len(cli.fake.agents) == 3
    emptied = write(tmp_path, HEAD + "agents:\n  w:\n    count:\n" + AGENT, "emptied.yaml")
    cli.fake.calls.clear()
    r = cli("apply", "-f", str(emptied), "--auto-approve")
    assert r.code == 1 and "agents.w.count: no value" in r.err
    assert cli.fake.calls == [] and len(cli.fake.agents) == 3


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2.5", "m.yaml:7:12: agents.w.count: expected a whole number, 0 or more"),
        ("-1", "m.yaml:7:12: agents.w.count: expected a whole number, 0 or more"),
        (".inf", "--var: variable 'n': cannot read it as a number: unsupported YAML value"),
        (".nan", "--var: variable 'n': cannot read it as a number: unsupported YAML value"),
        ("1.0e+400", "--var: variable 'n': cannot read it as a number: unsupported YAML"),
    ],
)
def test_a_count_that_is_no_whole_number_is_a_located_error(
    tmp_path: Path, value: str, message: str
) -> None:
    text = HEAD + "variables:\n  n: {type: number}\nagents:\n  w:\n    count: ${var.n}\n"
    path = write(tmp_path, text + AGENT)
    (found,) = problems(path, vars=[f"n={value}"])
    assert message in found


def test_instance_counts_are_capped_and_the_cap_can_be_raised(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "agents:\n  w:\n    count: 1000000000\n" + AGENT)
    started = time.monotonic()
    (found,) = problems(path)
    assert time.monotonic() - started < 2  # refused before any instance is made
    assert "1000000000 instances, over the limit of 10000 per template" in found
    assert "--max-instances" in found
    few = write(tmp_path, HEAD + "agents:\n  w:\n    count: 12\n" + AGENT, "few.yaml")
    (capped,) = problems(few, max_instances=10)
    assert "12 instances, over the limit of 10" in capped
    assert len(load_manifest(str(few), Options(max_instances=12)).of("agent")) == 12


def test_the_cli_takes_the_cap(tmp_path: Path) -> None:
    path = write(tmp_path, HEAD + "blocks:\n  b:\n    count: 20\n    value: v\n")
    cli = Cli(fake=FakeLetta())
    assert cli("validate", "-f", str(path), "--max-instances", "10").code == 1
    assert cli("validate", "-f", str(path), "--max-instances", "20").code == 0


def test_a_long_for_each_is_checked_in_linear_time(tmp_path: Path) -> None:
    # 100,000 keys took 85 s when each key was counted against the whole list.
    keys = [f"k{i}" for i in range(100_000)] + ["k7"]
    text = HEAD + "blocks:\n  b:\n    for_each: [" + ", ".join(keys) + "]\n    value: v\n"
    started = time.monotonic()
    (found,) = problems(write(tmp_path, text), max_instances=200_000)
    assert time.monotonic() - started < 20
    assert "blocks.b.for_each: 'k7' is listed twice" in found


# -- secrets that leaked sideways ---------------------------------------------------------------

SECRET = "hunter2-swordfish-0123456789"
SENSITIVE = HEAD + "variables:\n  key: {type: string, sensitive: true}\n"


def test_a_malformed_var_is_not_echoed(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, SENSITIVE)
    for mistake in (f"key:{SECRET}", f"key {SECRET}"):
        r = cli("validate", "-f", str(path), "--var", mistake)
        assert r.code == 1
        assert "--var: value 1 is not name=value (not shown: it may hold a secret)" in r.err
        assert SECRET not in r.out + r.err and SECRET[:8] not in r.out + r.err


def test_a_server_error_is_masked_before_it_is_cut(tmp_path: Path, cli: Cli) -> None:
    # The server echoes the request in its error, the secret straddling the 300-character cut.
    path = write(
        tmp_path,
        SENSITIVE + 'blocks:\n  b: {value: "${var.key}"}\n',
    )
    detail = "x" * 290 + SECRET + " rejected"

    def refuse(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST":
            return httpx.Response(400, json={"detail": detail})
        return None

    cli.fake.before.append(refuse)
    r = cli("apply", "-f", str(path), "--var", f"key={SECRET}", "--auto-approve")
    assert r.code == 1 and "HTTP 400" in r.err
    assert SECRET[:6] not in r.out + r.err  # not even the first half of it
    assert "x(sensit" in r.err  # masked first: what is cut is the mask


# -- a manifest must not impersonate letta-apply ------------------------------------------------

FORGED_LOCK = (
    HEAD
    + """blocks:
  forged:
    label: letta-apply-lock
    value: x
    tags: ["letta-apply-lock:prod"]
    metadata: {letta_apply_lock: {holder: me, stack: prod}}
agents:
  a:
    tags: ["letta-apply:prod"]
    memory_blocks: [{label: p, value: v, tags: ["letta-apply:other"]}]
"""
)


def test_reserved_tags_labels_and_metadata_are_errors(tmp_path: Path, cli: Cli) -> None:
    path = write(tmp_path, FORGED_LOCK)
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == 1 and cli.fake.calls == []
    lines = r.err.splitlines()
    assert f"{path}:5:12: blocks.forged.label: label 'letta-apply-lock' is reserved for " \
        "letta-apply's stack lock [LA326]" in lines  # fmt: skip
    assert any("blocks.forged.tags[0]: tag 'letta-apply-lock:prod' is reserved" in x for x in lines)
    assert any(
        "metadata.letta_apply_lock: the key 'letta_apply_lock' is reserved" in x for x in lines
    )
    assert any("agents.a.tags[0]: tag 'letta-apply:prod' is reserved" in x for x in lines)
    assert any("memory_blocks[0].tags[0]: tag 'letta-apply:other' is reserved" in x for x in lines)
    keyed = write(tmp_path, HEAD + "blocks:\n  letta-apply-lock: {value: v}\n", "keyed.yaml")
    assert (
        "(the key) is reserved for letta-apply's stack lock"
        in cli("validate", "-f", str(keyed)).err
    )


# -- files that are not files -------------------------------------------------------------------


def _cli_in_subprocess(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # A subprocess with a timeout: a read that blocks (a FIFO) fails the test instead of
    # hanging the suite.
    return subprocess.run(
        [sys.executable, "-m", "letta_apply.cli", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.parametrize(
    "manifest",
    [
        "-f fifo",
        "-f /dev/zero",
        "--var-file fifo",
        "blocks:\n  b: {value_file: fifo}\n",
        "agents:\n  a:\n    system_file: fifo\n",
        "tools:\n  t: {source_file: fifo}\n",
        "blocks:\n  b: {value_file: /dev/zero}\n",
    ],
)
def test_pipes_and_devices_are_refused_not_read(tmp_path: Path, manifest: str) -> None:
    os.mkfifo(tmp_path / "fifo")
    write(tmp_path, HEAD)
    if manifest.startswith("-"):
        flag, name = manifest.split()
        argv = (
            ["validate", "-f", "m.yaml", flag, name] if flag != "-f" else ["validate", flag, name]
        )
    else:
        write(tmp_path, HEAD + manifest)
        argv = ["validate", "-f", "m.yaml", "--allow-outside-files"]
    r = _cli_in_subprocess(*argv, cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "is not a regular file (a pipe or a device?)" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "reference",
    [
        "-f loop",
        "-f " + "n" * 5000,
        "blocks:\n  b: {value_file: loop}\n",
        "tools:\n  t: {source_file: loop}\n",
        'blocks:\n  b: {value_file: "a\\0b"}\n',
    ],
)
def test_loops_long_names_and_nul_are_located_errors(
    tmp_path: Path, cli: Cli, reference: str
) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop2")
    (tmp_path / "loop2").symlink_to(tmp_path / "loop")
    if reference.startswith("-f "):
        argv = ["validate", "-f", str(tmp_path / reference[3:])]
    else:
        argv = ["validate", "-f", str(write(tmp_path, HEAD + reference))]
    r = cli(*argv)
    assert r.code == 1 and "Traceback" not in r.err
    first = r.err.splitlines()[0]
    assert "cannot read" in first or "cannot be read" in first
    assert len(first) < 400  # a 5,000-character name is not echoed whole


# -- crashes that became located errors -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("agents:\n  a:\n    memory_blocks: 5\n", "agents.a.memory_blocks: expected a list"),
        ("moved: true\n", "moved: expected a list, got a boolean (true)"),
        ("imports: 7\n", "imports: expected a list, got an integer"),
        (
            "agents:\n  a:\n    tool_rules:\n      - {type: [a], tool_name: x}\n",
            "agents.a.tool_rules[0].type: ['a'] is not one of",
        ),
    ],
)
def test_a_section_of_the_wrong_type_is_a_located_error(
    tmp_path: Path, text: str, message: str
) -> None:
    (found,) = problems(write(tmp_path, HEAD + text))
    assert message in found and found.startswith(str(tmp_path / "m.yaml") + ":")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[" * 1000 + "]" * 1000, "nested more than 100 levels deep"),
        (
            "[&a [x,x,x,x,x,x,x,x,x], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], "
            "&c [*b,*b,*b,*b,*b,*b,*b,*b,*b], &d [*c,*c,*c,*c,*c,*c,*c,*c,*c], "
            "&e [*d,*d,*d,*d,*d,*d,*d,*d,*d], &f [*e,*e,*e,*e,*e,*e,*e,*e,*e], "
            "&g [*f,*f,*f,*f,*f,*f,*f,*f,*f]]",
            "values once aliases are expanded",
        ),
    ],
)
def test_a_var_value_is_read_with_the_manifests_guards(
    tmp_path: Path, value: str, message: str
) -> None:
    path = write(tmp_path, HEAD + "variables:\n  v: {type: list}\n")
    # CPU time, not wall time: the guard must stop the work early, and other processes on a
    # busy machine must not make that look slow.
    started = time.process_time()
    (found,) = problems(path, vars=[f"v={value}"])
    assert time.process_time() - started < 10
    assert found.startswith("--var: variable 'v': cannot read it as a list: ") and message in found


def test_a_tool_source_too_deep_for_python_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "deep.py").write_text(
        'def f(x):\n    """Doc."""\n    return ' + "+".join(["x"] * 100_000) + "\n"
    )
    path = write(tmp_path, HEAD + "tools:\n  t: {source_file: deep.py}\n")
    (found,) = problems(path)
    assert found == f"{tmp_path / 'deep.py'}:1:1: tool.t: the source is nested too deeply for " \
        "Python to read"  # fmt: skip


# -- stopping ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_new_work_releases_the_lock_and_reports(
    tmp_path: Path, cli: Cli, signum: int, code: int
) -> None:
    blocks = "".join(f"  b{i}: {{value: v}}\n" for i in range(10))
    path = write(tmp_path, HEAD + "blocks:\n" + blocks)
    creates: list[str] = []

    def interrupt_after_the_third(request: httpx.Request) -> httpx.Response | None:
        if request.method == "POST" and request.url.path == "/v1/blocks/":
            body = json.loads(request.content)
            if "letta_apply_lock" not in (body.get("metadata") or {}):
                creates.append(body["label"])
                if len(creates) == 3:
                    os.kill(os.getpid(), signum)  # as a user's Ctrl-C or a CI runner's TERM
                    time.sleep(0.3)  # a request in flight; the handler runs meanwhile
        return None

    cli.fake.before.append(interrupt_after_the_third)
    handler = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs in the background
    r = cli("apply", "-f", str(path), "--auto-approve", "--parallelism", "1")
    assert r.code == code, r.err
    assert "Stopping: no new change starts" in r.err
    assert "Apply interrupted: 3 change(s) done, 7 not attempted." in r.err
    assert r.err.count("not attempted: block.") == 7
    assert len(cli.fake.blocks) == 4  # nothing started after the signal, no lock record left
    assert len(cli.fake.memory) == 3  # (but the stack's new serial: it was written to)
    assert signal.getsignal(signal.SIGINT) is handler  # handlers restored
    again = cli("apply", "-f", str(path), "--auto-approve")
    assert again.code == 0 and "7 to create" in again.out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_while_the_first_plan_is_made_ends_the_run_at_once(
    tmp_path: Path, cli: Cli, signum: int, code: int
) -> None:
    """Nothing is written before the plan is made: there is nothing to wait for (a plan of
    10,000 agents took 12 s to notice)."""
    path = write(tmp_path, HEAD + "blocks:\n  b: {value: v}\n")

    def interrupt_while_reading(request: httpx.Request) -> httpx.Response | None:
        if request.method == "GET" and request.url.path == "/v1/blocks/":
            os.kill(os.getpid(), signum)
            time.sleep(0.3)
        return None

    cli.fake.before.append(interrupt_while_reading)
    handler = signal.getsignal(signal.SIGINT)
    r = cli("apply", "-f", str(path), "--auto-approve")
    assert r.code == code, r.err
    assert "interrupted while planning; nothing was written" in r.err
    assert cli.fake.writes == 0
    assert signal.getsignal(signal.SIGINT) is handler


def test_show_masks_a_sensitive_field_whatever_its_live_value(tmp_path: Path, cli: Cli) -> None:
    # A secret holding a quote, in a value holding the other quote: repr() escapes it, so
    # masking by searching the output text missed it; and after a rotation the live value is
    # the old secret, which the masker does not know.
    path = write(
        tmp_path,
        SENSITIVE + 'blocks:\n  b: {value: "say \\"${var.key}\\""}\n'
        "agents:\n  a:\n    model: letta/letta-free\n"
        '    memory_blocks: [{label: p, value: "${var.key}"}]\n',
    )
    old, new = "it's-hunter2-secret", "rotated-hunter3-secret"
    assert cli("apply", "-f", str(path), "--var", f"key={old}", "--auto-approve").code == 0
    for key in (old, new):
        r = cli("show", "-f", str(path), "--var", f"key={key}")
        assert r.code == 0, r.err
        assert "hunter" not in r.out + r.err
        assert "block.b" in r.out and "value='(sensitive)'" in r.out
        assert "agent.a.memory_blocks.p" in r.out


def test_ten_megabytes_of_unclosed_references_are_one_error_quickly(tmp_path: Path) -> None:
    value = "${" * (5 * 1024 * 1024)
    path = write(tmp_path, HEAD + f'blocks:\n  b:\n    value: "{value}"\n    limit: 10000000\n')
    started = time.monotonic()
    (found,) = problems(path)
    assert time.monotonic() - started < 10  # took over 20 s: an error per `${`
    assert (
        found == f"{path}:5:12: unclosed '${{': no matching '}}' (write $${{ for a literal '${{')"
    )


def test_a_sensitive_number_is_masked_as_a_value_and_never_digested(
    tmp_path: Path, cli: Cli
) -> None:
    # 8283 is also the server's port, in every plan's header: text masking would mangle it.
    path = write(
        tmp_path,
        HEAD + "variables:\n  pin: {type: number, sensitive: true}\n"
        'blocks:\n  b: {value: v, metadata: {pin: "${var.pin}", port: 8283}}\n',
    )
    plan = cli("plan", "-f", str(path), "--var", "pin=8283", "--format", "json")
    assert plan.code == 0, plan.err
    doc = json.loads(plan.out)  # valid JSON: no `(sensitive)` pasted over a number
    after = doc["changes"][0]["after"]
    assert after["metadata"] == {"pin": "(sensitive)", "port": 8283}
    assert doc["server"]["base_url"].endswith(":8283")
    assert cli("apply", "-f", str(path), "--var", "pin=8283", "--auto-approve").code == 0
    (block,) = cli.fake.memory.values()
    assert block["metadata"]["pin"] == 8283  # the server got the number
    applied = block["metadata"]["letta_apply"]["applied"]
    assert "metadata" not in applied and applied["sensitive"] == ["metadata.pin"]


def test_a_sensitive_value_where_it_would_be_shown_or_a_boolean_is_refused(tmp_path: Path) -> None:
    limit = write(
        tmp_path,
        HEAD + "variables:\n  pin: {type: number, sensitive: true, default: 1234567}\n"
        'blocks:\n  b: {value: v, limit: "${var.pin}"}\n',
    )
    (found,) = problems(limit)
    assert "blocks.b.limit: a sensitive value cannot be used here" in found
    flag = write(
        tmp_path,
        HEAD + "variables:\n  flag: {type: bool, sensitive: true, default: true}\n",
        "flag.yaml",
    )
    (found,) = problems(flag)
    assert "variable 'flag': a sensitive value cannot be (or hold) a boolean" in found


# -- large plans --------------------------------------------------------------------------------


def test_a_large_plan_stays_readable_and_its_json_complete(tmp_path: Path, cli: Cli) -> None:
    path = write(
        tmp_path,
        HEAD + "agents:\n  w:\n    count: 2000\n" + AGENT
        + "    memory_blocks: [{label: persona, value: 'I am ${count.index}'}]\n",
    )  # fmt: skip
    text = cli("plan", "-f", str(path))
    assert text.code == 0, text.err
    lines = text.out.splitlines()
    assert lines[2] == "Plan: 2000 to create, 0 to update, 0 to attach, 0 to detach, 0 to delete."
    assert "1999 more like agent.w[0] (the same fields; see the JSON plan for each)" in text.out
    assert len(text.out) < 2000  # was one block of lines per agent
    doc = json.loads(cli("plan", "-f", str(path), "--format", "json").out)
    assert len(doc["changes"]) == 2000
