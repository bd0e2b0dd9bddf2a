"""A stack's graph (plan/graph.py) as a Mermaid flowchart or a Graphviz DOT digraph. Nothing
here decides or does I/O.

Both outputs are safe whatever the manifest's keys hold: node ids are made here from letters,
digits and `_` only, and every label is escaped for its language (a key cannot end a label,
open a comment or close the markdown fence a diagram sits in). The order is the graph's, so the
same inputs give the same bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from ..core.changes import ATTACH, CREATE, DELETE, DETACH, FORGET, IMPORT, REPLACE, UPDATE
from ..kinds.base import Shape
from ..plan.graph import Edge, Graph, Node

GraphFormat = Literal["mermaid", "dot"]
GRAPH_FORMATS: tuple[GraphFormat, ...] = ("mermaid", "dot")

LABEL_MAX = 80
"""Longer labels are cut (a for_each key may be long); the full address is in the plan."""

# (fill, border) per action, GitHub's own greens, yellows and reds; a refused resource gets a
# thick red border, a resource outside the stack a dashed grey one.
COLORS = {
    CREATE: ("#dafbe1", "#1a7f37"),
    UPDATE: ("#fff8c5", "#9a6700"),
    REPLACE: ("#fff1e5", "#bc4c00"),
    DELETE: ("#ffebe9", "#cf222e"),
    IMPORT: ("#ddf4ff", "#0969da"),
    FORGET: ("#f6f8fa", "#8250df"),  # let go of: kept on the server, no longer the stack's
}
EDGE_COLORS = {ATTACH: "#1a7f37", DETACH: "#cf222e"}
REFUSED = "#cf222e"
OUTSIDE = ("#f6f8fa", "#8c959f")


def render_graph(graph: Graph, format: GraphFormat = "mermaid") -> str:
    """The graph as Mermaid (`flowchart`) or DOT text, ending with a newline."""
    lines = mermaid(graph) if format == "mermaid" else dot(graph)
    return "\n".join(lines) + "\n"


def label_of(node: Node, *, inside_itself: bool = False) -> str:
    """What a node says: its address (its kind, drawn inside the box of its own address), and
    what the plan does to it."""
    text = shown(node.kind if inside_itself else node.label)
    notes = [node.action] if node.action else []
    if node.refused:
        notes.append("refused")
    if node.outside:
        notes.append("not managed")
    return f"{text} ({', '.join(notes)})" if notes else text


def shown(text: str) -> str:
    """A label's text: without characters that print nothing (a line separator in a key), cut
    at LABEL_MAX characters."""
    text = "".join(c for c in text if c.isprintable())
    return text if len(text) <= LABEL_MAX else text[: LABEL_MAX - 1] + "…"


def omitted_text(graph: Graph) -> str:
    parts = []
    if graph.omitted:
        parts.append(f"{graph.omitted} more changed resource{'s' if graph.omitted > 1 else ''}")
    if graph.omitted_edges:
        n = graph.omitted_edges
        parts.append(f"{n} more line{'s' if n > 1 else ''}")
    return " and ".join(parts) + " not drawn" if parts else ""


def _ids(graph: Graph) -> dict[str, str]:
    """A safe, unique id per node key: n_ and the key's letters and digits, `_` for the rest."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for n in graph.nodes:
        base = "n_" + re.sub(r"[^A-Za-z0-9_]", "_", n.key)[:60]
        nid, i = base, 1
        while nid in taken:
            i += 1
            nid = f"{base}_{i}"
        taken.add(nid)
        out[n.key] = nid
    return out


def _tree(graph: Graph) -> Iterator[tuple[Node, list[Node]]]:
    """Top-level nodes, each with the nodes drawn inside it."""
    children: dict[str, list[Node]] = {}
    for n in graph.nodes:
        if n.owner:
            children.setdefault(n.owner, []).append(n)
    for n in graph.nodes:
        if not n.owner:
            yield n, children.get(n.key, [])


# -- Mermaid ----------------------------------------------------------------------------------

_MERMAID_SHAPES: dict[Shape, tuple[str, str]] = {
    "box": ("[", "]"),
    "rounded": ("(", ")"),
    "cylinder": ("[(", ")]"),
    "hexagon": ("{{", "}}"),
    "parallelogram": ("[/", "/]"),
}
# Characters a label keeps as they are; anything else becomes an entity code (#34; for a
# quote), which Mermaid shows as the character and never reads as syntax.
_MERMAID_PLAIN = re.compile(r"[A-Za-z0-9 _.,:/()\[\]+=@'-]")


def mermaid_text(text: str) -> str:
    """`text` as a quoted Mermaid label holds it: quotes, `#`, `<`, `>`, backticks, `%`, `;`,
    `|`, newlines... as entity codes (letters of other alphabets as they are)."""
    return "".join(
        c if _MERMAID_PLAIN.fullmatch(c) or (c.isalnum() and c.isprintable()) else f"#{ord(c)};"
        for c in text
    )


def _mermaid_node(n: Node, nid: str, *, inside_itself: bool = False) -> str:
    opening, closing = _MERMAID_SHAPES[n.shape]
    return f'{nid}{opening}"{mermaid_text(label_of(n, inside_itself=inside_itself))}"{closing}'


def _mermaid_edge(e: Edge, ids: dict[str, str]) -> str:
    line = "-.-" if e.shared else "---"
    text = f"|{e.action}|" if e.action else ""
    return f"{ids[e.used]} {line}{text} {ids[e.user]}"


def mermaid(graph: Graph) -> list[str]:
    """The graph as the lines of a Mermaid flowchart: an agent's own blocks drawn in a box with
    it, shared blocks linked to each agent using them by dotted lines."""
    ids = _ids(graph)
    lines = ["flowchart LR", f"  %% stack {mermaid_text(graph.stack)}"]
    for n, inside in _tree(graph):
        if not inside:
            lines.append("  " + _mermaid_node(n, ids[n.key]))
            continue
        group = "g" + ids[n.key][1:]
        lines.append(f'  subgraph {group} ["{mermaid_text(shown(n.label))}"]')
        lines.append("    " + _mermaid_node(n, ids[n.key], inside_itself=True))
        lines += ["    " + _mermaid_node(c, ids[c.key]) for c in inside]
        lines.append("  end")
    more = omitted_text(graph)
    if more:
        lines.append(f'  n_more["{mermaid_text(more)}"]')
    lines += ["  " + _mermaid_edge(e, ids) for e in graph.edges]
    classes: dict[str, list[str]] = {}
    for n in graph.nodes:
        for name in _classes(n):
            classes.setdefault(name, []).append(ids[n.key])
    for name in sorted(classes):
        lines.append(f"  classDef {name} {_mermaid_style(name)}")
        lines.append(f"  class {','.join(classes[name])} {name}")
    if more:
        lines.append(f"  style n_more {_mermaid_style('outside')}")
    for i, e in enumerate(graph.edges):
        if e.action:
            lines.append(f"  linkStyle {i} stroke:{EDGE_COLORS[e.action]},stroke-width:2px")
    return lines


def _classes(n: Node) -> list[str]:
    out = [n.action] if n.action else []
    if n.outside:
        out.append("outside")
    if n.refused:
        out.append("refused")
    return out


def _mermaid_style(name: str) -> str:
    if name == "refused":
        return f"stroke:{REFUSED},stroke-width:3px"
    fill, border = OUTSIDE if name == "outside" else COLORS[name]
    dashed = ",stroke-dasharray:4 3" if name in (DELETE, FORGET, "outside") else ""
    return f"fill:{fill},stroke:{border},color:#1f2328{dashed}"


# -- DOT --------------------------------------------------------------------------------------

_DOT_SHAPES: dict[Shape, tuple[str, str]] = {
    "box": ("box", ""),
    "rounded": ("box", "rounded"),
    "cylinder": ("cylinder", ""),
    "hexagon": ("hexagon", ""),
    "parallelogram": ("parallelogram", ""),
}


def dot_text(text: str) -> str:
    """`text` as a double-quoted DOT string: backslashes and quotes escaped (DOT reads `\\N`,
    `\\G`... as escapes, so every backslash is doubled), what prints nothing dropped."""
    kept = "".join(c for c in text if c.isprintable())
    return '"' + kept.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _dot_node(n: Node, nid: str, *, inside_itself: bool = False) -> str:
    shape, style = _DOT_SHAPES[n.shape]
    styles = [style] if style else []
    attrs = {"label": dot_text(label_of(n, inside_itself=inside_itself)), "shape": shape}
    if n.action or n.outside:
        fill, border = COLORS[n.action] if n.action else OUTSIDE
        styles.append("filled")
        attrs |= {"fillcolor": f'"{fill}"', "color": f'"{border}"'}
    if n.action in (DELETE, FORGET) or n.outside:
        styles.append("dashed")
    if n.refused:
        attrs |= {"color": f'"{REFUSED}"', "penwidth": "3"}
    if styles:
        attrs["style"] = f'"{",".join(styles)}"'
    return f'"{nid}" [{", ".join(f"{k}={v}" for k, v in attrs.items())}];'


def dot(graph: Graph) -> list[str]:
    """The graph as the lines of a DOT digraph (lines are drawn without arrowheads: they say
    who uses what, both ways for shared memory)."""
    ids = _ids(graph)
    lines = [
        f"digraph {dot_text(graph.stack)} {{",
        "  rankdir=LR;",
        '  fontname="Helvetica";',
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [dir=none, fontname="Helvetica", fontsize=10];',
    ]
    for n, inside in _tree(graph):
        if not inside:
            lines.append("  " + _dot_node(n, ids[n.key]))
            continue
        lines.append(f'  subgraph "cluster{ids[n.key][1:]}" {{')
        lines.append(f"    label={dot_text(shown(n.label))};")
        lines.append("    " + _dot_node(n, ids[n.key], inside_itself=True))
        lines += ["    " + _dot_node(c, ids[c.key]) for c in inside]
        lines.append("  }")
    more = omitted_text(graph)
    if more:
        lines.append(f'  "n_more" [label={dot_text(more)}, shape=note, color="{OUTSIDE[1]}"];')
    for e in graph.edges:
        attrs = ["style=dashed"] if e.shared else []
        if e.action:
            attrs += [f"label={dot_text(e.action)}", f'color="{EDGE_COLORS[e.action]}"']
            attrs.append("penwidth=2")
        suffix = f" [{', '.join(attrs)}]" if attrs else ""
        lines.append(f'  "{ids[e.used]}" -> "{ids[e.user]}"{suffix};')
    lines.append("}")
    return lines
