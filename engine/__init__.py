"""Clinical guidelines as versioned YAML rules, evaluated on durable_rules."""

from engine.errors import (
    EngineError,
    GuidelineInvalidError,
    InputFactsError,
    Problem,
    RuleEngineError,
)
from engine.fhir.reader import facts_from_fhir
from engine.guideline import BUNDLED_GUIDELINE, Guideline, load
from engine.products.audit import AuditLog, AuditLogError, Verification
from engine.products.audit import verify as verify_audit_log
from engine.products.release import (
    validate,  # the guideline's checks plus releases.yaml (and --release checks)
)
from engine.run.result import MissingFact, RecommendationResult, Result

__all__ = [
    "BUNDLED_GUIDELINE",
    "AuditLog",
    "AuditLogError",
    "CdsConfig",
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
    "create_app",
    "facts_from_fhir",
    "load",
    "validate",
    "verify_audit_log",
]


def __getattr__(name: str) -> object:
    """The CDS Hooks service (`create_app(CdsConfig(...))`, an ASGI app) is imported on first use:
    Starlette, uvicorn and the JWT library add ~0.2 s that evaluating patients need not pay."""
    if name in ("CdsConfig", "create_app"):
        from engine.cds import app as _cds
        return getattr(_cds, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
