"""A BASELINE for benchmarks only: the bundled neutropenia guideline's decisions written by hand as
plain-Python if/else, the fastest these decisions can be taken in Python. Never used by the engine.

It takes the same decisions as the engine (codes, derived facts, applicability), in the same
three-valued logic (None: undetermined; NA: does not apply), from the same input: `floor(facts)`
converts the units written in the patient's facts (exactly, as the engine does) and decides;
`decide(canonical)` is the decisions alone. Neither validates its input, which the engine does. benchmarks/runtime.py checks
that it agrees with the engine on every patient it times, so the floor measures these decisions,
not fewer. Written from guidelines/neutropenia/{rules,scores.yaml,guideline.yaml}; if those change,
this file must be changed by hand (the agreement check says so).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

NA: Any = object()  # a derived fact that does not apply (absent from `derived`)


def _and(*v: bool | None) -> bool | None:
    return False if False in v else None if None in v else True


def _or(*v: bool | None) -> bool | None:
    return True if True in v else None if None in v else False


def _is(x: Any, value: Any) -> bool | None:
    return None if x is None else False if x is NA else x == value


def _lt(x: Any, c: float) -> bool | None:
    return None if x is None else False if x is NA else x < c


def _ge(x: Any, c: float) -> bool | None:
    return None if x is None else False if x is NA else x >= c


def _gt(x: Any, c: float) -> bool | None:
    return None if x is None else False if x is NA else x > c


def _exact(v: float) -> Fraction:
    return Fraction(repr(float(v))) if isinstance(v, float) else Fraction(v)


def _item(options: list[tuple[bool | None, int]]) -> tuple[int, int]:
    """A score item's points as (lo, hi): the option known true, else every option's points."""
    for holds, points in options:
        if holds is True:
            return points, points
    points = [p for _, p in options]
    return min(points), max(points)


_COUNT = {"10*9/L": None, "10*3/uL": None, "/uL": (0, Fraction(1, 1000)), "10*6/L": (0, Fraction(1, 1000))}
_UNITS: dict[str, dict[str, tuple[int, Fraction] | None]] = {
    "anc": _COUNT, "wbc": _COUNT, "lymphocytes": _COUNT, "hemoglobin": {"g/dL": None, "g/L": (0, Fraction(1, 10))},
    "temperature": {"Cel": None, "[degF]": (-32, Fraction(5, 9))}}


def canonical(raw: dict[str, Any]) -> dict[str, Any]:
    """The facts in canonical units: `{"value": 100.4, "unit": "[degF]"}` -> 38.0 (None: no conversion)."""
    out = {}
    for name, value in raw.items():
        if type(value) is dict:
            conversion = _UNITS.get(name, {}).get(value["unit"])
            value = value["value"] if conversion is None else \
                float((_exact(value["value"]) + conversion[0]) * conversion[1])
        if value is not None:
            out[name] = value
    return out


def floor(raw: dict[str, Any]) -> tuple[list[str], dict[str, Any], str]:
    """The decisions for the patient's facts as given (units converted by hand)."""
    return decide(canonical(raw))


def decide(f: dict[str, Any]) -> tuple[list[str], dict[str, Any], str]:
    """(codes, derived facts as in `Result.derived`, applicability status) for canonical facts `f`."""
    g = f.get
    d: dict[str, Any] = {}
    # --- derived facts (rules/derived.yaml) ---------------------------------------------------
    anc = g("anc")
    if anc is None and g("wbc") is not None and g("neutrophils_pct") is not None:
        anc = float(_exact(g("wbc")) * (_exact(g("neutrophils_pct")) + _exact(g("bands_pct", 0))) / 100)
    d["anc"] = anc
    if anc is None:
        d["neutropenia_grade"] = None
    else:
        d["neutropenia_grade"] = "none" if anc >= 1.5 else "mild" if anc >= 1.0 else \
            "moderate" if anc >= 0.5 else "severe"
    d["profound_neutropenia"] = (_lt(anc, 0.1))
    d["leukopenia"] = (_lt(g("wbc"), 4.0))
    d["lymphopenia"] = (_lt(g("lymphocytes"), 1.0))
    hypotension = d["hypotension"] = (_lt(g("systolic_bp"), 90))
    # --- fever (rules/febrile-neutropenia.yaml) ------------------------------------------------
    temp, sustained = g("temperature"), g("fever_sustained_1h")
    febrile_true = _or(_ge(temp, 38.3), _is(sustained, True))
    febrile_false = _and(sustained is not True, _or(_lt(temp, 38.0), _and(_lt(temp, 38.3), _is(sustained, False))))
    if febrile_true is True:
        febrile: Any = True
    elif febrile_false is True:
        febrile = False
    elif febrile_true is None or febrile_false is None:
        febrile = None
    else:
        febrile = NA
    if febrile is not NA:
        d["febrile"] = febrile
    fn = d["febrile_neutropenia"] = (
        _and(_is(febrile, True), _or(_lt(anc, 0.5), _is(g("anc_expected_below_0_5_within_48h"), True))))
    prolonged = d["prolonged_neutropenia"] = _gt(g("expected_neutropenia_days"), 7)
    prophylaxis = d["prophylaxis_indicated"] = (_and(_is(febrile, False), _lt(anc, 0.5), _is(prolonged, True)))
    # --- MASCC (scores.yaml); a boolean derived fact without a rule for false is false when its
    # condition is known false, so the booleans above are their conditions' truth values. ----------
    if fn is True:
        tumor, fungal, burden = g("tumor_type"), g("prior_fungal_infection"), g("symptom_burden")
        items = [
            _item([(None if burden is None else burden in ("none", "mild"), 5), (_is(burden, "moderate"), 3),
                   (_is(burden, "severe"), 0)]),
            _item([(_is(hypotension, False), 5), (_is(hypotension, True), 0)]),
            _item([(_is(g("copd"), False), 4), (_is(g("copd"), True), 0)]),
            _item([(_or(_is(tumor, "solid"), _is(fungal, False)), 4),
                   (_and(None if tumor is None else tumor in ("hematologic", "none"), _is(fungal, True)), 0)]),
            _item([(_is(g("dehydration_requiring_iv"), False), 3), (_is(g("dehydration_requiring_iv"), True), 0)]),
            _item([(_is(g("onset_setting"), "outpatient"), 3), (_is(g("onset_setting"), "inpatient"), 0)]),
            _item([(_lt(g("age"), 60), 2), (_ge(g("age"), 60), 0)]),
        ]
        bounds = (sum(lo for lo, _ in items), sum(hi for _, hi in items))
        d["mascc_score"] = bounds[0] if bounds[0] == bounds[1] else None
        d["mascc_score_range"] = list(bounds)
        ge_21: bool | None = True if bounds[0] >= 21 else False if bounds[1] < 21 else None
        lt_21 = None if ge_21 is None else not ge_21
    elif fn is None:  # undetermined, without bounds
        d["mascc_score"], d["mascc_score_range"] = None, None
        ge_21 = lt_21 = None
    else:
        ge_21 = lt_21 = False  # does not apply: neither ge 21 nor lt 21
    # --- risk (rules/risk.yaml) ----------------------------------------------------------------
    low = _and(_is(fn, True), ge_21)
    high = _and(_is(fn, True), lt_21)
    fn_risk = "low" if low is True else "high" if high is True else \
        None if low is None or high is None else NA
    if fn_risk is not NA:
        d["fn_risk"] = "undetermined" if fn_risk is None else fn_risk
    # --- applicability (guideline.yaml: adults) -------------------------------------------------
    age = g("age")
    status = "undetermined" if age is None else "applies" if age >= 18 else "does-not-apply"
    if status == "does-not-apply":
        return [], d, status
    # --- recommendations (rules/*.yaml) --------------------------------------------------------
    fn_t = fn is True
    codes = []
    if fn_t:
        codes += ["fn-empirical-iv-antibiotics", "fn-local-resistance", "fn-assess-resuscitate",
                  "fn-obtain-cultures", "fn-daily-monitoring", "fn-never-delay-antibiotics"]
        if fn_risk == "high":
            codes.append("fn-high-risk-inpatient")
            if _or(_is(prolonged, True), _is(g("bacteremia"), True)):
                codes.append("fn-add-aminoglycoside")
        catheter = (g("suspected_catheter_infection"), g("skin_soft_tissue_infection"), g("gram_positive_bacteremia"))
        codes.append("fn-add-vancomycin" if True in catheter else "fn-no-routine-vancomycin")
        if g("pneumonia") is True:
            codes.append("fn-add-macrolide")
        if g("on_fluoroquinolone_prophylaxis") is True:
            codes.append("fn-no-oral-quinolone")
        stable = _ge(g("clinically_stable_hours"), 24) is True
        if fn_risk == "low" and stable:
            if g("on_fluoroquinolone_prophylaxis") is False:
                codes.append("fn-oral-step-down")
            if g("fever_resolved") is True:
                codes.append("fn-early-discharge")
    if febrile is True and g("on_fluoroquinolone_prophylaxis") is True:
        codes.append("fn-stop-fq-prophylaxis")
    severe = _lt(anc, 0.5) is True
    if severe and g("on_corticosteroids") is True:
        codes.append("masked-infection-signs")
    if febrile is False and (_lt(anc, 1.5) is True or d["leukopenia"] is True):
        codes.append("afebrile-cause-evaluation")
    below_1 = _lt(anc, 1.0) is True
    if g("drug_induced_suspected") is True and below_1:
        codes.append("drug-hold-offending-agent")
    on_tki = g("on_tki") is True
    if on_tki:
        codes.append("cbc-monitoring-schedule")
        if below_1:
            codes.append("tki-hold")
        if g("tki_held") is True and _ge(anc, 1.0) is True:
            codes.append("tki-resume")
    if (on_tki or g("drug_induced_suspected") is True) and _gt(g("cytopenia_persistent_weeks"), 2) is True:
        codes.append("marrow-examination")
    if severe and (fn_t or g("neutropenia_symptomatic") is True or prolonged is True):
        codes.append("gcsf-consider")
    if g("central_venous_catheter") is True:
        causes = (g("tunnel_infection"), g("persistent_bacteremia"), g("atypical_mycobacteria_infection"),
                  g("candidemia"), g("acinetobacter_infection"))
        if True in causes:
            codes.append("cvc-remove")
        elif fn_t:
            codes.append("cvc-retain")
    if d["lymphopenia"] is True:
        codes.append("infection-risk-lymphopenia")
    if prophylaxis is True:
        codes += ["prophylaxis-antimicrobial", "prophylaxis-no-gut-decontamination"]
    if _lt(g("hemoglobin"), 7.0) is True:
        codes.append("transfuse-rbc")
    if g("burns") is True or g("hypovolemia") is True or hypotension is True:
        codes.append("fluid-resuscitation")
    if g("nausea_vomiting") is True or g("diarrhea") is True or g("pain") is True or g("burns") is True:
        codes.append("symptom-control")
    return codes, d, status
