"""The stack as a graph, for `letta-apply graph` and the diagram in a markdown plan: a pure
function of the desired state and, when there is one, the plan. No I/O; renderers (Mermaid,
DOT) live in cli/diagram.py.

Generic over kinds: each kind says how its resources are drawn (`Kind.shape`), what they link
to (`Kind.links`, by default what they reference) and what is drawn inside them
(`Kind.nested`: an agent's own blocks). A new kind adds its nodes and edges without a change
here. Labels are addresses and names only, never a value: a diagram holds no secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace

from ..core.changes import (
    ATTACH,
    CREATE,
    DELETE,
    DETACH,
    FORGET,
    IMPORT,
    REPLACE,
    UPDATE,
    Plan,
    natural_key,
)
from ..core.model import Desired, kind_of
from ..kinds import KINDS, kind
from ..kinds.base import Shape

KNOWN = frozenset(k.name for k in KINDS)
INHERITED = (CREATE, REPLACE, IMPORT, DELETE, FORGET)

MARKED = (REPLACE, DELETE, FORGET, CREATE, IMPORT, UPDATE)
"""The plan's actions a node is marked with; when a resource has several changes, the first
here wins (a replacement says more than the update of its fields)."""


@dataclass(frozen=True)
class Node:
    """A resource. `key` is its address, or `<kind>:<name>` for one `outside` the stack (a base
    tool, a block attached by hand); `owner` is the key of the node it is drawn inside."""

    key: str
    kind: str
    label: str
    shape: Shape
    owner: str = ""
    action: str = ""  # the plan's: create, update, replace, delete, import, forget; "" if none
    outside: bool = False
    refused: bool = False  # apply refuses to touch it (see the plan's problems)

    @property
    def changed(self) -> bool:
        return bool(self.action or self.refused)


@dataclass(frozen=True)
class Edge:
    """A line between the resource used (`used`) and its user; `shared` for shared memory;
    `action` attach or detach when the plan makes or removes it."""

    used: str
    user: str
    shared: bool = False
    action: str = ""


@dataclass(frozen=True)
class Graph:
    """What a diagram shows, in a stable order (kinds in dependency order, then addresses;
    a resource's nested ones right after it). `omitted` counts the changed resources left out
    of a bounded diagram, `omitted_edges` its lines."""

    stack: str
    nodes: tuple[Node, ...] = ()
    edges: tuple[Edge, ...] = ()
    omitted: int = 0
    omitted_edges: int = 0


# An address and what it is nested in: agent.worker["eu"].memory_blocks.persona. The instance
# key is matched as JSON (it may hold dots or brackets); `segment` is one a kind declares nested.
_ADDRESS = re.compile(
    r'(?P<owner>[a-z_]+\.[A-Za-z_][A-Za-z0-9_-]*(?:\[(?:[0-9]+|"(?:[^"\\]|\\.)*")\])?)'
    r"(?:\.(?P<segment>[A-Za-z_]+)\.(?P<tail>.+))?",
    re.S,
)


def _nested_in(address: str) -> tuple[str, str, str] | None:
    """(owner address, kind, label inside the owner) when `address` names a resource nested
    in another (an agent's own block)."""
    m = _ADDRESS.fullmatch(address)
    if not m or not m.group("segment"):
        return None
    owner = m.group("owner")
    if kind_of(owner) not in KNOWN:
        return None
    nested = kind(kind_of(owner)).nested.get(m.group("segment"))
    return (owner, nested, m.group("tail")) if nested else None


class _Builder:
    def __init__(self, stack: str) -> None:
        self.stack = stack
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], Edge] = {}

    def node(self, node: Node) -> Node:
        return self.nodes.setdefault(node.key, node)

    def mark(self, key: str, *, action: str = "", refused: bool = False) -> None:
        n = self.nodes[key]
        self.nodes[key] = replace(n, action=action or n.action, refused=refused or n.refused)

    def edge(self, edge: Edge) -> None:
        self.edges.setdefault((edge.used, edge.user), edge)

    def resource(self, address: str, kind_name: str) -> Node:
        """The node of an address the manifest does not declare (the plan deletes it)."""
        if address in self.nodes:
            return self.nodes[address]
        inside = _nested_in(address)
        if inside:
            owner, nested_kind, label = inside
            self.resource(owner, kind_of(owner))
            return self.node(Node(address, nested_kind, label, kind(nested_kind).shape, owner))
        if kind_name not in KNOWN:
            return self.outside(kind_name, address)
        return self.node(Node(address, kind_name, address, kind(kind_name).shape))

    def outside(self, kind_name: str, name: str) -> Node:
        """A resource on the server that the stack does not manage, by name (or id)."""
        shape: Shape = kind(kind_name).shape if kind_name in KNOWN else "box"
        key = f"{kind_name}:{name}"
        return self.node(Node(key, kind_name, f"{kind_name} {name}", shape, outside=True))

    def graph(self) -> Graph:
        order = {k.name: i for i, k in enumerate(KINDS)}

        def top(n: Node) -> Node:
            return self.nodes[n.owner] if n.owner else n

        # Resources of the stack first, by kind and address; nested ones right after their
        # owner; resources outside the stack last, by kind and name.
        def sort_key(n: Node) -> tuple[object, ...]:
            t = top(n)
            return (t.outside, order.get(t.kind, len(order)), natural_key(t.key), n.owner, n.key)

        nodes = tuple(sorted(self.nodes.values(), key=sort_key))
        rank = {n.key: i for i, n in enumerate(nodes)}
        edges = sorted(
            (e for e in self.edges.values() if e.used in rank and e.user in rank),
            key=lambda e: (rank[e.user], rank[e.used]),
        )
        return Graph(self.stack, nodes, tuple(edges))


def stack_graph(desired: Desired, plan: Plan | None = None) -> Graph:
    """The manifest as a graph; with `plan`, each resource marked with what the plan does to
    it, and what it deletes (gone from the manifest) and the lines it attaches or detaches
    drawn too."""
    b = _Builder(desired.stack)
    for k in KINDS:
        for address, declared in sorted(desired.of(k.name).items()):
            b.node(Node(address, k.name, address, k.shape))
            for segment, nested_kind in sorted(k.nested.items()):
                for child in getattr(declared, segment, ()):
                    label = child.address[len(f"{address}.{segment}.") :]
                    shape = kind(nested_kind).shape
                    b.node(Node(child.address, nested_kind, label, shape, address))
    for k in KINDS:
        for address, declared in sorted(desired.of(k.name).items()):
            for link in k.links(declared, desired):
                used = (
                    b.outside(link.outside, link.to)
                    if link.outside
                    else b.resource(link.to, kind_of(link.to))
                )
                b.edge(Edge(used.key, address, link.shared))
    if plan is not None:
        _mark(b, plan)
    return b.graph()


def _mark(b: _Builder, plan: Plan) -> None:
    actions: dict[str, str] = {}
    for c in plan.changes:
        if c.action in MARKED:
            b.resource(c.address, c.kind or kind_of(c.address))
            now = actions.get(c.address)
            if now is None or MARKED.index(c.action) < MARKED.index(now):
                actions[c.address] = c.action
    for address, action in actions.items():
        b.mark(address, action=action)
    # What is nested in a resource is made, adopted or deleted with it (an agent's own blocks
    # are created in the agent's own request), unless it has a change of its own.
    for n in list(b.nodes.values()):
        owner = b.nodes.get(n.owner)
        if owner and owner.action in INHERITED and not n.action:
            b.mark(n.key, action=owner.action)
    for c in plan.changes:
        if c.action not in (ATTACH, DETACH) or c.target is None:
            continue
        if c.target.startswith(c.address + "."):
            continue  # its own block: drawn inside it, marked as the block's own change
        if c.target in b.nodes or _ADDRESS.fullmatch(c.target):
            used = b.resource(c.target, kind_of(c.target))
        else:
            # One the stack does not manage, by id: of the kind the user attaches.
            used = b.outside(kind(kind_of(c.address)).attaches, c.target)
        user = b.resource(c.address, kind_of(c.address))
        # What attaches is shared (memory): drawn so, unless declared otherwise.
        before = b.edges.get((used.key, user.key))
        shared = before.shared if before else True
        b.edges[(used.key, user.key)] = Edge(used.key, user.key, shared, c.action)
    for p in plan.problems:
        # A resource gone from the manifest that apply refuses to delete is drawn too.
        if p.address in b.nodes or (_ADDRESS.fullmatch(p.address) and kind_of(p.address) in KNOWN):
            b.resource(p.address, kind_of(p.address))
            b.mark(p.address, refused=True)


def changed_graph(
    graph: Graph, *, max_nodes: int | None = None, max_edges: int | None = None
) -> Graph:
    """Only what a plan changes, and the resources next to it while there is room: at most
    `max_nodes` nodes (the owner of a changed nested resource comes with it) and `max_edges`
    lines; `omitted` says how many changed resources were left out. So bounded, a plan of
    10,000 agents stays a diagram a pull-request comment can show."""
    max_nodes = len(graph.nodes) if max_nodes is None else max_nodes
    by_key = {n.key: n for n in graph.nodes}
    touched = {k for e in graph.edges if e.action for k in (e.used, e.user)}
    changed = [n for n in graph.nodes if n.changed or n.key in touched]
    keep: dict[str, None] = {}

    def take(n: Node) -> bool:
        need = [k for k in (n.owner, n.key) if k and k not in keep]
        if len(keep) + len(need) > max_nodes:
            return False
        keep.update(dict.fromkeys(need))
        return True

    omitted = 0
    for n in changed:
        if n.key not in keep and not take(n):
            omitted += 1
    core = set(keep)
    for e in graph.edges:  # the neighbours, in the graph's order, while there is room
        if e.used in core or e.user in core:
            for k in (e.used, e.user):
                if k not in keep:
                    take(by_key[k])
    nodes = tuple(n for n in graph.nodes if n.key in keep)
    edges = [e for e in graph.edges if e.used in keep and e.user in keep]
    edges.sort(key=lambda e: not e.action)  # the plan's own lines before the others
    kept = _in_order(graph.edges, edges if max_edges is None else edges[:max_edges])
    return replace(
        graph,
        nodes=nodes,
        edges=kept,
        omitted=graph.omitted + omitted,
        omitted_edges=graph.omitted_edges + len(edges) - len(kept),
    )


def _in_order(order: Iterable[Edge], some: Iterable[Edge]) -> tuple[Edge, ...]:
    chosen = set(some)
    return tuple(e for e in order if e in chosen)
