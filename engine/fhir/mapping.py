"""Which FHIR element gives which fact: the code index read from the facts dictionary, and its table."""

from __future__ import annotations

from dataclasses import dataclass

from engine.model.content import Content, FactSpec

LOINC = "http://loinc.org"


@dataclass(frozen=True)
class CodeIndex:
    observation: dict[str, FactSpec]             # Observation.code (LOINC) -> fact
    component: dict[tuple[str, str], FactSpec]   # (panel code, component code) -> fact
    patient: dict[str, tuple[FactSpec, ...]]     # Patient element -> facts


def code_index(content: Content) -> CodeIndex:
    """The code -> fact index of a validated facts dictionary.

    A LOINC code mapped to two facts (one Observation value feeding two facts: a silent double
    count) never gets here: the semantic check refuses it (`duplicate-loinc`) when the guideline
    is loaded.
    """
    observation: dict[str, FactSpec] = {}
    component: dict[tuple[str, str], FactSpec] = {}
    patient: dict[str, list[FactSpec]] = {}
    for spec in content.facts.values():
        for code in spec.loinc:
            observation.setdefault(code, spec)
            for panel in spec.fhir_component_of:
                component.setdefault((panel, code), spec)
        if spec.fhir_patient:
            patient.setdefault(spec.fhir_patient, []).append(spec)
    return CodeIndex(observation, component, {k: tuple(v) for k, v in patient.items()})


def mapping_table(content: Content) -> str:
    """The mapping as a Markdown table (docs/fhir.md is checked against it)."""
    rows = ["| fact | FHIR source | reading used | canonical unit | accepted units |", "|---|---|---|---|---|"]
    for spec in content.facts.values():
        sources = [f"Observation {', '.join(spec.loinc)}"] if spec.loinc else []
        if spec.fhir_component_of:
            sources.append(f"component {', '.join(spec.loinc)} of {', '.join(spec.fhir_component_of)}")
        if spec.fhir_patient:
            sources.append(f"Patient.{spec.fhir_patient} (completed years at the as-of date)")
        if sources:  # units in backticks: `10*9/L` must not turn into Markdown emphasis
            units = ", ".join(f"`{u}`" for u, _ in spec.units) or "—"
            used = ("—" if not spec.loinc else "latest" if spec.fhir_select == "latest"
                    else f"{spec.fhir_select} within {spec.fhir_window_hours:g} h of the latest")
            rows.append(f"| `{spec.name}` | {'; '.join(sources)} | {used} | `{spec.unit}` | {units} |")
    return "\n".join(rows) + "\n"
