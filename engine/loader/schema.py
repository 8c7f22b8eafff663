"""JSON Schema validation of parsed YAML documents, with located, readable errors."""

from __future__ import annotations

import json
import reprlib
from functools import lru_cache
from typing import Any

import jsonschema
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from engine.errors import Problem, did_you_mean
from engine.model.source import Document
from engine.resources import SCHEMA_DIR


@lru_cache(maxsize=None)
def _registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def validator(kind: str) -> jsonschema.Draft202012Validator:
    """The validator for one file kind (`rules`, `facts`, ...)."""
    registry = _registry()
    schema = registry.contents(f"{kind}.schema.json")
    return jsonschema.Draft202012Validator(schema, registry=registry,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _headline(error: ValidationError) -> ValidationError:
    """For oneOf/anyOf failures, the sub-error that explains the editor's most likely intent."""
    while error.context:
        # Branches of a oneOf whose required keys are absent are other shapes altogether
        # (an `all:` is not an atom missing `fact`); explain against a branch that fits.
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.schema_path[0] if sub.schema_path else None, []).append(sub)
        fitting = [sub for subs in branches.values()
                   if not any(s.validator in ("required", "type") and not s.relative_path for s in subs)
                   for sub in subs]
        error = best_match(fitting or error.context)
    return error


_MAX_MESSAGE = 200
_short = reprlib.Repr()
_short.maxstring = _short.maxother = 60


def _describe(error: ValidationError) -> tuple[tuple[Any, ...], str, str]:
    """(path, code, message) for one schema error."""
    path = tuple(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {}))
        extra = [key for key in error.instance if key not in allowed]
        if extra and allowed:
            key = extra[0]
            return (path + (key, "$key"), "unknown-key",
                    f"unknown key '{key}'{did_you_mean(key, allowed)}; allowed here: {', '.join(allowed)}")
    if error.validator == "required":
        return path, "missing-key", error.message.replace("is a required property", "is required here")
    where = "/".join(str(p) for p in path) or "document"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        # jsonschema quotes the whole offending value: a file that is not YAML at all (or a huge
        # value) would be echoed whole. Quote a short, escaped excerpt instead.
        message = message.replace(repr(error.instance), _short.repr(error.instance), 1)[:_MAX_MESSAGE] + "..."
    return path, "schema", f"{where}: {message}"


def check(doc: Document, kind: str) -> list[Problem]:
    """Every schema problem of `doc` against the `kind` schema, located in the YAML file.

    A misspelt required key (`citatons`) is reported once, as the typo with its suggestion,
    not a second time as "'citations' is required".
    """
    described = [_describe(_headline(error)) for error in validator(kind).iter_errors(doc.data)]
    typos = {(path[:-2], message.split("did you mean '")[1].split("'")[0])
             for path, code, message in described if code == "unknown-key" and "did you mean" in message}
    problems = []
    for path, code, message in described:
        if code == "missing-key" and (path, message.split("'")[1]) in typos:
            continue
        problems.append(doc.problem(path, code, message))
    return problems
