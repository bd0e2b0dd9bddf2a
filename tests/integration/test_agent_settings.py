"""Agent settings against the real server: created, changed in place, and converged with zero
writes, though Letta reports some of them inside llm_config and completes its objects (model
settings, compaction settings) with defaults of its own."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.integration.conftest import Run

MANIFEST = """\
version: 1
stack: {stack}
agents:
  clerk:
    name: {stack}-clerk
    model: letta/letta-free
    embedding: letta/letta-free
    context_window_limit: 8000
    max_tokens: 1000
    parallel_tool_calls: true
    model_settings: {provider_type: openai, temperature: 0.3}
    compaction_settings: {mode: sliding_window}
    response_format: {type: json_object}
    timezone: Europe/Paris
    max_files_open: 3
    per_file_view_window_char_limit: 4000
    message_buffer_autoclear: true
"""


def agent(api: httpx.Client, name: str) -> dict[str, Any]:
    (found,) = api.get("/v1/agents/", params={"name": name}).json()
    assert isinstance(found, dict)
    return found


def test_settings_are_created_changed_and_converge(
    run: Run, manifest: Callable[[str], str], api: httpx.Client, stack: str
) -> None:
    path = manifest(MANIFEST)
    r = run("apply", "-f", path, "--auto-approve")
    assert r.code == 0, r.err
    a = agent(api, f"{stack}-clerk")
    assert a["llm_config"]["context_window"] == 8000 and a["llm_config"]["max_tokens"] == 1000
    assert a["model_settings"]["temperature"] == 0.3
    assert a["compaction_settings"]["mode"] == "sliding_window"
    assert (a["timezone"], a["max_files_open"], a["message_buffer_autoclear"]) == (
        "Europe/Paris", 3, True
    )  # fmt: skip
    again = run("apply", "-f", path, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0

    changed = manifest(
        MANIFEST.replace("context_window_limit: 8000", "context_window_limit: 6000")
        .replace("temperature: 0.3", "temperature: 0.9")
        .replace("Europe/Paris", "UTC")
        .replace("max_files_open: 3", "max_files_open: 4")
    )
    r = run("apply", "-f", changed, "--auto-approve")
    assert r.code == 0, r.err
    assert "context_window_limit: 8000 -> 6000" in r.out
    assert "model_settings['temperature']: 0.3 -> 0.9" in r.out
    after = agent(api, f"{stack}-clerk")
    assert after["id"] == a["id"]  # changed in place
    assert after["llm_config"]["context_window"] == 6000
    assert after["model_settings"]["temperature"] == 0.9
    assert (after["timezone"], after["max_files_open"]) == ("UTC", 4)
    again = run("apply", "-f", changed, "--auto-approve")
    assert again.code == 0 and "No changes." in again.out, again.out
    assert again.writes == 0

    # Changed by hand: drift, restored.
    api.patch(f"/v1/agents/{a['id']}", json={"timezone": "Asia/Tokyo"})
    drift = run("drift", "-f", changed)
    assert drift.code == 2 and "agent.clerk.timezone was changed on the server" in drift.out
    assert run("apply", "-f", changed, "--auto-approve").code == 0
    assert agent(api, f"{stack}-clerk")["timezone"] == "UTC"
    assert run("destroy", "-f", changed, "--auto-approve").code == 0
