"""The fact-flow graph: input facts -> derived facts (by dependency depth) -> recommendation codes.

An edge means "is read by": from a fact to the derived fact or recommendation whose rule (or score)
reads it. Which fact a mention reads (derived, or the patient's input of that name) is the resolve
stage's binding; layout.py places the graph and diagram.py draws it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.model.content import Atom, Content, Operand, Rule, Score, atoms, operands
from engine.products.words import binding

INPUT, DERIVED, CODE = "input", "derived", "code"


@dataclass
class Node:
    key: str                  # "input:anc", "derived:anc", "code:fn-obtain-cultures"
    name: str
    kind: str                 # input | derived | code
    column: int = 0
    tooltip: str = ""
    href: str = ""
    css: str = ""
    lines: list[str] = field(default_factory=list)
    x: float = 0.0
    y: float = 0.0
    width: float = 0.0
    height: float = 0.0

    @property
    def center(self) -> float:
        return self.y + self.height / 2


@dataclass
class Graph:
    nodes: dict[str, Node]
    edges: list[tuple[str, str]]          # (reader's source fact, reader)
    unused: list[str]                     # input facts nothing reads

    def sources(self, key: str) -> list[str]:
        return [s for s, t in self.edges if t == key]

    def targets(self, key: str) -> list[str]:
        return [t for s, t in self.edges if s == key]


# --- the graph ---------------------------------------------------------------------------------

def _node_key(mention: Atom | Operand) -> str:
    """The node a mention reads: the deriving rule of `anc` reads the input, other rules the derived fact."""
    return f"{DERIVED if binding(mention).derived else INPUT}:{mention.fact}"


def rule_reads(rule: Rule) -> list[str]:
    mentions: list[Atom | Operand] = [*atoms(rule.when), *operands(rule.value)]
    return list(dict.fromkeys(_node_key(m) for m in mentions))


def score_reads(score: Score) -> list[str]:
    mentions = atoms(score.applies_when)
    mentions += [a for item in score.items for option in item.options for a in atoms(option.when)]
    return list(dict.fromkeys(_node_key(m) for m in mentions))


def build_graph(content: Content) -> Graph:
    """Nodes for every input fact, derived fact and catalogue code; edges for "is read by"."""
    nodes: dict[str, Node] = {}
    for name in content.facts:
        nodes[f"{INPUT}:{name}"] = Node(f"{INPUT}:{name}", name, INPUT, tooltip=f"{name} (input fact)",
                                        href=f"#fact-{name}")
    for name in content.derived:
        nodes[f"{DERIVED}:{name}"] = Node(f"{DERIVED}:{name}", name, DERIVED, tooltip=f"{name} (derived fact)",
                                          href=f"#derived-{name}")
    for code, rec in content.catalogue.items():
        nodes[f"{CODE}:{code}"] = Node(f"{CODE}:{code}", code, CODE, tooltip=f"{code}: {rec.title}",
                                       href=f"#code-{code}", css=f"kind-{rec.kind}")
    edges: dict[tuple[str, str], None] = {}
    for rule in content.rules:
        target = f"{DERIVED}:{rule.derive}" if rule.derive else f"{CODE}:{rule.recommend}"
        for source in rule_reads(rule):
            if source in nodes and target in nodes and source != target:
                edges.setdefault((source, target), None)
    for score in content.scores:
        for fact in (score.fact, score.range_fact):
            target = f"{DERIVED}:{fact}"
            for source in score_reads(score) if fact else ():
                if source in nodes and target in nodes and source != target:
                    edges.setdefault((source, target), None)
    graph = Graph(nodes, list(edges), [])
    graph.unused = [n.name for n in nodes.values() if n.kind == INPUT and not graph.targets(n.key)]
    _assign_columns(graph)
    return graph


def _assign_columns(graph: Graph) -> None:
    """Inputs in column 0, a derived fact one right of the deepest derived fact it reads, codes last."""
    depth: dict[str, int] = {}

    def depth_of(key: str, visiting: frozenset[str]) -> int:
        if key in depth:
            return depth[key]
        derived_sources = [s for s in graph.sources(key) if graph.nodes[s].kind == DERIVED and s not in visiting]
        depth[key] = 1 + max((depth_of(s, visiting | {key}) for s in derived_sources), default=0)
        return depth[key]

    derived = [n for n in graph.nodes.values() if n.kind == DERIVED]
    for node in derived:
        node.column = depth_of(node.key, frozenset())
    last = max((n.column for n in derived), default=0) + 1
    for node in graph.nodes.values():
        if node.kind == CODE:
            node.column = last

