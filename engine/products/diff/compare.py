"""`guideline diff`: what changed between two versions of a guideline, in meaning and in behaviour.

Three stages on two loaded guidelines:
- semantic: the typed content compared element by element (rules by id, facts by name, ...), so
  YAML layout, comments, key order and rule order never show as a change;
- behaviour: both versions evaluate the same patients (their clinical cases, plus patients at
  and next to every numeric threshold of either version) and every difference is listed;
- version check: the bump the changes require (semantic versioning) against the bump made.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.errors import EngineError, InputFactsError, Problem
from engine.guideline import Guideline
from engine.loader.folder import display_name
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Conversion,
    FactSpec,
    Formula,
    Metadata,
    NoneKnown,
    Not,
    Operand,
    Rule,
    Score,
    atoms,
)
from engine.model.units import convert
from engine.model.vocabulary import COMPARISONS
from engine.pipeline import analyse
from engine.products.cases import Case, load_cases
from engine.products.words import condition_words, number_words, value_words
from engine.run.explain import show_unit

# Bump levels, weakest first. Policy (docs/auditing-diff.md): MAJOR when something others rely
# on disappears or changes meaning; MINOR for any other change of logic or behaviour; PATCH for
# wording, citations and metadata.
LEVELS = ("none", "patch", "minor", "major")
NONE, PATCH, MINOR, MAJOR = LEVELS

# Clinical cases used as the base of boundary patients, per probed fact. All of them would make
# ~10,000 evaluations for the bundled guideline; 20, spread over the case files, keep the whole
# behavioural diff near 2 s while still varying the rest of the patient.
BASES_PER_FACT = 20
_MAX_DECIMALS = 6


def _rank(level: str) -> int:
    return LEVELS.index(level)


# --- results ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Change:
    """One semantic difference, and the version bump it requires on its own."""

    area: str        # guideline | reference | input fact | derived fact | catalogue | rule | score | traceability
    key: str         # the element's id or name
    what: str        # added | removed | changed
    field: str       # the changed field ('' for added / removed)
    summary: str     # the sentence an auditor reads
    level: str
    old: str | None = None
    new: str | None = None
    long_text: bool = False  # old / new are full texts that the summary only mentions

    @property
    def text(self) -> str:
        return f"{self.area} {self.key}: {self.summary}"

    def to_dict(self) -> dict[str, Any]:
        return {"area": self.area, "key": self.key, "change": self.what, "field": self.field,
                "summary": self.summary, "text": self.text, "level": self.level, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class Side:
    id: str
    version: str
    digest: str
    label: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "version": self.version, "digest": self.digest, "source": self.label}


@dataclass(frozen=True)
class DerivedChange:
    fact: str
    old: Any
    new: Any


@dataclass(frozen=True)
class PatientChange:
    """A patient whose recommendations or derived facts differ between the versions."""

    name: str
    facts: Mapping[str, Any]
    codes_added: tuple[str, ...]
    codes_removed: tuple[str, ...]
    derived: tuple[DerivedChange, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"patient": self.name, "facts": dict(self.facts), "codes_added": list(self.codes_added),
                "codes_removed": list(self.codes_removed),
                "derived": [{"fact": d.fact, "old": d.old, "new": d.new} for d in self.derived]}


@dataclass(frozen=True)
class Behaviour:
    patients_compared: int
    from_cases: int
    from_boundaries: int
    skipped: int                                   # invalid input for one of the versions
    changed: tuple[PatientChange, ...]
    seconds: float
    thresholds: tuple[tuple[str, tuple[str, ...]], ...]  # fact -> boundary values probed
    unprobed: tuple[str, ...]                      # derived-only facts with thresholds (reached via cases)

    def impact(self) -> list[tuple[str, str, int]]:
        """(code or fact, 'added' / 'removed' / 'changed', number of patients), most frequent first."""
        counts: dict[tuple[str, str], int] = {}
        for p in self.changed:
            for key in [(c, "added") for c in p.codes_added] + [(c, "removed") for c in p.codes_removed] \
                    + [(d.fact, "changed") for d in p.derived]:
                counts[key] = counts.get(key, 0) + 1
        return sorted(((k, w, n) for (k, w), n in counts.items()), key=lambda t: (-t[2], t[0], t[1]))

    def to_dict(self) -> dict[str, Any]:
        return {"patients_compared": self.patients_compared, "from_cases": self.from_cases,
                "from_boundaries": self.from_boundaries, "skipped": self.skipped,
                "seconds": round(self.seconds, 3),
                "thresholds": {fact: list(values) for fact, values in self.thresholds},
                "unprobed_derived_facts": list(self.unprobed),
                "impact": [{"item": k, "change": w, "patients": n} for k, w, n in self.impact()],
                "changed": [p.to_dict() for p in self.changed]}


@dataclass(frozen=True)
class VersionCheck:
    required: str
    actual: str
    ok: bool
    messages: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"required": self.required, "actual": self.actual, "ok": self.ok, "messages": list(self.messages)}


@dataclass(frozen=True)
class Diff:
    old: Side
    new: Side
    semantic: tuple[Change, ...]
    behaviour: Behaviour
    version_check: VersionCheck

    def to_dict(self) -> dict[str, Any]:
        return {"old": self.old.to_dict(), "new": self.new.to_dict(),
                "semantic": [c.to_dict() for c in self.semantic], "behaviour": self.behaviour.to_dict(),
                "version_check": self.version_check.to_dict()}


class SideInvalidError(EngineError):
    """One of the two guideline versions does not load; its problems name the version's label."""

    exit_code = 2

    def __init__(self, label: str, problems: Iterable[Problem]):
        self.label = label
        self.problems = sorted(set(problems))
        super().__init__(f"{label}: the guideline is invalid")

    def report(self) -> list[str]:
        return [*map(str, self.problems), f"error: {self}"]


# --- semantic diff: helpers ---------------------------------------------------------------------

def _vkey(v: Any) -> Any:
    """A comparable key where 1 and 1.0 are equal but true and 1 are not, and `in` lists are sets."""
    if isinstance(v, bool):
        return ("b", v)
    if isinstance(v, (int, float)):
        return ("n", float(v))
    if isinstance(v, (list, tuple)):
        return ("l", tuple(sorted((_vkey(x) for x in v), key=repr)))
    return ("s", repr(v))


def _threshold(a: Atom, content: Content) -> float:
    """A comparison's threshold in the fact's canonical unit."""
    spec = content.facts.get(a.fact) or content.derived.get(a.fact)
    conv = spec.conversion(a.unit) if spec and a.unit else None
    return convert(a.value, conv) if conv else float(a.value)


def _ckey(cond: Condition, content: Content | None = None) -> Any:
    """Canonical form: and/or items unordered. With `content`: thresholds in canonical units (meaning)."""
    if isinstance(cond, Atom):
        if content is not None and cond.op in COMPARISONS:
            return ("atom", cond.fact, cond.op, ("n", _threshold(cond, content)))
        return ("atom", cond.fact, cond.op, _vkey(cond.value), cond.unit or "")
    if isinstance(cond, Not):
        return ("not", _ckey(cond.item, content))
    kind = {All: "all", Any_: "any", NoneKnown: "none_known"}[type(cond)]
    return (kind, tuple(sorted((_ckey(c, content) for c in cond.items), key=repr)))


def _sorted(cond: Condition) -> Condition:
    if isinstance(cond, Not):
        return Not(_sorted(cond.item))
    if isinstance(cond, (All, Any_, NoneKnown)):
        return type(cond)(tuple(sorted((_sorted(c) for c in cond.items), key=lambda c: repr(_ckey(c)))))
    return cond


def _align(old: Condition, new: Condition) -> list[tuple[Atom, Atom]] | None:
    """Pairs of atoms when both conditions have the same shape and test the same facts; else None."""
    if type(old) is not type(new):
        return None
    if isinstance(old, Atom) and isinstance(new, Atom):
        return [(old, new)] if old.fact == new.fact else None
    if isinstance(old, Not) and isinstance(new, Not):
        return _align(old.item, new.item)
    assert isinstance(old, (All, Any_, NoneKnown)) and isinstance(new, (All, Any_, NoneKnown))
    if len(old.items) != len(new.items):
        return None
    pairs: list[tuple[Atom, Atom]] = []
    for o, n in zip(old.items, new.items):
        sub = _align(o, n)
        if sub is None:
            return None
        pairs += sub
    return pairs


_SYMBOL = {"lt": "<", "le": "≤", "gt": ">", "ge": "≥"}


def _unit_of(atom: Atom, content: Content) -> str | None:
    """The unit a threshold is written in: its own, else the fact's canonical unit."""
    spec = content.facts.get(atom.fact) or content.derived.get(atom.fact)
    return atom.unit or (spec.unit if spec else None)


def fact_label(spec: FactSpec | None) -> str:
    """A short name from the description ('Absolute neutrophil count'), '' when none is short enough."""
    if spec is None or not spec.description:
        return ""
    first = re.split(r"[.,;:]", spec.description, maxsplit=1)[0]
    first = re.sub(r"\s*\([^)]*\)", "", first).strip()
    return first if 0 < len(first) <= 60 else ""


class _Pair:
    """The two contents being compared, with the words each one needs."""

    def __init__(self, old: Content, new: Content):
        self.old, self.new = old, new

    def cond(self, cond: Condition, side: str = "new") -> str:
        return condition_words(cond, self.old if side == "old" else self.new)

    def label(self, fact: str) -> str:
        # The input's description names a fact best ("Absolute neutrophil count").
        for content in (self.new, self.old):
            spec = content.facts.get(fact) or content.derived.get(fact)
            if spec is not None:
                return fact_label(spec)
        return ""

    def atom_change(self, o: Atom, n: Atom) -> tuple[str, str]:
        """(sentence, level) for one changed test, e.g. 'anc threshold < 0.5 → < 1.0 ×10⁹/L'."""
        old_words, new_words = self.cond(o, "old"), self.cond(n)
        if _ckey(o, self.old) == _ckey(n, self.new):
            return f"{old_words} rewritten as {new_words} (same test in canonical units)", PATCH
        label = self.label(n.fact)
        name = f"{n.fact} ({label})" if label else n.fact
        unit_o, unit_n = _unit_of(o, self.old), _unit_of(n, self.new)
        if o.op == n.op and o.op in COMPARISONS and unit_o == unit_n:
            sym = _SYMBOL[o.op]
            return (f"{name} threshold {sym} {number_words(o.value)} → {sym} {number_words(n.value)}"
                    f"{show_unit(unit_n)}"), MINOR
        return f"{name}: {old_words} → {new_words}", MINOR

    def condition_changes(self, o: Condition, n: Condition) -> list[tuple[str, str, str, str]]:
        """(sentence, level, old words, new words) for each change between two conditions."""
        if _ckey(o) == _ckey(n):
            return []
        pairs = _align(o, n)
        if pairs is None:
            pairs = _align(_sorted(o), _sorted(n))
        if pairs is not None:
            found = [(*self.atom_change(a, b), self.cond(a, "old"), self.cond(b))
                     for a, b in pairs if _ckey(a) != _ckey(b)]
            if found:
                return found
        same = _ckey(o, self.old) == _ckey(n, self.new)
        return [("condition rewritten, same meaning" if same else "condition changed", PATCH if same else MINOR,
                 self.cond(o, "old"), self.cond(n))]


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
                      "description"}


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
    return ("derive", rule.derive, _vkey(rule.value))


def _then_key(rule: Rule) -> Any:
    value = rule.value if isinstance(rule.value, (Operand, Formula)) else _vkey(rule.value)
    return (rule.recommend, rule.derive, value)


def _then(rule: Rule) -> str:
    return f"recommends {rule.recommend}" if rule.recommend else f"derives {rule.derive} = {value_words(rule.value)}"


def _rules(pair: _Pair) -> Iterator[Change]:
    old = {r.id: r for r in pair.old.rules}
    new = {r.id: r for r in pair.new.rules}
    new_outputs = {_output(r) for r in pair.new.rules}
    removed, added, common = _keyed(old, new)
    for rid in removed:
        r = old[rid]
        # Removing a rule is MAJOR only when what it produced is produced by no rule any more.
        level = MINOR if _output(r) in new_outputs else MAJOR
        yield Change("rule", rid, "removed", "", f"removed: {_then(r)} when {pair.cond(r.when, 'old')}", level)
    for rid in added:
        r = new[rid]
        yield Change("rule", rid, "added", "", f"added: {_then(r)} when {pair.cond(r.when)}", MINOR)
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


def _score(pair: _Pair, o: Score, n: Score) -> Iterator[Change]:
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


def _score_item(pair: _Pair, sid: str, iid: str, old: Iterable[Any], new: Iterable[Any]) -> Iterator[Change]:
    """Options are matched by condition; unmatched ones pairwise, so a moved threshold reads as one."""
    o_opts = {repr(_ckey(opt.when)): opt for opt in old}
    n_opts = {repr(_ckey(opt.when)): opt for opt in new}
    for k in sorted(set(o_opts) & set(n_opts)):
        if float(o_opts[k].points) != float(n_opts[k].points):
            yield Change("score", sid, "changed", "points", f"item {iid}: {pair.cond(n_opts[k].when)} scores "
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
                     f"{pair.cond(a.when, 'old')}", MINOR)
    for b in came:
        yield Change("score", sid, "changed", "points", f"item {iid}: option added: {b.points} points when "
                     f"{pair.cond(b.when)}", MINOR)


def _scores(pair: _Pair) -> Iterator[Change]:
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
    pair = _Pair(old, new)
    return (*_metadata(old.metadata, new.metadata), *_references(old, new), *_facts(old, new),
            *_catalogue(old, new), *_rules(pair), *_scores(pair), *_traceability(old, new))


# --- behavioural diff -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Patient:
    name: str
    facts: Mapping[str, Any] = field(hash=False)


def _facts_key(facts: Mapping[str, Any]) -> str:
    return json.dumps(facts, sort_keys=True, default=str)


def _decimals(value: float) -> int:
    """Decimals a threshold is written with; 60 and 60.0 both have none (YAML may give either)."""
    if float(value).is_integer():
        return 0
    exponent = Decimal(repr(float(value))).as_tuple().exponent
    return min(-exponent, _MAX_DECIMALS) if isinstance(exponent, int) and exponent < 0 else 0


def thresholds(content: Content) -> tuple[dict[str, set[float]], set[str]]:
    """(input fact -> canonical thresholds, derived-only facts with thresholds)."""
    conds = [r.when for r in content.rules]
    conds += [s.applies_when for s in content.scores]
    conds += [opt.when for s in content.scores for item in s.items for opt in item.options]
    found: dict[str, set[float]] = {}
    derived_only: set[str] = set()
    for a in (a for c in conds for a in atoms(c)):
        if a.op not in COMPARISONS:
            continue
        if a.fact in content.facts:
            found.setdefault(a.fact, set()).add(_threshold(a, content))
        else:
            derived_only.add(a.fact)
    return found, derived_only


def boundary_values(values: Iterable[float]) -> list[tuple[str, float]]:
    """Each threshold and one step either side; the step is one decimal finer than the finest threshold."""
    values = sorted(set(values))
    decimals = max((_decimals(v) for v in values), default=0) + 1
    step = Decimal(1).scaleb(-decimals)
    out: dict[str, float] = {}
    for v in values:
        exact = Decimal(repr(float(v)))
        for d in (exact - step, exact, exact + step):
            out.setdefault(f"{d:.{decimals}f}", float(d))
    return sorted(out.items(), key=lambda kv: kv[1])


def _spread(items: list[Case], cap: int) -> list[Case]:
    """At most `cap` items evenly spread over the list (case files cover different topics)."""
    if len(items) <= cap:
        return items
    return [items[round(i * (len(items) - 1) / (cap - 1))] for i in range(cap)] if cap > 1 else items[:1]


def _patients(old_cases: list[Case], new_cases: list[Case], probe: dict[str, set[float]],
              bases_per_fact: int) -> tuple[list[_Patient], int]:
    """(patients, how many came from cases): the cases of both versions, then boundary patients."""
    seen: dict[str, _Patient] = {}
    cases: list[Case] = []
    for tag, group in (("", old_cases), (" (new version's cases)", new_cases)):
        for case in group:
            key = _facts_key(case.facts)
            if key not in seen:
                seen[key] = _Patient(f"case '{case.name}'{tag}", case.facts)
                cases.append(case)
    from_cases = len(seen)
    for fact in sorted(probe):
        bases = _spread([c for c in cases if fact in c.facts], bases_per_fact)
        for text, value in boundary_values(probe[fact]):
            for base in [None, *bases]:
                facts = {**(base.facts if base else {}), fact: value}
                key = _facts_key(facts)
                if key not in seen:
                    origin = f"from case '{base.name}'" if base else "alone"
                    seen[key] = _Patient(f"boundary {fact}={text} {origin}", facts)
    return list(seen.values()), from_cases


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=0, abs_tol=1e-9)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def behaviour_diff(old: Guideline, new: Guideline, old_cases: list[Case], new_cases: list[Case],
                   bases_per_fact: int = BASES_PER_FACT) -> Behaviour:
    """Evaluate the same patients on both versions and keep those whose codes or derived facts differ."""
    start = time.perf_counter()
    old_t, old_derived = thresholds(old.content)
    new_t, new_derived = thresholds(new.content)
    probe = {f: old_t.get(f, set()) | new_t.get(f, set()) for f in set(old_t) | set(new_t)}
    patients, from_cases = _patients(old_cases, new_cases, probe, bases_per_fact)
    changed, skipped = [], 0
    for p in patients:
        try:
            a, b = old.evaluate(p.facts), new.evaluate(p.facts)
        except InputFactsError:  # e.g. a fact or unit only one version knows
            skipped += 1
            continue
        added = tuple(sorted(set(b.codes) - set(a.codes)))
        removed = tuple(sorted(set(a.codes) - set(b.codes)))
        derived = tuple(DerivedChange(k, a.derived.get(k), b.derived.get(k))
                        for k in sorted(set(a.derived) | set(b.derived))
                        if not _same(a.derived.get(k), b.derived.get(k)))
        if added or removed or derived:
            changed.append(PatientChange(p.name, dict(p.facts), added, removed, derived))
    probed = tuple((f, tuple(t for t, _ in boundary_values(v))) for f, v in sorted(probe.items()))
    return Behaviour(len(patients) - skipped, from_cases, len(patients) - from_cases, skipped, tuple(changed),
                     time.perf_counter() - start, probed, tuple(sorted((old_derived | new_derived) - set(probe))))


# --- version check ----------------------------------------------------------------------------

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?$")


def _parse(version: str) -> tuple[tuple[int, int, int], tuple[Any, ...] | None] | None:
    m = _SEMVER.match(version)
    if not m:
        return None
    pre = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in m.group(4).split(".")) if m.group(4) else None
    return (int(m.group(1)), int(m.group(2)), int(m.group(3))), pre


def _precedes(a: tuple[Any, ...] | None, b: tuple[Any, ...] | None) -> bool:
    """Pre-release a before b, for the same core version (a release follows all its pre-releases)."""
    if a == b:
        return False
    return b is None or (a is not None and a < b)


def _bump(old: str, new: str) -> tuple[str, str | None]:
    """(level of the bump made, the version semver expects instead when lower parts were not reset)."""
    po, pn = _parse(old), _parse(new)
    if po is None or pn is None:
        return "invalid", None
    (o, o_pre), (n, n_pre) = po, pn
    if n < o or (n == o and _precedes(n_pre, o_pre)):
        return "downgrade", None
    if n == o:
        return ("none" if n_pre == o_pre else "pre-release"), None
    level, position = next((lvl, i) for i, lvl in enumerate((MAJOR, MINOR, PATCH)) if n[i] != o[i])
    reset = n[:position + 1] + (0,) * (2 - position)
    expected = None if n == reset else ".".join(map(str, reset))
    return level, expected


def version_check(old: Side, new: Side, semantic: tuple[Change, ...], behaviour: Behaviour) -> VersionCheck:
    """The bump these changes require against the bump made; ok when it is at least that and well-formed."""
    required = max((c.level for c in semantic), key=_rank, default=NONE)
    messages: list[str] = []
    if required != NONE:
        reasons = [c.text for c in semantic if c.level == required]
        more = f" (and {len(reasons) - 3} more)" if len(reasons) > 3 else ""
        messages.append(f"{required.upper()} required by: {'; '.join(reasons[:3])}{more}")
    if behaviour.changed and _rank(required) < _rank(MINOR):
        required = MINOR
        messages.append(f"{len(behaviour.changed)} patient(s) get other recommendations or derived facts: "
                        "at least MINOR")
    if old.digest == new.digest:
        messages.append("same content digest: the guidelines are identical in content"
                        + (f", but the version changed {old.version} → {new.version}" if old.version != new.version
                           else ""))
    elif not semantic:
        messages.append("the digests differ but no change in meaning was found (e.g. items of a condition "
                        "re-ordered)")
    elif all(c.level == NONE for c in semantic):
        messages.append("only the version changed: the content is otherwise identical")
    actual, expected = _bump(old.version, new.version)
    ok = True
    if actual == "invalid":
        ok = False
        messages.append(f"{old.version} → {new.version}: not semantic versions (MAJOR.MINOR.PATCH)")
    elif actual == "downgrade":
        ok = False
        messages.append(f"the version goes down: {old.version} → {new.version}")
    elif actual == "pre-release":
        messages.append(f"{old.version} → {new.version} is a pre-release step: semver promises no compatibility "
                        "between pre-releases")
    elif actual == NONE and required != NONE:
        ok = False
        what = "logic changed" if _rank(required) >= _rank(MINOR) else "content changed"
        messages.append(f"{what} without a version bump (still {new.version}): a {required.upper()} bump is "
                        "required")
    elif _rank(actual) < _rank(required):
        ok = False
        messages.append(f"{old.version} → {new.version} is a {actual.upper()} bump; these changes need "
                        f"{required.upper()}")
    elif _rank(actual) > _rank(required):
        messages.append(f"{old.version} → {new.version} is a {actual.upper()} bump, more than the "
                        f"{required.upper()} these changes need (allowed)")
    if expected is not None:
        ok = False
        messages.append(f"{old.version} → {new.version}: a {actual.upper()} bump resets the lower numbers to 0 "
                        f"(expected {expected})")
    return VersionCheck(required, actual, ok, tuple(messages))


# --- the whole diff ---------------------------------------------------------------------------

def _relabel(problems: Iterable[Problem], folder: Path, label: str) -> list[Problem]:
    """Problems of a temporary checkout name the revision, not the temporary directory."""
    prefix = display_name(folder, folder)
    if label == prefix:
        return list(problems)
    return [Problem(label + p.file[len(prefix):] if p.file.startswith(prefix) else p.file, p.line, p.col, p.code,
                    p.message) for p in problems]


def load_side(folder: Path, label: str | None = None) -> tuple[Guideline, list[Case], Side]:
    """A version to compare: the guideline, its clinical cases, and how to name it. Raises SideInvalidError."""
    label = label or str(folder)
    analysis = analyse(folder)
    if analysis.problems:
        raise SideInvalidError(label, _relabel(analysis.problems, folder, label))
    assert analysis.content is not None and analysis.program is not None
    digest = analysis.digest
    guideline = Guideline(analysis.content, analysis.program, digest, folder)
    # Malformed case files are `guideline test`'s business; the diff uses the cases that load.
    cases, _ = load_cases(folder, guideline)
    return guideline, cases, Side(guideline.id, guideline.version, digest, label)


def compare(old_folder: Path, new_folder: Path, old_label: str | None = None, new_label: str | None = None,
            bases_per_fact: int | None = None) -> Diff:
    """The semantic and behavioural diff of two guideline folders, and the version check."""
    bases_per_fact = BASES_PER_FACT if bases_per_fact is None else bases_per_fact
    old, old_cases, old_side = load_side(old_folder, old_label)
    new, new_cases, new_side = load_side(new_folder, new_label)
    semantic = semantic_diff(old.content, new.content)
    behaviour = behaviour_diff(old, new, old_cases, new_cases, bases_per_fact)
    return Diff(old_side, new_side, semantic, behaviour, version_check(old_side, new_side, semantic, behaviour))
