"""The local embedding endpoint the knowledge tests point folders and archives at:
scripts/embedding-server on 127.0.0.1 (any free port), started once per test module. Letta embeds
uploads and passages with it, so processing succeeds with nothing off the machine reachable."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """A local OpenAI-compatible embedding endpoint on 127.0.0.1 (any free port)."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "embedding-server"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    assert line.startswith("embedding-server: http://127.0.0.1:"), line
    try:
        yield line.split(" ", 1)[1]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
