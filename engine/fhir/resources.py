"""FHIR input -> validated resources: Bundles flattened once, each resource checked by fhir.resources.

fhir.resources' R4B models are used: Bundle, Patient and Observation are element-for-element
the same as R4.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.errors import InputProblem, did_you_mean


@dataclass(frozen=True)
class Resource:
    type: str
    label: str       # "Observation/abc", or "Observation at entry[3]" when it has no id
    named: str       # "entry[3] Observation/abc": its place in the input too
    full_url: str | None
    model: Any       # the validated fhir.resources model


def _loc(loc: Sequence[Any]) -> str:
    """('component', 0, 'valueQuantity') -> 'component[0].valueQuantity'."""
    text = ""
    for part in loc:
        if part in ("root", "__root__"):  # the library's name for "this element as a whole"
            continue
        text += f"[{part}]" if isinstance(part, int) else f"{'.' if text else ''}{part}"
    return text or "(resource)"


def _condense(exc: Exception) -> list[str]:
    """The library's validation message, one line per problem, led by the offending path."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):  # the library raises a bare KeyError for an unknown nested resource type
        return [f"unknown resource type {exc} in a nested resource" if isinstance(exc, KeyError) else str(exc)]
    lines = []
    for err in errors():
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ").rstrip(".")
        if err.get("type") == "json_invalid":  # it tries a non-object as JSON text
            msg = "expected a JSON object"
        if err.get("type") == "extra_forbidden":
            msg = "unknown element"
        given = err.get("input")
        if isinstance(given, (str, int, float, bool)) and err.get("type") != "extra_forbidden":
            msg += f" (got {given!r:.60})"
        lines.append(f"{_loc(err.get('loc', ()))}: {msg}")
    return lines


def _validate(data: Any, where: str, problems: list[InputProblem]) -> Resource | None:
    """One resource checked by fhir.resources; problems are located at where it is."""
    # Imported here, not at the top: ~0.2 s that only FHIR input should pay.
    from fhir.resources.R4B import get_fhir_model_class

    if not isinstance(data, Mapping):
        problems.append(InputProblem(where, f"a resource is a JSON object, not {type(data).__name__}"))
        return None
    rtype = data.get("resourceType")
    if not isinstance(rtype, str) or not rtype:
        problems.append(InputProblem(where, "no resourceType"))
        return None
    rid = data.get("id")
    has_id = isinstance(rid, str) and bool(rid)
    label = f"{rtype}/{rid}" if has_id else f"{rtype} at {where}"
    named = f"{where} {label}" if has_id else label  # its place in the input, and its id
    try:
        model_class = get_fhir_model_class(rtype)
    except (KeyError, ValueError):
        problems.append(InputProblem(where, f"unknown resourceType '{rtype}'"
                                     f"{did_you_mean(rtype, ('Bundle', 'Patient', 'Observation'))}"))
        return None
    try:
        model = model_class.model_validate(dict(data))
    except (ValueError, KeyError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
        problems += [InputProblem(named, line) for line in _condense(exc)]
        return None
    return Resource(rtype, label, named, None, model)


def parse_resources(source: Any) -> tuple[list[Resource], list[InputProblem]]:
    """A Bundle, a list of resources or one resource -> validated resources (Bundles flattened once)."""
    from fhir.resources.R4B.bundle import Bundle

    problems: list[InputProblem] = []
    if isinstance(source, Mapping) and source.get("resourceType") == "Bundle":
        entries = source.get("entry") or []
        # The envelope is validated without the resources, so each resource's problems name it.
        envelope = dict(source)
        if isinstance(entries, list):
            envelope["entry"] = [{k: v for k, v in e.items() if k != "resource"} if isinstance(e, Mapping) else e
                                 for e in entries]
        try:
            Bundle.model_validate(envelope)
        except (ValueError, KeyError, TypeError) as exc:
            return [], [InputProblem("Bundle", line) for line in _condense(exc)]
        items = [(f"entry[{i}]", e.get("resource"), e.get("fullUrl")) for i, e in enumerate(entries)]
        items = [item for item in items if item[1] is not None]  # e.g. deleted entries of a history
    elif isinstance(source, Mapping):
        items = [("resource", source, None)]
    elif isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        items = [(f"[{i}]", r, None) for i, r in enumerate(source)]
    else:
        return [], [InputProblem("", "FHIR input must be a Bundle, a resource or a list of resources, not "
                                 f"{type(source).__name__}")]
    resources = []
    for where, data, full_url in items:
        resource = _validate(data, where, problems)
        if resource is None:
            continue
        if resource.type == "Bundle":  # its entries would be silently unread: say so instead
            problems.append(InputProblem(resource.named, "a Bundle inside the input is not read; "
                                         "give its resources directly"))
            continue
        resources.append(dataclasses.replace(resource, full_url=full_url))
    return resources, problems
