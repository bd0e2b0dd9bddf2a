"""`letta-apply graph` against a real Letta: the diagram of a live stack marked with what the
plan would change, deleted resources included, without a single write; and without --plan, not
a single request."""

from __future__ import annotations

from collections.abc import Callable

from tests.diagrams import read_dot, read_mermaid

from .conftest import SEED, Run

# SEED with a new shared block attached to the supervisor, a description, the worker gone.
CHANGED = """\
version: 1
stack: {stack}
blocks:
  organization:
    description: Shared information between all agents within the organization.
    value: Nothing here yet, we should update this over time.
  handoff:
    value: Nothing handed off yet.
agents:
  supervisor:
    name: {stack}-supervisor
    description: Leads the workers
    model: letta/letta-free
    embedding: letta/letta-free
    memory_blocks:
      - label: persona
        value: I am a supervisor
    blocks: [organization, handoff]
"""


def test_graph_marks_what_the_plan_would_change(run: Run, manifest: Callable[[str], str]) -> None:
    path = manifest(SEED)
    offline = run("graph", "-f", path)
    assert offline.code == 0, offline.err
    assert (offline.reads, offline.writes) == (0, 0)  # the manifest alone: no request
    assert read_mermaid(offline.out).classes == {}

    assert run("apply", "-f", path, "--auto-approve").code == 0
    converged = run("graph", "-f", path, "--plan")
    assert converged.code == 0, converged.err
    assert read_mermaid(converged.out).classes == {}  # nothing to change: nothing marked

    changed = manifest(CHANGED)
    r = run("graph", "-f", changed, "--plan")
    assert r.code == 0, r.err
    assert r.writes == 0 and r.reads > 0
    m = read_mermaid(r.out)
    assert m.classes["create"] == {"n_block_handoff"}
    assert m.classes["update"] == {"n_agent_supervisor"}
    # Gone from the manifest, so drawn from the plan: the worker and its own block, deleted.
    assert m.classes["delete"] == {"n_agent_worker", "n_agent_worker_memory_blocks_persona"}
    assert m.groups["g_agent_worker"] == "agent.worker"
    assert ("n_block_handoff", "n_agent_supervisor", "attach") in m.edges

    dot = run("graph", "-f", changed, "--plan", "--format", "dot")
    labels, _ = read_dot(dot.out)
    assert labels["n_agent_worker"] == "agent (delete)"
    assert labels["n_block_handoff"] == "block.handoff (create)"

    md = run("plan", "-f", changed, "--format", "markdown")
    diagram = read_mermaid(md.out.split("```mermaid\n", 1)[1].split("```\n", 1)[0])
    assert diagram.classes["create"] == {"n_block_handoff"}
