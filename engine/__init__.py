"""Clinical guidelines as versioned YAML rules, evaluated on durable_rules."""

from ._audit import AuditLog, AuditLogError, Verification
from ._audit import verify as verify_audit_log
from ._errors import EngineError, GuidelineInvalidError, InputFactsError, Problem, RuleEngineError
from ._fhir import facts_from_fhir
from ._guideline import BUNDLED_GUIDELINE, Guideline, load
from ._release import validate  # the guideline's checks plus releases.yaml (and --release checks)
from ._result import MissingFact, RecommendationResult, Result

__all__ = [
    "BUNDLED_GUIDELINE",
    "AuditLog",
    "AuditLogError",
    "EngineError",
    "Guideline",
    "GuidelineInvalidError",
    "InputFactsError",
    "MissingFact",
    "Problem",
    "RecommendationResult",
    "Result",
    "RuleEngineError",
    "Verification",
    "facts_from_fhir",
    "load",
    "validate",
    "verify_audit_log",
]
