"""Package data: the bundled guideline folders and the JSON Schemas (see engine/load/bundled.py)."""
