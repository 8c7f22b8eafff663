"""The review document as one Markdown file with the same sections as the HTML."""

from __future__ import annotations

import html
import re

from engine.model.content import Content
from engine.model.vocabulary import kind_label
from engine.products.render.expected import expected_markdown
from engine.products.render.graph import CODE, INPUT, build_graph
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
    type_text,
    unit_text,
)
from engine.products.words import condition_words, number_words, unit_words

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
    return f'<a id="{html.escape(anchor, quote=True)}"></a>'


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


def _md_population(rv: Review) -> list[str]:
    """Whom the guideline is for: outside it, a patient gets no recommendation (contract section 7)."""
    description, when, rationale, refs = population_view(rv.content)
    lines = [_md_anchor("population"), "## Whom this guideline is for", "", f"**{md(description)}**: {md(when)}.", ""]
    if rationale:
        lines += [f"*Why:* {md(rationale)}" + (f" {_md_cites(refs)}" if refs else ""), ""]
    if rv.content.population is not None:
        lines += ["A patient known to be outside this population gets no recommendation; when it is not known, "
                  "recommendations are given and the facts that decide it are listed as missing.", ""]
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
             ("A rule applies only when its condition is known to be true; a missing fact is never read as normal "
             "or false."), ""]
    for derive, heading in ((True, "Derived-fact rules"), (False, "Recommendation rules")):
        lines += [f"### {heading}", ""]
        for file, views in rule_groups(rv, derive):
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
                  f"Applies when {md(condition_words(score.applies_when))}. Total in "
                  f"{_md_link('derived', score.fact)}"
                  + (f" and {_md_link('derived', score.range_fact)}" if score.range_fact else "")
                  + f"; maximum {number_words(top)} points. Sources: {_md_cites(score.citations)}", ""]
        if score.rationale:
            lines += [f"*{md(score.rationale)}*", ""]
        rows = [[md(item.title) if i == 0 else "", number_words(opt.points), md(condition_words(opt.when))]
                for item in score.items for i, opt in enumerate(item.options)]
        lines += _md_table(["Item", "Points", "When"], rows)
        readers = score_readers(rv, score.fact)
        if readers:
            lines += ["Rules that read the score:", ""]
            lines += [f"- {_md_link('rule', r.id)}: when {md(condition_words(r.when))} → "
                      f"{md(rule_outcome(r, content))}" for r in readers]
            lines.append("")
    return lines


def _md_thresholds(rv: Review) -> list[str]:
    lines = [_md_anchor("thresholds"), "## Thresholds", ""]
    for fact, rows in rv.thresholds.items():
        unit = f" (in {md(unit_words(rows[0].unit))})" if rows[0].unit else ""
        lines += [f"### `{fact}`{unit}", ""]
        table = []
        for i, row in enumerate(rows):
            test = f"**{md(row.test)}**" if i == 0 or rows[i - 1].test != row.test else "″"
            cond = f" — *{md(row.condition)}*" if row.condition else ""
            written = f" {md(row.written.strip())}" if row.written else ""
            table.append([test, f"[`{row.source}`](#{row.anchor}){written}", md(row.outcome) + cond])
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
    derived = [[f"{_md_anchor(f'derived-{n}')}`{n}`", md(type_text(s)), md(unit_text(s.unit)), md(described(s)),
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
    lines = [*_md_header(rv), *_md_population(rv), *_md_references(rv), *_md_rules(rv), *_md_catalogue(rv),
             *expected_markdown(content, md), *_md_scores(rv),
             *_md_thresholds(rv), *_md_facts(rv), *_md_traceability(rv), *_md_flow(rv)]
    return "\n".join(lines).rstrip() + "\n"
