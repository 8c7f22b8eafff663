"""The review document as one self-contained HTML page: inline CSS, an inline SVG diagram, no scripts,
no external resources; every link is an in-page anchor."""

from __future__ import annotations

import html

from engine.model.content import Content, Recommendation
from engine.model.vocabulary import kind_label
from engine.products.render.css import CSS
from engine.products.render.diagram import diagram_svg
from engine.products.render.expected import expected_html
from engine.products.render.graph import DERIVED, INPUT
from engine.products.render.review import (
    SECTIONS,
    Review,
    RuleView,
    population_view,
    review,
    rule_groups,
    score_readers,
)
from engine.products.render.texts import (
    conversion_text,
    described,
    people,
    range_text,
    rule_outcome,
    slug,
    type_text,
    unit_text,
)
from engine.products.words import condition_words, number_words, unit_words


def e(text: object) -> str:
    return html.escape(str(text), quote=True)



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


def _html_population(rv: Review) -> str:
    """Whom the guideline is for: outside it, a patient gets no recommendation (contract section 7)."""
    description, when, rationale, refs = population_view(rv.content)
    why = f'<p><em>Why:</em> {e(rationale)} {_cites(refs)}</p>' if rationale else ""
    rule = ('<p class="small">A patient known to be outside this population gets no recommendation; when it is '
            'not known, recommendations are given and the facts that decide it are listed as missing.</p>'
            if rv.content.population is not None else "")
    return (f'<section id="population"><h2>Whom this guideline is for</h2>'
            f'<p><strong>{e(description)}</strong>: {e(when)}.</p>{why}{rule}</section>')


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


def _htmlrule_groups(rv: Review, derive: bool) -> str:
    out = []
    for file, views in rule_groups(rv, derive):
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
            f'{_htmlrule_groups(rv, True)}'
            '<h3 id="recommendation-rules">Recommendation rules</h3>'
            f'{_htmlrule_groups(rv, False)}</section>')


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
                            f'<td>{e(condition_words(opt.when))}</td></tr>')
        top = sum(max((o.points for o in item.options), default=0) for item in score.items)
        readers = "".join(f'<li>{_link("rule", r.id)}: when {e(condition_words(r.when))} → '
                          f'{e(rule_outcome(r, content))}</li>' for r in score_readers(rv, score.fact))
        range_fact = (f' and <a href="#derived-{e(score.range_fact)}"><code>{e(score.range_fact)}</code></a> '
                      f'(lowest and highest possible total when items are missing)') if score.range_fact else ""
        out.append(
            f'<h3 id="score-{e(score.id)}">{e(score.title)} <code class="small muted">{e(score.id)}</code></h3>'
            f'<p><b>Applies when</b> {e(condition_words(score.applies_when))}. '
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
    out = [('<section id="thresholds"><h2>Thresholds</h2>'
           '<p class="muted small">For each numeric fact, every threshold a rule or score compares it with, '
           'in increasing order, and what follows from it.</p>')]
    for fact, rows in rv.thresholds.items():
        unit = f' <span class="muted small">in {e(unit_words(rows[0].unit))}</span>' if rows[0].unit else ""
        body = []
        for i, row in enumerate(rows):
            first = i == 0 or rows[i - 1].test != row.test
            span = sum(1 for r in rows if r.test == row.test)
            test = f'<td rowspan="{span}" class="num"><strong>{e(row.test)}</strong></td>' if first else ""
            cond = f'<br><span class="small muted">{e(row.condition)}</span>' if row.condition else ""
            written = f'<span class="small muted">{e(row.written)}</span>' if row.written else ""
            body.append(f'<tr>{test}<td><a href="#{e(row.anchor)}"><code>{e(row.source)}</code></a>{written}</td>'
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
                       f'<td>{e(unit_text(spec.unit))}</td><td>{e(described(spec))}</td>'
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
    body = "".join((_html_header(rv), _html_population(rv), _html_references(rv), _html_rules(rv), _html_catalogue(rv),
                    expected_html(content, e), _html_scores(rv), _html_thresholds(rv), _html_facts(rv), _html_traceability(rv),
                    _html_flow(rv)))
    return ('<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<title>{e(meta.title)} — {e(meta.version)} ({e(meta.status)})</title>'
            f'<style>{CSS}</style></head><body><main>{body}</main></body></html>\n')
