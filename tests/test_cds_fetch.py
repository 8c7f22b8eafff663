"""The CDS service fetching an absent prefetch from the EHR's FHIR server (fhirServer + fhirAuthorization).

A fake FHIR server (http.server on 127.0.0.1, in a thread) answers the Patient read and the
Observation search from examples/fhir, exactly as examples/cds/build.py builds the prefetch, and
records every request. It can be told to fail in each way a real server can. The CDS service is
the real one over HTTP (uvicorn in a thread, JWT authentication), as in test_cds.py.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import json
import math
import socket
import ssl
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# ruff: noqa: F811  (keys and server are fixtures of test_cds, taken as arguments here)
from test_cds import (  # noqa: F401  (keys, audit_log and server are fixtures used here)
    CDS,
    EXAMPLES,
    FHIR,
    PUBLIC,
    PV,
    Keys,
    Server,
    _load_script,
    audit_log,
    example,
    keys,
    server,
    start,
    stop,
    token,
)

from engine.cds import transport as _transport
from engine.cds.config import CdsConfig, CdsConfigError, check_config
from engine.cds.discovery import fill_template, prefetch_templates
from engine.cds.fhir_fetch import (
    FetchError,
    FetchOptions,
    FhirServer,
    FhirSession,
    relative_url,
)
from engine.cli import main

build = _load_script("cds_build_for_fetch", CDS / "build.py")
ACCESS_TOKEN = "opaque-fhir-access-token-0123456789"
AUTHORIZATION = {"access_token": ACCESS_TOKEN, "token_type": "Bearer", "expires_in": 300,
                 "scope": "patient/Patient.read patient/Observation.read", "subject": "neutropenia-cds"}
FETCH_TIMEOUT = 1.0  # the fetching server's limit, so that the slow cases stay short


# --- the fake FHIR server ---------------------------------------------------------------------

@dataclass
class Seen:
    path: str
    query: str                      # raw, as sent
    authorization: str | None
    accept: str | None

    @property
    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)


@dataclass
class FakeFhir:
    """Patients and Observations of examples/fhir; `mode` makes it misbehave (reset per test)."""

    httpd: ThreadingHTTPServer
    scheme: str = "http"
    requests: list[Seen] = field(default_factory=list)
    mode: dict[str, Any] = field(default_factory=dict)
    pages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def base(self) -> str:
        return self.origin + "/fhir"

    def paged(self, searchset: dict[str, Any], size: int, next_origin: str | None = None) -> dict[str, Any]:
        """The first page of `searchset` in pages of `size`; the next ones are served at /fhir?_getpages=."""
        entries = searchset["entry"]
        key = f"search-{len(self.pages)}"
        chunks = [entries[i:i + size] for i in range(0, len(entries), size)] or [[]]
        pages = []
        for i, chunk in enumerate(chunks):
            page = {**searchset, "entry": chunk,
                    "link": [{"relation": "self", "url": f"{self.base}?_getpages={key}&_page={i}"}]}
            if i + 1 < len(chunks):
                target = (next_origin or self.origin) + f"/fhir?_getpages={key}&_page={i + 1}"
                page["link"].append({"relation": "next", "url": target})
            pages.append(page)
        self.pages[key] = pages
        return pages[0]


def _examples() -> dict[str, dict[str, Any]]:
    """Patient id -> the example Bundle it comes from."""
    out = {}
    for name in EXAMPLES:
        bundle = json.loads((FHIR / f"{name}.json").read_text(encoding="utf-8"))
        patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        out[patient["id"]] = bundle
    return out


BUNDLES = _examples()


class _Handler(BaseHTTPRequestHandler):
    server: Any

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/fhir+json",
              length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode())

    def do_GET(self) -> None:
        fake: FakeFhir = self.server.fake
        parts = urlsplit(self.path)
        fake.requests.append(Seen(parts.path, parts.query, self.headers.get("Authorization"),
                                  self.headers.get("Accept")))
        mode = fake.mode
        if (mode.get("on") is None or mode["on"] in parts.path) and self._misbehave(mode):
            return
        self._answer(fake, parts.path, parse_qs(parts.query))

    def _misbehave(self, mode: dict[str, Any]) -> bool:
        """True when the mode answered the request instead of the data."""
        try:
            if "status" in mode:
                self._json(mode["status"], {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "processing"}]})
            elif "redirect" in mode:
                self.send_response(302)
                self.send_header("Location", mode["redirect"])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif "body" in mode:
                self._send(200, mode["body"], mode.get("content_type", "text/html"))
            elif "json" in mode:
                self._json(200, mode["json"])
            elif "huge" in mode:  # declared: refused before it is read
                self._send(200, b" " * 65536, length=mode["huge"])
                while True:
                    self.wfile.write(b" " * 65536)
            elif "huge_stream" in mode:  # no Content-Length: cut off while it is read
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Connection", "close")
                self.end_headers()
                while True:
                    self.wfile.write(b" " * 65536)
            elif "slow" in mode:
                time.sleep(mode["slow"])
                return False
            elif "dribble" in mode:  # headers at once, then a byte every so often: never complete in time
                self.send_response(200)
                self.send_header("Content-Type", "application/fhir+json")
                self.send_header("Content-Length", "1000")
                self.end_headers()
                for _ in range(1000):
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(mode["dribble"])
            elif "dribble_headers" in mode:  # the status line, then a header a byte at a time
                self.wfile.write(b"HTTP/1.0 200 OK\r\nX-Slow: ")
                for _ in range(1000):
                    self.wfile.flush()
                    time.sleep(mode["dribble_headers"])
                    self.wfile.write(b"x")
            elif "cut_off" in mode:
                self._send(200, b'{"resourceType": "Pat', length=1000)
            else:
                return False
        except OSError:  # the client gave up: that is the point of most modes
            pass
        return True

    def _answer(self, fake: FakeFhir, path: str, query: dict[str, list[str]]) -> None:
        if path.startswith("/fhir/Patient/"):
            pid = path.rsplit("/", 1)[1]
            if pid not in BUNDLES:
                self._json(404, {"resourceType": "OperationOutcome", "issue": [
                    {"severity": "error", "code": "not-found"}]})
                return
            patient = build.prefetch(BUNDLES[pid], set())["patient"]
            self._json(200, {**patient, "id": fake.mode.get("patient_id", pid)})
        elif path == "/fhir/Observation":
            pid = query["patient"][0]
            codes = {c.split("|", 1)[1] for c in query["code"][0].split(",") if c.startswith("http://loinc.org|")}
            searchset = build.prefetch(BUNDLES[pid], codes)["observations"] if pid in BUNDLES else {
                "resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
            if "page_size" in fake.mode:
                searchset = fake.paged(searchset, fake.mode["page_size"], fake.mode.get("next_origin"))
            self._json(200, searchset)
        elif path == "/fhir" and "_getpages" in query:
            self._json(200, fake.pages[query["_getpages"][0]][int(query["_page"][0])])
        else:
            self._json(404, {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found"}]})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # failed TLS handshakes, resets
        pass


def start_fake(tls: ssl.SSLContext | None = None) -> FakeFhir:
    httpd = _QuietServer(("127.0.0.1", 0), _Handler)
    if tls is not None:
        httpd.socket = tls.wrap_socket(httpd.socket, server_side=True)
    fake = FakeFhir(httpd, "https" if tls else "http")
    httpd.fake = fake  # type: ignore[attr-defined]
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return fake


def _reset(fake: FakeFhir) -> FakeFhir:
    fake.requests.clear()
    fake.mode.clear()
    fake.pages.clear()
    return fake


@pytest.fixture(scope="module")
def fakes() -> Iterator[tuple[FakeFhir, FakeFhir]]:
    """The EHR's FHIR server, and another one that must never be called."""
    pair = start_fake(), start_fake()
    yield pair
    for fake in pair:
        fake.httpd.shutdown()
        fake.httpd.server_close()


@pytest.fixture
def fhir(fakes: tuple[FakeFhir, FakeFhir]) -> FakeFhir:
    return _reset(fakes[0])


@pytest.fixture
def elsewhere(fakes: tuple[FakeFhir, FakeFhir]) -> FakeFhir:
    return _reset(fakes[1])


# --- the CDS service that may fetch over http ---------------------------------------------------

@pytest.fixture(scope="module")
def fetch_server(keys: Keys) -> Iterator[Server]:
    running = start(CdsConfig(public_url=PUBLIC, trusted_issuers=keys.trust_file, allow_http_fhir=True,
                              fhir_timeout=FETCH_TIMEOUT))
    yield running
    stop(running)


Call = Callable[..., tuple[int, dict[str, str], Any]]


def _authed(running: Server, keys: Keys) -> Call:
    def call(body: Any, path: str = PV) -> tuple[int, dict[str, str], Any]:
        bearer = token(keys.rsa, "RS256", PUBLIC + path)
        return running.call("POST", path, body, headers={"Authorization": f"Bearer {bearer}"})

    return call


@pytest.fixture
def post(fetch_server: Server, keys: Keys) -> Call:
    return _authed(fetch_server, keys)


def request(fake: FakeFhir, name: str = "febrile-neutropenia-low-risk", drop: tuple[str, ...] = ("patient",
            "observations"), authorization: Any = AUTHORIZATION, server: Any = None) -> dict[str, Any]:
    """The example hook call without the prefetch keys `drop`, with fhirServer (and fhirAuthorization)."""
    body = example(f"patient-view-{name}.json")
    for key in drop:
        del body["prefetch"][key]
    if not body["prefetch"]:
        del body["prefetch"]
    body["fhirServer"] = fake.base if server is None else server
    if authorization is not None:
        body["fhirAuthorization"] = authorization
    return body


def templates() -> dict[str, str]:
    import engine

    return prefetch_templates(engine.load().content)


# --- fetching what the prefetch lacks ---------------------------------------------------------

@pytest.mark.parametrize("name", EXAMPLES)
def test_absent_prefetch_is_fetched_with_the_template_queries_and_gives_the_same_cards(post: Call, fhir: FakeFhir,
                                                                                      name: str) -> None:
    status, _, expected = post(example(f"patient-view-{name}.json"))
    assert status == 200 and fhir.requests == []
    status, _, body = post(request(fhir, name))
    assert status == 200, body
    assert body["cards"] == expected["cards"]
    pid = example(f"patient-view-{name}.json")["context"]["patientId"]
    patient, search = fhir.requests
    assert patient.path == f"/fhir/Patient/{pid}" and patient.query == ""
    # The same requests as the discovery document's templates, the code list included.
    assert "/".join(patient.path.split("/")[2:]) == fill_template(templates()["patient"], pid)
    assert f"{search.path[6:]}?{unquote(search.query)}" == fill_template(templates()["observations"], pid)
    assert search.params == {"patient": [pid], "code": [templates()["observations"].split("code=", 1)[1]]}
    assert "%7C" in search.query  # `|` is percent-encoded; `,` separates the codes
    for seen in fhir.requests:
        assert seen.authorization == f"Bearer {ACCESS_TOKEN}" and seen.accept == "application/fhir+json"
    notes = body["extension"]["neutropenia"]["notes"]
    assert f"prefetch.patient fetched from fhirServer (GET Patient/{pid})" in notes
    entries = len(example(f"patient-view-{name}.json")["prefetch"]["observations"]["entry"])
    assert f"prefetch.observations fetched from fhirServer: {entries} entries in 1 page(s)" in notes


@pytest.mark.parametrize("drop, path", [(("patient",), "/fhir/Patient/fn-low-risk-0001"),
                                        (("observations",), "/fhir/Observation")])
def test_only_the_absent_key_is_fetched(post: Call, fhir: FakeFhir, drop: tuple[str, ...], path: str) -> None:
    expected = post(example("patient-view-febrile-neutropenia-low-risk.json"))[2]["cards"]
    status, _, body = post(request(fhir, drop=drop))
    assert status == 200 and body["cards"] == expected
    assert [seen.path for seen in fhir.requests] == [path]


def test_a_complete_prefetch_never_calls_the_fhir_server(post: Call, fhir: FakeFhir) -> None:
    status, _, _ = post(request(fhir, drop=()))
    assert status == 200
    nulls = request(fhir, "incomplete-data", drop=())
    nulls["prefetch"] = {"patient": None, "observations": None}  # null: the EHR has no data
    status, _, body = post(nulls)
    assert status == 200 and "prefetch.patient is null: no Patient data" in body["extension"]["neutropenia"]["notes"]
    assert fhir.requests == []


def test_without_fhir_authorization_no_token_is_sent(post: Call, fhir: FakeFhir) -> None:
    status, _, _ = post(request(fhir, authorization=None))
    assert status == 200 and len(fhir.requests) == 2
    assert all(seen.authorization is None for seen in fhir.requests)


def test_a_paged_search_is_followed_to_its_last_page(post: Call, fhir: FakeFhir) -> None:
    name = "febrile-neutropenia-high-risk"
    expected = post(example(f"patient-view-{name}.json"))[2]["cards"]
    fhir.mode["page_size"] = 2
    status, _, body = post(request(fhir, name))
    assert status == 200, body
    assert body["cards"] == expected
    pages = math.ceil(9 / 2)
    assert [s.path for s in fhir.requests] == ["/fhir/Patient/fn-high-risk-0002", "/fhir/Observation",
                                               *["/fhir"] * (pages - 1)]
    assert all(s.authorization == f"Bearer {ACCESS_TOKEN}" for s in fhir.requests)
    assert f"prefetch.observations fetched from fhirServer: 9 entries in {pages} page(s)" in \
        body["extension"]["neutropenia"]["notes"]


def test_a_paged_prefetch_is_completed_from_the_fhir_server(post: Call, fhir: FakeFhir) -> None:
    name = "febrile-neutropenia-high-risk"
    full = example(f"patient-view-{name}.json")
    expected = post(full)[2]["cards"]
    body = request(fhir, name, drop=())
    body["prefetch"]["observations"] = fhir.paged(full["prefetch"]["observations"], 4)  # what the EHR sent
    status, _, answer = post(body)
    assert status == 200, answer
    assert answer["cards"] == expected
    assert [(s.path, s.params["_page"]) for s in fhir.requests] == [("/fhir", ["1"]), ("/fhir", ["2"])]
    assert "prefetch.observations was paged: 5 more entries fetched from fhirServer in 2 page(s)" in \
        answer["extension"]["neutropenia"]["notes"]


# --- failures: 412 with the reason ------------------------------------------------------------

FAILURES: dict[str, tuple[dict[str, Any], str]] = {
    "401": ({"status": 401}, ("prefetch patient could not be obtained from fhirServer: GET Patient/fn-low-risk-0001: "
                              "fhirServer answered 401 Unauthorized: the access token was refused")),
    "403 on the search": ({"status": 403, "on": "Observation"},
                          ("prefetch observations could not be obtained from fhirServer: GET Observation?patient="
                           "fn-low-risk-0001&code=http://loinc.org|751-8,… (15 values): fhirServer answered 403 "
                           "Forbidden")),
    "500": ({"status": 500}, "answered HTTP 500 (a server error)"),
    "503 on the search": ({"status": 503, "on": "Observation"}, "answered HTTP 503"),
    "non-JSON": ({"body": b"<html>Service unavailable</html>"}, "fhirServer's answer is not JSON"),
    "not UTF-8": ({"body": b"\xff\xfe{", "content_type": "application/fhir+json"}, "answer is not JSON"),
    "duplicate key": ({"body": b'{"resourceType": "Patient", "resourceType": "Bundle"}'}, "a key given twice"),
    "nested 100,000 deep": ({"body": b"[" * 100_000 + b"]" * 100_000, "content_type": "application/fhir+json"},
                            "nested more than 64 deep"),
    "a 5,000-digit number": ({"body": b'{"resourceType": "Patient", "id": ' + b"9" * 5000 + b"}",
                              "content_type": "application/fhir+json"}, "at id: a number of 5000 characters"),
    "a lone surrogate": ({"body": b'{"resourceType": "Patient", "id": "\\ud800"}',
                          "content_type": "application/fhir+json"}, "at id: text that is not valid Unicode"),
    "search answers a Patient": ({"json": {"resourceType": "Patient", "id": "x"}, "on": "Observation"},
                                 "answered 'Patient', not a Bundle"),
    "read answers a Bundle": ({"json": {"resourceType": "Bundle", "type": "searchset"}, "on": "Patient"},
                              "answered 'Bundle', not a Patient"),
    "not a searchset": ({"json": {"resourceType": "Bundle", "type": "collection"}, "on": "Observation"},
                        "a Bundle of type 'collection', not a searchset"),
    "another patient": ({"patient_id": "someone-else"}, "answered Patient/someone-else, another patient"),
    "huge, declared": ({"huge": 50 << 20}, "exceed the limit of 1048576 bytes for the data of one hook call (this answer is 52428800 bytes)"),
    "huge, streamed": ({"huge_stream": True}, "answers exceed the limit of 1048576 bytes"),
    "slow": ({"slow": 3 * FETCH_TIMEOUT}, f"gave no complete answer within {FETCH_TIMEOUT:g} s, the time allowed"),
    "dribbling": ({"dribble": 0.2}, f"gave no complete answer within {FETCH_TIMEOUT:g} s"),
    # A byte just before each socket timeout, or a header a byte at a time: the watchdog ends it on time.
    "dribbling slower": ({"dribble": 0.8 * FETCH_TIMEOUT}, f"gave no complete answer within {FETCH_TIMEOUT:g} s"),
    "dribbling headers": ({"dribble_headers": 0.2}, f"gave no complete answer within {FETCH_TIMEOUT:g} s"),
    "cut off": ({"cut_off": True}, "fhirServer's answer was cut off"),
    "slow search after the read": ({"slow": 3 * FETCH_TIMEOUT, "on": "Observation"},
                                   "prefetch observations could not be obtained"),
}


@pytest.mark.parametrize("case", FAILURES)
def test_every_fhir_server_failure_is_412_with_the_reason(post: Call, fhir: FakeFhir, case: str) -> None:
    mode, expected = FAILURES[case]
    fhir.mode.update(mode)
    began = time.monotonic()
    status, _, body = post(request(fhir))
    took = time.monotonic() - began
    assert status == 412, body
    assert expected in body["error"]
    assert body["error"].startswith("prefetch ") and ACCESS_TOKEN not in json.dumps(body)
    assert took < FETCH_TIMEOUT + 0.5  # the limit holds for the whole call, however the server misbehaves


def test_an_unknown_patient_is_412_saying_so(post: Call, fhir: FakeFhir) -> None:
    body = request(fhir)
    body["context"]["patientId"] = "nobody-0000"
    status, _, answer = post(body)
    assert status == 412
    assert "fhirServer has no Patient/nobody-0000 (GET Patient/nobody-0000 answered 404): there is no such " \
           "patient" in answer["error"]


def test_a_redirect_is_not_followed_and_the_token_goes_nowhere_else(post: Call, fhir: FakeFhir,
                                                                   elsewhere: FakeFhir) -> None:
    fhir.mode["redirect"] = elsewhere.base + "/Patient/fn-low-risk-0001"
    status, _, body = post(request(fhir))
    assert status == 412 and "redirect (HTTP 302): redirects are not followed" in body["error"]
    assert elsewhere.requests == []


def test_a_next_link_to_another_host_is_refused(post: Call, fhir: FakeFhir, elsewhere: FakeFhir) -> None:
    fhir.mode.update(page_size=2, next_origin="http://evil.example:8080")
    status, _, body = post(request(fhir))
    assert status == 412 and "the 'next' link points to evil.example:8080, not to fhirServer's origin" in body["error"]
    fhir.mode.update(next_origin=elsewhere.origin)  # another port on the same machine is another origin too
    status, _, body = post(request(fhir))
    assert status == 412 and f"points to 127.0.0.1:{elsewhere.httpd.server_address[1]}" in body["error"]
    assert elsewhere.requests == []
    # The same for a next link in the EHR's own prefetch page.
    sent = request(fhir, drop=())
    sent["prefetch"]["observations"]["link"] = [{"relation": "next", "url": elsewhere.base + "?page=2"}]
    status, _, body = post(sent)
    assert status == 412 and "prefetch the other pages of observations could not be obtained" in body["error"]
    assert elsewhere.requests == []


def test_a_closed_port_is_412(post: Call, fhir: FakeFhir) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status, _, body = post(request(fhir, server=f"http://127.0.0.1:{port}/fhir"))
    assert status == 412 and "could not connect to fhirServer" in body["error"]


UNUSABLE: dict[str, tuple[dict[str, Any], str]] = {
    "token_type MAC": ({"authorization": {**AUTHORIZATION, "token_type": "MAC"}},
                       "fhirAuthorization.token_type is 'MAC': only Bearer tokens are supported"),
    "no access_token": ({"authorization": {"token_type": "Bearer"}}, "fhirAuthorization.access_token is missing"),
    "a token with a line break": ({"authorization": {**AUTHORIZATION, "access_token": "a\r\nX-Evil: 1"}},
                                  "access_token is missing or not a bearer token"),
    "fhirAuthorization not an object": ({"authorization": "Bearer x"}, "fhirAuthorization is not an object"),
    "not a URL": ({"server": 42}, "fhirServer is not a URL"),
    "ftp": ({"server": "ftp://127.0.0.1/fhir"}, "is not an absolute https URL"),
    "credentials in the URL": ({"server": "http://user:pw@127.0.0.1:1/fhir"}, "without credentials"),
    "a query": ({"server": "http://127.0.0.1:1/fhir?x=1"}, "without credentials, query or fragment"),
    "not ASCII": ({"server": "http://127.0.0.1:1/fh€r"}, "is not a URL: visible ASCII only"),
    "a space": ({"server": "http://exa mple/fhir"}, "is not a URL: visible ASCII only"),
    "an IPv6 host without its bracket": ({"server": "http://[::1/fhir"}, "is not a valid URL (its host)"),
    "a host label over 63 characters": ({"server": "http://" + "a" * 64 + ".example/fhir"},
                                        "is not a valid URL (its host)"),
}


@pytest.mark.parametrize("case", UNUSABLE)
def test_an_unusable_fhir_server_or_authorization_is_412(post: Call, fhir: FakeFhir, case: str) -> None:
    changes, expected = UNUSABLE[case]
    status, _, body = post(request(fhir, **changes))
    assert status == 412, body
    assert body["error"].startswith("required prefetch patient, observations not given, and fhirServer cannot be "
                                    "used: ")
    assert expected in body["error"]
    assert fhir.requests == []


def test_http_is_refused_without_allow_http_fhir(server: Server, keys: Keys, fhir: FakeFhir) -> None:
    status, _, body = _authed(server, keys)(request(fhir))  # test_cds's server: https only
    assert status == 412
    assert f"fhirServer {fhir.base} is not https: the access token and the patient's data would travel " \
           "unencrypted" in body["error"] and "--allow-http-fhir" in body["error"]
    assert fhir.requests == []


# --- https ------------------------------------------------------------------------------------

@dataclass
class Tls:
    server: ssl.SSLContext
    trusting: ssl.SSLContext  # a client context that trusts the test certificate


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return Tls(server, ssl.create_default_context(cafile=str(folder / "cert.pem")))


@pytest.fixture
def https_fhir(tls: Tls) -> Iterator[FakeFhir]:
    fake = start_fake(tls.server)
    yield fake
    fake.httpd.shutdown()
    fake.httpd.server_close()


def test_https_with_a_trusted_certificate_works_and_an_untrusted_one_is_412(
        server: Server, keys: Keys, post: Call, https_fhir: FakeFhir, tls: Tls, monkeypatch: pytest.MonkeyPatch
) -> None:
    post_https_only = _authed(server, keys)  # the https-only server of test_cds
    status, _, body = post_https_only(request(https_fhir))
    assert status == 412 and "fhirServer's TLS certificate was not accepted" in body["error"]
    assert https_fhir.requests == []  # nothing, the token least of all, was sent before the check
    monkeypatch.setattr(_transport, "_tls", lambda: tls.trusting)
    expected = post_https_only(example("patient-view-febrile-neutropenia-low-risk.json"))[2]["cards"]
    status, _, body = post_https_only(request(https_fhir))
    assert status == 200 and body["cards"] == expected
    assert [s.authorization for s in https_fhir.requests] == [f"Bearer {ACCESS_TOKEN}"] * 2
    https_fhir.mode["dribble"] = 0.8 * FETCH_TIMEOUT  # the watchdog cuts a TLS connection on time too
    began = time.monotonic()
    status, _, body = post(request(https_fhir))
    assert status == 412 and "gave no complete answer within" in body["error"]
    assert time.monotonic() - began < FETCH_TIMEOUT + 0.5


# --- the client on its own, the configuration ---------------------------------------------------

def test_the_page_cap_and_the_byte_budget_hold_across_pages(fhir: FakeFhir) -> None:
    relative = fill_template(templates()["observations"], "fn-low-risk-0001")
    fhir.mode["page_size"] = 1  # 10 pages
    target = FhirServer(fhir.base, None)
    with pytest.raises(FetchError, match="the search has more than 3 pages; not read"):
        FhirSession(target, FetchOptions(max_pages=3)).search(relative)
    bundle, pages = FhirSession(target, FetchOptions(max_pages=10)).search(relative)
    assert pages == 10 and len(bundle["entry"]) == 10 and "link" not in bundle
    one_page = len(json.dumps(fhir.pages["search-1"][0]))
    with pytest.raises(FetchError, match="exceed the limit of"):  # each page is small; together they are not
        FhirSession(target, FetchOptions(max_bytes=3 * one_page)).search(relative)


def test_query_encoding_and_templates() -> None:
    assert relative_url("https://ehr.example.org/fhir", "Observation?patient=p-1&code=http://loinc.org|751-8,"
                        "http://loinc.org|26499-4") == ("https://ehr.example.org/fhir/Observation?patient=p-1&code="
                                                        "http://loinc.org%7C751-8,http://loinc.org%7C26499-4")
    assert relative_url("https://ehr.example.org/fhir", "Patient/p-1") == "https://ehr.example.org/fhir/Patient/p-1"
    assert fill_template("Patient/{{context.patientId}}", "p-1") == "Patient/p-1"
    with pytest.raises(ValueError):
        fill_template("Encounter/{{context.encounterId}}", "p-1")


def test_fetch_configuration() -> None:
    assert CdsConfig().fhir_timeout == 5.0 and CdsConfig().allow_http_fhir is False
    assert CdsConfig(max_body_bytes=1000).fetch_options().max_bytes == 1000
    for config in (CdsConfig(dev_no_auth=True, fhir_timeout=0), CdsConfig(dev_no_auth=True, fhir_max_pages=0)):
        with pytest.raises(CdsConfigError):
            check_config(config)
    err = io.StringIO()  # the flag is known to the command (the host is what is refused here)
    assert main(["serve", "--dev-no-auth", "--allow-http-fhir", "--host", "0.0.0.0"], out=io.StringIO(),
                err=err) == 2
    assert "--dev-no-auth is for local development only" in err.getvalue()


# --- what a fetch costs -----------------------------------------------------------------------

def test_fetch_overhead_against_a_local_fhir_server(post: Call, fhir: FakeFhir) -> None:
    name = "febrile-neutropenia-high-risk"
    full, fetching = example(f"patient-view-{name}.json"), request(fhir, name)

    def times(body: dict[str, Any], n: int = 30) -> list[float]:
        out = []
        for _ in range(n):
            began = time.perf_counter()
            assert post(body)[0] == 200
            out.append(1000 * (time.perf_counter() - began))
        return out

    times(full, 5), times(fetching, 5)  # warm-up
    with_prefetch, with_fetch = times(full), times(fetching)
    p50 = statistics.median(with_fetch) - statistics.median(with_prefetch)
    print(f"\nhook call p50: prefetch {statistics.median(with_prefetch):.1f} ms, fetched from a local FHIR "
          f"server {statistics.median(with_fetch):.1f} ms (2 requests): overhead {p50:.1f} ms")
    assert p50 < 500  # a sanity bound only
