"""Stage 2: semantic checks across files (names, types, units, citations, cycles)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from engine.errors import Problem, did_you_mean
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    FactSpec,
    Formula,
    NoneKnown,
    Not,
    Operand,
    Rule,
    Where,
    atoms,
    operands,
)
from engine.model.vocabulary import COMPARISONS


def _fact(content: Content, name: str, *, in_rule_deriving: str | None = None) -> FactSpec | None:
    """The fact a name refers to: the derived one, except inside the rule deriving that very name."""
    return content.fact_read(name, in_rule_deriving)


def _all_names(content: Content) -> list[str]:
    return sorted(set(content.facts) | set(content.derived))


def _check_atom(content: Content, atom: Atom, deriving: str | None) -> Iterator[Problem]:
    spec = _fact(content, atom.fact, in_rule_deriving=deriving)
    where = Where(atom.where.doc, atom.where.path[:-1])
    if spec is None:
        yield where.problem("unknown-fact", f"unknown fact '{atom.fact}'{did_you_mean(atom.fact, _all_names(content))}",
                            "fact")
        return
    if atom.op in COMPARISONS:
        if spec.type != "number":
            yield atom.where.problem("type-mismatch",
                                     f"'{atom.fact}' is {spec.type}; '{atom.op}' compares numbers (use is / in)")
        elif atom.unit is not None and content.facts.get(atom.fact, spec).conversion(atom.unit) is None:
            # A derived fact that is also an input (anc) accepts the input's units.
            spec = content.facts.get(atom.fact, spec)
            accepted = [spec.unit or "", *dict(spec.units)]
            yield where.problem("unit-mismatch", f"unit '{atom.unit}' is not a unit of '{atom.fact}' "
                                f"(canonical {spec.unit}; accepted: {', '.join(accepted)})", "unit")
    elif atom.unit is not None:
        yield where.problem("unit-mismatch", f"'{atom.fact}' is {spec.type}: a unit makes no sense here", "unit")
    if atom.op in ("is", "in"):
        values = atom.value if atom.op == "in" else (atom.value,)
        for v in values:
            yield from _check_value_type(spec, v, atom.where)


def _check_value_type(spec: FactSpec, v: Any, where: Where) -> Iterator[Problem]:
    if spec.type == "boolean" and not isinstance(v, bool):
        yield where.problem("type-mismatch", f"'{spec.name}' is boolean; compare it with true or false, not {v!r}")
    elif spec.type == "enum" and v not in spec.values:
        yield where.problem("type-mismatch", f"{v!r} is not a value of '{spec.name}'"
                            f"{did_you_mean(str(v), spec.values)}; values: {', '.join(spec.values)}")
    elif spec.type in ("number", "range"):
        yield where.problem("type-mismatch", f"'{spec.name}' is a {spec.type}; test it with lt / le / gt / ge")


def _check_condition(content: Content, cond: Condition, deriving: str | None) -> Iterator[Problem]:
    if isinstance(cond, Atom):
        yield from _check_atom(content, cond, deriving)
    elif isinstance(cond, Not):
        yield from _check_condition(content, cond.item, deriving)
    elif isinstance(cond, (All, Any_, NoneKnown)):
        for item in cond.items:
            yield from _check_condition(content, item, deriving)


def _check_rule(content: Content, rule: Rule) -> Iterator[Problem]:
    assert rule.where is not None
    yield from _check_condition(content, rule.when, rule.derive)
    for i, ref in enumerate(rule.citations):
        if ref not in content.references:
            yield rule.where.problem("unknown-reference", f"rule '{rule.id}' cites reference {ref}, which "
                                     f"guideline.yaml does not define", "citations", i)
    if rule.recommend is not None and rule.recommend not in content.catalogue:
        yield rule.where.problem("unknown-code", f"unknown recommendation code '{rule.recommend}'"
                                 f"{did_you_mean(rule.recommend, content.catalogue)}", "then", "recommend")
    if rule.derive is None:
        return
    spec = content.derived.get(rule.derive)
    if spec is None:
        hint = " (it is an input fact; declare it under derived: too)" if rule.derive in content.facts else \
            did_you_mean(rule.derive, content.derived)
        yield rule.where.problem("unknown-fact", f"'{rule.derive}' is not a derived fact of facts.yaml{hint}",
                                 "then", "derive")
        return
    if spec.type == "range":
        yield rule.where.problem("type-mismatch", f"'{spec.name}' is a range; only a score produces it", "then")
    value = rule.value
    if isinstance(value, (Operand, Formula)):
        if spec.type != "number" and not (isinstance(value, Operand) and _operand_type(content, value, rule)
                                          == spec.type):
            yield rule.where.problem("type-mismatch", f"'{spec.name}' is {spec.type}; a formula gives a number",
                                     "then", "value")
        for op in operands(value):
            ospec = _fact(content, op.fact, in_rule_deriving=rule.derive)
            if ospec is None:
                yield op.where.problem("unknown-fact", f"unknown fact '{op.fact}'"
                                       f"{did_you_mean(op.fact, _all_names(content))}", "fact")
            elif ospec.type != "number" and isinstance(value, Formula):
                yield op.where.problem("type-mismatch", f"'{op.fact}' is {ospec.type}; formulas need numbers")
    elif spec.type == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            yield rule.where.problem("type-mismatch", f"'{spec.name}' is a number, not {value!r}", "then", "value")
    else:
        yield from _check_value_type(spec, value, Where(rule.where.doc, rule.where.path + ("then", "value")))


def _operand_type(content: Content, op: Operand, rule: Rule) -> str | None:
    spec = _fact(content, op.fact, in_rule_deriving=rule.derive)
    return spec.type if spec else None


def _dependencies(content: Content) -> dict[str, set[str]]:
    """derived fact -> the derived facts its definition reads (for cycle detection)."""
    deps: dict[str, set[str]] = {name: set() for name in content.derived}
    for rule in content.rules:
        if rule.derive in deps:
            names = [a.fact for a in atoms(rule.when)] + [o.fact for o in operands(rule.value)]
            deps[rule.derive] |= {n for n in names if n in content.derived and n != rule.derive}
    for score in content.scores:
        names = [a.fact for a in atoms(score.applies_when)]
        names += [a.fact for item in score.items for opt in item.options for a in atoms(opt.when)]
        for target in (score.fact, score.range_fact):
            if target in deps:
                deps[target] |= {n for n in names if n in content.derived}
    return deps


def _cycles(deps: dict[str, set[str]]) -> list[list[str]]:
    cycles, state = [], {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(deps.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(deps):
        if node not in state:
            visit(node, [node])
    return cycles


def check(content: Content) -> list[Problem]:
    """All semantic problems of a schema-valid guideline."""
    problems: list[Problem] = []
    meta_where = content.where["guideline"]
    ref_ids = Counter(r["id"] for r in meta_where.doc.data["references"])
    for i, r in enumerate(meta_where.doc.data["references"]):
        if ref_ids[r["id"]] > 1:
            problems.append(meta_where.problem("duplicate-id", f"reference {r['id']} is defined twice",
                                               "references", i, "id"))
    rule_ids = Counter(rule.id for rule in content.rules)
    for rule in content.rules:
        assert rule.where is not None
        if rule_ids[rule.id] > 1:
            problems.append(rule.where.problem("duplicate-id", f"rule id '{rule.id}' is used by "
                                               f"{rule_ids[rule.id]} rules", "id"))
        problems += _check_rule(content, rule)

    for name, spec in content.facts.items():
        assert spec.where is not None
        if spec.range and spec.range[0] > spec.range[1]:
            problems.append(spec.where.problem("bad-range", f"range of '{name}' has min > max", "range"))
        for unit, conv in spec.units:
            if conv.multiply == 0:
                problems.append(spec.where.problem("unit-mismatch", f"unit '{unit}' of '{name}' multiplies by 0",
                                                   "units", unit))

    # One LOINC code must give one fact, or FHIR input could not tell which fact a result is.
    loinc_owner: dict[str, str] = {}
    for name, spec in content.facts.items():
        assert spec.where is not None
        for i, code in enumerate(spec.loinc):
            if code in loinc_owner and loinc_owner[code] != name:
                problems.append(spec.where.problem("duplicate-loinc", f"LOINC {code} is mapped to both "
                                                   f"'{loinc_owner[code]}' and '{name}'", "loinc", i))
            loinc_owner.setdefault(code, name)

    produced_by: dict[str, list[str]] = {}
    for rule in content.rules:
        if rule.derive:
            produced_by.setdefault(rule.derive, []).append(f"rule '{rule.id}'")
    score_ids = Counter(s.id for s in content.scores)
    for score in content.scores:
        if score_ids[score.id] > 1:
            problems.append(score.where.problem("duplicate-id", f"score id '{score.id}' is used twice", "id"))
        problems += _check_condition(content, score.applies_when, None)
        item_ids = Counter(item.id for item in score.items)
        for j, item in enumerate(score.items):
            if item_ids[item.id] > 1:
                problems.append(score.where.problem("duplicate-id", f"item id '{item.id}' is used twice in score "
                                                    f"'{score.id}'", "items", j, "id"))
            for opt in item.options:
                problems += _check_condition(content, opt.when, None)
        for i, ref in enumerate(score.citations):
            if ref not in content.references:
                problems.append(score.where.problem("unknown-reference", f"score '{score.id}' cites reference {ref},"
                                                    " which guideline.yaml does not define", "citations", i))
        for key, target, want in (("fact", score.fact, "number"), ("range_fact", score.range_fact, "range")):
            if target is None:
                continue
            target_spec = content.derived.get(target)
            if target_spec is None:
                problems.append(score.where.problem("unknown-fact", f"'{target}' is not a derived fact of facts.yaml"
                                                    f"{did_you_mean(target, content.derived)}", key))
            elif target_spec.type != want:
                problems.append(score.where.problem("type-mismatch", f"'{target}' must be declared type {want}",
                                                    key))
            produced_by.setdefault(target, []).append(f"score '{score.id}'")

    for name, spec in content.derived.items():
        assert spec.where is not None
        sources = produced_by.get(name, [])
        if not sources:
            problems.append(spec.where.problem("underived-fact", f"no rule or score derives '{name}'", "$key"))
        elif any(s.startswith("score") for s in sources) and len(sources) > 1:
            problems.append(spec.where.problem("conflicting-derivation", f"'{name}' is produced by "
                                               f"{' and '.join(sources)}; a score's fact has one source", "$key"))
        if name in content.facts and spec.type != content.facts[name].type:
            problems.append(spec.where.problem("type-mismatch", f"'{name}' is {content.facts[name].type} as an "
                                               f"input but {spec.type} as a derived fact", "type"))

    deps = _dependencies(content)
    for cycle in _cycles(deps):
        spec = content.derived[cycle[0]]
        assert spec.where is not None
        problems.append(spec.where.problem("cycle", "derived facts depend on each other in a cycle: "
                                           + " -> ".join(cycle), "$key"))

    recommended = {rule.recommend for rule in content.rules if rule.recommend}
    for code, rec in content.catalogue.items():
        if code not in recommended:
            problems.append(rec.where.problem("code-without-rule", f"catalogue code '{code}' has no rule "
                                              "recommending it", "$key"))

    if "traceability" in content.where:
        tw = content.where["traceability"]
        rule_names = set(rule_ids)
        for i, st in enumerate(content.traceability):
            for j, rid in enumerate(st["rules"]):
                if rid not in rule_names:
                    problems.append(tw.problem("unknown-rule", f"no rule '{rid}'{did_you_mean(rid, rule_names)}",
                                               "statements", i, "rules", j))
            for j, code in enumerate(st["codes"]):
                if code not in content.catalogue:
                    problems.append(tw.problem("unknown-code", f"unknown recommendation code '{code}'"
                                               f"{did_you_mean(code, content.catalogue)}", "statements", i, "codes", j))
            for j, ref in enumerate(st["references"]):
                if ref not in content.references:
                    problems.append(tw.problem("unknown-reference", f"reference {ref} is not defined",
                                               "statements", i, "references", j))
        traced = {code for st in content.traceability for code in st["codes"]}
        for code in sorted(set(content.catalogue) - traced):
            problems.append(tw.problem("untraced-code", f"catalogue code '{code}' is traced to no seed statement"))
    return problems
