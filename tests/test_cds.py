"""The CDS Hooks 2.0 service over real HTTP: uvicorn on 127.0.0.1, called with http.client.

Servers run in background threads (one with JWT authentication and an audit log, one with
--dev-no-auth and a small body limit); the CLI and the load run use `guideline serve` in a
subprocess. Keys are generated here; nothing leaves the loopback interface.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest
import uvicorn
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

import engine
from engine.cds import cards as _cards
from engine.cds.app import create_app
from engine.cds.config import CdsConfig, CdsConfigError, check_config
from engine.cds.discovery import prefetch_templates
from engine.cds.trust import TrustConfigError, load_trusted_issuers
from engine.cli import main
from engine.run.result import RecommendationResult

ROOT = Path(__file__).resolve().parent.parent
CDS = ROOT / "examples" / "cds"
FHIR = ROOT / "examples" / "fhir"
ISS = "https://ehr.example.org"
ISS_JWKS = "https://other-ehr.example.com"
PUBLIC = "https://cds.example.org"
PV, OS = "/cds-services/neutropenia-patient-view", "/cds-services/neutropenia-order-select"
EXAMPLES = ("febrile-neutropenia-low-risk", "febrile-neutropenia-high-risk", "afebrile-prophylaxis",
            "incomplete-data", "units")


def _load_script(name: str, path: Path) -> Any:
    """A script outside the package (benchmarks/, examples/) as a module."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


cds_load = _load_script("cds_load", ROOT / "benchmarks" / "cds_load.py")


# --- keys, tokens, servers --------------------------------------------------------------------

def _pem(key: Any) -> str:
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@dataclass
class Keys:
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    other_rsa: RSAPrivateKey   # trusted by nobody
    jwks_rsa: RSAPrivateKey    # the second issuer's key, published as a JWK Set file
    trust_file: Path


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    folder = tmp_path_factory.mktemp("trust")
    k = Keys(rsa.generate_private_key(65537, 2048), ec.generate_private_key(ec.SECP256R1()),
             rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048), folder / "issuers.yaml")
    (folder / "ec.pem").write_text(_pem(k.ec))
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(k.jwks_rsa.public_key()))
    (folder / "other.jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "jwk-1", "use": "sig"}]}))
    k.trust_file.write_text(yaml.safe_dump({"issuers": {
        ISS: {"keys": {"rsa-1": _pem(k.rsa), "ec-1": "ec.pem"}},
        ISS_JWKS: {"jwks_file": "other.jwks.json"},
    }}))
    return k


def token(key: Any, alg: str, aud: str | None, *, kid: str | None = "rsa-1", **claims: Any) -> str:
    now = int(time.time())
    payload = {"iss": ISS, "sub": "ehr-client-1", "aud": aud, "iat": now, "exp": now + 300,
               "jti": str(uuid.uuid4()), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, key, algorithm=alg, headers={"kid": kid} if kid else {})


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@dataclass
class Server:
    port: int
    server: uvicorn.Server
    thread: threading.Thread

    def call(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
             raw: bytes | None = None) -> tuple[int, dict[str, str], Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = raw if raw is not None else None if body is None else json.dumps(body).encode()
            conn.request(method, path, data, {"Content-Type": "application/json", **(headers or {})})
            response = conn.getresponse()
            text = response.read()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(text or b"null")
        finally:
            conn.close()


def start(config: CdsConfig) -> Server:
    app = create_app(config)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    return Server(sock.getsockname()[1], server, thread)


def stop(server: Server) -> None:
    server.server.should_exit = True
    server.thread.join(timeout=10)


@pytest.fixture(scope="module")
def audit_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "cds.log"


@pytest.fixture(scope="module")
def server(keys: Keys, audit_log: Path) -> Iterator[Server]:
    running = start(CdsConfig(public_url=PUBLIC, trusted_issuers=keys.trust_file, audit_log=audit_log))
    yield running
    stop(running)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def dev_log() -> Iterator[_Records]:
    handler = _Records()
    logger = logging.getLogger("engine.cds")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(old)


@pytest.fixture(scope="module")
def dev_server(dev_log: _Records) -> Iterator[Server]:
    running = start(CdsConfig(dev_no_auth=True, max_body_bytes=4096))
    yield running
    stop(running)


@pytest.fixture
def authed(server: Server, keys: Keys) -> Callable[..., tuple[int, dict[str, str], Any]]:
    """server.call with a fresh valid RS256 token for the URL called."""
    def call(method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[int, dict[str, str], Any]:
        bearer = token(keys.rsa, "RS256", PUBLIC + path)
        return server.call(method, path, body, headers={"Authorization": f"Bearer {bearer}"}, **kwargs)

    return call


def example(name: str) -> dict[str, Any]:
    return json.loads((CDS / name).read_text(encoding="utf-8"))


def evaluate_fhir(name: str) -> dict[str, Any]:
    """`guideline evaluate --fhir` for the same example, as JSON."""
    out = io.StringIO()
    code = main(["evaluate", "--fhir", str(FHIR / f"{name}.json"), "--facts", str(FHIR / f"{name}-extra.json"),
                 "--as-of", "2024-05-03", "--format", "json"], out=out, err=io.StringIO())
    assert code == 0
    return json.loads(out.getvalue())


def card_codes(cards: list[dict[str, Any]]) -> list[str]:
    return [c["source"]["topic"]["code"] for c in cards if "topic" in c["source"]]


# --- discovery --------------------------------------------------------------------------------

def test_discovery_lists_both_hooks_with_prefetch_from_the_facts_dictionary(authed: Any, guideline: Any) -> None:
    status, _, body = authed("GET", "/cds-services")
    assert status == 200
    services = {s["hook"]: s for s in body["services"]}
    assert set(services) == {"patient-view", "order-select"}
    codes = [c for spec in guideline.content.facts.values() for c in (*spec.loinc, *spec.fhir_component_of)]
    for hook, service in services.items():
        assert service["id"] == f"neutropenia-{hook}" and service["title"] and service["description"]
        assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"
        query = service["prefetch"]["observations"]
        assert query.startswith("Observation?patient={{context.patientId}}&code=")
        listed = [c.split("|")[1] for c in query.split("code=")[1].split(",")]
        assert listed == list(dict.fromkeys(codes))
        assert {"85354-9", "55284-4", "8480-6", "751-8"} <= set(listed)  # BP panels and their component


def test_prefetch_codes_come_from_the_dictionary_not_from_python(bundled_copy: Path, edit_yaml: Any) -> None:
    edit_yaml("facts.yaml", 'loinc: ["718-7"]', 'loinc: ["718-7", "59260-0"]')
    query = prefetch_templates(engine.load(bundled_copy).content)["observations"]
    assert "http://loinc.org|59260-0" in query


# --- hook calls -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_patient_view_cards_match_guideline_evaluate_fhir(authed: Any, name: str) -> None:
    status, _, body = authed("POST", PV, example(f"patient-view-{name}.json"))
    assert status == 200, body
    expected = evaluate_fhir(name)
    cards = body["cards"]
    assert card_codes(cards) == [r["code"] for r in expected["recommendations"]]
    assert len({c["uuid"] for c in cards}) == len(cards)
    by_code = {c["source"]["topic"]["code"]: c for c in cards if "topic" in c["source"]}
    for rec in expected["recommendations"]:
        card = by_code[rec["code"]]
        assert len(card["summary"]) < 140
        assert card["indicator"] == ("critical" if rec["urgency"] == "immediate" else
                                     "warning" if rec["urgency"] == "urgent" or rec["kind"] == "do-not" else "info")
        assert f"`{rec['rule']}`" in card["detail"] and "**Why**" in card["detail"]
        assert card["source"]["label"] == "Management of leukopenia and neutropenia 1.0.0 (draft)"
        for citation in rec["citations"]:
            assert _cards.md(citation) in card["detail"]
    missing = [c for c in cards if "topic" not in c["source"]]
    assert len(missing) == (1 if expected["missing"] else 0)
    for card in missing:
        assert card["indicator"] == "info" and len(card["summary"]) < 140
        assert all(f"**{_cards.md(m['fact'])}**" in card["detail"] for m in expected["missing"])
    assert body["extension"]["neutropenia"]["guideline"]["digest"] == expected["guideline"]["digest"]


def test_order_select_gives_the_same_cards(authed: Any) -> None:
    status, _, body = authed("POST", OS, example("order-select-febrile-neutropenia-high-risk.json"))
    assert status == 200, body
    assert card_codes(body["cards"]) == [r["code"] for r in evaluate_fhir("febrile-neutropenia-high-risk")
                                         ["recommendations"]]


def test_card_uuids_are_stable_for_one_hook_call_and_differ_between_calls(authed: Any) -> None:
    request = example("patient-view-febrile-neutropenia-low-risk.json")
    first = [c["uuid"] for c in authed("POST", PV, request)[2]["cards"]]
    again = [c["uuid"] for c in authed("POST", PV, request)[2]["cards"]]
    other = [c["uuid"] for c in authed("POST", PV, {**request, "hookInstance": str(uuid.uuid4())})[2]["cards"]]
    assert first == again and not set(first) & set(other)


def test_as_of_defaults_to_now(authed: Any) -> None:
    request = example("patient-view-febrile-neutropenia-low-risk.json")
    del request["extension"]["neutropenia"]["asOf"]
    status, _, body = authed("POST", PV, request)
    assert status == 200
    assert body["extension"]["neutropenia"]["asOf"][:10] == time.strftime("%Y-%m-%d", time.gmtime())


def test_null_prefetch_means_no_data_not_an_error(authed: Any) -> None:
    request = example("patient-view-incomplete-data.json")
    request["prefetch"] = {"patient": None, "observations": None}
    status, _, body = authed("POST", PV, request)
    assert status == 200
    assert "prefetch.patient is null: no Patient data" in body["extension"]["neutropenia"]["notes"]
    assert "anc" in body["cards"][-1]["detail"]  # listed as missing, never read as normal


def _without(data: dict[str, Any], *path: str) -> dict[str, Any]:
    data = json.loads(json.dumps(data))
    target = data
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return data


def _bad_observation() -> dict[str, Any]:
    request = example("patient-view-febrile-neutropenia-low-risk.json")
    obs = request["prefetch"]["observations"]["entry"][1]["resource"]
    obs["valueQuantiy"] = obs.pop("valueQuantity")
    return request


def _other_patients_observation() -> dict[str, Any]:
    request = example("patient-view-febrile-neutropenia-low-risk.json")
    request["prefetch"]["observations"]["entry"][0]["resource"]["subject"] = {"reference": "Patient/someone-else"}
    return request


_LOW = "patient-view-febrile-neutropenia-low-risk.json"
MALFORMED = {
    "not JSON": (b"{not json", "malformed JSON"),
    "a JSON array": (b"[]", "must be a JSON object"),
    "duplicate key": (b'{"hook": "patient-view", "hook": "order-select"}', "malformed JSON"),
    "wrong hook": ({**example(_LOW), "hook": "order-select"}, "answers 'patient-view', not 'order-select'"),
    "no hook": (_without(example(_LOW), "hook"), "hook: missing"),
    "no hookInstance": (_without(example(_LOW), "hookInstance"), "hookInstance: missing"),
    "no context": (_without(example(_LOW), "context"), "context: missing"),
    "no patientId": (_without(example(_LOW), "context", "patientId"), "context.patientId: missing"),
    "another patient's Patient": ({**example(_LOW), "context": {"patientId": "x-1"}}, "another patient"),
    "bad FHIR": (_bad_observation(), "prefetch.observations entry[1] Observation/"),
    "two subjects": (_other_patients_observation(), "more than one subject"),
    "prefetch not a Patient": ({**example(_LOW), "prefetch": {"patient": [], "observations": None}},
                               "prefetch.patient"),
    "unknown extension key": ({**example(_LOW), "extension": {"neutropenia": {"fact": {}}}},
                              "extension.neutropenia: unknown key(s) fact"),
    "bad asOf": ({**example(_LOW), "extension": {"neutropenia": {"asOf": "3 May"}}}, "extension.neutropenia.asOf"),
    "bad extension fact": ({**example(_LOW), "extension": {"neutropenia": {"facts": {"cpod": True}}}},
                           "extension.neutropenia.facts: cpod"),
    "token without server": ({**example(_LOW), "fhirAuthorization": {"access_token": "x"}}, "without fhirServer"),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_malformed_requests_are_400_with_a_clear_message(authed: Any, case: str) -> None:
    body, expected = MALFORMED[case]
    raw = body if isinstance(body, bytes) else None
    status, headers, answer = authed("POST", PV, None if raw else body, raw=raw)
    assert status == 400, answer
    assert headers["content-type"] == "application/json"
    assert expected in answer["error"] + " " + " ".join(answer.get("problems", []))


@pytest.mark.parametrize("prefetch, fhir_server, expected", [
    (None, None, "required prefetch patient, observations not given, and no fhirServer"),
    ({"patient": None}, None, "required prefetch observations not given"),
    # Fetching from fhirServer is tested in test_cds_fetch.py; this server refuses plain http.
    ({"observations": None}, "http://127.0.0.1:9/fhir",
     "fhirServer cannot be used: fhirServer http://127.0.0.1:9/fhir is not https"),
])
def test_missing_prefetch_is_412(authed: Any, prefetch: Any, fhir_server: Any, expected: str) -> None:
    request = _without(example(_LOW), "prefetch")
    if prefetch is not None:
        request["prefetch"] = prefetch
    if fhir_server:
        request["fhirServer"] = fhir_server
    status, _, body = authed("POST", PV, request)
    assert status == 412 and expected in body["error"]


def test_a_paged_prefetch_is_412(authed: Any) -> None:
    request = example(_LOW)
    request["prefetch"]["observations"]["link"] = [{"relation": "next", "url": "https://ehr.example.org/p2"}]
    status, _, body = authed("POST", PV, request)
    assert status == 412 and "'next' link), and no fhirServer" in body["error"]


def test_unknown_service_and_path_are_404_and_wrong_method_405(authed: Any) -> None:
    status, _, body = authed("POST", "/cds-services/no-such-service", example(_LOW))
    assert status == 404 and "no-such-service" in body["error"]
    assert authed("GET", "/nothing-here")[0] == 404
    assert authed("GET", PV)[0] == 405


# --- authentication ---------------------------------------------------------------------------

def _auth_cases(keys: Keys) -> dict[str, tuple[str | None, str]]:
    aud = PUBLIC + PV
    now = int(time.time())
    claims = {"iss": ISS, "aud": aud, "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())}
    return {
        "no token": (None, "no bearer token"),
        "not Bearer": ("Basic dXNlcjpwYXNz", "not 'Bearer <JWT>'"),
        "malformed token": ("Bearer not.a.jwt", "malformed token"),
        "HS256": ("Bearer " + jwt.encode(claims, "a-shared-secret-of-32-bytes-long!", algorithm="HS256",
                                         headers={"kid": "rsa-1"}), "'HS256' is not accepted"),
        "HS256 with the public key as secret": (
            "Bearer " + f"{_b64({'alg': 'HS256', 'kid': 'rsa-1'})}.{_b64(claims)}.c2ln", "'HS256' is not accepted"),
        "alg not ASCII": ("Bearer " + f"{_b64({'alg': 'RS256é☃', 'kid': 'rsa-1'})}.{_b64(claims)}.c2ln",
                          "is not accepted"),
        "alg none": ("Bearer " + f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", "'none' is not accepted"),
        "unknown issuer": ("Bearer " + token(keys.rsa, "RS256", aud, iss="https://evil.example"), "not trusted"),
        "wrong key": ("Bearer " + token(keys.other_rsa, "RS256", aud), "signature does not verify"),
        "EC token claiming the RSA kid": ("Bearer " + token(keys.ec, "ES256", aud), "does not fit the key"),
        "wrong aud": ("Bearer " + token(keys.rsa, "RS256", PUBLIC + OS), "audience (aud) is not this endpoint"),
        "aud on another host": ("Bearer " + token(keys.rsa, "RS256", "https://elsewhere.example" + PV),
                                "audience (aud) is not this endpoint"),
        "no aud": ("Bearer " + token(keys.rsa, "RS256", None), "required claim 'aud'"),
        "expired": ("Bearer " + token(keys.rsa, "RS256", aud, iat=now - 900, exp=now - 600), "expired"),
        "iat in the future": ("Bearer " + token(keys.rsa, "RS256", aud, iat=now + 600, exp=now + 900),
                              "not valid yet"),
        "exp too far ahead": ("Bearer " + token(keys.rsa, "RS256", aud, exp=now + 86400), "lives too long"),
        "no jti": ("Bearer " + token(keys.rsa, "RS256", aud, jti=None), "required claim 'jti'"),
        "no exp": ("Bearer " + token(keys.rsa, "RS256", aud, exp=None), "required claim 'exp'"),
        "no iat": ("Bearer " + token(keys.rsa, "RS256", aud, iat=None), "required claim 'iat'"),
        "unknown kid": ("Bearer " + token(keys.rsa, "RS256", aud, kid="rsa-9"), "kid names no key"),
        "no kid": ("Bearer " + token(keys.rsa, "RS256", aud, kid=None), "no kid"),
        "kid of another issuer": ("Bearer " + token(keys.jwks_rsa, "RS256", aud, kid="jwk-1"), "kid names no key"),
    }


AUTH_CASES = [  # the tokens are built per test (fresh jti, current time); see _auth_cases
    "no token", "not Bearer", "malformed token", "HS256", "HS256 with the public key as secret", "alg none",
    "alg not ASCII",
    "unknown issuer", "wrong key", "EC token claiming the RSA kid", "wrong aud", "aud on another host", "no aud",
    "expired", "iat in the future", "exp too far ahead", "no jti", "no exp", "no iat", "unknown kid", "no kid",
    "kid of another issuer"]


@pytest.mark.parametrize("case", AUTH_CASES)
def test_every_auth_failure_is_401_with_a_bearer_challenge(server: Server, keys: Keys, case: str) -> None:
    authorization, expected = _auth_cases(keys)[case]
    headers = {"Authorization": authorization} if authorization else {}
    status, answer_headers, body = server.call("POST", PV, example(_LOW), headers=headers)
    assert status == 401, body
    assert answer_headers["www-authenticate"].startswith('Bearer realm="cds-services"')
    assert expected in body["error"]
    assert "BEGIN" not in json.dumps(body) and len(body["error"]) < 300  # no key material, no dump


def test_discovery_and_feedback_need_a_token_too(server: Server) -> None:
    assert server.call("GET", "/cds-services")[0] == 401
    assert server.call("POST", PV + "/feedback", example("feedback.json"))[0] == 401


def test_a_replayed_jti_is_refused(server: Server, keys: Keys) -> None:
    bearer = {"Authorization": "Bearer " + token(keys.rsa, "RS256", PUBLIC + "/cds-services")}
    assert server.call("GET", "/cds-services", headers=bearer)[0] == 200
    status, headers, body = server.call("GET", "/cds-services", headers=bearer)
    assert status == 401 and "already used" in body["error"] and "invalid_token" in headers["www-authenticate"]


@pytest.mark.parametrize("alg, key_name, kid, iss", [
    ("RS256", "rsa", "rsa-1", ISS), ("RS384", "rsa", "rsa-1", ISS), ("PS256", "rsa", "rsa-1", ISS),
    ("ES256", "ec", "ec-1", ISS), ("RS256", "jwks_rsa", "jwk-1", ISS_JWKS)])
def test_valid_asymmetric_tokens_are_accepted(server: Server, keys: Keys, alg: str, key_name: str, kid: str,
                                              iss: str) -> None:
    bearer = token(getattr(keys, key_name), alg, PUBLIC + PV, kid=kid, iss=iss)
    status, _, body = server.call("POST", PV, example(_LOW), headers={"Authorization": f"Bearer {bearer}"})
    assert status == 200 and body["cards"]


def test_trusted_issuer_files_are_checked(tmp_path: Path, keys: Keys) -> None:
    assert set(load_trusted_issuers(keys.trust_file)) == {ISS, ISS_JWKS}
    private = keys.rsa.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
    bad = {
        "not an issuers file": "just text",
        "private key": yaml.safe_dump({"issuers": {ISS: {"keys": {"k": private}}}}),
        "missing PEM file": yaml.safe_dump({"issuers": {ISS: {"keys": {"k": "nowhere.pem"}}}}),
        "symmetric JWK": None,
        "small RSA key": yaml.safe_dump({"issuers": {ISS: {"keys": {"k": _pem(rsa.generate_private_key(65537, 1024))}}}}),
    }
    (tmp_path / "oct.json").write_text(json.dumps({"keys": [{"kty": "oct", "kid": "s", "k": "c2VjcmV0"}]}))
    bad["symmetric JWK"] = yaml.safe_dump({"issuers": {ISS: {"jwks_file": "oct.json"}}})
    for name, text in bad.items():
        file = tmp_path / f"{name}.yaml"
        file.write_text(text or "")
        with pytest.raises(TrustConfigError) as info:
            load_trusted_issuers(file)
        assert "MII" not in str(info.value), name  # no key material in the message


# --- configuration, dev mode, body limit ------------------------------------------------------

@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_dev_no_auth_is_refused_on_a_non_loopback_host(host: str) -> None:
    err = io.StringIO()
    assert main(["serve", "--dev-no-auth", "--host", host], out=io.StringIO(), err=err) == 2
    assert "--dev-no-auth is for local development only" in err.getvalue()


def test_serve_needs_trusted_issuers_and_public_url_without_dev_mode(keys: Keys) -> None:
    err = io.StringIO()
    assert main(["serve", "--trusted-issuers", str(keys.trust_file)], out=io.StringIO(), err=err) == 2
    assert "--public-url" in err.getvalue()
    for config in (CdsConfig(dev_no_auth=True, max_body_bytes=0), CdsConfig(dev_no_auth=True, public_url="cds.org"),
                   CdsConfig(dev_no_auth=True, trusted_issuers=keys.trust_file)):
        with pytest.raises(CdsConfigError):
            check_config(config)
    check_config(CdsConfig(dev_no_auth=True, host="::1"))


def test_dev_mode_warns_at_start_up_and_on_every_request(dev_server: Server, dev_log: _Records) -> None:
    assert any("NO AUTHENTICATION" in r.getMessage() and r.levelno == logging.WARNING for r in dev_log.records)
    before = sum("UNAUTHENTICATED" in r.getMessage() for r in dev_log.records)
    assert dev_server.call("GET", "/cds-services")[0] == 200
    assert dev_server.call("GET", "/cds-services")[0] == 200
    after = [r for r in dev_log.records if "UNAUTHENTICATED" in r.getMessage()]
    assert len(after) == before + 2 and all(r.levelno == logging.WARNING for r in after)


def test_a_body_over_the_limit_is_413(dev_server: Server) -> None:
    feedback = json.dumps(example("feedback.json")).encode()
    assert dev_server.call("POST", PV + "/feedback", raw=feedback)[0] == 200  # under the 4096-byte limit
    status, _, body = dev_server.call("POST", PV, raw=b" " * 5000)
    assert status == 413 and "is 5000 bytes; the limit is 4096" in body["error"]


def test_a_chunked_body_is_cut_off_while_streaming(dev_server: Server) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", dev_server.port, timeout=30)
    try:
        conn.request("POST", PV, body=iter([b" " * 1500] * 4), headers={"Content-Type": "application/json"},
                     encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 413
        assert "exceeds the limit of 4096" in json.loads(response.read())["error"]
    finally:
        conn.close()


# --- feedback and the audit log ---------------------------------------------------------------

BAD_FEEDBACK = {
    "no feedback array": ({"cards": []}, "at least one entry"),
    "empty": ({"feedback": []}, "at least one entry"),
    "bad uuid": ({"feedback": [{"card": "x", "outcome": "overridden", "outcomeTimestamp": "2024-05-03T12:00:00Z"}]},
                 "feedback[0].card"),
    "bad outcome": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "ignored",
                                   "outcomeTimestamp": "2024-05-03T12:00:00Z"}]}, "feedback[0].outcome"),
    "no timestamp": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden"}]},
                     "feedback[0].outcomeTimestamp"),
    "timestamp without zone": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden",
                                              "outcomeTimestamp": "2024-05-03T12:00:00"}]}, "outcomeTimestamp"),
    "override reason on accepted": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "accepted",
                                                   "overrideReason": {"userComment": "x"},
                                                   "outcomeTimestamp": "2024-05-03T12:00:00Z"}]},
                                    "only with outcome 'overridden'"),
    "reason not a Coding": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden",
                                           "overrideReason": {"reason": "because"},
                                           "outcomeTimestamp": "2024-05-03T12:00:00Z"}]}, "expected a Coding"),
    "lone surrogate": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden",
                                      "overrideReason": {"userComment": "\ud800"},
                                      "outcomeTimestamp": "2024-05-03T12:00:00Z"}]}, "not valid Unicode"),
    "unknown key": ({"feedback": [{"card": str(uuid.uuid4()), "outcome": "overridden", "outcom": "x",
                                   "outcomeTimestamp": "2024-05-03T12:00:00Z"}]}, "unknown key(s) outcom"),
}


@pytest.mark.parametrize("case", BAD_FEEDBACK)
def test_malformed_feedback_is_400(authed: Any, case: str) -> None:
    body, expected = BAD_FEEDBACK[case]
    status, _, answer = authed("POST", PV + "/feedback", body)
    assert status == 400
    assert expected in answer["error"] + " " + " ".join(answer.get("problems", []))


def test_feedback_is_recorded_in_a_verifiable_audit_log(authed: Any, server: Server, keys: Keys,
                                                        audit_log: Path) -> None:
    request = example("patient-view-febrile-neutropenia-high-risk.json")
    status, _, answer = authed("POST", PV, request)
    assert status == 200
    feedback = example("feedback.json")
    shown = {c["uuid"]: c["source"].get("topic", {}).get("code") for c in answer["cards"]}
    assert all(f["card"] in shown for f in feedback["feedback"])  # the example names real cards
    # A token for the service URL is accepted on its feedback endpoint too.
    bearer = token(keys.ec, "ES256", PUBLIC + PV, kid="ec-1")
    status, _, body = server.call("POST", PV + "/feedback", feedback, headers={"Authorization": f"Bearer {bearer}"})
    assert status == 200 and body == {"received": 2}

    lines = [json.loads(line) for line in audit_log.read_text().splitlines()]
    cards_line = next(line for line in reversed(lines) if line["event"] == "cards"
                      and line["hook_instance"] == request["hookInstance"])
    evaluation = next(line for line in lines if line["hash"] == cards_line["evaluation"])
    assert evaluation["event"] == "evaluation" and evaluation["seq"] < cards_line["seq"]
    assert cards_line["cards"] == {u: c or _cards.MISSING_KEY for u, c in shown.items()}
    assert cards_line["client"] == f"{ISS} sub=ehr-client-1"
    recorded = [line for line in lines if line["event"] == "feedback"][-2:]
    assert [(r["card"], r["outcome"]) for r in recorded] == [(f["card"], f["outcome"]) for f in feedback["feedback"]]
    assert cards_line["cards"][recorded[0]["card"]] == "fn-obtain-cultures"
    assert recorded[0]["override_reason"]["reason"]["code"] == "already-done"

    out = io.StringIO()
    assert main(["audit", "verify", str(audit_log)], out=out, err=io.StringIO()) == 0, out.getvalue()
    assert "valid" in out.getvalue()


def test_the_service_is_exported_lazily() -> None:
    code = "import sys, engine; assert 'starlette' not in sys.modules; assert engine.create_app and engine.CdsConfig"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                          check=False).returncode == 0
    assert "create_app" in engine.__all__ and engine.create_app is create_app


def test_audit_record_refuses_lines_verify_would_reject(tmp_path: Path) -> None:
    log = engine.AuditLog(tmp_path / "a.log")
    with pytest.raises(ValueError):
        log.record("evaluation", {})
    with pytest.raises(ValueError):
        log.record("feedback", {"card": "x"})
    assert not (tmp_path / "a.log").exists()


# --- cards ------------------------------------------------------------------------------------

def test_every_catalogue_code_has_a_summary_under_140_characters(guideline: Any) -> None:
    context = _cards.CardContext("s", "h", "p")
    for code, rec in guideline.content.catalogue.items():
        result = RecommendationResult(code, rec.kind, rec.urgency, rec.title, rec.text, "r", ("r",), (), ())
        card = _cards.recommendation_card(result, guideline.info, context)
        assert 0 < len(card["summary"]) < 140, code
        assert card["summary"] == " ".join(rec.title.split()), f"{code}: title cut"


def test_the_missing_card_summary_fits_when_everything_is_missing(guideline: Any) -> None:
    result = guideline.evaluate({})
    card = _cards.missing_card(result.missing, guideline.content, result.guideline, _cards.CardContext("s", "h", "p"))
    assert len(card["summary"]) < 140 and card["summary"].endswith("more")
    assert card["summary"].startswith("Find out next: ")


@pytest.mark.parametrize("kind, urgency, expected", [
    ("do", "immediate", "critical"), ("do-not", "immediate", "critical"), ("do", "urgent", "warning"),
    ("do-not", "routine", "warning"), ("consider", "routine", "info"), ("info", "urgent", "warning"),
    ("do", "routine", "info")])
def test_indicator(kind: str, urgency: str, expected: str) -> None:
    rec = RecommendationResult("c", kind, urgency, "t", "x", "r", (), (), ())
    assert _cards.indicator(rec) == expected


def test_summary_is_cut_at_a_word_and_markdown_is_literal() -> None:
    cut = _cards.summary("word " * 60)
    assert cut.endswith("word…") and len(cut) < 140
    assert _cards.summary("  one\n two ") == "one two"
    assert _cards.md("10*9/L < 0.5 and *x* [1]") == "10\\*9/L \\< 0.5 and \\*x\\* \\[1\\]"
    assert _cards.md("febrile_neutropenia _x") == "febrile_neutropenia \\_x"
    assert _cards.md("- a") == "\\- a" and _cards.md("1. a") == "1\\. a"


def test_example_requests_are_current() -> None:
    build = _load_script("cds_build", CDS / "build.py")
    for file, content in build.files().items():
        assert (CDS / file).read_text(encoding="utf-8") == build.text(content), \
            f"examples/cds/{file} is stale: run python examples/cds/build.py"


# --- the real command, and load -----------------------------------------------------------------

def test_guideline_serve_subprocess_with_auth_under_concurrent_load(tmp_path: Path, keys: Keys) -> None:
    log = tmp_path / "audit.log"
    proc = cds_load.start_server(["--public-url", PUBLIC, "--trusted-issuers", str(keys.trust_file),
                                  "--audit-log", str(log)], tmp_path / "server.log")
    try:
        body = json.dumps(example("patient-view-febrile-neutropenia-high-risk.json")).encode()
        requests = 400
        tokens = [token(keys.ec, "ES256", PUBLIC + PV, kid="ec-1") for _ in range(requests + 20)]
        cds_load.run_load(proc.host, proc.port, PV, body, requests=20, concurrency=1,
                          headers=lambda i: {"Authorization": f"Bearer {tokens[requests + i]}"})  # warm-up
        stats = cds_load.run_load(proc.host, proc.port, PV, body, requests=requests, concurrency=8,
                                  headers=lambda i: {"Authorization": f"Bearer {tokens[i]}"})
    finally:
        output = proc.stop()
    print(f"\nCDS load (JWT ES256 + audit log, subprocess server): {stats.line()}")
    assert stats.statuses == {200: requests}
    assert stats.seconds < 120  # a sanity bound only
    assert "Uvicorn running on" in output and "trusted issuer https://ehr.example.org" in output
    out = io.StringIO()
    assert main(["audit", "verify", str(log)], out=out, err=io.StringIO()) == 0
    assert f"{2 * (requests + 20)} line(s)" in out.getvalue()
