"""Mermaid and DOT as letta-apply writes them, read back for tests: Mermaid line by line against
the small grammar the renderer writes (a key that broke out of its label would make a line of its
own, or an extra node), DOT with pydot."""

from __future__ import annotations

import re
import warnings
from typing import NamedTuple

import pydot


class Mermaid(NamedTuple):
    nodes: dict[str, str]  # id -> label, entity codes decoded
    edges: list[tuple[str, str, str]]  # (from, to, text)
    groups: dict[str, str]  # subgraph id -> title
    classes: dict[str, set[str]]  # class name -> node ids


_LABEL = r'"((?:[A-Za-z0-9 _.,:/()\[\]+=@\'-]|#[0-9]+;|[^\W_])*)"'
_ID = r"n_[A-Za-z0-9_]+"
_SHAPES = [(r"\[", r"\]"), (r"\(", r"\)"), (r"\[\(", r"\)\]"), (r"\{\{", r"\}\}"), (r"\[/", r"/\]")]
_NODE = re.compile(rf"({_ID})(?:{'|'.join(f'{o}{_LABEL}{c}' for o, c in _SHAPES)})")
_LINE_KINDS = {
    "edge": re.compile(rf"({_ID}) (-\.-|---)(?:\|(attach|detach)\|)? ({_ID})"),
    "group": re.compile(rf"subgraph (g_[A-Za-z0-9_]+) \[{_LABEL}\]"),
    "classdef": re.compile(r"classDef [a-z]+ [a-z-]+:[#0-9a-z ]+(,[a-z-]+:[#0-9a-z ]+)*"),
    "class": re.compile(rf"class ({_ID}(?:,{_ID})*) ([a-z]+)"),
    "style": re.compile(r"(?:style n_more|linkStyle [0-9]+) [a-z-]+:[#0-9a-z ]+(,[a-z-]+:.+)*"),
}


def _decoded(text: str) -> str:
    return re.sub(r"#([0-9]+);", lambda m: chr(int(m.group(1))), text)


def read_mermaid(text: str) -> Mermaid:
    """The diagram, read back; fails on any line outside the grammar the renderer writes."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR"
    out = Mermaid({}, [], {}, {})
    depth = 0
    for line in lines[1:]:
        body = line.strip()
        if body == "end":
            depth -= 1
        assert line == "  " * (depth + 1) + body, f"indentation: {line!r}"
        if body.startswith("%% stack ") or body == "end":
            continue
        node = _NODE.fullmatch(body)
        if node:
            label = next(g for g in node.groups()[1:] if g is not None)
            assert node.group(1) not in out.nodes, f"node twice: {body}"
            out.nodes[node.group(1)] = _decoded(label)
            continue
        kind, m = next((k, m) for k, p in _LINE_KINDS.items() if (m := p.fullmatch(body)))
        if kind == "edge":
            out.edges.append((m.group(1), m.group(4), m.group(3) or ""))
        elif kind == "group":
            out.groups[m.group(1)] = _decoded(m.group(2))
            depth += 1
        elif kind == "class":
            out.classes.setdefault(m.group(2), set()).update(m.group(1).split(","))
    assert depth == 0
    for a, b, _ in out.edges:
        assert a in out.nodes and b in out.nodes
    return out


def read_dot(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """Node labels by id and the edges of a DOT text, as pydot parses it."""
    with warnings.catch_warnings():  # pydot builds its grammar with pyparsing's old names
        warnings.simplefilter("ignore", DeprecationWarning)
        (parsed,) = pydot.graph_from_dot_data(text)
    labels: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    graphs = [parsed]
    while graphs:
        g = graphs.pop(0)
        for n in g.get_nodes():
            if n.get_name() not in ("node", "edge", "graph"):
                labels[_unquote(n.get_name())] = _unquote(n.get_label())
        edges += [(_unquote(e.get_source()), _unquote(e.get_destination())) for e in g.get_edges()]
        graphs += g.get_subgraphs()
    return labels, edges


def _unquote(text: str) -> str:
    assert text.startswith('"') and text.endswith('"'), text
    return re.sub(r"\\(.)", r"\1", text[1:-1])
