"""Fetching a hook call's missing prefetch from the EHR's FHIR server (CDS Hooks 2.0, FHIR Resource Access).

Standard library only (urllib). One `FhirSession` serves one hook call: every request it makes
shares one deadline and one byte budget. The deadline holds however slowly a server trickles its
answer: besides the socket timeout, a watchdog shuts the connection down when the time is up.
The EHR's access token goes to fhirServer's origin only:
redirects are not followed, a `next` link to another origin is refused, and a plain-http URL
(allowed only with --allow-http-fhir) never goes through a proxy. An https proxy from the
environment (HTTPS_PROXY, NO_PROXY) is used as a CONNECT tunnel, so it never sees the token.

Every failure is a `FetchError` whose message says what could not be obtained and why; the
service turns it into 412 Precondition Failed.
"""

from __future__ import annotations

import http.client
import re
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urljoin, urlsplit

from engine.cds.strict_json import JsonProblem, load_json
from engine.cds.transport import Watchdog, opener
from engine.errors import BadInputError

FHIR_JSON = "application/fhir+json"
DEFAULT_TIMEOUT = 5.0   # seconds, for all the requests of one hook call
DEFAULT_MAX_PAGES = 20  # pages of one search
_TOKEN = re.compile(r"[\x21-\x7e]{1,8192}")  # visible ASCII: nothing that could break the header
_URL = re.compile(r"[\x21-\x7e]{1,2048}")
_CHUNK = 1 << 16


class FetchError(BadInputError):
    """The data could not be obtained from the FHIR server (the hook call answers 412).

    A bad-input error: the fhirServer (or its access token) came with the caller's request.
    """


@dataclass(frozen=True)
class FetchOptions:
    timeout: float = DEFAULT_TIMEOUT  # total, per hook call
    max_bytes: int = 1 << 20          # total of the answers' bodies, per hook call
    max_pages: int = DEFAULT_MAX_PAGES
    allow_http: bool = False          # --allow-http-fhir: local tests only


@dataclass(frozen=True)
class FhirServer:
    base: str              # no trailing slash
    token: str | None      # the bearer token of fhirAuthorization, if given

    @property
    def origin(self) -> tuple[str, str, int]:
        return _origin(self.base)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise FetchError(f"{url[:200]!r} has an invalid port") from None
    return parts.scheme, (parts.hostname or "").lower(), port or {"https": 443, "http": 80}.get(parts.scheme, 0)


def fhir_server(server: Any, authorization: Any, allow_http: bool) -> FhirServer:
    """fhirServer and fhirAuthorization checked for use (FetchError naming why they cannot be used)."""
    if not isinstance(server, str) or not server:
        raise FetchError("fhirServer is not a URL")
    if not _URL.fullmatch(server):  # urllib would fail on it later, with UnicodeError or ValueError
        raise FetchError(f"fhirServer {server[:200]!r} is not a URL: visible ASCII only (percent-encode the rest), "
                         "at most 2048 characters")
    try:
        parts = urlsplit(server)
        (parts.hostname or "").encode("idna")  # a label over 63 characters, an empty label
    except (ValueError, UnicodeError):  # ValueError: a bracketed IPv6 host that does not parse
        raise FetchError(f"fhirServer {server[:200]!r} is not a valid URL (its host)") from None
    if parts.scheme == "http" and not allow_http:
        raise FetchError(f"fhirServer {server[:200]} is not https: the access token and the patient's data would "
                         "travel unencrypted (the service allows http only when started with --allow-http-fhir, "
                         "for local tests)")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise FetchError(f"fhirServer {server[:200]!r} is not an absolute https URL")
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        raise FetchError("fhirServer must be a base URL without credentials, query or fragment")
    _origin(server)  # the port is valid
    token = None
    if authorization is not None:
        if not isinstance(authorization, dict):
            raise FetchError("fhirAuthorization is not an object")
        kind = authorization.get("token_type")
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise FetchError(f"fhirAuthorization.token_type is {kind!r:.40}: only Bearer tokens are supported")
        token = authorization.get("access_token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise FetchError("fhirAuthorization.access_token is missing or not a bearer token")
    return FhirServer(server.rstrip("/"), token)


def relative_url(base: str, relative: str) -> str:
    """base + a relative FHIR request (`Patient/1`, `Observation?patient=1&code=a|b,c|d`), query encoded."""
    path, _, query = relative.partition("?")
    url = f"{base}/{quote(path, safe='/')}"
    if query:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        url += "?" + urlencode(pairs, safe=",:/", quote_via=quote)  # `|` is sent as %7C
    return url


def shown(relative: str) -> str:
    """A relative request for a message: a long list of values is cut to its first and its count."""
    path, _, query = relative.partition("?")
    if not query:
        return path
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        values = value.split(",")
        parts.append(f"{name}={values[0]},… ({len(values)} values)" if len(values) > 2 else f"{name}={value}")
    return f"{path}?{'&'.join(parts)}"


def _http_error(code: int, token: bool) -> str:
    if code == 401:
        return ("answered 401 Unauthorized: the access token was refused" if token else
                "answered 401 Unauthorized: it needs an access token, and fhirAuthorization was not given")
    if code == 403:
        return "answered 403 Forbidden: the access token does not allow this request"
    if code in (404, 410):
        return f"answered {code} Not Found"
    if 300 <= code < 400:
        return (f"answered a redirect (HTTP {code}): redirects are not followed, so that the access token "
                "goes to fhirServer only")
    if code >= 500:
        return f"answered HTTP {code} (a server error)"
    return f"answered HTTP {code}"


class FhirSession:
    """The requests of one hook call: one deadline, one byte budget, one bearer token. Close it after use."""

    def __init__(self, server: FhirServer, options: FetchOptions):
        self.server = server
        self.options = options
        self.started = time.monotonic()
        self.deadline = self.started + options.timeout
        self.budget = options.max_bytes
        self.requests = 0
        self._watchdog = Watchdog(self.deadline)
        self._opener = opener(urlsplit(server.base).scheme, self._watchdog)

    def close(self) -> None:
        self._watchdog.cancel()

    def _late(self) -> bool:
        return self._watchdog.expired or time.monotonic() >= self.deadline

    @property
    def received(self) -> int:
        """Bytes of the answers' bodies read so far."""
        return self.options.max_bytes - self.budget

    def _timeout(self, what: str) -> FetchError:
        return FetchError(f"{what}: fhirServer gave no complete answer within {self.options.timeout:g} s, the time "
                          "allowed for fetching the data of one hook call")

    def get(self, url: str, what: str, not_found: str | None = None) -> Any:
        """The JSON of one GET on fhirServer's origin (FetchError otherwise)."""
        if _origin(url) != self.server.origin:  # a guard: callers check the links they follow
            raise FetchError(f"{what}: {urlsplit(url).netloc} is not fhirServer's origin; not requested")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise self._timeout(what)
        headers = {"Accept": FHIR_JSON}
        if self.server.token is not None:
            headers["Authorization"] = f"Bearer {self.server.token}"
        self.requests += 1
        try:
            with self._opener.open(urllib.request.Request(url, headers=headers, method="GET"),
                                   timeout=remaining) as response:
                body = self._read(response, what)
        except urllib.error.HTTPError as exc:
            exc.close()
            if self._late():
                raise self._timeout(what) from None
            if exc.code in (404, 410) and not_found:
                raise FetchError(not_found) from None
            raise FetchError(f"{what}: fhirServer {_http_error(exc.code, self.server.token is not None)}") from None
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError) or self._late():
                raise self._timeout(what) from None
            if isinstance(exc.reason, ssl.SSLCertVerificationError):
                raise FetchError(f"{what}: fhirServer's TLS certificate was not accepted "
                                 f"({exc.reason.verify_message})") from None
            raise FetchError(f"{what}: could not connect to fhirServer ({exc.reason})") from None
        except TimeoutError:
            raise self._timeout(what) from None
        except (http.client.HTTPException, OSError) as exc:
            if self._late():  # the watchdog cut the connection
                raise self._timeout(what) from None
            raise FetchError(f"{what}: the connection to fhirServer failed ({type(exc).__name__})") from None
        try:
            return load_json(body)
        except JsonProblem as exc:
            raise FetchError(f"{what}: fhirServer's answer is not JSON this service reads ({exc})") from None

    def _read(self, response: http.client.HTTPResponse, what: str) -> bytes:
        """The body, within the byte budget and the deadline (checked between reads)."""
        limit = self.options.max_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > self.budget:
            raise FetchError(f"{what}: fhirServer's answers exceed the limit of {limit} bytes for the data of "
                             f"one hook call (this answer is {declared} bytes); it is not read")
        chunks: list[bytes] = []
        while True:
            if time.monotonic() > self.deadline:
                raise self._timeout(what)
            chunk = response.read1(_CHUNK)
            if not chunk:
                if self._late():  # the end of the stream was the watchdog's shutdown
                    raise self._timeout(what)
                if response.length:  # fewer bytes than Content-Length
                    raise FetchError(f"{what}: fhirServer's answer was cut off")
                return b"".join(chunks)
            self.budget -= len(chunk)
            if self.budget < 0:
                raise FetchError(f"{what}: fhirServer's answers exceed the limit of {limit} bytes for the data of "
                                 "one hook call")
            chunks.append(chunk)

    def read(self, relative: str, resource_type: str, not_found: str) -> dict[str, Any]:
        """A FHIR read (`Patient/1`): the resource, of that type."""
        what = f"GET {shown(relative)}"
        resource = self.get(relative_url(self.server.base, relative), what, not_found)
        if not isinstance(resource, dict) or resource.get("resourceType") != resource_type:
            found = resource.get("resourceType") if isinstance(resource, dict) else type(resource).__name__
            raise FetchError(f"{what}: fhirServer answered {str(found)[:40]!r}, not a {resource_type}")
        return resource

    def search(self, relative: str | None, first_page: dict[str, Any] | None = None) -> tuple[dict[str, Any], int]:
        """A FHIR search, every page: (one searchset Bundle holding all the entries, pages fetched).

        With `first_page` (a page the EHR sent), its `next` link is followed instead of searching anew.
        """
        what = f"GET {shown(relative)}" if relative else "the next page of prefetch.observations"
        if first_page is None:
            assert relative is not None
            url: str | None = relative_url(self.server.base, relative)
            page: dict[str, Any] | None = None
        else:
            page, url = first_page, self._next(first_page, self.server.base, what)
        pages: list[dict[str, Any]] = [] if page is None else [page]
        fetched = 0
        while url is not None:
            if fetched == self.options.max_pages:
                raise FetchError(f"{what}: the search has more than {self.options.max_pages} pages; not read")
            page = self._searchset(self.get(url, what), what)
            fetched += 1
            pages.append(page)
            url = self._next(page, url, what)
        entries = [e for p in pages for e in p.get("entry") or []]
        merged = {k: v for k, v in pages[0].items() if k not in ("link", "entry")}
        return {**merged, "entry": entries}, fetched

    @staticmethod
    def _searchset(page: Any, what: str) -> dict[str, Any]:
        if not isinstance(page, dict) or page.get("resourceType") != "Bundle":
            found = page.get("resourceType") if isinstance(page, dict) else type(page).__name__
            raise FetchError(f"{what}: fhirServer answered {str(found)[:40]!r}, not a Bundle")
        if page.get("type") != "searchset":
            raise FetchError(f"{what}: fhirServer answered a Bundle of type {page.get('type')!r:.40}, not a searchset")
        if not isinstance(page.get("entry", []), list):
            raise FetchError(f"{what}: fhirServer answered a Bundle whose entry is not an array")
        return page

    def _next(self, page: dict[str, Any], current: str, what: str) -> str | None:
        """The page's `next` link, only on fhirServer's origin (FetchError for any other)."""
        links = page.get("link")
        link = next((lk.get("url") for lk in links if isinstance(lk, dict) and lk.get("relation") == "next"),
                    None) if isinstance(links, list) else None
        if link is None:
            return None
        url = urljoin(current, link) if isinstance(link, str) else ""
        if not url or _origin(url) != self.server.origin:
            shown = urlsplit(url).netloc if url else repr(link)[:40]
            raise FetchError(f"{what}: the 'next' link points to {shown or 'nowhere'}, not to fhirServer's origin "
                             f"{urlsplit(self.server.base).netloc}; it is not followed (the access token goes to "
                             "fhirServer only)")
        return url
