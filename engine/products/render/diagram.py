"""The fact-flow diagram: input facts -> derived facts (by dependency depth) -> recommendation codes.

Laid out here, in layered columns, as one inline SVG (no scripts, no external resources). An edge
means "is read by": from a fact to the derived fact or recommendation whose rule (or score) reads
it. Node order inside a column comes from a few barycentre sweeps, which keeps edges short and
crossings few; nodes are then placed near the centre of what they read.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field

from engine.model.content import Content, Rule, Score, atoms, operands

INPUT, DERIVED, CODE = "input", "derived", "code"

# Geometry (px). Labels are monospace, so a label's width is its length times CHAR_W.
FONT_SIZE = 11
CHAR_W = 6.7           # advance of an 11 px monospace glyph (DejaVu / Liberation Mono: 0.6 em)
LINE_H = 13
PAD_X, PAD_Y = 7, 4
V_GAP = 6              # between nodes of a column
H_GAP = 96             # between columns (room for the edges)
H_GAP_LAST = 150       # before the recommendations, where the edges fan out
MARGIN = 12
HEADER_H = 38
HEADER_CHARS, HEADER_CHAR_W = 15, 8.6   # column titles: 12 px capitals, widest 'recommendations'
MAX_CHARS = {INPUT: 22, DERIVED: 16, CODE: 22}
MAX_LINES = 3
UNUSED_PER_LINE = 2
# Edges from each derived fact get their own hue so one fact's readers can be followed by eye.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39", "#7b4173")


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

def _fact_key(fact: str, content: Content, deriving: str | None) -> str:
    """Which node a rule's mention of `fact` reads (the deriving rule of `anc` reads the input)."""
    if fact in content.derived and fact != deriving:
        return f"{DERIVED}:{fact}"
    if fact in content.facts:
        return f"{INPUT}:{fact}"
    return f"{DERIVED}:{fact}"


def rule_reads(rule: Rule, content: Content) -> list[str]:
    facts = [a.fact for a in atoms(rule.when)] + [o.fact for o in operands(rule.value)]
    return list(dict.fromkeys(_fact_key(f, content, rule.derive) for f in facts))


def score_reads(score: Score, content: Content) -> list[str]:
    facts = [a.fact for a in atoms(score.applies_when)]
    facts += [a.fact for item in score.items for option in item.options for a in atoms(option.when)]
    return list(dict.fromkeys(_fact_key(f, content, score.fact) for f in facts))


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
        for source in rule_reads(rule, content):
            if source in nodes and target in nodes and source != target:
                edges.setdefault((source, target), None)
    for score in content.scores:
        for fact in (score.fact, score.range_fact):
            target = f"{DERIVED}:{fact}"
            for source in score_reads(score, content) if fact else ():
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


# --- layout ------------------------------------------------------------------------------------
# Sugiyama-style: an edge that skips columns runs through a "waypoint" in every column it crosses,
# so it never passes behind a box. Waypoints are shared per source ("trunks"): all edges leaving
# one fact run together until the column before their targets.

WAYPOINT = "waypoint"
WAYPOINT_H = 2.0


@dataclass
class Layout:
    columns: list[list[Node]]                          # boxes and waypoints, top to bottom
    paths: list[tuple[str, str, list[Node]]]           # (source, target, [source, waypoints…, target])
    width: float
    height: float


def wrap_label(name: str, max_chars: int, max_lines: int = MAX_LINES) -> list[str]:
    """Break an identifier after '_' or '-' so no line exceeds max_chars; '…' when too long."""
    chunks: list[str] = []
    current = ""
    for ch in name:
        current += ch
        if ch in "_-":
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    lines: list[str] = []
    line = ""
    for chunk in chunks:
        while len(chunk) > max_chars:  # one unbreakable piece longer than a line
            if line:
                lines.append(line)
                line = ""
            lines.append(chunk[:max_chars])
            chunk = chunk[max_chars:]
        if len(line) + len(chunk) > max_chars and line:
            lines.append(line)
            line = ""
        line += chunk
    if line:
        lines.append(line)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = lines[-1][:max_chars - 1] + "…"
    return lines


def _route(graph: Graph) -> tuple[list[list[Node]], list[tuple[str, str, list[Node]]], dict[str, list[str]]]:
    """Columns with waypoints, each edge's chain of nodes, and the unit-span edges (node -> readers)."""
    count = max((n.column for n in graph.nodes.values()), default=0) + 1
    cols: list[list[Node]] = [[] for _ in range(count)]
    unused = set(graph.unused)
    for node in graph.nodes.values():  # dictionary / catalogue order is the starting order
        if not (node.kind == INPUT and node.name in unused):
            cols[node.column].append(node)
    waypoints: dict[tuple[str, int], Node] = {}
    succ: dict[str, list[str]] = {}
    paths = []
    for source, target in graph.edges:
        s, t = graph.nodes[source], graph.nodes[target]
        chain = [s]
        for c in range(s.column + 1, t.column):
            if (source, c) not in waypoints:
                way = Node(f"{WAYPOINT}:{source}@{c}", s.name, WAYPOINT, column=c, height=WAYPOINT_H)
                waypoints[(source, c)] = way
                cols[c].append(way)
            chain.append(waypoints[(source, c)])
        chain.append(t)
        for a, b in zip(chain, chain[1:], strict=False):
            if b.key not in succ.setdefault(a.key, []):
                succ[a.key].append(b.key)
        paths.append((source, target, chain))
    return cols, paths, succ


def _order(cols: list[list[Node]], succ: dict[str, list[str]], sweeps: int = 8) -> None:
    """Barycentre ordering: alternately by the mean rank of what a node reads / is read by."""
    pred: dict[str, list[str]] = {}
    for a, bs in succ.items():
        for b in bs:
            pred.setdefault(b, []).append(a)
    rank: dict[str, float] = {}

    def rerank(col: list[Node]) -> None:
        for i, node in enumerate(col):
            rank[node.key] = i / max(len(col) - 1, 1)

    for col in cols:
        rerank(col)
    for sweep in range(sweeps):
        forward = sweep % 2 == 0
        indices = range(1, len(cols)) if forward else range(len(cols) - 2, -1, -1)
        for c in indices:
            def bary(node: Node, forward: bool = forward) -> float:
                keys = pred.get(node.key, []) if forward else succ.get(node.key, [])
                known = [rank[k] for k in keys if k in rank]
                return sum(known) / len(known) if known else rank[node.key]

            cols[c].sort(key=bary)  # stable: ties keep the editors' order
            rerank(cols[c])


def _size(cols: list[list[Node]]) -> list[float]:
    """Wrap labels, size boxes; the width of each column."""
    widths = []
    for col in cols:
        boxes = [n for n in col if n.kind != WAYPOINT]
        for node in boxes:
            node.lines = wrap_label(node.name, MAX_CHARS[node.kind])
            node.height = len(node.lines) * LINE_H + 2 * PAD_Y
        longest = max((len(line) for n in boxes for line in n.lines), default=8)
        width = max(longest * CHAR_W + 2 * PAD_X, HEADER_CHARS * HEADER_CHAR_W)
        for node in col:
            node.width = width
        widths.append(width)
    return widths


def _stack_height(col: list[Node]) -> float:
    return sum(n.height for n in col) + V_GAP * max(len(col) - 1, 0)


def _place_column(col: list[Node], pred: dict[str, list[Node]], top: float, bottom: float) -> None:
    """Each node near the mean height of what it reads, in order, without overlaps, within bounds."""
    for node in col:
        centers = [p.center for p in pred.get(node.key, [])]
        node.y = (sum(centers) / len(centers) if centers else top) - node.height / 2
    previous = top - V_GAP
    for node in col:  # push down
        node.y = max(node.y, previous + V_GAP)
        previous = node.y + node.height
    limit = bottom + V_GAP
    for node in reversed(col):  # pull back up from the bottom
        node.y = min(node.y, limit - V_GAP - node.height)
        limit = node.y
    if min((n.y for n in col), default=top) < top:  # taller than the space: stack it
        y = top
        for node in col:
            node.y = y
            y += node.height + V_GAP


def _unused_lines(names: list[str]) -> list[list[str]]:
    return [names[i:i + UNUSED_PER_LINE] for i in range(0, len(names), UNUSED_PER_LINE)]


def _unused_size(graph: Graph) -> tuple[float, float]:
    if not graph.unused:
        return 0.0, 0.0
    width = (max(len(n) for n in graph.unused) + 2) * UNUSED_PER_LINE * CHAR_W + 2 * PAD_X
    return width, (len(_unused_lines(graph.unused)) + 1) * LINE_H + 2 * PAD_Y


def layout(graph: Graph) -> Layout:
    """Positions for every box and waypoint, sized to the content."""
    cols, paths, succ = _route(graph)
    _order(cols, succ)
    widths = _size(cols)
    by_key = {n.key: n for col in cols for n in col}
    pred: dict[str, list[Node]] = {}
    for a, bs in succ.items():
        for b in bs:
            pred.setdefault(b, []).append(by_key[a])
    top: float = MARGIN + HEADER_H
    unused_w, unused_h = _unused_size(graph)
    inner = max([_stack_height(c) for c in cols] + [_stack_height(cols[0]) + unused_h + V_GAP])
    x = float(MARGIN)
    for c, col in enumerate(cols):
        for node in col:
            node.x = x
        if c == 0:
            y: float = top
            for node in col:
                node.y = y
                y += node.height + V_GAP
        else:
            _place_column(col, pred, top, top + inner)
        x += widths[c] + (H_GAP_LAST if c == len(cols) - 2 else H_GAP)
    width = max(x - H_GAP + MARGIN, 2 * MARGIN + unused_w)
    return Layout(cols, paths, width, top + inner + MARGIN)


# --- drawing -----------------------------------------------------------------------------------

def _edge_colour(graph: Graph, source: str) -> str:
    if graph.nodes[source].kind != DERIVED:
        return "#9aa5b1"
    derived = [k for k, n in graph.nodes.items() if n.kind == DERIVED]
    return PALETTE[derived.index(source) % len(PALETTE)]


def _path_data(chain: list[Node]) -> str:
    """Straight through each waypoint's column, a smooth S-curve between columns."""
    first = chain[0]
    x, y = first.x + first.width, first.center
    parts = [f"M{x:.1f},{y:.1f}"]
    for node in chain[1:]:
        x2, y2 = node.x, node.center
        bend = max((x2 - x) * 0.5, 20)
        parts.append(f"C{x + bend:.1f},{y:.1f} {x2 - bend:.1f},{y2:.1f} {x2:.1f},{y2:.1f}")
        x, y = x2, y2
        if node.kind == WAYPOINT:
            x = node.x + node.width
            parts.append(f"H{x:.1f}")
    return " ".join(parts)


def _edge(graph: Graph, source: str, target: str, chain: list[Node]) -> str:
    return (f'<path class="edge" data-from="{html.escape(source)}" data-to="{html.escape(target)}" '
            f'd="{_path_data(chain)}" stroke="{_edge_colour(graph, source)}"/>')


def _node(node: Node) -> str:
    text_x = node.x + PAD_X
    spans = "".join(
        f'<tspan x="{text_x:.1f}" y="{node.y + PAD_Y + (i + 1) * LINE_H - 3:.1f}">{html.escape(line)}</tspan>'
        for i, line in enumerate(node.lines))
    return (f'<a href="{html.escape(node.href)}"><g class="node {node.kind} {node.css}" '
            f'data-node="{html.escape(node.key)}"><title>{html.escape(node.tooltip)}</title>'
            f'<rect x="{node.x:.1f}" y="{node.y:.1f}" width="{node.width:.1f}" height="{node.height:.1f}" rx="4"/>'
            f'<text>{spans}</text></g></a>')


def _unused_group(graph: Graph, x: float, y: float) -> str:
    rows = _unused_lines(graph.unused)
    height = (len(rows) + 1) * LINE_H + 2 * PAD_Y
    width = (max(len(n) for n in graph.unused) + 2) * UNUSED_PER_LINE * CHAR_W + 2 * PAD_X
    col_w = (max(len(n) for n in graph.unused) + 2) * CHAR_W
    parts = [f'<g class="unused"><rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="4"/>',
             f'<text x="{x + PAD_X:.1f}" y="{y + PAD_Y + LINE_H - 3:.1f}" class="unused-title">'
             f'input facts no rule reads ({len(graph.unused)})</text><text>']
    for r, row in enumerate(rows):
        for c, name in enumerate(row):
            parts.append(f'<tspan data-node="{INPUT}:{html.escape(name)}" x="{x + PAD_X + c * col_w:.1f}" '
                         f'y="{y + PAD_Y + (r + 2) * LINE_H - 3:.1f}">{html.escape(name)}</tspan>')
    parts.append("</text></g>")
    return "".join(parts)


def _header_lines(c: int, cols: list[list[Node]]) -> list[str]:
    if c == 0:
        return ["input facts"]
    if c == len(cols) - 1 and any(n.kind == CODE for n in cols[c]):
        return ["recommendations"]
    return ["derived facts", f"depth {c}"]


def _headers(cols: list[list[Node]]) -> str:
    out = []
    for c, col in enumerate(cols):
        if not col:
            continue
        spans = "".join(f'<tspan x="{col[0].x:.1f}" y="{MARGIN + 11 + i * 14:.1f}">{html.escape(line)}</tspan>'
                        for i, line in enumerate(_header_lines(c, cols)))
        out.append(f'<text class="column-title">{spans}</text>')
    return "".join(out)


STYLE = (
    f".node text,.unused text{{font:{FONT_SIZE}px 'DejaVu Sans Mono','Liberation Mono',Menlo,Consolas,monospace;"
    "fill:#1b1f24}"
    ".node rect{stroke-width:1.2}"
    ".node.input rect{fill:#ffffff;stroke:#8a96a3}"
    ".node.derived rect{fill:#e3efff;stroke:#3b6fb6}"
    ".node.code rect{fill:#eef8ee;stroke:#3e8e41}"
    ".node.kind-do-not rect{fill:#fde8e8;stroke:#c62828;stroke-width:2}"
    ".node.kind-consider rect{fill:#fff7e0;stroke:#b7860b}"
    ".node.kind-info rect{fill:#f1f1f6;stroke:#6b6b8a}"
    ".node:hover rect{stroke-width:2.5}"
    ".edge{fill:none;stroke-width:1.1;opacity:.55}"
    ".column-title{font:600 12px system-ui,-apple-system,'Segoe UI',sans-serif;fill:#3c4650;"
    "text-transform:uppercase;letter-spacing:.04em}"
    ".unused rect{fill:#f6f7f8;stroke:#b8c0c8;stroke-dasharray:4 3}"
    ".unused .unused-title{font-style:italic;fill:#5b6570}"
)


def diagram_svg(content: Content) -> str:
    """The fact-flow diagram as one self-contained <svg> element, sized to its content."""
    graph = build_graph(content)
    drawn = layout(graph)
    width, height = drawn.width, drawn.height
    boxes = [n for col in drawn.columns for n in col if n.kind != WAYPOINT]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="flow" role="img" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'aria-label="How facts flow from input facts through derived facts to recommendations">',
             f"<style>{STYLE}</style>", _headers(drawn.columns), '<g class="edges">']
    parts += [_edge(graph, s, t, chain) for s, t, chain in drawn.paths]
    parts.append('</g><g class="nodes">')
    parts += [_node(n) for n in boxes]
    parts.append("</g>")
    if graph.unused:
        bottom = max((n.y + n.height for n in drawn.columns[0]), default=MARGIN + HEADER_H)
        parts.append(_unused_group(graph, MARGIN, bottom + V_GAP))
    parts.append("</svg>")
    return "".join(parts)
