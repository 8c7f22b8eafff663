"""Stage 1: read a guideline folder, schema-check each file, build the typed content."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.loader import schema as _schema
from engine.loader.safefile import MAX_FOLDER_BYTES, read_text
from engine.loader.yamlio import read_yaml
from engine.model.content import (
    All,
    Any_,
    Atom,
    Condition,
    Content,
    Conversion,
    Expectation,
    FactSpec,
    Formula,
    Metadata,
    NoneKnown,
    Not,
    Operand,
    Population,
    Recommendation,
    Reference,
    Rule,
    Score,
    ScoreItem,
    ScoreOption,
    ValueMeaning,
    Where,
)
from engine.model.source import Document, Path_
from engine.model.vocabulary import COMPARISONS

# file (or glob) -> schema kind; `True` = the file must exist.
LAYOUT = (
    ("guideline.yaml", "guideline", True),
    ("facts.yaml", "facts", True),
    ("catalogue.yaml", "catalogue", True),
    ("scores.yaml", "scores", False),
    ("rules/*.yaml", "rules", True),
    ("traceability.yaml", "traceability", False),
)


def display_name(folder: Path, path: Path) -> str:
    """A file name as people see it in messages: relative to the working directory if possible.

    Only the folder is resolved, never the file itself: a link is named as the link, not as
    whatever it points to.
    """
    try:
        return str((path.parent.resolve() / path.name).relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def read_folder(folder: Path) -> tuple[dict[str, list[Document]], list[Problem]]:
    """Parse and schema-check every file of the folder; all problems, none raised."""
    docs: dict[str, list[Document]] = {}
    problems: list[Problem] = []
    if not folder.is_dir():
        return docs, [Problem(str(folder), 1, 1, "no-guideline", "not a guideline folder (no such directory)")]
    total = 0
    for pattern, kind, required in LAYOUT:
        paths = sorted(folder.glob(pattern))
        if not paths and required:
            problems.append(Problem(display_name(folder, folder / pattern), 1, 1, "missing-file",
                                    f"a guideline needs {pattern}"))
        for path in paths:
            name = display_name(folder, path)
            try:
                total += path.stat().st_size if path.is_file() else 0
            except OSError:
                pass  # read_yaml reports it
            if total > MAX_FOLDER_BYTES:
                problems.append(Problem(name, 1, 1, "too-large", f"the guideline folder's files exceed "
                                        f"{MAX_FOLDER_BYTES:,} bytes together; not read from here on"))
                return docs, problems
            doc, parse_problems = read_yaml(path, name, folder)
            problems += parse_problems
            if not parse_problems:
                problems += _schema.check(doc, kind)
                docs.setdefault(kind, []).append(doc)
    return docs, problems


def folder_texts(folder: Path) -> dict[str, str]:
    """Every file of the layout as text, by its path relative to the folder: what `read_folder`
    parses, so the same folder can be laid out again elsewhere (a worker process) and analysed.
    A file that cannot be read is left out; the rebuilt guideline then fails its digest check."""
    texts: dict[str, str] = {}
    for pattern, _, _ in LAYOUT:
        for path in sorted(folder.glob(pattern)):
            text, problems = read_text(path, str(path), folder)
            if text is not None and not problems:
                texts[path.relative_to(folder).as_posix()] = text
    return texts


# --- building typed objects from schema-valid data ------------------------------------------

def condition(data: dict[str, Any], doc: Document, path: Path_) -> Condition:
    for key, node in (("all", All), ("any", Any_), ("none_known", NoneKnown)):
        if key in data:
            return node(tuple(condition(item, doc, path + (key, i)) for i, item in enumerate(data[key])))
    if "not" in data:
        return Not(condition(data["not"], doc, path + ("not",)))
    where = Where(doc, path)
    tests = [(op, data[op]) for op in (*COMPARISONS, "is", "in", "known") if op in data]
    parts: list[Condition] = []
    for op, value in tests:
        atom = Atom(data["fact"], op, tuple(value) if op == "in" else value, Where(doc, path + (op,)),
                    data.get("unit"))
        if op == "known":  # one atom kind, "is known"; `known: false` is its negation
            atom = Atom(data["fact"], "known", True, atom.where)
            parts.append(atom if value else Not(atom))
        else:
            parts.append(atom)
    if not parts:  # schema guarantees a test unless only `unit` was given
        return Atom(data["fact"], "known", True, where, data.get("unit"))
    return parts[0] if len(parts) == 1 else All(tuple(parts))


def value(data: Any, doc: Document, path: Path_) -> Any:
    if isinstance(data, dict) and "fact" in data:
        return Operand(data["fact"], data.get("default"), Where(doc, path))
    if isinstance(data, dict):
        (op, args), = data.items()
        return Formula(op, tuple(value(arg, doc, path + (op, i)) for i, arg in enumerate(args)))
    return data


def _fact_spec(name: str, data: dict[str, Any], derived: bool, doc: Document, path: Path_) -> FactSpec:
    units = tuple((unit, Conversion(Fraction(conv["multiply"]), Fraction(str(conv.get("add", 0)))))
                  for unit, conv in data.get("units", {}).items())
    return FactSpec(
        name=name, type=data["type"], derived=derived, description=data["description"],
        unit=data.get("unit"), units=units,
        range=tuple(data["range"]) if "range" in data else None,  # type: ignore[arg-type]
        values=tuple(data.get("values", ())), loinc=tuple(data.get("loinc", ())),
        undetermined_label=data.get("undetermined_label"), fhir_patient=data.get("fhir", {}).get("patient"),
        fhir_component_of=tuple(data.get("fhir", {}).get("component_of", ())),
        fhir_select=data.get("fhir", {}).get("select", "latest"),
        fhir_window_hours=data.get("fhir", {}).get("window_hours"),
        label=data.get("label"), ask=data.get("ask"),
        meaning=tuple(ValueMeaning(str(v), m["text"], tuple(m["citations"]))
                      for v, m in data.get("meaning", {}).items()), where=Where(doc, path))


def _population(data: dict[str, Any] | None, doc: Document) -> Population | None:
    """guideline.yaml's `population`, located like a rule (None: the guideline applies to everyone)."""
    if data is None:
        return None
    path: Path_ = ("population",)
    return Population(data["description"], condition(data["when"], doc, path + ("when",)),
                      data.get("rationale", ""), tuple(data.get("citations", ())), Where(doc, path))


def build(docs: dict[str, list[Document]]) -> Content:
    """Typed content from schema-valid documents (call only when read_folder found no problem)."""
    meta_doc = docs["guideline"][0]
    meta = meta_doc.data
    facts_doc = docs["facts"][0]
    catalogue_doc = docs["catalogue"][0]
    rules = []
    for doc in docs.get("rules", []):
        for i, r in enumerate(doc.data["rules"]):
            path: Path_ = ("rules", i)
            then = r["then"]
            rules.append(Rule(
                id=r["id"], title=r["title"], when=condition(r["when"], doc, path + ("when",)),
                citations=tuple(r["citations"]), rationale=r.get("rationale", ""),
                recommend=then.get("recommend"), derive=then.get("derive"),
                value=value(then["value"], doc, path + ("then", "value")) if "value" in then else None,
                where=Where(doc, path)))
    scores = []
    for doc in docs.get("scores", []):
        for i, s in enumerate(doc.data["scores"]):
            path = ("scores", i)
            items = tuple(
                ScoreItem(item["id"], item["title"], tuple(
                    ScoreOption(opt["points"], condition(opt["when"], doc, path + ("items", j, "points", k, "when")))
                    for k, opt in enumerate(item["points"])))
                for j, item in enumerate(s["items"]))
            scores.append(Score(s["id"], s["title"], s["fact"], s.get("range_fact"),
                                condition(s["applies_when"], doc, path + ("applies_when",)), items,
                                tuple(s["citations"]), s.get("rationale", ""), Where(doc, path)))
    trace = tuple(docs["traceability"][0].data["statements"]) if docs.get("traceability") else ()
    population = _population(meta.get("population"), meta_doc)
    return Content(
        metadata=Metadata(meta["id"], meta["title"], meta["version"], meta["status"], meta.get("effective_date"),
                          meta.get("description", ""), tuple(meta["owners"]), tuple(meta.get("reviewers", ()))),
        references={r["id"]: Reference(r["id"], r["citation"], r.get("note", "")) for r in meta["references"]},
        facts={n: _fact_spec(n, d, False, facts_doc, ("inputs", n)) for n, d in facts_doc.data["inputs"].items()},
        derived={n: _fact_spec(n, d, True, facts_doc, ("derived", n)) for n, d in facts_doc.data["derived"].items()},
        catalogue={code: Recommendation(code, c["kind"], c["urgency"], c["title"], c["text"],
                                        Where(catalogue_doc, ("recommendations", code)),
                                        tuple(c.get("conflicts_with", ())))
                   for code, c in catalogue_doc.data["recommendations"].items()},
        rules=tuple(rules), scores=tuple(scores), traceability=trace, population=population,
        where={"guideline": Where(meta_doc, ()), "facts": Where(facts_doc, ()),
               "catalogue": Where(catalogue_doc, ()),
               **({"traceability": Where(docs["traceability"][0], ())} if docs.get("traceability") else {})},
        guidance_expected=_expectations(meta_doc),
    )


def _expectations(doc: Document) -> tuple[Expectation, ...]:
    """guideline.yaml's `guidance_expected` entries (checked by `guideline check`)."""
    return tuple(Expectation(e["description"], condition(e["when"], doc, ("guidance_expected", i, "when")),
                             e.get("note", ""), Where(doc, ("guidance_expected", i)))
                 for i, e in enumerate(doc.data.get("guidance_expected", ())))
