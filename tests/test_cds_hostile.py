"""Hostile and broken requests to the CDS Hooks service: a clear 4xx, bounded time, never a 500 or a hang.

The body checks run on the core without HTTP (fast); the timeouts and the IPv6 bind over real
sockets, against the uvicorn configuration `guideline serve` uses (engine/cds/server.py).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from engine.cds.app import create_app
from engine.cds.body import parse_json
from engine.cds.config import CdsConfig, bind_address, is_loopback
from engine.cds.hooks import CdsCore
from engine.cds.prefetch import MAX_ENTRIES
from engine.cds.requests import MAX_EXTENSION_FACTS, MAX_PROBLEMS, RequestError
from engine.cds.server import LINGER, uvicorn_config
from engine.cds.strict_json import MAX_DEPTH, MAX_NUMBER_CHARS

ROOT = Path(__file__).resolve().parent.parent
PV = "/cds-services/neutropenia-patient-view"
EXAMPLE = json.loads((ROOT / "examples" / "cds" / "patient-view-incomplete-data.json").read_text(encoding="utf-8"))


def _trickle(sock: socket.socket, data: bytes, *, every: float, limit: float) -> tuple[bytes, float]:
    """Send `data` about every `every` seconds, collecting the answer, until the server closes the
    connection or `limit` seconds pass; (the answer, the seconds it took)."""
    started, answer = time.monotonic(), b""
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            sock.sendall(data)
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        except TimeoutError:
            continue
        except OSError:
            break
    return answer, time.monotonic() - started


@pytest.fixture(scope="module")
def core() -> CdsCore:
    return CdsCore(engine.load())


def call(core: CdsCore, body: bytes) -> tuple[int, dict[str, Any]]:
    """(status, JSON body) as the app would answer: 200 with cards or the RequestError's status."""
    try:
        return 200, core.call(core.service("neutropenia-patient-view"), body, "test")
    except RequestError as exc:
        return exc.http_status, exc.body()


def with_facts(raw: str) -> bytes:
    """The example request with `raw` (JSON text, not re-encoded) as its extension facts."""
    data = json.loads(json.dumps(EXAMPLE))
    data["extension"] = {"neutropenia": {"facts": "@FACTS@", "asOf": "2024-05-03"}}
    return json.dumps(data).replace('"@FACTS@"', raw).encode()


# --- the body as JSON -------------------------------------------------------------------------

@pytest.mark.parametrize("body, expected", [
    (b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}", f"nested more than {MAX_DEPTH} deep"),
    (with_facts("[" * 100_000 + "]" * 100_000), f"nested more than {MAX_DEPTH} deep"),
    (with_facts('{"anc": ' + "[" * 70 + "]" * 70 + "}"), "at extension.neutropenia.facts.anc[0][0][0]"),
    (with_facts('{"anc": ' + "9" * 400 + "}"), "at extension.neutropenia.facts.anc: a number of 400 characters"),
    (with_facts('{"anc": ' + "9" * 5000 + "}"), "a number of 5000 characters"),
    (with_facts('{"anc": 1e400}'), "the number 1e400 is out of range"),
    (with_facts('{"anc": 0.' + "1" * 300 + "}"), "a number of 302 characters"),
    (with_facts('{"anc": NaN}'), "at extension.neutropenia.facts.anc: NaN is not a JSON number"),
    (with_facts('{"anc": -Infinity}'), "-Infinity is not a JSON number"),
])
def test_a_hostile_body_is_a_400_naming_the_problem(core: CdsCore, body: bytes, expected: str) -> None:
    status, answer = call(core, body)
    assert status == 400 and expected in answer["error"], answer


@pytest.mark.parametrize("where", ["hookInstance", "context.patientId", "extension.neutropenia.facts.tumor_type",
                                   "prefetch.observations.entry[0].resource.id", "fhirServer"])
def test_a_lone_surrogate_anywhere_is_a_400_naming_it(core: CdsCore, where: str) -> None:
    data: Any = json.loads(json.dumps(EXAMPLE))
    data["extension"] = {"neutropenia": {"facts": {"tumor_type": "solid"}}}
    node, *steps = [data, *where.replace("[0]", ".0").split(".")]
    for step in steps[:-1]:
        node = node[int(step)] if step.isdigit() else node[step]
    node[steps[-1]] = "\ud800"  # a JSON \\ud800 escape: valid JSON, not Unicode text
    status, answer = call(core, json.dumps(data).encode())
    assert status == 400 and answer["error"] == f"malformed JSON at {where}: text that is not valid Unicode (a lone " \
        "surrogate escape such as \\ud800)"


def test_a_lone_surrogate_in_a_key_is_a_400(core: CdsCore) -> None:
    status, answer = call(core, with_facts('{"\\ud800": 1}'))
    assert status == 400 and "at extension.neutropenia.facts: a key that is not valid Unicode" in answer["error"]


def test_a_key_given_twice_is_named(core: CdsCore) -> None:
    status, answer = call(core, with_facts('{"anc": 0.3, "anc": 2.0}'))
    assert status == 400 and answer["error"] == "malformed JSON: a key given twice in the same object: anc"


def test_more_entries_than_any_real_prefetch_are_refused_before_reading(core: CdsCore) -> None:
    data: Any = json.loads(json.dumps(EXAMPLE))
    data["prefetch"]["observations"]["entry"] += [{}] * MAX_ENTRIES
    started = time.process_time()
    status, answer = call(core, json.dumps(data).encode())
    assert time.process_time() - started < 0.5
    assert status == 400 and f"entries; at most {MAX_ENTRIES} per hook call" in answer["error"]


def test_numbers_up_to_the_limit_are_read_as_before() -> None:
    assert parse_json(b'{"a": 0.30000000000000004, "b": ' + b"1" * MAX_NUMBER_CHARS + b"}") == \
        {"a": 0.30000000000000004, "b": int("1" * MAX_NUMBER_CHARS)}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-32"])
def test_a_bom_or_utf16_body_is_read(core: CdsCore, encoding: str) -> None:
    assert call(core, json.dumps(EXAMPLE).encode(encoding))[0] == 200


def test_a_body_that_is_not_utf8_says_so(core: CdsCore) -> None:
    status, answer = call(core, b'{"hook": "patient-view\xff"}')
    assert status == 400 and "not UTF-8" in answer["error"]


def test_control_characters_in_a_key_are_escaped_in_the_path() -> None:
    with pytest.raises(RequestError) as info:
        parse_json(b'{"a\\u001b[2Jb": NaN}')
    assert "a\\u001b[2Jb: NaN" in str(info.value) and "\x1b" not in str(info.value)


def test_many_unknown_extension_facts_cost_little_and_answer_briefly(core: CdsCore) -> None:
    body = with_facts(json.dumps({f"x{i}": 1 for i in range(75_000)}))
    started = time.process_time()
    status, answer = call(core, body)
    assert time.process_time() - started < 0.5
    assert status == 400 and f"75000 facts given; at most {MAX_EXTENSION_FACTS}" in answer["error"]
    assert len(json.dumps(answer)) < 1000


def test_the_error_body_lists_the_first_problems_and_counts_the_rest(core: CdsCore) -> None:
    status, answer = call(core, with_facts(json.dumps({f"x{i}": 1 for i in range(MAX_EXTENSION_FACTS)})))
    # The engine keeps its first 20 input problems and counts the rest (engine/errors.py) ...
    assert status == 400 and len(answer["problems"]) == 20 + 1
    assert answer["problems"][-1] == f"… and {MAX_EXTENSION_FACTS - 20} more problems"
    assert len(json.dumps(answer)) < 20_000
    # ... and the HTTP layer caps any other list of problems at MAX_PROBLEMS.
    body = RequestError(400, "bad", [f"p{i}" for i in range(MAX_PROBLEMS + 7)]).body()
    assert len(body["problems"]) == MAX_PROBLEMS + 1 and body["problems"][-1] == "… and 7 more problem(s)"


def test_a_huge_problem_text_is_cut() -> None:
    body = RequestError(400, "bad", ["x" * 100_000]).body()
    assert len(body["problems"][0]) == 500 and body["problems"][0].endswith("…")


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                                  max_size=4), max_leaves=20)


@settings(max_examples=60, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(["", "context", "extension.neutropenia.facts", "prefetch", "prefetch.observations",
                             "prefetch.patient", "extension.neutropenia.asOf", "hookInstance"]), value=_json)
def test_any_value_anywhere_in_a_request_answers_200_or_4xx(core: CdsCore, path: str, value: Any) -> None:
    data: Any = json.loads(json.dumps(EXAMPLE))
    data.setdefault("extension", {}).setdefault("neutropenia", {})
    if path:
        *parents, last = path.split(".")
        node = data
        for name in parents:
            node = node[name] if isinstance(node.get(name), dict) else node.setdefault(name, {})
        node[last] = value
    else:
        data = value
    started = time.monotonic()
    status, _ = call(core, json.dumps(data).encode())
    assert status == 200 or 400 <= status < 500
    assert time.monotonic() - started < 2


@settings(max_examples=60, deadline=2000)
@given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
def test_any_bytes_answer_4xx(core: CdsCore, body: bytes) -> None:
    assert 400 <= call(core, body)[0] < 500


# --- slow clients -----------------------------------------------------------------------------

def _serve(config: CdsConfig, family: int = socket.AF_INET, host: str = "127.0.0.1") -> Iterator[int]:
    app = create_app(config)
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn_config(app, config, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
        time.sleep(0.02)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def quick() -> Iterator[int]:
    """A --dev-no-auth server with a 1 s header and a 1 s body deadline."""
    yield from _serve(CdsConfig(dev_no_auth=True, header_timeout=1.0, body_timeout=1.0))


def _closed_after(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    """(seconds until the server closed the connection, what it sent), reading at most `limit` s."""
    started, data = time.monotonic(), b""
    sock.settimeout(limit)
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except TimeoutError:
        pass
    return time.monotonic() - started, data


@pytest.mark.parametrize("sent", [b"", b"POST /cds-services/neutropenia-patient-view HTTP/1.1\r\nHost: x\r\n"])
def test_a_client_that_never_finishes_its_headers_is_cut_off(quick: int, sent: bytes) -> None:
    with socket.create_connection(("127.0.0.1", quick)) as sock:
        sock.sendall(sent)
        took, _ = _closed_after(sock, 10)
    assert took < 3


def test_headers_trickled_a_byte_at_a_time_are_cut_off(quick: int) -> None:
    request = b"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 100
    with socket.create_connection(("127.0.0.1", quick)) as sock:
        started = time.monotonic()
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        except OSError:  # closed by the server: what we want
            pass
        took = time.monotonic() - started
    assert took < 3


def test_a_body_trickled_slowly_gets_408_and_the_connection_is_closed(quick: int) -> None:
    head = (f"POST {PV} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            "Content-Length: 1000\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", quick)) as sock:
        sock.sendall(head)
        answer, took = _trickle(sock, b" ", every=0.2, limit=10)
    assert took < 4, took
    assert answer.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in answer


def test_a_prompt_client_on_a_kept_alive_connection_is_served_twice(quick: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", quick, timeout=10)
    try:
        for _ in range(2):
            conn.request("GET", "/cds-services")
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["services"]
            time.sleep(0.5)  # idle less than the keep-alive timeout, with no header deadline running
    finally:
        conn.close()


def test_unfinished_headers_over_16_kib_get_400_at_once(quick: int) -> None:
    with socket.create_connection(("127.0.0.1", quick)) as sock:
        sock.sendall(b"GET /cds-services HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20_000)
        took, answer = _closed_after(sock, 10)
    assert took < 0.5 and answer.startswith(b"HTTP/1.1 400")


# --- IPv6 ---------------------------------------------------------------------------------------

def _ipv6_loopback() -> str | None:
    """None if ::1 can be bound here, else why not."""
    if not socket.has_ipv6:
        return "Python was built without IPv6"
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        return f"this machine cannot bind ::1 ({exc.strerror})"
    return None


@pytest.mark.parametrize("host", ["[::1]", "::1"])
def test_an_ipv6_literal_is_a_loopback_host_and_binds_without_brackets(host: str) -> None:
    assert is_loopback(host) and bind_address(host) == "::1"
    assert uvicorn_config(None, CdsConfig(dev_no_auth=True, host=host)).host == "::1"


def test_guideline_serve_binds_on_bracketed_ipv6_loopback() -> None:
    why = _ipv6_loopback()
    if why:
        pytest.skip(why)
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
        probe.bind(("::1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "engine", "serve", "--dev-no-auth", "--host", "[::1]",
                               "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, status = time.monotonic() + 30, None
        while time.monotonic() < deadline and server.poll() is None:
            try:
                conn = http.client.HTTPConnection("::1", port, timeout=5)
                conn.request("GET", "/cds-services")
                status = conn.getresponse().status
                conn.close()
                break
            except OSError:
                time.sleep(0.2)
        assert status == 200, (server.poll(), server.stdout.read() if server.poll() is not None else "")
    finally:
        server.terminate()
        server.wait(timeout=10)


# --- what the answer says it read -----------------------------------------------------------------

def test_two_versions_of_one_observation_count_as_one_resource(core: CdsCore) -> None:
    data = json.loads(json.dumps(EXAMPLE))
    entries = data["prefetch"]["observations"]["entry"]
    first = next(e for e in entries if e["resource"].get("status") == "final")
    entries.append({**first, "resource": {**first["resource"], "status": "corrected"}})
    status, answer = call(core, json.dumps(data).encode())
    assert status == 200, answer
    notes = answer["extension"]["neutropenia"]["notes"]
    distinct = len({e["resource"]["id"] for e in entries}) + 1  # + the Patient
    assert f"from {distinct} FHIR resource(s)" in notes[0], notes[0]


def test_after_a_413_the_rest_of_the_body_is_discarded_for_a_while_then_cut_off(quick: int) -> None:
    head = (f"POST {PV} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {50 << 20}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", quick)) as sock:
        sock.sendall(head)
        answer, took = _trickle(sock, b" " * 100, every=0.1, limit=15)  # sends on regardless, slowly
    assert answer.startswith(b"HTTP/1.1 413") and took < LINGER + 1.5, took
