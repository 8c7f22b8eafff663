"""`guideline render`: the whole guideline as one document for clinical review (HTML or Markdown).

The HTML is self-contained: inline CSS, an inline SVG diagram, no scripts, no external resources;
every link is an in-page anchor. Everything shown comes from the guideline files; this module only
arranges it. Both builders read the same `Review` model, so they always show the same things.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from engine.errors import GuidelineInvalidError
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Conversion,
    FactSpec,
    NoneKnown,
    Not,
    Operand,
    Recommendation,
    Rule,
    atoms,
)
from engine.model.units import convert
from engine.model.vocabulary import COMPARISONS, kind_label
from engine.pipeline import analyse
from engine.products.render.diagram import (
    CODE,
    DERIVED,
    INPUT,
    build_graph,
    diagram_svg,
    rule_reads,
    score_reads,
)
from engine.products.words import condition_words, number_words, unit_words, value_words
from engine.resources import BUNDLED_GUIDELINE

FORMATS = ("html", "markdown")
_FLIP = {"lt": "ge", "le": "gt", "gt": "le", "ge": "lt"}


# --- the review model: what both formats show ---------------------------------------------------

@dataclass(frozen=True)
class RuleView:
    rule: Rule
    file: str          # rules file name, e.g. antibiotics.yaml
    when: str
    then: str          # "neutropenia_grade = severe" / the code


@dataclass(frozen=True)
class ThresholdRow:
    fact: str
    test: str          # "anc < 0.5 ×10⁹/L", "0.5 ≤ anc < 1.0 ×10⁹/L"
    source: str        # rule id, or "<score id>: <item id>"
    anchor: str        # in-page anchor of the source
    outcome: str       # what follows when the test holds (with the rest of the condition)
    condition: str     # "when <whole condition>" when the test is only part of it, else ""
    key: tuple[float, int]


@dataclass(frozen=True)
class Review:
    content: Content
    digest: str
    rules: tuple[RuleView, ...]
    topics: dict[str, str]                  # rules file -> its header comment
    recommended_by: dict[str, list[str]]    # code -> rule ids
    derived_by: dict[str, list[str]]        # derived fact -> rule ids / score ids
    read_by: dict[str, list[str]]           # "input:x" / "derived:x" -> rule ids / score ids
    cited_by: dict[int, list[str]]          # reference -> rule ids / score ids
    thresholds: dict[str, list[ThresholdRow]]
    uncompared: list[str]                   # numeric facts no rule compares


def review(content: Content, digest: str) -> Review:
    views = tuple(RuleView(r, _file_of(r), condition_words(r.when, content), _then(r)) for r in content.rules)
    first_rule = {v.file: v.rule for v in reversed(views)}
    topics = {file: _file_topic(_path_of(rule)) for file, rule in first_rule.items()}
    recommended_by: dict[str, list[str]] = {code: [] for code in content.catalogue}
    derived_by: dict[str, list[str]] = {name: [] for name in content.derived}
    cited_by: dict[int, list[str]] = {ref: [] for ref in content.references}
    for rule in content.rules:
        if rule.recommend:
            recommended_by.setdefault(rule.recommend, []).append(rule.id)
        if rule.derive:
            derived_by.setdefault(rule.derive, []).append(rule.id)
        for ref in rule.citations:
            cited_by.setdefault(ref, []).append(rule.id)
    for score in content.scores:
        for fact in (score.fact, score.range_fact):
            if fact:
                derived_by.setdefault(fact, []).append(f"score {score.id}")
        for ref in score.citations:
            cited_by.setdefault(ref, []).append(f"score {score.id}")
    thresholds, uncompared = _thresholds(content)
    return Review(content, digest, views, topics, recommended_by, derived_by, _read_by(content), cited_by,
                  thresholds, uncompared)


def _file_of(rule: Rule) -> str:
    return Path(rule.where.doc.file).name if rule.where is not None else "rules"


def _path_of(rule: Rule) -> Path | None:
    return Path(rule.where.doc.file) if rule.where is not None else None


def _file_topic(path: Path | None) -> str:
    """The first comment of a rules file after its schema line: the editors' description of it."""
    if path is None:
        return ""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    for line in lines:
        text = line.strip()
        if not text.startswith("#"):
            break
        text = text.lstrip("#").strip()
        if text and not text.startswith("yaml-language-server"):
            return text
    return ""


def _then(rule: Rule) -> str:
    if rule.recommend:
        return rule.recommend
    if isinstance(rule.value, Operand) and rule.value.fact == rule.derive:
        return f"{rule.derive} = {rule.derive} as given"
    return f"{rule.derive} = {value_words(rule.value)}"


def _read_by(content: Content) -> dict[str, list[str]]:
    """"input:x" / "derived:x" -> the rules and scores that read it (as the diagram draws it)."""
    readers: dict[str, list[str]] = {}
    for rule in content.rules:
        for key in rule_reads(rule, content):
            readers.setdefault(key, []).append(rule.id)
    for score in content.scores:
        for key in score_reads(score, content):
            readers.setdefault(key, []).append(f"score {score.id}")
    return readers


# --- thresholds ---------------------------------------------------------------------------------

def _tests(cond: Condition) -> list[tuple[Atom, ...]]:
    """Every numeric test in a condition: single comparisons and lo/hi bands, negations flipped."""
    if isinstance(cond, Atom):
        return [(cond,)] if cond.op in COMPARISONS else []
    if isinstance(cond, Not):
        return [tuple(Atom(a.fact, _FLIP[a.op], a.value, a.where, a.unit) for a in t) for t in _tests(cond.item)]
    if isinstance(cond, All) and len(cond.items) == 2 and all(
            isinstance(a, Atom) and a.op in COMPARISONS for a in cond.items):
        first, second = cond.items
        assert isinstance(first, Atom) and isinstance(second, Atom)
        if first.fact == second.fact:
            return [(first, second)]
    items = cond.items if isinstance(cond, (All, Any_, NoneKnown)) else ()
    return [t for item in items for t in _tests(item)]


def _spec(content: Content, fact: str) -> FactSpec | None:
    return content.derived.get(fact) or content.facts.get(fact)


def _canonical(atom: Atom, content: Content) -> float:
    spec = _spec(content, atom.fact)
    conv = spec.conversion(atom.unit) if spec is not None and atom.unit else None
    return convert(atom.value, conv) if conv is not None else float(atom.value)


def _test_words(test: tuple[Atom, ...], content: Content) -> str:
    if len(test) == 1:
        return condition_words(test[0], content)
    return condition_words(All(test), content)


def _sort_key(test: tuple[Atom, ...], content: Content) -> tuple[float, int]:
    """Bands sort at their upper bound just before '<' of the same value, then '≤', '>', '≥'."""
    if len(test) == 2:
        return (max(_canonical(a, content) for a in test), 0)
    atom = test[0]
    return (_canonical(atom, content), {"lt": 1, "le": 2, "gt": 3, "ge": 4}[atom.op])


def _whole(cond: Condition, test: tuple[Atom, ...]) -> bool:
    return cond == test[0] if len(test) == 1 else cond == All(test)


def _rule_outcome(rule: Rule, content: Content) -> str:
    if rule.recommend:
        rec = content.catalogue.get(rule.recommend)
        return f"recommend {rule.recommend}" + (f" — {rec.title}" if rec else "")
    return _then(rule)


def _thresholds(content: Content) -> tuple[dict[str, list[ThresholdRow]], list[str]]:
    rows: dict[str, list[ThresholdRow]] = {}
    for rule in content.rules:
        for test in _tests(rule.when):
            condition = "" if _whole(rule.when, test) else f"when {condition_words(rule.when, content)}"
            rows.setdefault(test[0].fact, []).append(ThresholdRow(
                test[0].fact, _test_words(test, content), rule.id, f"rule-{rule.id}",
                _rule_outcome(rule, content), condition, _sort_key(test, content)))
    for score in content.scores:
        applies = condition_words(score.applies_when, content)
        for item in score.items:
            for option in item.options:
                for test in _tests(option.when):
                    rows.setdefault(test[0].fact, []).append(ThresholdRow(
                        test[0].fact, _test_words(test, content), f"{score.id}: {item.id}", f"score-{score.id}",
                        f"{number_words(option.points)} points for “{item.title}”",
                        f"the score applies when {applies}", _sort_key(test, content)))
    numeric = [n for n, s in {**content.facts, **content.derived}.items() if s.type == "number"]
    ordered = {n: sorted(rows[n], key=lambda r: r.key) for n in numeric if n in rows}
    ordered.update({n: sorted(r, key=lambda r: r.key) for n, r in rows.items() if n not in ordered})
    return ordered, [n for n in numeric if n not in rows]


# --- shared small texts -------------------------------------------------------------------------

def unit_text(unit: str | None) -> str:
    """'10*9/L (×10⁹/L)': the UCUM code and how it reads, or '' for none."""
    if not unit:
        return ""
    shown = unit_words(unit)
    return unit if shown == unit else f"{unit} ({shown})"


def _fraction(value: Fraction) -> str:
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def conversion_text(unit: str, conv: Conversion) -> str:
    """'/uL: × 1/1000', '[degF]: (value − 32) × 5/9', '10*3/uL: × 1' (into the canonical unit)."""
    if conv.add == 0 and conv.multiply == 1:
        rule = "× 1"
    elif conv.add == 0:
        rule = f"× {_fraction(conv.multiply)}"
    else:
        sign = "+" if conv.add > 0 else "−"
        rule = f"(value {sign} {_fraction(abs(conv.add))}) × {_fraction(conv.multiply)}"
    return f"{unit}: {rule}"


def range_text(spec: FactSpec) -> str:
    if spec.range is None:
        return ""
    low, high = spec.range
    unit = unit_words(spec.unit)
    return f"{number_words(low)} – {number_words(high)}" + (f" {unit}" if unit else "")


def type_text(spec: FactSpec) -> str:
    if spec.type == "enum":
        text = f"enum: {', '.join(spec.values)}"
        return text + (f" (or {spec.undetermined_label})" if spec.undetermined_label else "")
    return spec.type


def people(entries: tuple[dict[str, str], ...]) -> str:
    return "; ".join(f"{e.get('name', '')}" + (f" ({e['role']})" if e.get("role") else "") for e in entries)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _rule_groups(rv: Review, derive: bool) -> list[tuple[str, list[RuleView]]]:
    groups: dict[str, list[RuleView]] = {}
    for view in rv.rules:
        if bool(view.rule.derive) == derive:
            groups.setdefault(view.file, []).append(view)
    return list(groups.items())


# --- HTML ---------------------------------------------------------------------------------------

def e(text: object) -> str:
    return html.escape(str(text), quote=True)


CSS = """
:root{--ink:#1b1f24;--muted:#5b6570;--line:#d8dee4;--bg:#f6f8fa;--accent:#0b5cad;--danger:#b71c1c}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:var(--ink);
background:#fff}
main{max-width:1200px;margin:0 auto;padding:24px 28px 64px}
h1{font-size:28px;line-height:1.25;margin:0 0 8px}
h2{font-size:21px;margin:40px 0 12px;padding-bottom:6px;border-bottom:2px solid var(--line)}
h3{font-size:17px;margin:26px 0 8px}
h4{font-size:15px;margin:0 0 6px}
a{color:var(--accent);text-decoration:none}
a:hover{text-decoration:underline}
code,.mono{font-family:"DejaVu Sans Mono","Liberation Mono",Menlo,Consolas,monospace;font-size:.9em}
p{margin:6px 0}
.muted{color:var(--muted)}
.small{font-size:13px}
table{border-collapse:collapse;width:100%;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--bg);font-weight:600}
table:not(.plain) tbody tr:nth-child(even) td{background:#fbfcfd}
td.num{white-space:nowrap}
table.fixed{table-layout:fixed}
table.fixed td{overflow-wrap:anywhere}
td.code{white-space:nowrap}
.badge{display:inline-block;padding:2px 9px;border-radius:999px;font-size:12px;font-weight:700;
letter-spacing:.04em;text-transform:uppercase;vertical-align:middle;border:1px solid transparent}
.status{font-size:15px;padding:4px 14px;margin-left:10px}
.status-draft{background:#fff3cd;color:#7a5200;border-color:#e0b23c}
.status-in-review{background:#dbeafe;color:#123f91;border-color:#6d9ee8}
.status-approved{background:#dcfce7;color:#14532d;border-color:#4caf6e}
.status-retired{background:#e5e7eb;color:#374151;border-color:#9ca3af}
.kind-do{background:#e6f4e7;color:#1e5b22;border-color:#9bcf9e}
.kind-do-not{background:var(--danger);color:#fff}
.kind-consider{background:#fff5d6;color:#6b4e00;border-color:#e6c35c}
.kind-info{background:#ecedf5;color:#3b3d63;border-color:#b4b7d6}
.urgency{background:#fff;color:var(--muted);border-color:var(--line)}
.urgency-immediate{color:#a11;border-color:#e7a3a3}
.urgency-urgent{color:#8a4b00;border-color:#e8c08a}
.derives{background:#e3efff;color:#1d4f91;border-color:#9dbbe6}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:14px 0;font-size:14px}
.meta dt{color:var(--muted)}
.meta dd{margin:0}
.digest{word-break:break-all}
.note-box{background:var(--bg);border-left:4px solid var(--line);padding:8px 12px;margin:10px 0}
nav.toc{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px 16px;margin:18px 0}
nav.toc ol{margin:4px 0;padding-left:22px;columns:2}
.rules-grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(460px,1fr));gap:8px;margin:6px 0 14px}
.rule{border:1px solid var(--line);border-left:4px solid #8fb3de;border-radius:6px;padding:7px 12px;margin:0;
font-size:14px;break-inside:avoid}
.rule h4{display:flex;justify-content:space-between;gap:10px;font-size:14px}
.rule h4 .cites{font-weight:400;white-space:nowrap}
.rule p{margin:3px 0}
.file-heading{margin:18px 0 4px;font-size:15px}
.rule.recommend{border-left-color:#6fbf73}
.rule.do-not{border-left-color:var(--danger)}
.rule .when b,.rule .then b{color:var(--muted);font-weight:600}
.rule .rationale{color:#4a535d;font-style:italic;font-size:13px}
.cites a{font-weight:600}
tr.do-not td{background:#fff1f1 !important}
tr.do-not td:first-child{border-left:4px solid var(--danger)}
.refs li{margin:8px 0}
.fig{overflow-x:auto;border:1px solid var(--line);border-radius:6px;padding:8px;background:#fff}
.fig svg{display:block;max-width:100%;height:auto}
.legend{font-size:13px;margin:6px 0}
.legend span{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:14px;height:10px;border:1.5px solid;border-radius:2px;margin-right:5px;
vertical-align:middle}
.threshold-fact{margin-top:22px}
@media print{main{max-width:none;padding:0}.fig{overflow:visible}nav.toc{display:none}a{color:inherit}}
"""

SECTIONS = (("metadata", "Guideline"), ("references", "References"), ("rules", "Rules"),
            ("catalogue", "Recommendation catalogue"), ("scores", "Scores"), ("thresholds", "Thresholds"),
            ("facts", "Facts dictionary"), ("traceability", "Traceability"), ("flow", "How facts flow"))


def _link(kind: str, name: str, text: str | None = None) -> str:
    return f'<a href="#{e(kind)}-{e(name)}"><code>{e(text or name)}</code></a>'


def _links(kind: str, names: list[str]) -> str:
    return ", ".join(_reader_link(n) if kind == "reader" else _link(kind, n) for n in names) or \
        '<span class="muted">—</span>'


def _reader_link(name: str) -> str:
    if name.startswith("score "):
        score_id = name.split(" ", 1)[1]
        return f'<a href="#score-{e(score_id)}">score <code>{e(score_id)}</code></a>'
    return _link("rule", name)


def _cites(refs: tuple[int, ...] | list[int]) -> str:
    return " ".join(f'<a href="#ref-{r}">[{r}]</a>' for r in refs)


def _badge(css: str, text: str) -> str:
    return f'<span class="badge {e(css)}">{e(text)}</span>'


def _kind_badge(rec: Recommendation | None) -> str:
    return _badge(f"kind-{rec.kind}", kind_label(rec.kind)) if rec else ""


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _html_header(rv: Review) -> str:
    meta = rv.content.metadata
    rules = rv.content.rules
    n_derive = sum(1 for r in rules if r.derive)
    rows = [("Identifier", f"<code>{e(meta.id)}</code>"), ("Version", e(meta.version)),
            ("Status", _badge(f"status-{meta.status}", meta.status)),
            ("Effective date", e(meta.effective_date or "not set")),
            ("Owners", e(people(meta.owners)) or '<span class="muted">none</span>'),
            ("Reviewers", e(people(meta.reviewers)) or '<span class="muted">none yet</span>'),
            ("Content digest", f'<code class="digest">{e(rv.digest)}</code>'),
            ("Contents", e(f"{len(rules)} rules ({n_derive} derive facts, {len(rules) - n_derive} recommend), "
                           f"{len(rv.content.catalogue)} recommendation codes, "
                           f"{_count(len(rv.content.scores), 'score')}, "
                           f"{len(rv.content.facts)} input facts, {len(rv.content.derived)} derived facts, "
                           f"{len(rv.content.references)} references"))]
    meta_html = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in rows)
    toc = "".join(f'<li><a href="#{key}">{e(title)}</a></li>' for key, title in SECTIONS)
    return (f'<header id="metadata"><h1>{e(meta.title)}'
            f'<span class="badge status status-{e(meta.status)}" data-status="{e(meta.status)}">{e(meta.status)}'
            f'</span></h1><dl class="meta">{meta_html}</dl>'
            + (f'<p class="note-box">{e(meta.description)}</p>' if meta.description else "")
            + f'<nav class="toc" aria-label="Contents"><strong>Contents</strong><ol>{toc}</ol></nav></header>')


def _html_references(rv: Review) -> str:
    items = []
    for ref in sorted(rv.content.references.values(), key=lambda r: r.id):
        note = f'<br><span class="small muted">{e(ref.note)}</span>' if ref.note else ""
        cited = rv.cited_by.get(ref.id, [])
        used = f'<br><span class="small">cited by {_links("reader", cited)}</span>' if cited else \
            '<br><span class="small muted">cited by no rule</span>'
        items.append(f'<li id="ref-{ref.id}" value="{ref.id}">{e(ref.citation)}{note}{used}</li>')
    return f'<section id="references"><h2>References</h2><ol class="refs">{"".join(items)}</ol></section>'


def _html_rule(view: RuleView, content: Content) -> str:
    rule = view.rule
    if rule.recommend:
        rec = content.catalogue.get(rule.recommend)
        title = f" — {e(rec.title)}" if rec else ""
        then = (f'<b>then recommend</b> {_link("code", rule.recommend)} {_kind_badge(rec)}{title}')
        css = f"recommend{' do-not' if rec and rec.kind == 'do-not' else ''}"
    else:
        assert rule.derive is not None
        value = e(view.then.split(" = ", 1)[1])
        then = f'<b>then</b> {_link("derived", rule.derive)} = <strong>{value}</strong>'
        css = "derive"
    rationale = f'<p class="rationale">{e(rule.rationale)}</p>' if rule.rationale else ""
    return (f'<article class="rule {css}" id="rule-{e(rule.id)}"><h4><span><code>{e(rule.id)}</code> · '
            f'{e(rule.title)}</span><span class="cites small">sources {_cites(rule.citations)}</span></h4>'
            f'<p class="when"><b>When</b> {e(view.when)}</p><p class="then">{then}</p>{rationale}</article>')


def _html_rule_groups(rv: Review, derive: bool) -> str:
    out = []
    for file, views in _rule_groups(rv, derive):
        topic = rv.topics.get(file, "")
        anchor = f"{'derive' if derive else 'recommend'}-{slug(file)}"
        out.append(f'<h4 class="file-heading" id="{e(anchor)}"><code>rules/{e(file)}</code>'
                   + (f' <span class="muted" style="font-weight:400">— {e(topic)}</span>' if topic else "")
                   + "</h4>")
        out.append('<div class="rules-grid">' + "".join(_html_rule(v, rv.content) for v in views) + "</div>")
    return "".join(out)


def _html_rules(rv: Review) -> str:
    return ('<section id="rules"><h2>Rules</h2>'
            '<p class="muted small">A rule applies only when its condition is known to be true: a missing fact is '
            'never read as normal or false, and “is not known to be true” includes “not given”.</p>'
            '<h3 id="derived-rules">Derived-fact rules <span class="badge derives">derive</span></h3>'
            f'{_html_rule_groups(rv, True)}'
            '<h3 id="recommendation-rules">Recommendation rules</h3>'
            f'{_html_rule_groups(rv, False)}</section>')


def _html_catalogue(rv: Review) -> str:
    rows = []
    for code, rec in rv.content.catalogue.items():
        css = ' class="do-not"' if rec.kind == "do-not" else ""
        rows.append(f'<tr id="code-{e(code)}"{css}><td class="code"><code>{e(code)}</code></td>'
                    f'<td>{_kind_badge(rec)}</td>'
                    f'<td>{_badge(f"urgency urgency-{rec.urgency}", rec.urgency)}</td>'
                    f'<td><strong>{e(rec.title)}</strong><br>{e(rec.text)}</td>'
                    f'<td class="small">{_links("rule", rv.recommended_by.get(code, []))}</td></tr>')
    return ('<section id="catalogue"><h2>Recommendation catalogue</h2>'
            '<table><thead><tr><th>Code</th><th>Kind</th><th>Urgency</th><th>Title and text</th>'
            f'<th>Recommended by</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _score_readers(rv: Review, fact: str | None) -> list[Rule]:
    return [r for r in rv.content.rules if fact and any(a.fact == fact for a in atoms(r.when))]


def _html_scores(rv: Review) -> str:
    out = ['<section id="scores"><h2>Scores</h2>']
    if not rv.content.scores:
        out.append('<p class="muted">This guideline has no scores.</p>')
    for score in rv.content.scores:
        content = rv.content
        rows = []
        for item in score.items:
            for i, opt in enumerate(item.options):
                head = (f'<td rowspan="{len(item.options)}"><strong>{e(item.title)}</strong><br>'
                        f'<code class="small muted">{e(item.id)}</code></td>') if i == 0 else ""
                rows.append(f'<tr>{head}<td class="num">{e(number_words(opt.points))}</td>'
                            f'<td>{e(condition_words(opt.when, content))}</td></tr>')
        top = sum(max((o.points for o in item.options), default=0) for item in score.items)
        readers = "".join(f'<li>{_link("rule", r.id)}: when {e(condition_words(r.when, content))} → '
                          f'{e(_rule_outcome(r, content))}</li>' for r in _score_readers(rv, score.fact))
        range_fact = (f' and <a href="#derived-{e(score.range_fact)}"><code>{e(score.range_fact)}</code></a> '
                      f'(lowest and highest possible total when items are missing)') if score.range_fact else ""
        out.append(
            f'<h3 id="score-{e(score.id)}">{e(score.title)} <code class="small muted">{e(score.id)}</code></h3>'
            f'<p><b>Applies when</b> {e(condition_words(score.applies_when, content))}. '
            f'Total in <a href="#derived-{e(score.fact)}"><code>{e(score.fact)}</code></a>{range_fact}; '
            f'maximum {e(number_words(top))} points. Sources: {_cites(score.citations)}</p>'
            + (f'<p class="rationale muted"><em>{e(score.rationale)}</em></p>' if score.rationale else "")
            + '<table class="fixed plain"><thead><tr><th style="width:40%">Item</th><th style="width:8%">Points</th>'
            '<th>When</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>'
            + (f'<p><b>Rules that read the score</b></p><ul>{readers}</ul>' if readers else ""))
    out.append("</section>")
    return "".join(out)


def _html_thresholds(rv: Review) -> str:
    out = ['<section id="thresholds"><h2>Thresholds</h2>'
           '<p class="muted small">For each numeric fact, every threshold a rule or score compares it with, '
           'in increasing order, and what follows from it.</p>']
    for fact, rows in rv.thresholds.items():
        spec = _spec(rv.content, fact)
        unit = f' <span class="muted small">in {e(unit_words(spec.unit))}</span>' if spec and spec.unit else ""
        body = []
        for i, row in enumerate(rows):
            first = i == 0 or rows[i - 1].test != row.test
            span = sum(1 for r in rows if r.test == row.test)
            test = f'<td rowspan="{span}" class="num"><strong>{e(row.test)}</strong></td>' if first else ""
            cond = f'<br><span class="small muted">{e(row.condition)}</span>' if row.condition else ""
            body.append(f'<tr>{test}<td><a href="#{e(row.anchor)}"><code>{e(row.source)}</code></a></td>'
                        f'<td>{e(row.outcome)}{cond}</td></tr>')
        out.append(f'<h3 class="threshold-fact" id="thresholds-{e(fact)}"><code>{e(fact)}</code>{unit}</h3>'
                   '<table class="fixed"><thead><tr><th style="width:26%">Test</th><th style="width:24%">Rule</th>'
                   f'<th>What follows</th></tr></thead><tbody>{"".join(body)}</tbody></table>')
    if rv.uncompared:
        out.append('<p class="small muted">Numeric facts no rule compares with a threshold: '
                   + ", ".join(f"<code>{e(n)}</code>" for n in rv.uncompared) + "</p>")
    out.append("</section>")
    return "".join(out)


def _html_facts(rv: Review) -> str:
    content = rv.content
    rows = []
    for name, spec in content.facts.items():
        units = "<br>".join(e(conversion_text(u, c)) for u, c in spec.units)
        readers = rv.read_by.get(f"{INPUT}:{name}", [])
        rows.append(f'<tr id="fact-{e(name)}"><td><code>{e(name)}</code></td><td>{e(type_text(spec))}</td>'
                    f'<td>{e(unit_text(spec.unit))}</td><td class="small">{units}</td>'
                    f'<td class="num">{e(range_text(spec))}</td><td class="small">{e(", ".join(spec.loinc))}</td>'
                    f'<td>{e(spec.description)}<br><span class="small">read by {_links("reader", readers)}</span>'
                    '</td></tr>')
    derived = []
    for name, spec in content.derived.items():
        readers = rv.read_by.get(f"{DERIVED}:{name}", [])
        derived.append(f'<tr id="derived-{e(name)}"><td><code>{e(name)}</code></td><td>{e(type_text(spec))}</td>'
                       f'<td>{e(unit_text(spec.unit))}</td><td>{e(spec.description)}</td>'
                       f'<td class="small">{_links("reader", rv.derived_by.get(name, []))}</td>'
                       f'<td class="small">{_links("reader", readers)}</td></tr>')
    return ('<section id="facts"><h2>Facts dictionary</h2><h3 id="input-facts">Input facts</h3>'
            '<table class="fixed"><thead><tr><th style="width:19%">Fact</th><th style="width:10%">Type</th>'
            '<th style="width:10%">Canonical unit</th><th style="width:14%">Accepted units</th>'
            '<th style="width:10%">Plausible range</th><th style="width:9%">LOINC</th><th>Description</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table><h3 id="derived-facts">Derived facts</h3>'
            '<table class="fixed"><thead><tr><th style="width:19%">Fact</th><th style="width:12%">Type</th>'
            '<th style="width:9%">Unit</th><th>Description</th><th style="width:17%">Derived by</th>'
            f'<th style="width:17%">Read by</th></tr></thead><tbody>{"".join(derived)}</tbody></table></section>')


def _html_traceability(rv: Review) -> str:
    rows = []
    for i, st in enumerate(rv.content.traceability, 1):
        note = f'<br><span class="small muted">{e(st["note"])}</span>' if st.get("note") else ""
        rows.append(f'<tr id="statement-{i}"><td class="num">{i}</td><td class="small">{e(st["section"])}</td>'
                    f'<td>{e(st["statement"])}{note}</td><td class="num">{_cites(st["references"])}</td>'
                    f'<td class="small">{_links("rule", list(st["rules"]))}</td>'
                    f'<td class="small">{_links("code", list(st["codes"]))}</td></tr>')
    if not rows:
        return '<section id="traceability"><h2>Traceability</h2><p class="muted">No traceability.yaml.</p></section>'
    return ('<section id="traceability"><h2>Traceability</h2>'
            '<table><thead><tr><th>#</th><th>Source section</th><th>Statement</th><th>Refs</th><th>Rules</th>'
            f'<th>Codes</th></tr></thead><tbody>{"".join(rows)}</tbody></table></section>')


def _html_flow(rv: Review) -> str:
    legend = "".join(
        f'<span><i class="swatch" style="background:{bg};border-color:{fg}"></i>{e(label)}</span>'
        for label, bg, fg in (("input fact", "#ffffff", "#8a96a3"), ("derived fact", "#e3efff", "#3b6fb6"),
                              ("do", "#eef8ee", "#3e8e41"), ("do not", "#fde8e8", "#c62828"),
                              ("consider", "#fff7e0", "#b7860b"), ("info", "#f1f1f6", "#6b6b8a")))
    return ('<section id="flow"><h2>How facts flow</h2>'
            '<p class="muted small">Left to right: input facts, derived facts ordered by how many derivations they '
            'depend on, recommendation codes. A line means “is read by”; lines leaving one derived fact share a '
            'colour. Every box links to its entry.</p>'
            f'<p class="legend">{legend}</p><div class="fig">{diagram_svg(rv.content)}</div></section>')


def render_html(content: Content, digest: str) -> str:
    """The guideline as one self-contained HTML document."""
    rv = review(content, digest)
    meta = content.metadata
    body = "".join((_html_header(rv), _html_references(rv), _html_rules(rv), _html_catalogue(rv),
                    _html_scores(rv), _html_thresholds(rv), _html_facts(rv), _html_traceability(rv),
                    _html_flow(rv)))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(meta.title)} — {e(meta.version)} ({e(meta.status)})</title>'
            f'<style>{CSS}</style></head><body><main>{body}</main></body></html>\n')


# --- Markdown -----------------------------------------------------------------------------------

# `<` only where it could open an HTML tag; `_` only where it could open or close emphasis.
_MD_SPECIAL = re.compile(r"[\\`*\[\]|]|<(?=[A-Za-z/!?])|&(?=#?\w+;)|^>|(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")


def md(text: object) -> str:
    """Markdown-escaped text on one line (safe in a table cell); intraword underscores stay readable."""
    flat = " ".join(str(text).split())
    return _MD_SPECIAL.sub(lambda m: "\\" + m.group(0), flat)


def _md_link(kind: str, name: str) -> str:
    return f"[`{name}`](#{kind}-{name})"


def _md_links(kind: str, names: list[str]) -> str:
    out = []
    for name in names:
        if kind == "reader" and name.startswith("score "):
            score_id = name.split(" ", 1)[1]
            out.append(f"score [`{score_id}`](#score-{score_id})")
        else:
            out.append(_md_link("rule" if kind == "reader" else kind, name))
    return ", ".join(out) or "—"


def _md_cites(refs: tuple[int, ...] | list[int]) -> str:
    return " ".join(f"[\\[{r}\\]](#ref-{r})" for r in refs)


def _md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|",
            *("| " + " | ".join(cell or " " for cell in row) + " |" for row in rows), ""]


def _md_anchor(anchor: str) -> str:
    return f'<a id="{e(anchor)}"></a>'


def _md_header(rv: Review) -> list[str]:
    meta = rv.content.metadata
    lines = [_md_anchor("metadata"), f"# {md(meta.title)}", "", f"**Status: {md(meta.status.upper())}**", ""]
    lines += _md_table(["", ""], [
        ["Identifier", f"`{meta.id}`"], ["Version", md(meta.version)], ["Status", f"**{md(meta.status)}**"],
        ["Effective date", md(meta.effective_date or "not set")], ["Owners", md(people(meta.owners)) or "none"],
        ["Reviewers", md(people(meta.reviewers)) or "none yet"], ["Content digest", f"`{rv.digest}`"]])
    if meta.description:
        lines += [f"> {md(meta.description)}", ""]
    lines += ["Contents: " + " · ".join(f"[{title}](#{key})" for key, title in SECTIONS), ""]
    return lines


def _md_references(rv: Review) -> list[str]:
    lines = [_md_anchor("references"), "## References", ""]
    for ref in sorted(rv.content.references.values(), key=lambda r: r.id):
        lines.append(f"{_md_anchor(f'ref-{ref.id}')}**\\[{ref.id}\\]** {md(ref.citation)}  ")
        if ref.note:
            lines.append(f"*{md(ref.note)}*  ")
        lines += [f"Cited by: {_md_links('reader', rv.cited_by.get(ref.id, []))}", ""]
    return lines


def _md_rule(view: RuleView, content: Content) -> list[str]:
    rule = view.rule
    if rule.recommend:
        rec = content.catalogue.get(rule.recommend)
        label = f" **{kind_label(rec.kind)}**" if rec else ""
        title = f" — {md(rec.title)}" if rec else ""
        then = f"then recommend {_md_link('code', rule.recommend)}{label}{title}"
    else:
        assert rule.derive is not None
        then = f"then {_md_link('derived', rule.derive)} = **{md(view.then.split(' = ', 1)[1])}**"
    lines = [f"{_md_anchor(f'rule-{rule.id}')}**`{rule.id}`** · {md(rule.title)}  ",
             f"When {md(view.when)}  ", f"{then}  ", f"Sources: {_md_cites(rule.citations)}"]
    if rule.rationale:
        lines[-1] += "  "
        lines.append(f"*{md(rule.rationale)}*")
    return lines + [""]


def _md_rules(rv: Review) -> list[str]:
    lines = [_md_anchor("rules"), "## Rules", "",
             "A rule applies only when its condition is known to be true; a missing fact is never read as normal "
             "or false.", ""]
    for derive, heading in ((True, "Derived-fact rules"), (False, "Recommendation rules")):
        lines += [f"### {heading}", ""]
        for file, views in _rule_groups(rv, derive):
            topic = rv.topics.get(file, "")
            lines += [f"#### `rules/{file}`" + (f" — {md(topic)}" if topic else ""), ""]
            for view in views:
                lines += _md_rule(view, rv.content)
    return lines


def _md_catalogue(rv: Review) -> list[str]:
    rows = []
    for code, rec in rv.content.catalogue.items():
        kind = kind_label(rec.kind)
        kind = f"**⚠ {kind}**" if rec.kind == "do-not" else kind
        rows.append([f"{_md_anchor(f'code-{code}')}`{code}`", kind, md(rec.urgency),
                     f"**{md(rec.title)}** {md(rec.text)}", _md_links("rule", rv.recommended_by.get(code, []))])
    return [_md_anchor("catalogue"), "## Recommendation catalogue", "",
            *_md_table(["Code", "Kind", "Urgency", "Title and text", "Recommended by"], rows)]


def _md_scores(rv: Review) -> list[str]:
    lines = [_md_anchor("scores"), "## Scores", ""]
    for score in rv.content.scores:
        content = rv.content
        top = sum(max((o.points for o in item.options), default=0) for item in score.items)
        lines += [f"{_md_anchor(f'score-{score.id}')}", f"### {md(score.title)} (`{score.id}`)", "",
                  f"Applies when {md(condition_words(score.applies_when, content))}. Total in "
                  f"{_md_link('derived', score.fact)}"
                  + (f" and {_md_link('derived', score.range_fact)}" if score.range_fact else "")
                  + f"; maximum {number_words(top)} points. Sources: {_md_cites(score.citations)}", ""]
        if score.rationale:
            lines += [f"*{md(score.rationale)}*", ""]
        rows = [[md(item.title) if i == 0 else "", number_words(opt.points), md(condition_words(opt.when, content))]
                for item in score.items for i, opt in enumerate(item.options)]
        lines += _md_table(["Item", "Points", "When"], rows)
        readers = _score_readers(rv, score.fact)
        if readers:
            lines += ["Rules that read the score:", ""]
            lines += [f"- {_md_link('rule', r.id)}: when {md(condition_words(r.when, content))} → "
                      f"{md(_rule_outcome(r, content))}" for r in readers]
            lines.append("")
    return lines


def _md_thresholds(rv: Review) -> list[str]:
    lines = [_md_anchor("thresholds"), "## Thresholds", ""]
    for fact, rows in rv.thresholds.items():
        spec = _spec(rv.content, fact)
        unit = f" (in {md(unit_words(spec.unit))})" if spec and spec.unit else ""
        lines += [f"### `{fact}`{unit}", ""]
        table = []
        for i, row in enumerate(rows):
            test = f"**{md(row.test)}**" if i == 0 or rows[i - 1].test != row.test else "″"
            cond = f" — *{md(row.condition)}*" if row.condition else ""
            table.append([test, f"[`{row.source}`](#{row.anchor})", md(row.outcome) + cond])
        lines += _md_table(["Test", "Rule", "What follows"], table)
    if rv.uncompared:
        lines += ["Numeric facts no rule compares with a threshold: "
                  + ", ".join(f"`{n}`" for n in rv.uncompared), ""]
    return lines


def _md_facts(rv: Review) -> list[str]:
    content = rv.content
    rows = [[f"{_md_anchor(f'fact-{n}')}`{n}`", md(type_text(s)), md(unit_text(s.unit)),
             md("; ".join(conversion_text(u, c) for u, c in s.units)), md(range_text(s)),
             md(", ".join(s.loinc)), md(s.description)] for n, s in content.facts.items()]
    derived = [[f"{_md_anchor(f'derived-{n}')}`{n}`", md(type_text(s)), md(unit_text(s.unit)), md(s.description),
                _md_links("reader", rv.derived_by.get(n, []))] for n, s in content.derived.items()]
    return [_md_anchor("facts"), "## Facts dictionary", "", "### Input facts", "",
            *_md_table(["Fact", "Type", "Canonical unit", "Accepted units", "Plausible range", "LOINC", "Description"],
                       rows),
            "### Derived facts", "",
            *_md_table(["Fact", "Type", "Unit", "Description", "Derived by"], derived)]


def _md_traceability(rv: Review) -> list[str]:
    rows = [[str(i), md(st["section"]), md(st["statement"]) + (f" *({md(st['note'])})*" if st.get("note") else ""),
             _md_cites(st["references"]), _md_links("rule", list(st["rules"])), _md_links("code", list(st["codes"]))]
            for i, st in enumerate(rv.content.traceability, 1)]
    return [_md_anchor("traceability"), "## Traceability", "",
            *_md_table(["#", "Source section", "Statement", "Refs", "Rules", "Codes"], rows)]


def _md_flow(rv: Review) -> list[str]:
    graph = build_graph(rv.content)
    lines = [_md_anchor("flow"), "## How facts flow", "",
             "Each derived fact and recommendation code with the facts it reads (the HTML version draws this).", ""]
    columns = sorted({n.column for n in graph.nodes.values() if n.kind != INPUT})
    for column in columns:
        nodes = [n for n in graph.nodes.values() if n.column == column and n.kind != INPUT]
        if not nodes:
            continue
        heading = "Recommendations" if nodes[0].kind == CODE else f"Derived facts, depth {column}"
        lines += [f"**{heading}**", ""]
        for node in nodes:
            reads = ", ".join(f"`{graph.nodes[s].name}`" + (" (input)" if graph.nodes[s].kind == INPUT
                                                           and graph.nodes[s].name in rv.content.derived else "")
                              for s in graph.sources(node.key)) or "—"
            lines.append(f"- `{node.name}` ← {reads}")
        lines.append("")
    if graph.unused:
        lines += ["Input facts no rule reads: " + ", ".join(f"`{n}`" for n in graph.unused), ""]
    return lines


def render_markdown(content: Content, digest: str) -> str:
    """The guideline as one Markdown document with the same sections as the HTML."""
    rv = review(content, digest)
    lines = [*_md_header(rv), *_md_references(rv), *_md_rules(rv), *_md_catalogue(rv), *_md_scores(rv),
             *_md_thresholds(rv), *_md_facts(rv), *_md_traceability(rv), *_md_flow(rv)]
    return "\n".join(lines).rstrip() + "\n"


# --- entry point --------------------------------------------------------------------------------

def render(path: Path | str | None = None, fmt: str = "html") -> str:
    """Render a guideline folder (None = bundled). Raises GuidelineInvalidError with every problem."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    analysis = analyse(path if path is not None else BUNDLED_GUIDELINE)
    if analysis.problems or analysis.content is None:
        raise GuidelineInvalidError(analysis.problems)
    content, digest = analysis.content, analysis.digest
    return render_html(content, digest) if fmt == "html" else render_markdown(content, digest)

