"""`letta-apply graph` and the diagram in a markdown plan: the stack drawn as Mermaid and DOT,
marked with a plan, safe whatever the keys hold, without secrets, in a stable order, bounded
for huge plans. The golden cases' graphs are tests/plans/<case>/expected.mmd (test_plans.py);
tests/diagrams.py reads both languages back."""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest

from letta_apply import Change, Desired, Live, Plan, Stack, read_live, render_graph, render_plan
from letta_apply.pipeline import load_manifest, plan_for
from letta_apply.plan.graph import Graph, changed_graph, stack_graph
from letta_apply.plan.planner import make_plan
from letta_apply.render.diagram import label_of
from letta_apply.render.markdown import MD_GRAPH_NODES, MD_TOTAL_MAX, plan_markdown
from tests.diagrams import Mermaid, read_dot, read_mermaid
from tests.fakes import FakeLetta
from tests.helpers import Cli, desired, write
from tests.plan_cases import CASES, load_case
from tests.unit.test_scale import fleet

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = str(ROOT / "examples" / "shared-memory.yaml")

EXAMPLE_MERMAID = """\
flowchart LR
  %% stack shared-memory-example
  n_block_organization[("block.organization")]
  subgraph g_agent_supervisor ["agent.supervisor"]
    n_agent_supervisor("agent")
    n_agent_supervisor_memory_blocks_persona[("persona")]
  end
  subgraph g_agent_worker ["agent.worker"]
    n_agent_worker("agent")
    n_agent_worker_memory_blocks_persona[("persona")]
  end
  n_block_organization -.- n_agent_supervisor
  n_block_organization -.- n_agent_worker
"""

EXAMPLE_DOT = """\
digraph "shared-memory-example" {
  rankdir=LR;
  fontname="Helvetica";
  node [fontname="Helvetica", fontsize=11];
  edge [dir=none, fontname="Helvetica", fontsize=10];
  "n_block_organization" [label="block.organization", shape=cylinder];
  subgraph "cluster_agent_supervisor" {
    label="agent.supervisor";
    "n_agent_supervisor" [label="agent", shape=box, style="rounded"];
    "n_agent_supervisor_memory_blocks_persona" [label="persona", shape=cylinder];
  }
  subgraph "cluster_agent_worker" {
    label="agent.worker";
    "n_agent_worker" [label="agent", shape=box, style="rounded"];
    "n_agent_worker_memory_blocks_persona" [label="persona", shape=cylinder];
  }
  "n_block_organization" -> "n_agent_supervisor" [style=dashed];
  "n_block_organization" -> "n_agent_worker" [style=dashed];
}
"""


# -- both languages hold the graph ----------------------------------------------------------


def check_both(graph: Graph) -> Mermaid:
    """Both renderings hold exactly the graph's nodes, labels and edges."""
    m = read_mermaid(render_graph(graph, "mermaid"))
    owners = {n.owner for n in graph.nodes if n.owner}
    expected = sorted(label_of(n, inside_itself=n.key in owners) for n in graph.nodes)
    extra = 1 if graph.omitted or graph.omitted_edges else 0
    assert len(m.nodes) == len(graph.nodes) + extra
    assert sorted(v for k, v in m.nodes.items() if k != "n_more") == expected
    assert len(m.edges) == len(graph.edges)
    labels, edges = read_dot(render_graph(graph, "dot"))
    assert sorted(v for k, v in labels.items() if k != "n_more") == expected
    assert len(edges) == len(graph.edges)
    return m


# -- the manifest drawn -------------------------------------------------------------------------


def test_the_example_as_mermaid_and_dot() -> None:
    graph = stack_graph(load_manifest(EXAMPLE))
    assert render_graph(graph) == EXAMPLE_MERMAID
    assert render_graph(graph, "dot") == EXAMPLE_DOT
    m = check_both(graph)
    assert m.groups == {"g_agent_supervisor": "agent.supervisor", "g_agent_worker": "agent.worker"}
    # The shared block is one node, linked to each agent by a dotted line (shared memory).
    assert m.edges == [
        ("n_block_organization", "n_agent_supervisor", ""),
        ("n_block_organization", "n_agent_worker", ""),
    ]


def test_the_readme_shows_the_examples_real_graph() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "$ letta-apply graph -f examples/shared-memory.yaml\n" in readme
    assert f"```mermaid\n{EXAMPLE_MERMAID}```" in readme


@pytest.mark.parametrize("case", CASES)
def test_every_golden_graph_is_valid_mermaid_and_dot(case: str) -> None:
    d, live = load_case(case)
    plan = make_plan(d, live)
    check_both(stack_graph(d, plan))
    check_both(changed_graph(stack_graph(d, plan), max_nodes=5, max_edges=3))


TOOLS_AND_IDENTITIES = """\
version: 1
stack: drawn
identities:
  acme: {identity_type: org}
tools:
  lookup: {source_file: lookup.py}
blocks:
  zeta: {value: z, identities: [acme]}
  alpha: {value: a}
agents:
  worker:
    model: letta/letta-free
    embedding: letta/letta-free
    tools: [lookup, web_search]
    identities: [acme]
    memory_blocks: [{label: persona, value: p}, {label: human, value: h}]
    blocks: [zeta, alpha]
  helper:
    model: letta/letta-free
    embedding: letta/letta-free
"""

LOOKUP = 'def lookup_ticket(ticket_id: str) -> str:\n    """Look up a ticket.\n\n    Args:\n' \
    '        ticket_id: The id.\n    """\n    return ticket_id\n'  # fmt: skip


def test_every_kind_has_its_shape_and_its_lines(tmp_path: Path) -> None:
    write(tmp_path, LOOKUP, "lookup.py")
    graph = stack_graph(load_manifest(str(write(tmp_path, TOOLS_AND_IDENTITIES))))
    text = render_graph(graph)
    assert '  n_identity_acme[/"identity.acme"/]' in text
    assert '  n_tool_lookup{{"tool.lookup"}}' in text
    assert '  n_block_alpha[("block.alpha")]' in text
    assert '  n_agent_helper("agent.helper")' in text  # no own blocks: no box around it
    # A tool the manifest does not declare is the server's, drawn apart.
    assert '  n_tool_web_search{{"tool web_search (not managed)"}}' in text
    m = check_both(graph)
    assert set(m.edges) == {
        ("n_identity_acme", "n_block_zeta", ""),  # a block's identities
        ("n_identity_acme", "n_agent_worker", ""),
        ("n_block_alpha", "n_agent_worker", ""),
        ("n_block_zeta", "n_agent_worker", ""),
        ("n_tool_lookup", "n_agent_worker", ""),
        ("n_tool_web_search", "n_agent_worker", ""),
    }
    assert m.classes == {"outside": {"n_tool_web_search"}}


def test_the_same_stack_written_in_another_order_draws_the_same(tmp_path: Path) -> None:
    write(tmp_path, LOOKUP, "lookup.py")
    first = load_manifest(str(write(tmp_path, TOOLS_AND_IDENTITIES)))
    zeta = "  zeta: {value: z, identities: [acme]}\n"
    swapped = TOOLS_AND_IDENTITIES.replace(zeta, "").replace("  alpha: {value: a}\n", "$&" + zeta)
    swapped = swapped.replace("$&", "  alpha: {value: a}\n")
    assert swapped != TOOLS_AND_IDENTITIES
    second = load_manifest(str(write(tmp_path, swapped, "n.yaml")))
    for fmt in ("mermaid", "dot"):
        assert render_graph(stack_graph(first), fmt) == render_graph(stack_graph(second), fmt)


def test_instances_are_drawn_in_natural_order(tmp_path: Path) -> None:
    text = "version: 1\nstack: s\nblocks:\n  r:\n    count: 12\n    value: v\n"
    graph = stack_graph(load_manifest(str(write(tmp_path, text))))
    assert [n.key for n in graph.nodes][:3] == ["block.r[0]", "block.r[1]", "block.r[2]"]
    assert graph.nodes[-1].key == "block.r[11]"


# -- hostile keys and secrets ---------------------------------------------------------------

HOSTILE_KEYS = [
    'x"]; end; click n_a call alert(1) %% <script>alert(1)</script>',
    "a\nb```c`d#e;f|g{h}i\\j",
    "évé 日本 \u2028 \t tab -->|x| n_b",
    "]]] [[[ ((( ))) {{ }} /\\ \\/",
    "9" * 1000,
]


def hostile_manifest() -> str:
    keys = json.dumps(HOSTILE_KEYS)
    workers = json.dumps({k: f"w{i}" for i, k in enumerate(HOSTILE_KEYS)})
    return dedent(
        f"""\
        version: 1
        stack: hostile
        blocks:
          org: {{value: o}}
          region:
            for_each: {keys}
            value: "Facts about ${{each.key}}."
        agents:
          worker:
            for_each: {workers}
            name: "w-${{each.value}}"
            model: letta/letta-free
            embedding: letta/letta-free
            memory_blocks: [{{label: persona, value: p}}]
            blocks: [org]
        """
    )


def test_hostile_keys_stay_inside_their_labels(tmp_path: Path) -> None:
    d = load_manifest(str(write(tmp_path, hostile_manifest())))
    graph = stack_graph(d)
    m = check_both(graph)  # every line in the grammar, exactly the graph's nodes and labels
    assert len(m.groups) == len(HOSTILE_KEYS)
    mermaid = render_graph(graph)
    # What the keys hold is in the labels only as entity codes: no fence, no tag, no comment, no
    # quote closing a label (the grammar check above says no line or node was added).
    for bad in ("```", "<script", "%%", "\u2028", '\\"', '"]; end', "-->"):
        assert bad not in mermaid.replace("%% stack hostile", "")
    # Labels are cut, ids are short, both unique.
    assert max(len(line) for line in mermaid.splitlines()) < 600
    ids = [line.split("[", 1)[0].strip() for line in mermaid.splitlines() if "[(" in line]
    assert len(ids) == len(set(ids)) == 2 * len(HOSTILE_KEYS) + 1
    # The first key, as shown: the address's JSON form, entity codes decoded.
    assert f"block.region[{json.dumps(HOSTILE_KEYS[0], ensure_ascii=False)}]" in m.nodes.values()
    # In a pull-request comment, the fence the diagram sits in stays closed where it should.
    plan = make_plan(d, _empty_live(d))
    md = plan_markdown(plan, "http://x", stack_graph(d, plan))
    start = md.index("```mermaid\n")
    assert md.index("```\n", start + 3) > start
    assert md[start:].count("```") == 2 + md[start:].split("\n```\n", 1)[1].count("```")


def _empty_live(d: Desired) -> Live:
    with FakeLetta().client() as client:
        return read_live(client, d)


SECRET = "hunter2-north"
WITH_SECRETS = """\
version: 1
stack: masked
variables:
  key: {sensitive: true}
identities:
  alice:
    identity_type: user
    properties: {token: "${var.key}"}
blocks:
  vault: {value: "the key is ${var.key}", description: "key ${var.key}"}
agents:
  clerk:
    model: letta/letta-free
    embedding: letta/letta-free
    system: "Use ${var.key}."
    metadata: {key: "${var.key}"}
    identities: [alice]
    memory_blocks: [{label: persona, value: "I keep ${var.key}"}]
    blocks: [vault]
"""


def test_no_secret_in_a_graph(tmp_path: Path, cli: Cli) -> None:
    path = str(write(tmp_path, WITH_SECRETS))
    for argv in ([], ["--format", "dot"], ["--plan"], ["--plan", "--format", "dot"]):
        r = cli("graph", "-f", path, "--var", f"key={SECRET}", *argv)
        assert r.code == 0, r.err
        assert "n_agent_clerk" in r.out
        assert SECRET not in r.out and SECRET not in r.err
    d = Stack.from_files([path], {"key": SECRET})
    for fmt in ("mermaid", "dot"):
        assert SECRET not in render_graph(d.graph(), fmt)  # the library's output too, unmasked


# -- marked with a plan -------------------------------------------------------------------------


def graph_of(case: str, **bounds: int) -> Mermaid:
    d, live = load_case(case)
    graph = stack_graph(d, make_plan(d, live))
    return read_mermaid(render_graph(changed_graph(graph, **bounds) if bounds else graph))


def test_deleted_resources_are_drawn_marked() -> None:
    m = graph_of("no_longer_declared")
    assert m.classes["delete"] == {
        "n_block_handoff", "n_agent_reviewer", "n_agent_reviewer_memory_blocks_persona",
        "n_agent_worker_memory_blocks_scratchpad",
    }  # fmt: skip
    assert m.groups["g_agent_reviewer"] == "agent.reviewer"  # its own block drawn inside it
    assert m.nodes["n_agent_reviewer"] == "agent (delete)"
    assert m.nodes["n_agent_worker"] == "agent"  # unchanged: no class, no note


def test_attached_and_detached_lines_are_drawn_marked() -> None:
    attached = graph_of("shared_block_attached")
    assert ("n_block_escalations", "n_agent_supervisor", "attach") in attached.edges
    assert attached.nodes["n_block_escalations"] == "block.escalations (create)"
    detached = graph_of("shared_block_detached")
    assert ("n_block_organization", "n_agent_worker", "detach") in detached.edges


def test_a_new_agent_and_its_own_blocks_are_marked_created() -> None:
    m = graph_of("empty_server")
    assert {"n_agent_worker", "n_agent_worker_memory_blocks_persona"} <= m.classes["create"]


def test_refused_resources_are_marked() -> None:
    m = graph_of("tool_pruned")
    assert m.nodes["n_tool_archive"] == "tool.archive (refused)"  # kept: used outside the stack
    assert "n_tool_archive" in m.classes["refused"]
    assert m.nodes["n_tool_legacy"] == "tool.legacy (delete)"


def test_only_the_changes_and_their_neighbours() -> None:
    m = graph_of("tool_pruned", max_nodes=100)
    assert "n_agent_worker" not in m.nodes  # unchanged and not next to a change
    assert "n_block_organization" in m.nodes  # next to the updated supervisor
    assert "g_agent_supervisor" not in m.groups  # its own block is unchanged: not drawn


def test_the_markdown_plan_has_a_diagram_of_its_changes() -> None:
    d, live = load_case("tools")
    plan = make_plan(d, live)
    md = plan_markdown(plan, "http://x", stack_graph(d, plan))
    diagram = md.split("```mermaid\n", 1)[1].split("```\n", 1)[0]
    m = read_mermaid(diagram)
    assert m.nodes["n_agent_triage"] == "agent (create)"
    assert "n_agent_reviewer" not in m.nodes  # unchanged, and linked to no change
    assert md.index("```mermaid") < md.index("| | Resource | Why |")
    assert plan_markdown(plan, "http://x") == md.replace(
        md[md.index("<details open>") : md.index("| | Resource")], ""
    )  # without a graph, the plan as before
    converged, live = load_case("converged")
    no_changes = plan_markdown(make_plan(converged, live), "x", stack_graph(converged))
    assert "mermaid" not in no_changes


@pytest.mark.parametrize("agents", [200, 1000])
def test_a_huge_plans_diagram_stays_bounded(agents: int) -> None:
    d = desired(fleet(agents, 3))
    with FakeLetta().client() as client:
        plan = plan_for(client, d)
    md = plan_markdown(plan, "http://x", stack_graph(d, plan))
    assert len(md) <= MD_TOTAL_MAX + 200
    diagram = md.split("```mermaid\n", 1)[1].split("```\n", 1)[0]
    m = read_mermaid(diagram)
    assert len(m.nodes) == MD_GRAPH_NODES + 1  # and the note saying what is left out
    drawn = len(m.nodes) - 1
    # 3 shared blocks, agents with their persona: all created.
    assert m.nodes["n_more"] == f"{3 + 2 * agents - drawn} more changed resources not drawn"
    assert len(diagram) < 8000


def test_a_diagram_is_left_out_whole_when_the_comment_has_no_room_for_it() -> None:
    # 2,000 deletions called out before the diagram fill the comment: a diagram cut in the
    # middle would render as an error, so there is none.
    changes = tuple(
        Change(f"block.b{i}", "delete", f"block-{i:036d}", kind="block") for i in range(2000)
    )
    plan = Plan("s", changes)
    md = plan_markdown(plan, "http://x", stack_graph(desired("version: 1\nstack: s\n"), plan))
    assert "```mermaid" not in md
    assert len(md) <= MD_TOTAL_MAX + 200


# -- the command and the library ----------------------------------------------------------------


def test_graph_reads_no_server_by_default(cli: Cli) -> None:
    r = cli("graph", "-f", EXAMPLE)
    assert (r.code, r.out, r.err) == (0, EXAMPLE_MERMAID, "")
    assert cli.fake.calls == []
    r = cli("graph", "-f", EXAMPLE, "--format", "dot")
    assert (r.code, r.out) == (0, EXAMPLE_DOT)


def test_graph_with_the_plan_marks_what_apply_would_do(cli: Cli) -> None:
    r = cli("graph", "-f", EXAMPLE, "--plan")
    assert r.code == 0, r.err
    m = read_mermaid(r.out)
    assert m.classes["create"] == {
        "n_block_organization", "n_agent_supervisor", "n_agent_supervisor_memory_blocks_persona",
        "n_agent_worker", "n_agent_worker_memory_blocks_persona",
    }  # fmt: skip
    assert cli.fake.calls  # it asked the server
    assert cli("apply", "-f", EXAMPLE, "--auto-approve").code == 0
    again = read_mermaid(cli("graph", "-f", EXAMPLE, "--plan").out)
    assert again.classes == {}  # converged: nothing marked
    only = cli("graph", "-f", EXAMPLE, "--only-changes")
    assert (only.code, only.out) == (0, "flowchart LR\n  %% stack shared-memory-example\n")
    destroy = read_mermaid(cli("graph", "-f", EXAMPLE, "--destroy").out)
    assert len(destroy.classes["delete"]) == 5


def test_graph_errors_are_one_line_each(tmp_path: Path, cli: Cli) -> None:
    bad = write(tmp_path, "version: 1\nstack: s\nagents:\n  a: {model: 3}\n")
    r = cli("graph", "-f", str(bad))
    assert r.code == 1 and r.out == "" and "Traceback" not in r.err
    assert r.err.splitlines()[0].startswith(f"{bad}:4:")
    assert cli.fake.calls == []
    with pytest.raises(SystemExit) as usage:
        cli("graph", "-f", EXAMPLE, "--format", "json")
    assert usage.value.code == 1  # a usage error, never 2
    refused = write(tmp_path, TOOLS_AND_IDENTITIES.replace("lookup, web_search", "nope"), "r.yaml")
    write(tmp_path, LOOKUP, "lookup.py")
    r = cli("graph", "-f", str(refused), "--plan")
    assert r.code == 1  # as plan: a refused resource is an error; the diagram still shows it
    assert '  n_agent_worker("agent (refused)")' in r.out


def test_plan_format_markdown_includes_the_diagram(cli: Cli) -> None:
    r = cli("plan", "-f", EXAMPLE, "--format", "markdown")
    assert r.code == 0, r.err
    read_mermaid(r.out.split("```mermaid\n", 1)[1].split("```\n", 1)[0])


def test_the_library_draws_a_stack_and_its_plan() -> None:
    stack = Stack.from_files(EXAMPLE)
    assert render_graph(stack.graph()) == EXAMPLE_MERMAID
    with FakeLetta().client() as client:
        plan = stack.plan(client)
        md = stack.render(plan, "markdown", client=client)
    assert render_graph(stack.graph(plan)).count("(create)") == 5
    assert "```mermaid\n" in md
    assert "```mermaid" not in render_plan(plan, "markdown")  # no manifest given: no diagram
