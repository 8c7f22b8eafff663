"""why-not through the CDS Hooks service (real Starlette app over uvicorn): a tool asks with
`extension.<guideline id>.why_not` and reads the answers in the response's extension."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest
from test_cds import PV, Server, example, start, stop

from engine.cds.config import CdsConfig
from engine.run.why_not import MAX_WHY_NOT_CODES

HIGH = "patient-view-febrile-neutropenia-high-risk.json"


@pytest.fixture(scope="module")
def service() -> Iterator[Server]:
    running = start(CdsConfig(dev_no_auth=True))
    yield running
    stop(running)


def _asking(codes: Any) -> dict[str, Any]:
    request = copy.deepcopy(example(HIGH))
    request.setdefault("extension", {}).setdefault("neutropenia", {})["why_not"] = codes
    return request


def test_why_not_is_answered_in_the_response_extension(service: Server, guideline: Any) -> None:
    status, _, body = service.call("POST", PV, _asking(["fn-oral-step-down", "fn-high-risk-inpatient"]))
    assert status == 200, body
    answers = body["extension"]["neutropenia"]["why_not"]
    assert [(a["code"], a["status"]) for a in answers] == [("fn-oral-step-down", "not-fired"),
                                                         ("fn-high-risk-inpatient", "fired")]
    assert "fn_risk is high, not low" in answers[0]["rules"][0]["because"]


def test_without_the_question_the_response_is_as_before(service: Server) -> None:
    status, _, body = service.call("POST", PV, example(HIGH))
    assert status == 200 and "why_not" not in body["extension"]["neutropenia"]


@pytest.mark.parametrize("codes, expected", [
    (["fn-oral-stepdown"], "extension.neutropenia.why_not: unknown recommendation code 'fn-oral-stepdown' "
                           "(did you mean 'fn-oral-step-down'?)"),
    ("fn-oral-step-down", "extension.neutropenia.why_not: expected a list of recommendation codes (strings)"),
    ([1], "extension.neutropenia.why_not: expected a list of recommendation codes (strings)"),
    (["transfuse-rbc"] * (MAX_WHY_NOT_CODES + 1), f"at most {MAX_WHY_NOT_CODES}"),
])
def test_a_bad_question_is_400_with_a_clear_message(service: Server, codes: Any, expected: str) -> None:
    status, _, body = service.call("POST", PV, _asking(codes))
    assert status == 400
    assert expected in body["error"]
