"""The cohort summary as one self-contained HTML page: inline CSS and SVG bar charts, nothing fetched.

Charts: recommendations by urgency (each code a bar), the distribution of each derived fact, and
how often each fact was missing. Every number in a chart is also written as text beside its bar.
"""

from __future__ import annotations

from html import escape
from typing import Any

from engine.guideline import Guideline
from engine.model.vocabulary import urgencies

_COLOURS = ("#b91c1c", "#c2410c", "#1d4ed8", "#4b5563")  # most urgent first, then any further urgency
_BAR = "#0f766e"
_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:64rem;
color:#111827;padding:0 1rem}
h1{font-size:1.6rem;margin:0 0 .3rem}h2{font-size:1.2rem;margin:2rem 0 .5rem;border-bottom:2px solid #e5e7eb}
h3{font-size:1rem;margin:1.2rem 0 .3rem}.meta{color:#4b5563}.digest{font-family:ui-monospace,monospace;
font-size:.85em}.tiles{display:flex;gap:1rem;flex-wrap:wrap;margin:1rem 0}.tile{border:1px solid #d1d5db;
border-radius:.5rem;padding:.6rem 1rem;min-width:8rem}.tile b{display:block;font-size:1.5rem}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(31rem,1fr));gap:0 2rem}
svg text{font:12px system-ui,sans-serif;fill:#111827}.note{color:#4b5563;font-size:.9em}
"""
_LABEL_W, _BAR_W, _ROW_H = 250, 380, 20


def _pct(n: int, total: int) -> str:
    return f"{100 * n / total:.1f} %" if total else "–"


def bars(rows: list[tuple[str, int, str]], total: int, title: str, label_w: int = _LABEL_W,
         bar_w: int = _BAR_W, tips: dict[str, str] | None = None) -> str:
    """A horizontal bar chart: (label, count, colour) per bar, scaled to `total` (100 %)."""
    height = _ROW_H * len(rows) + 8
    most = label_w // 7  # characters that fit at 12 px
    parts = [f'<svg role="img" aria-label="{escape(title)}" width="{label_w + bar_w + 120}" height="{height}" '
             f'xmlns="http://www.w3.org/2000/svg">']
    for i, (label, count, colour) in enumerate(rows):
        y = i * _ROW_H + 4
        width = round(bar_w * count / total, 1) if total else 0
        shown = label if len(label) <= most else label[:most - 1] + "…"
        tip = (tips or {}).get(label, label)
        parts.append(f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end">{escape(shown)}<title>{escape(tip)}'
                     f'</title></text>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="{_ROW_H - 6}" fill="#f3f4f6"/>'
                     f'<rect x="{label_w}" y="{y + 2}" width="{width}" height="{_ROW_H - 6}" fill="{colour}">'
                     f'<title>{escape(tip)}: {count:,}</title></rect>'
                     f'<text x="{label_w + bar_w + 6}" y="{y + 13}">{count:,} ({_pct(count, total)})</text>')
    parts.append("</svg>")
    return "".join(parts)


def _codes(data: dict[str, Any], guideline: Guideline) -> list[str]:
    order = list(urgencies())
    out = []
    total = data["evaluated"]
    for rank, urgency in enumerate(order + sorted(set(data["code_urgency"].values()) - set(order))):
        codes = [(code, n) for code, n in data["codes"].items() if data["code_urgency"].get(code) == urgency]
        if not codes:
            continue
        colour = _COLOURS[min(rank, len(_COLOURS) - 1)]
        given = data["urgency"].get(urgency, 0)
        out.append(f"<h3>{escape(urgency)} — {given:,} recommendation(s) made</h3>")
        rows = [(code, n, colour) for code, n in sorted(codes, key=lambda t: (-t[1], t[0]))]
        tips = {code: f"{code}: {rec.title}" for code, rec in guideline.content.catalogue.items()}
        out.append(bars(rows, total, f"{urgency} recommendations", tips=tips))
    return out


def html(data: dict[str, Any], guideline: Guideline) -> str:
    """The page for a summary (engine/cohort/summary.py's JSON) of a run on `guideline`."""
    g = data["guideline"]
    evaluated = data["evaluated"]
    tiles = [("patients", f"{data['patients']:,}"), ("evaluated", f"{evaluated:,}"),
             ("invalid", f"{data['invalid']:,}"),
             ("throughput", f"{data['throughput']:,.0f}/s" if data.get("throughput") else "–"),
             ("workers", str(data.get("workers", "–")))]
    body = [f"<h1>Cohort summary: {escape(g.get('title', g['id']))}</h1>",
            f'<p class="meta">{escape(g["id"])} {escape(g["version"])} · <span class="digest">{escape(g["digest"])}'
            f"</span> · {data['seconds']:,.1f} s</p>",
            '<div class="tiles">' + "".join(f'<div class="tile"><b>{v}</b>{escape(k)}</div>' for k, v in tiles)
            + "</div>"]
    if data.get("applicability"):
        body.append("<h2>Applicability</h2>")
        body.append(bars([(k, n, _BAR) for k, n in data["applicability"].items()], evaluated, "applicability"))
    body.append("<h2>Recommendations by urgency</h2>")
    body.append(f'<p class="note">Share of the {evaluated:,} evaluated patients who received each recommendation.</p>')
    body += _codes(data, guideline)
    body.append('<h2>Derived facts</h2><div class="grid">')
    for fact, counts in data["derived"].items():
        body.append(f"<div><h3>{escape(fact)}</h3>"
                    + bars([(label, n, _BAR) for label, n in counts.items()], evaluated, fact, 150, 200) + "</div>")
    body.append("</div><h2>Missing data</h2>")
    missing = data["missing"]
    if missing is None:
        body.append("<p>Not computed: the run was asked for no missing facts (<code>--no-missing</code>).</p>")
    elif missing:
        body.append('<p class="note">How many evaluated patients lacked each fact that a recommendation, the '
                    "applicability or a derived fact was waiting for.</p>")
        body.append(bars([(fact, n, "#7c3aed") for fact, n in missing.items()], evaluated, "missing facts"))
    else:
        body.append("<p>No fact was missing.</p>")
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Cohort summary — {escape(g['id'])} {escape(g['version'])}</title><style>{_CSS}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")
