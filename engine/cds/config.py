"""The CDS Hooks service's settings (`guideline serve` flags), and the check that refuses unsafe ones."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.cds.fhir_fetch import DEFAULT_MAX_PAGES, DEFAULT_TIMEOUT, FetchOptions
from engine.errors import ConfigError

DEFAULT_MAX_BODY = 1 << 20   # 1 MiB: an example request is ~15 kB; a long Observation history needs more
# A slow or stalled client must not hold a connection: an EHR sends a request in milliseconds.
DEFAULT_HEADER_TIMEOUT = 10.0  # seconds from the connection (or the first byte of a request) to its last header
DEFAULT_BODY_TIMEOUT = 10.0    # seconds to receive the whole body (1 MiB at 100 kB/s)


class CdsConfigError(ConfigError):
    """The service configuration is refused; nothing is started."""


@dataclass(frozen=True)
class CdsConfig:
    guideline: Path | None = None        # None: the bundled guideline
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None        # base URL the EHR calls: `{public_url}/cds-services` is discovery
    trusted_issuers: Path | None = None  # JSON/YAML: iss -> keys (see engine/cds/trust.py)
    dev_no_auth: bool = False            # local development only: no token checked (loopback host only)
    audit_log: Path | None = None
    max_body_bytes: int = DEFAULT_MAX_BODY  # also the most data fetched from fhirServer for one call
    allow_http_fhir: bool = False        # fetch from an http:// fhirServer (local tests only); https otherwise
    fhir_timeout: float = DEFAULT_TIMEOUT  # seconds for all the FHIR requests of one hook call
    fhir_max_pages: int = DEFAULT_MAX_PAGES
    header_timeout: float = DEFAULT_HEADER_TIMEOUT
    body_timeout: float = DEFAULT_BODY_TIMEOUT

    def fetch_options(self) -> FetchOptions:
        return FetchOptions(self.fhir_timeout, self.max_body_bytes, self.fhir_max_pages, self.allow_http_fhir)


def bind_address(host: str) -> str:
    """The address to bind: an IPv6 literal may be written as in a URL, `[::1]`; the socket wants `::1`."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind_address(host)).is_loopback
    except ValueError:
        return False


def check_config(config: CdsConfig) -> None:
    """Refuse a configuration that would run an unsafe or unusable service (CdsConfigError)."""
    if config.max_body_bytes <= 0:
        raise CdsConfigError("--max-body-bytes must be a positive number of bytes")
    if not 0 < config.fhir_timeout <= 60:
        raise CdsConfigError("the FHIR fetch timeout must be more than 0 and at most 60 seconds")
    if not (0 < config.header_timeout <= 300 and 0 < config.body_timeout <= 300):
        raise CdsConfigError("the header and body timeouts must be more than 0 and at most 300 seconds")
    if config.fhir_max_pages < 1:
        raise CdsConfigError("the FHIR search page limit must be at least 1")
    if config.public_url is not None:
        parts = urlsplit(config.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise CdsConfigError(f"--public-url {config.public_url!r} is not an absolute http(s) base URL")
    if config.dev_no_auth:
        if not is_loopback(config.host):
            raise CdsConfigError(f"--dev-no-auth is for local development only and is refused on host "
                                 f"{config.host!r}: bind a loopback address (127.0.0.1, ::1 or localhost)")
        if config.trusted_issuers is not None:
            raise CdsConfigError("--dev-no-auth and --trusted-issuers exclude each other")
        return
    if config.trusted_issuers is None or config.public_url is None:
        raise CdsConfigError("give --trusted-issuers FILE and --public-url URL (the EHR's tokens are checked "
                             "against both), or --dev-no-auth on a loopback host for local development")
