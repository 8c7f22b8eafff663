"""Package data: the bundled guideline folders and the JSON Schemas (see engine/resources.py)."""
