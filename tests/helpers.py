"""Helpers shared by the unit tests: a clock that never really waits, a stand-in terminal, the
desired state of a manifest text, manifest files and what is reported about them, and the CLI
run in-process against the fake server (the `cli` fixture of tests/unit/conftest.py builds
one)."""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent
from typing import Any, NamedTuple

import httpx
import pytest

from letta_apply import error_codes  # noqa: F401  (the codes every error names)
from letta_apply.cli import commands
from letta_apply.core.model import Desired
from letta_apply.errors import CODES, Diagnostic, ManifestError
from letta_apply.kinds import KINDS
from letta_apply.manifest.parse import load_text
from letta_apply.manifest.validate import validate
from letta_apply.server.client import LettaClient
from tests.fakes import FakeLetta


class Clock:
    """A clock that moves only when a test sets `now` or when something sleeps on it: retry
    backoff and lock polling cost no real time, and `sleeps` records each wait asked for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    """An output stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


SEED = """\
version: 1
stack: unit
blocks:
  organization:
    value: Nothing here yet.
agents:
  supervisor:
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am a supervisor, metadata: {kind: persona}}]
    blocks: [organization]
  worker:
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks: [{label: persona, value: I am a worker}]
    blocks: [organization]
"""
"""A small stack: one shared block and two agents with a persona each."""


def agent_includes(fake: FakeLetta) -> list[list[str]]:
    """The `include` of every agents listing `fake` is asked for from now on."""
    seen: list[list[str]] = []

    def spy(request: httpx.Request) -> None:
        if request.method == "GET" and request.url.path == "/v1/agents/":
            seen.append(request.url.params.get_list("include"))

    fake.before.append(spy)
    return seen


def desired(text: str, file: str = "m.yaml") -> Desired:
    """The desired state of a manifest given as text."""
    return validate(load_text(text, file), KINDS)


def write(folder: Path, text: str | bytes, name: str = "m.yaml") -> Path:
    """Write a manifest file: text dedented and in UTF-8, bytes as they are."""
    path = folder / name
    path.write_bytes(text if isinstance(text, bytes) else dedent(text).encode("utf-8"))
    return path


def diagnostics(path: Path, read: Callable[[Path], object]) -> list[Diagnostic]:
    """What `read` reports about the manifest at `path`, checking what every report must be:
    about that file, one short line each, with a defined code, in file order."""
    with pytest.raises(ManifestError) as info:
        read(path)
    found = info.value.diagnostics
    assert found, "a ManifestError carries at least one diagnostic"
    for d in found:
        assert d.file == str(path)
        assert len(d.message) < 300, d.message
        assert "\n" not in d.message
        assert d.code in CODES and CODES[d.code].error == "ManifestError", d
    assert found == sorted(found)
    return found


def only(found: list[Diagnostic]) -> Diagnostic:
    assert len(found) == 1, found
    return found[0]


def at(d: Diagnostic) -> tuple[int, int]:
    return d.line, d.col


class Result(NamedTuple):
    code: int
    out: str
    err: str


_CODED = re.compile(r" \[LA\d{3}\]$")


@dataclass
class Cli:
    """`letta-apply` run in-process, every server request going to `fake`. The clients the
    commands make (and so their stack locks) wait on `clock`, never in real time."""

    fake: FakeLetta = field(default_factory=FakeLetta)
    clock: Clock = field(default_factory=Clock)
    clients: list[LettaClient] = field(default_factory=list)
    factory: Callable[..., LettaClient] | None = None  # replaces `client` when set

    def client(self, base_url: str, **kw: Any) -> LettaClient:
        made = LettaClient(
            base_url,
            transport=httpx.MockTransport(self.fake.handle),
            sleep=self.clock.sleep,
            clock=self.clock,
            **kw,
        )
        self.clients.append(made)
        return made

    def __call__(self, *argv: str, err: io.StringIO | None = None) -> Result:
        """Run one command; `err` replaces the captured stderr (a Tty, say)."""
        out, err = io.StringIO(), err if err is not None else io.StringIO()
        factory = self.factory or self.client
        code = commands.main(list(argv), out=out, err=err, client_factory=factory)
        for line in err.getvalue().splitlines():  # every error ends with its code
            assert not line.startswith("error: ") or _CODED.search(line), line
        return Result(code, out.getvalue(), err.getvalue())
