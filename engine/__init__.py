"""Clinical guidelines as versioned YAML rules, evaluated on durable_rules."""

from ._errors import EngineError, GuidelineInvalidError, InputFactsError, Problem, RuleEngineError
from ._guideline import BUNDLED_GUIDELINE, Guideline, load, validate
from ._result import MissingFact, RecommendationResult, Result

__all__ = [
    "BUNDLED_GUIDELINE",
    "EngineError",
    "Guideline",
    "GuidelineInvalidError",
    "InputFactsError",
    "MissingFact",
    "Problem",
    "RecommendationResult",
    "Result",
    "RuleEngineError",
    "load",
    "validate",
]
