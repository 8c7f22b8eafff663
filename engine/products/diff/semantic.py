"""The semantic diff: two resolved contents compared element by element, each change with its bump level.

Rules by id, facts by name, codes by code, scores by id, references by number, traceability by
statement, so YAML layout, comments, key order and rule order never show as a change.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import fields
from typing import Any

from engine.model.content import (
    Content,
    Conversion,
    FactSpec,
    Formula,
    Metadata,
    Operand,
    Rule,
    Score,
    ValueMeaning,
)
from engine.products.diff.conditions import Pair, ckey, vkey
from engine.products.diff.results import MAJOR, MINOR, NONE, PATCH, Change
from engine.products.words import condition_words, number_words, value_words
from engine.run.explain import show_unit


def _text(area: str, key: str, field: str, old: str | None, new: str | None, level: str = PATCH) -> Iterator[Change]:
    """A text field: short values are quoted in the sentence, long ones shown beside it."""
    if (old or "") == (new or ""):
        return
    if len(old or "") <= 70 and len(new or "") <= 70:
        yield Change(area, key, "changed", field, f"{field} “{old or ''}” → “{new or ''}”", level, old, new)
    else:
        yield Change(area, key, "changed", field, f"{field} reworded", level, old, new, long_text=True)


def _set_change(area: str, key: str, field: str, old: Iterable[Any], new: Iterable[Any],
                level_added: str, level_removed: str) -> Iterator[Change]:
    o, n = set(old), set(new)
    added, removed = sorted(n - o, key=str), sorted(o - n, key=str)
    if added:
        yield Change(area, key, "changed", field, f"{field} added: {', '.join(map(str, added))}", level_added,
                     None, ", ".join(map(str, added)))
    if removed:
        yield Change(area, key, "changed", field, f"{field} removed: {', '.join(map(str, removed))}",
                     level_removed, ", ".join(map(str, removed)), None)


def _keyed(old: Mapping[Any, Any], new: Mapping[Any, Any]) -> tuple[list[Any], list[Any], list[Any]]:
    """(removed, added, common) keys, each sorted."""
    return (sorted(set(old) - set(new), key=str), sorted(set(new) - set(old), key=str),
            sorted(set(old) & set(new), key=str))


# --- semantic diff: per area ------------------------------------------------------------------

def _person(p: Mapping[str, str]) -> str:
    return f"{p.get('name', '?')} ({p['role']})" if p.get("role") else str(p.get("name", dict(p)))


def _metadata(old: Metadata, new: Metadata) -> Iterator[Change]:
    key = new.id
    if old.id != new.id:  # results are traced by id: another id is another guideline
        yield Change("guideline", key, "changed", "id", f"id {old.id} → {new.id}", MAJOR, old.id, new.id)
    if old.version != new.version:  # reported; the version check judges it
        yield Change("guideline", key, "changed", "version", f"version {old.version} → {new.version}", NONE,
                     old.version, new.version)
    for name in ("title", "status", "effective_date", "description"):
        yield from _text("guideline", key, name.replace("_", " "), getattr(old, name), getattr(new, name))
    for name in ("owners", "reviewers"):
        yield from _set_change("guideline", key, name, map(_person, getattr(old, name)),
                               map(_person, getattr(new, name)), PATCH, PATCH)


def _population(old: Content, new: Content) -> Iterator[Change]:
    """Whom the guideline is for: narrowing it withdraws every recommendation from some patients."""
    o, n, key = old.population, new.population, new.metadata.id
    if o is None and n is None:
        return
    if o is None or n is None:
        level, what = (MAJOR, "added") if o is None else (MINOR, "removed")  # removed: for everyone now
        shown = n or o
        assert shown is not None
        yield Change("population", key, what, "", f"{what}: {shown.description} ({condition_words(shown.when)})", level)
        return
    if ckey(o.when, meaning=True) != ckey(n.when, meaning=True):
        yield Change("population", key, "changed", "when", f"condition {condition_words(o.when)} → "
                     f"{condition_words(n.when)}", MAJOR, condition_words(o.when), condition_words(n.when))
    yield from _text("population", key, "description", o.description, n.description)
    yield from _text("population", key, "rationale", o.rationale, n.rationale)
    yield from _set_change("population", key, "citations", o.citations, n.citations, PATCH, PATCH)


def _references(old: Content, new: Content) -> Iterator[Change]:
    removed, added, common = _keyed(old.references, new.references)
    for ref in removed:
        yield Change("reference", f"[{ref}]", "removed", "", f"removed: {old.references[ref].citation}", PATCH)
    for ref in added:
        yield Change("reference", f"[{ref}]", "added", "", f"added: {new.references[ref].citation}", PATCH)
    for ref in common:
        o, n = old.references[ref], new.references[ref]
        yield from _text("reference", f"[{ref}]", "citation", o.citation, n.citation)
        yield from _text("reference", f"[{ref}]", "note", o.note, n.note)


def _conversion(c: Conversion) -> str:
    return f"× {c.multiply}" if c.add == 0 else f"(value + {c.add}) × {c.multiply}"


def _unit(unit: str | None) -> str:
    return show_unit(unit).strip() or "no unit"


def _range(spec: FactSpec) -> str:
    if spec.range is None:
        return "none"
    return f"{number_words(spec.range[0])}–{number_words(spec.range[1])}{show_unit(spec.unit)}"


def _short(text: str) -> str:
    return text if len(text) <= 90 else text[:87] + "…"


def _plain(value: Any) -> str:
    if value is None or value == ():
        return "none"
    return ", ".join(map(str, value)) if isinstance(value, (tuple, list)) else str(value)


_FACT_FIELDS_SHOWN = {"name", "type", "derived", "unit", "units", "range", "values", "loinc", "undetermined_label",
                      "description", "label", "ask", "meaning"}


def _meaning(m: ValueMeaning | None) -> str | None:
    return None if m is None else f"{m.text} [{', '.join(map(str, m.citations))}]"


def _fact(area: str, o: FactSpec, n: FactSpec) -> Iterator[Change]:
    name = n.name
    if o.type != n.type:
        yield Change(area, name, "changed", "type", f"type {o.type} → {n.type}", MAJOR, o.type, n.type)
    if o.unit != n.unit:
        yield Change(area, name, "changed", "unit", f"canonical unit {_unit(o.unit)} → {_unit(n.unit)}", MAJOR,
                     o.unit, n.unit)
    ou, nu = dict(o.units), dict(n.units)
    removed, added, common = _keyed(ou, nu)
    for u in removed:
        yield Change(area, name, "changed", "units", f"accepted unit {u} removed", MAJOR, u, None)
    for u in added:
        yield Change(area, name, "changed", "units", f"accepted unit {u} added ({_conversion(nu[u])})", MINOR,
                     None, u)
    for u in common:
        if ou[u] != nu[u]:
            yield Change(area, name, "changed", "units", f"conversion of {u}: {_conversion(ou[u])} → "
                         f"{_conversion(nu[u])}", MINOR, _conversion(ou[u]), _conversion(nu[u]))
    if o.range != n.range:
        old_range, new_range = _range(o), _range(n)
        yield Change(area, name, "changed", "range", f"plausible range {old_range} → {new_range}", MINOR,
                     old_range, new_range)
    # A removed value is input that used to be accepted, or an output that can no longer occur.
    yield from _set_change(area, name, "values", o.values, n.values, MINOR, MAJOR)
    yield from _set_change(area, name, "LOINC codes", o.loinc, n.loinc, PATCH, PATCH)
    yield from _text(area, name, "undetermined label", o.undetermined_label, n.undetermined_label, MINOR)
    yield from _text(area, name, "description", o.description, n.description)
    yield from _text(area, name, "label", o.label, n.label)
    yield from _text(area, name, "ask", o.ask, n.ask)
    # What a value means is shown to clinicians (risk figures): a change is a change of advice text.
    om, nm = {m.value: m for m in o.meaning}, {m.value: m for m in n.meaning}
    for value in sorted(set(om) | set(nm)):
        old_m, new_m = om.get(value), nm.get(value)
        yield from _text(area, name, f"meaning of {value}", _meaning(old_m), _meaning(new_m), MINOR)
    # Fields added to the dictionary later (e.g. FHIR mappings) still show, as a change of input mapping.
    for f in fields(FactSpec):
        if f.compare and f.name not in _FACT_FIELDS_SHOWN and getattr(o, f.name) != getattr(n, f.name):
            ov, nv = _plain(getattr(o, f.name)), _plain(getattr(n, f.name))
            yield Change(area, name, "changed", f.name, f"{f.name.replace('_', ' ')}: {ov} → {nv}", MINOR, ov, nv)


def _facts(old: Content, new: Content) -> Iterator[Change]:
    for area, o_map, n_map in (("input fact", old.facts, new.facts), ("derived fact", old.derived, new.derived)):
        removed, added, common = _keyed(o_map, n_map)
        for name in removed:
            yield Change(area, name, "removed", "", f"removed ({o_map[name].type})", MAJOR)
        for name in added:
            yield Change(area, name, "added", "", f"added ({n_map[name].type}{show_unit(n_map[name].unit)})", MINOR)
        for name in common:
            yield from _fact(area, o_map[name], n_map[name])


def _catalogue(old: Content, new: Content) -> Iterator[Change]:
    removed, added, common = _keyed(old.catalogue, new.catalogue)
    for code in removed:
        yield Change("catalogue", code, "removed", "", f"removed: {old.catalogue[code].title}", MAJOR)
    for code in added:
        rec = new.catalogue[code]
        yield Change("catalogue", code, "added", "", f"added ({rec.kind} · {rec.urgency}): {rec.title}", MINOR)
    for code in common:
        o, n = old.catalogue[code], new.catalogue[code]
        for name in ("kind", "urgency"):
            if getattr(o, name) != getattr(n, name):
                yield Change("catalogue", code, "changed", name, f"{name} {getattr(o, name)} → {getattr(n, name)}",
                             MINOR, getattr(o, name), getattr(n, name))
        yield from _text("catalogue", code, "title", o.title, n.title)
        yield from _text("catalogue", code, "text", o.text, n.text)


def _output(rule: Rule) -> Any:
    """What a rule produces that others may rely on: a code, or a derived fact's value.

    A number or formula produces "a value of the fact" (changing the formula changes logic, it
    removes nothing); a literal such as `severe` or `true` is an output of its own.
    """
    if rule.recommend:
        return ("recommend", rule.recommend)
    if isinstance(rule.value, (Operand, Formula)) or (isinstance(rule.value, (int, float))
                                                      and not isinstance(rule.value, bool)):
        return ("derive", rule.derive)
    return ("derive", rule.derive, vkey(rule.value))


def _then_key(rule: Rule) -> Any:
    value = rule.value if isinstance(rule.value, (Operand, Formula)) else vkey(rule.value)
    return (rule.recommend, rule.derive, value)


def _then(rule: Rule) -> str:
    return f"recommends {rule.recommend}" if rule.recommend else f"derives {rule.derive} = {value_words(rule.value)}"


def _rules(pair: Pair) -> Iterator[Change]:
    old = {r.id: r for r in pair.old.rules}
    new = {r.id: r for r in pair.new.rules}
    new_outputs = {_output(r) for r in pair.new.rules}
    removed, added, common = _keyed(old, new)
    for rid in removed:
        r = old[rid]
        # Removing a rule is MAJOR only when what it produced is produced by no rule any more.
        level = MINOR if _output(r) in new_outputs else MAJOR
        yield Change("rule", rid, "removed", "", f"removed: {_then(r)} when {condition_words(r.when)}", level)
    for rid in added:
        r = new[rid]
        yield Change("rule", rid, "added", "", f"added: {_then(r)} when {condition_words(r.when)}", MINOR)
    for rid in common:
        o, n = old[rid], new[rid]
        for sentence, level, ow, nw in pair.condition_changes(o.when, n.when):
            yield Change("rule", rid, "changed", "when", sentence, level, ow, nw, long_text=sentence.startswith("cond"))
        if _then_key(o) != _then_key(n):
            level = MINOR if _output(o) in new_outputs else MAJOR
            yield Change("rule", rid, "changed", "then", f"{_then(o)} → {_then(n)}", level, _then(o), _then(n))
        yield from _set_change("rule", rid, "citations", (f"[{c}]" for c in o.citations),
                               (f"[{c}]" for c in n.citations), PATCH, PATCH)
        yield from _text("rule", rid, "title", o.title, n.title)
        yield from _text("rule", rid, "rationale", o.rationale, n.rationale)


def _score(pair: Pair, o: Score, n: Score) -> Iterator[Change]:
    sid = n.id
    for name in ("fact", "range_fact"):
        if getattr(o, name) != getattr(n, name):  # the fact others read the score from
            yield Change("score", sid, "changed", name, f"{name} {getattr(o, name)} → {getattr(n, name)}", MAJOR,
                         getattr(o, name), getattr(n, name))
    for sentence, level, ow, nw in pair.condition_changes(o.applies_when, n.applies_when):
        yield Change("score", sid, "changed", "applies_when", f"applies when: {sentence}", level, ow, nw)
    o_items, n_items = {i.id: i for i in o.items}, {i.id: i for i in n.items}
    removed, added, common = _keyed(o_items, n_items)
    for iid in removed:
        yield Change("score", sid, "changed", "items", f"item {iid} removed ({o_items[iid].title})", MINOR)
    for iid in added:
        yield Change("score", sid, "changed", "items", f"item {iid} added ({n_items[iid].title})", MINOR)
    for iid in common:
        yield from _score_item(pair, sid, iid, o_items[iid].options, n_items[iid].options)
        yield from _text("score", sid, f"item {iid} title", o_items[iid].title, n_items[iid].title)
    yield from _set_change("score", sid, "citations", (f"[{c}]" for c in o.citations),
                           (f"[{c}]" for c in n.citations), PATCH, PATCH)
    yield from _text("score", sid, "title", o.title, n.title)
    yield from _text("score", sid, "rationale", o.rationale, n.rationale)


def _score_item(pair: Pair, sid: str, iid: str, old: Iterable[Any], new: Iterable[Any]) -> Iterator[Change]:
    """Options are matched by condition; unmatched ones pairwise, so a moved threshold reads as one."""
    o_opts = {repr(ckey(opt.when)): opt for opt in old}
    n_opts = {repr(ckey(opt.when)): opt for opt in new}
    for k in sorted(set(o_opts) & set(n_opts)):
        if float(o_opts[k].points) != float(n_opts[k].points):
            yield Change("score", sid, "changed", "points", f"item {iid}: {condition_words(n_opts[k].when)} scores "
                         f"{o_opts[k].points} → {n_opts[k].points} points", MINOR,
                         str(o_opts[k].points), str(n_opts[k].points))
    gone = [o_opts[k] for k in o_opts if k not in n_opts]
    came = [n_opts[k] for k in n_opts if k not in o_opts]
    if len(gone) == len(came):
        for a, b in zip(gone, came):
            for sentence, level, ow, nw in pair.condition_changes(a.when, b.when):
                yield Change("score", sid, "changed", "points", f"item {iid} ({b.points} points): {sentence}",
                             level, ow, nw)
            if float(a.points) != float(b.points):
                yield Change("score", sid, "changed", "points", f"item {iid}: {a.points} → {b.points} points",
                             MINOR, str(a.points), str(b.points))
        return
    for a in gone:
        yield Change("score", sid, "changed", "points", f"item {iid}: option removed: {a.points} points when "
                     f"{condition_words(a.when)}", MINOR)
    for b in came:
        yield Change("score", sid, "changed", "points", f"item {iid}: option added: {b.points} points when "
                     f"{condition_words(b.when)}", MINOR)


def _scores(pair: Pair) -> Iterator[Change]:
    old, new = {s.id: s for s in pair.old.scores}, {s.id: s for s in pair.new.scores}
    removed, added, common = _keyed(old, new)
    for sid in removed:
        yield Change("score", sid, "removed", "", f"removed: {old[sid].title}", MAJOR)
    for sid in added:
        yield Change("score", sid, "added", "", f"added: {new[sid].title}", MINOR)
    for sid in common:
        yield from _score(pair, old[sid], new[sid])


def _traceability(old: Content, new: Content) -> Iterator[Change]:
    def index(content: Content) -> dict[str, dict[str, Any]]:
        return {f"{st.get('section', '')}: {st.get('statement', '')}": st for st in content.traceability}

    o, n = index(old), index(new)
    removed, added, common = _keyed(o, n)
    for k in removed:
        yield Change("traceability", "statement", "removed", "", f"removed: {_short(k)}", PATCH)
    for k in added:
        yield Change("traceability", "statement", "added", "", f"added: {_short(k)}", PATCH)
    for k in common:
        for name in ("rules", "codes", "references"):
            yield from _set_change("traceability", _short(k), name, o[k].get(name, ()), n[k].get(name, ()),
                                   PATCH, PATCH)


def semantic_diff(old: Content, new: Content) -> tuple[Change, ...]:
    """Every difference in meaning between two contents, area by area, each with its bump level."""
    pair = Pair(old, new)
    return (*_metadata(old.metadata, new.metadata), *_population(old, new), *_references(old, new), *_facts(old, new),
            *_catalogue(old, new), *_rules(pair), *_scores(pair), *_traceability(old, new))
