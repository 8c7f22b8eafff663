"""Clinical guidelines as versioned YAML rules, evaluated on durable_rules.

The public API is `__all__`. Names are imported on first use (PEP 562), so importing one part of
the package (the CLI's help, the CDS service's HTTP client) does not load all the others: the
FHIR models, Starlette, uvicorn and the JWT library cost ~0.2-0.4 s that evaluating patients
need not pay.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and readers see; at run time see __getattr__
    from engine.cds.app import create_app
    from engine.cds.config import CdsConfig
    from engine.errors import (
        EngineError,
        GuidelineInvalidError,
        InputFactsError,
        InputProblem,
        Problem,
        RuleEngineError,
    )
    from engine.fhir.reader import facts_from_fhir
    from engine.guideline import Guideline, load
    from engine.products.audit import AuditLog, AuditLogError, Verification
    from engine.products.audit import verify as verify_audit_log
    from engine.products.release import (
        validate,  # the guideline's checks plus releases.yaml (and --release)
    )
    from engine.resources import BUNDLED_GUIDELINE
    from engine.run.result import (
        Applicability,
        MissingFact,
        RecommendationResult,
        Result,
        WhatIfEntry,
        WhatIfScenario,
        WhyNotEntry,
        WhyNotRule,
    )
    from engine.run.why_not import UnknownCodeError

# public name -> (module, attribute)
_EXPORTS = {
    "Applicability": ("engine.run.result", "Applicability"),
    "BUNDLED_GUIDELINE": ("engine.resources", "BUNDLED_GUIDELINE"),
    "AuditLog": ("engine.products.audit", "AuditLog"),
    "AuditLogError": ("engine.products.audit", "AuditLogError"),
    "CdsConfig": ("engine.cds.config", "CdsConfig"),
    "EngineError": ("engine.errors", "EngineError"),
    "Guideline": ("engine.guideline", "Guideline"),
    "GuidelineInvalidError": ("engine.errors", "GuidelineInvalidError"),
    "InputFactsError": ("engine.errors", "InputFactsError"),
    "InputProblem": ("engine.errors", "InputProblem"),
    "MissingFact": ("engine.run.result", "MissingFact"),
    "Problem": ("engine.errors", "Problem"),
    "RecommendationResult": ("engine.run.result", "RecommendationResult"),
    "Result": ("engine.run.result", "Result"),
    "RuleEngineError": ("engine.errors", "RuleEngineError"),
    "Verification": ("engine.products.audit", "Verification"),
    "create_app": ("engine.cds.app", "create_app"),
    "facts_from_fhir": ("engine.fhir.reader", "facts_from_fhir"),
    "load": ("engine.guideline", "load"),
    "validate": ("engine.products.release", "validate"),
    "verify_audit_log": ("engine.products.audit", "verify"),
    # what-if / why-not (contract section 8)
    "UnknownCodeError": ("engine.run.why_not", "UnknownCodeError"),
    "WhatIfEntry": ("engine.run.result", "WhatIfEntry"),
    "WhatIfScenario": ("engine.run.result", "WhatIfScenario"),
    "WhyNotEntry": ("engine.run.result", "WhyNotEntry"),
    "WhyNotRule": ("engine.run.result", "WhyNotRule"),
}

__all__ = [
    "Applicability",
    "AuditLog",
    "AuditLogError",
    "BUNDLED_GUIDELINE",
    "CdsConfig",
    "EngineError",
    "Guideline",
    "GuidelineInvalidError",
    "InputFactsError",
    "InputProblem",
    "MissingFact",
    "Problem",
    "RecommendationResult",
    "Result",
    "RuleEngineError",
    "Verification",
    "create_app",
    "facts_from_fhir",
    "load",
    "validate",
    "verify_audit_log",
    "UnknownCodeError",
    "WhatIfEntry",
    "WhatIfScenario",
    "WhyNotEntry",
    "WhyNotRule",
]
assert sorted(__all__) == sorted(_EXPORTS)  # one list of public names, spelt out for tools


def __getattr__(name: str) -> object:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
