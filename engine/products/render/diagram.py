"""The fact-flow diagram drawn as one inline SVG (no scripts, no external resources).

Built by graph.py, placed by layout.py; this module only draws boxes, edges and column titles.
"""

from __future__ import annotations

import html

from engine.model.content import Content
from engine.products.render.graph import CODE, DERIVED, INPUT, Graph, Node, build_graph
from engine.products.render.layout import (
    CHAR_W,
    FONT_SIZE,
    HEADER_H,
    LINE_H,
    MARGIN,
    PAD_X,
    PAD_Y,
    UNUSED_PER_LINE,
    V_GAP,
    WAYPOINT,
    layout,
    unused_lines,
)

# Edges from each derived fact get their own hue so one fact's readers can be followed by eye.
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
           "#bcbd22", "#7f7f7f", "#393b79", "#637939", "#843c39", "#7b4173")


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
    rows = unused_lines(graph.unused)
    height = (len(rows) + 1) * LINE_H + 2 * PAD_Y
    width = (max(len(n) for n in graph.unused) + 2) * UNUSED_PER_LINE * CHAR_W + 2 * PAD_X
    col_w = (max(len(n) for n in graph.unused) + 2) * CHAR_W
    parts = [f'<g class="unused"><rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height:.1f}" rx="4"/>',
             (f'<text x="{x + PAD_X:.1f}" y="{y + PAD_Y + LINE_H - 3:.1f}" class="unused-title">'
             f'input facts no rule reads ({len(graph.unused)})</text><text>')]
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
    parts = [(f'<svg xmlns="http://www.w3.org/2000/svg" class="flow" role="img" width="{width:.0f}" '
             f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
             f'aria-label="How facts flow from input facts through derived facts to recommendations">'),
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
