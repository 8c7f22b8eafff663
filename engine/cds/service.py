"""Transitional: the names engine/cli.py still imports from here (the service now lives in app.py and config.py).

Delete this module once `guideline serve` imports `serve` from engine.cds.app and `CdsConfig`
from engine.cds.config, and catches engine.errors.ConfigError.
"""

from engine.cds.app import serve
from engine.cds.config import CdsConfig, CdsConfigError

__all__ = ["CdsConfig", "CdsConfigError", "serve"]
