"""CDS Hooks 2.0 client authentication: the EHR's signed JWT bearer token, verified against trusted keys.

What is checked, in order (each failure is an `AuthError` whose message names the check, never a key):
the `Authorization: Bearer` header; the JOSE header (`alg` asymmetric only — HS* and `none` are
refused before any key is looked at; `typ` JWT when given); the issuer (`iss` must be configured);
the key (`kid` selects one of the issuer's keys, and the key's type must fit `alg`); the signature;
`aud` (the endpoint URL being called), `exp`, `iat` (not in the future beyond the clock leeway),
`jti` (required; a token is accepted once: replays are refused until it expires).

Keys come only from the trusted-issuers file (engine/cds/trust.py). A `jku` header is never
fetched: following a URL the token itself names would let whoever signs the token choose the key
that verifies it.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

from engine.cds.trust import ASYMMETRIC_ALGORITHMS, TrustedKey
from engine.errors import BadInputError

LEEWAY_S = 30            # clock skew tolerated on exp and iat
MAX_LIFETIME_S = 3600    # exp at most this far ahead: a used jti is remembered until exp, so bound it
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


class AuthError(BadInputError):
    """The request is not authenticated (HTTP 401). The message is safe to send to the client."""

    http_status = 401

    def __init__(self, message: str, *, no_token: bool = False):
        super().__init__(message)
        self.no_token = no_token


@dataclass(frozen=True)
class Claims:
    """A verified token's payload (the fields the service uses)."""

    iss: str
    sub: str | None
    jti: str
    exp: int
    tenant: str | None = None


# --- replay protection ------------------------------------------------------------------------

class ReplayCache:
    """(iss, jti) pairs seen, each kept until its token expires. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()
        self._expiry: list[tuple[float, tuple[str, str]]] = []  # heap: forget in expiry order

    def first_use(self, iss: str, jti: str, until: float, now: float) -> bool:
        """True the first time (iss, jti) is presented before `until`; False for a replay."""
        key = (iss, jti)
        with self._lock:
            while self._expiry and self._expiry[0][0] < now:
                self._seen.discard(heapq.heappop(self._expiry)[1])
            if key in self._seen:
                return False
            self._seen.add(key)
            heapq.heappush(self._expiry, (until, key))
            return True

    def __len__(self) -> int:
        with self._lock:
            return len(self._seen)


# --- verification -----------------------------------------------------------------------------

def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise AuthError("no bearer token: send 'Authorization: Bearer <JWT>' signed by a trusted issuer",
                        no_token=True)
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("the Authorization header is not 'Bearer <JWT>'", no_token=True)
    return token.strip()


_PYJWT_MESSAGES: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "the token has expired (exp)"),
    (jwt.ImmatureSignatureError, "the token is not valid yet (iat or nbf in the future)"),
    (jwt.InvalidIssuerError, "the token's issuer (iss) does not match"),
    (jwt.InvalidSignatureError, "the token's signature does not verify with the issuer's key"),
    (jwt.InvalidIssuedAtError, "the token's iat is not a number"),
    (jwt.InvalidAlgorithmError, "the token's algorithm does not fit the issuer's key"),
)


class TokenVerifier:
    """Verifies CDS Hooks client JWTs against the trusted issuers' keys; refuses replays."""

    def __init__(self, issuers: Mapping[str, Mapping[str, TrustedKey]], *, leeway: int = LEEWAY_S,
                 max_lifetime: int = MAX_LIFETIME_S):
        self.issuers = issuers
        self.leeway = leeway
        self.max_lifetime = max_lifetime
        self.replays = ReplayCache()

    def verify(self, authorization: str | None, audiences: Sequence[str]) -> Claims:
        """The claims of a valid token whose `aud` is one of `audiences`; AuthError otherwise."""
        token = bearer_token(authorization)
        header = self._header(token)
        key = self._key(header, self._unverified_issuer(token))
        now = time.time()
        try:
            payload = jwt.decode(token, key.key, algorithms=[header["alg"]], audience=list(audiences),
                                 leeway=self.leeway, options={"require": list(REQUIRED_CLAIMS)})
        except jwt.MissingRequiredClaimError as exc:
            raise AuthError(f"the token lacks the required claim '{exc.claim}'") from None
        except jwt.InvalidAudienceError:
            raise AuthError(f"the token's audience (aud) is not this endpoint ({audiences[0]})") from None
        except jwt.PyJWTError as exc:
            raise AuthError(_message(exc)) from None
        return self._claims(payload, now)

    @staticmethod
    def _header(token: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("malformed token: not a signed JWT (header.payload.signature)") from None
        alg = header.get("alg")
        if alg not in ASYMMETRIC_ALGORITHMS:  # HS*, none and anything unknown: refused by name
            raise AuthError(f"algorithm {str(alg)[:20]!r} is not accepted: CDS Hooks tokens are signed "
                            f"with an asymmetric key ({', '.join(sorted(ASYMMETRIC_ALGORITHMS))})")
        if "typ" in header and str(header["typ"]).upper() != "JWT":
            raise AuthError("the token's typ is not JWT")
        return header

    def _unverified_issuer(self, token: str) -> str:
        try:
            claims = jwt.decode(token, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise AuthError("malformed token: the payload is not a JSON object") from None
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise AuthError("the token lacks the required claim 'iss'")
        if iss not in self.issuers:
            raise AuthError("the token's issuer (iss) is not trusted by this service")
        return iss

    def _key(self, header: Mapping[str, Any], iss: str) -> TrustedKey:
        keys = self.issuers[iss]
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise AuthError("the token's header has no kid: it must name the issuer's signing key")
        key = keys.get(kid)
        if key is None:
            raise AuthError("the token's kid names no key of this issuer")
        if header["alg"] not in key.algorithms:
            raise AuthError(f"algorithm {header['alg']} does not fit the key named by kid")
        return key

    def _claims(self, payload: Mapping[str, Any], now: float) -> Claims:
        jti, exp, iat = payload.get("jti"), payload["exp"], payload["iat"]
        # Recent PyJWT checks this too; kept so that no version of it lets a future iat through.
        if not isinstance(iat, (int, float)) or iat > now + self.leeway:
            raise AuthError("the token is not valid yet (iat or nbf in the future)")
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            raise AuthError("the token's jti must be a non-empty string (at most 256 characters)")
        if not isinstance(exp, (int, float)) or exp > now + self.max_lifetime:
            raise AuthError(f"the token lives too long: exp more than {self.max_lifetime} s ahead")
        if not self.replays.first_use(payload["iss"], jti, exp + self.leeway, now):
            raise AuthError("the token was already used (jti replayed); sign a new token per request")
        sub, tenant = payload.get("sub"), payload.get("tenant")
        return Claims(payload["iss"], sub if isinstance(sub, str) else None, jti, int(exp),
                      tenant if isinstance(tenant, str) else None)


def _message(exc: Exception) -> str:
    for kind, message in _PYJWT_MESSAGES:
        if isinstance(exc, kind):
            return message
    if isinstance(exc, jwt.DecodeError):
        return "malformed token"
    return "invalid token"


def audiences(public_url: str, path: str, *also: str) -> list[str]:
    """The `aud` values accepted for a request: the public URL of the endpoint (and of `also`)."""
    base = public_url.rstrip("/")
    return [base + p for p in (path, *also)]
