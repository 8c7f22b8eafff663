"""Where the fact-flow graph's boxes go: layered columns, barycentre ordering, sizes from the labels.

Node order inside a column comes from a few barycentre sweeps, which keeps edges short and
crossings few; nodes are then placed near the centre of what they read.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from engine.products.render.graph import CODE, DERIVED, INPUT, Graph, Node

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
        for a, b in itertools.pairwise(chain):
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


def unused_lines(names: list[str]) -> list[list[str]]:
    return [names[i:i + UNUSED_PER_LINE] for i in range(0, len(names), UNUSED_PER_LINE)]


def _unused_size(graph: Graph) -> tuple[float, float]:
    if not graph.unused:
        return 0.0, 0.0
    width = (max(len(n) for n in graph.unused) + 2) * UNUSED_PER_LINE * CHAR_W + 2 * PAD_X
    return width, (len(unused_lines(graph.unused)) + 1) * LINE_H + 2 * PAD_Y


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
