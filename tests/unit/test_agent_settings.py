"""Agent settings: created with the agent, changed in place, and compared where the server
reports them (llm_config) and on the keys declared only, so a second apply writes nothing."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from letta_apply.kinds.agent.settings import compared, live_settings
from tests.helpers import Cli

MANIFEST = dedent(
    """\
    version: 1
    stack: tuned
    agents:
      clerk:
        model: letta/letta-free
        embedding: letta/letta-free
        context_window_limit: {window}
        max_tokens: 1000
        parallel_tool_calls: true
        model_settings: {{provider_type: openai, temperature: {temperature}}}
        compaction_settings: {{mode: sliding_window}}
        response_format: {{type: json_object}}
        timezone: Europe/Paris
        max_files_open: 3
        per_file_view_window_char_limit: 4000
        message_buffer_autoclear: true
    """
)


def test_settings_are_created_changed_and_converge(cli: Cli, tmp_path: Path) -> None:
    m = tmp_path / "m.yaml"
    m.write_text(MANIFEST.format(window=8000, temperature=0.3), encoding="utf-8")
    assert cli("apply", "-f", str(m), "--auto-approve").code == 0
    agent = next(iter(cli.fake.agents.values()))
    assert agent["llm_config"]["context_window"] == 8000
    assert agent["model_settings"]["temperature"] == 0.3
    writes = cli.fake.writes
    assert "No changes." in cli("apply", "-f", str(m), "--auto-approve").out
    assert cli.fake.writes == writes
    m.write_text(MANIFEST.format(window=6000, temperature=0.9), encoding="utf-8")
    result = cli("plan", "-f", str(m))
    assert "context_window_limit: 8000 -> 6000" in result.out
    assert "model_settings['temperature']: 0.3 -> 0.9" in result.out
    assert cli("apply", "-f", str(m), "--auto-approve").code == 0
    assert agent["llm_config"]["context_window"] == 6000
    writes = cli.fake.writes
    assert "No changes." in cli("apply", "-f", str(m), "--auto-approve").out
    assert cli.fake.writes == writes


def test_settings_are_read_where_the_server_reports_them() -> None:
    raw = {
        "llm_config": {"context_window": 8000, "max_tokens": None, "parallel_tool_calls": True},
        "timezone": "UTC",
        "response_format": None,
    }
    assert live_settings(raw) == {
        "context_window_limit": 8000, "parallel_tool_calls": True, "timezone": "UTC"
    }  # fmt: skip


def test_objects_are_compared_on_the_declared_keys() -> None:
    live = {"provider_type": "openai", "temperature": 1, "strict": True, "reasoning": {"a": 1}}
    assert compared({"provider_type": "openai", "temperature": 1.0}, live) == {
        "provider_type": "openai", "temperature": 1.0
    }  # fmt: skip
    assert compared({"reasoning": {"a": 2}}, live) == {"reasoning": {"a": 1}}
    assert compared({"type": "json_object"}, None) is None
