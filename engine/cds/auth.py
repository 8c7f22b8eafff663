"""CDS Hooks 2.0 client authentication: the EHR's signed JWT bearer token, verified against trusted keys.

What is checked, in order (each failure is an `AuthError` whose message names the check, never a key):
the `Authorization: Bearer` header; the JOSE header (`alg` asymmetric only — HS* and `none` are
refused before any key is looked at; `typ` JWT when given); the issuer (`iss` must be configured);
the key (`kid` selects one of the issuer's keys, and the key's type must fit `alg`); the signature;
`aud` (the endpoint URL being called), `exp`, `iat` (not in the future beyond the clock leeway),
`jti` (required; a token is accepted once: replays are refused until it expires).

Keys come only from the trusted-issuers file. A `jku` header is never fetched: following a URL the
token itself names would let whoever signs the token choose the key that verifies it.
"""

from __future__ import annotations

import heapq
import json
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from engine.errors import EngineError

LEEWAY_S = 30            # clock skew tolerated on exp and iat
MAX_LIFETIME_S = 3600    # exp at most this far ahead: a used jti is remembered until exp, so bound it
MIN_RSA_BITS = 2048
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ASYMMETRIC_ALGORITHMS = frozenset({*_RSA_ALGS, *_EC_ALGS.values(), "EdDSA"})
REQUIRED_CLAIMS = ("iss", "aud", "exp", "iat", "jti")


class AuthError(Exception):
    """The request is not authenticated (HTTP 401). The message is safe to send to the client."""

    def __init__(self, message: str, *, no_token: bool = False):
        super().__init__(message)
        self.no_token = no_token


class TrustConfigError(EngineError):
    """The trusted-issuers file cannot be used; the service does not start."""

    exit_code = 2


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    key: Any                      # a cryptography public key object
    algorithms: frozenset[str]    # the asymmetric algorithms this key may verify


@dataclass(frozen=True)
class Claims:
    """A verified token's payload (the fields the service uses)."""

    iss: str
    sub: str | None
    jti: str
    exp: int
    tenant: str | None = None


# --- the trusted-issuers file -----------------------------------------------------------------

def _algorithms_for(key: Any, where: str) -> frozenset[str]:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise TrustConfigError(f"{where}: RSA key of {key.key_size} bits; at least {MIN_RSA_BITS} required")
        return frozenset(_RSA_ALGS)
    if isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGS.get(key.curve.name)
        if alg is None:
            raise TrustConfigError(f"{where}: elliptic curve {key.curve.name} is not supported "
                                   f"(use P-256, P-384 or P-521)")
        return frozenset({alg})
    if isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return frozenset({"EdDSA"})
    raise TrustConfigError(f"{where}: not an RSA, EC or EdDSA public key")


def _pem_key(text: str, where: str) -> Any:
    data = text.encode("ascii", "replace")
    try:
        if b"-----BEGIN CERTIFICATE-----" in data:
            return x509.load_pem_x509_certificate(data).public_key()
        if b"PRIVATE KEY-----" in data:
            raise TrustConfigError(f"{where}: a private key; give the public key only")
        return serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise TrustConfigError(f"{where}: not a PEM public key or certificate") from exc


def _jwks_keys(path: Path, where: str) -> list[TrustedKey]:
    try:
        jwks = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise TrustConfigError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise TrustConfigError(f"{where}: {path} is not JSON: {exc}") from exc
    entries = jwks.get("keys") if isinstance(jwks, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise TrustConfigError(f"{where}: {path} is not a JWK Set (an object with a non-empty 'keys' array)")
    keys = []
    for i, jwk in enumerate(entries):
        at = f"{where}: {path.name} keys[{i}]"
        if not isinstance(jwk, Mapping) or not isinstance(jwk.get("kid"), str) or not jwk["kid"]:
            raise TrustConfigError(f"{at}: every key needs a 'kid' (the token's kid selects it)")
        if jwk.get("kty") == "oct" or "d" in jwk:
            raise TrustConfigError(f"{at}: symmetric or private key material; give public keys only")
        try:
            key = jwt.PyJWK(dict(jwk)).key
        except jwt.PyJWTError as exc:  # its message may quote the key: give only its class
            raise TrustConfigError(f"{at}: unusable JWK ({type(exc).__name__})") from exc
        algorithms = _algorithms_for(key, at)
        if "alg" in jwk:
            if jwk["alg"] not in algorithms:
                raise TrustConfigError(f"{at}: alg {jwk['alg']!r} does not fit this key or is not asymmetric")
            algorithms = frozenset({jwk["alg"]})
        keys.append(TrustedKey(jwk["kid"], key, algorithms))
    return keys


def _issuer_keys(iss: str, entry: Any, base: Path) -> dict[str, TrustedKey]:
    where = f"issuer {iss!r}"
    if not isinstance(entry, Mapping) or not entry or set(entry) - {"keys", "jwks_file"}:
        raise TrustConfigError(f"{where}: expected an object with 'keys' (kid -> PEM text or PEM file) "
                               "and/or 'jwks_file'")
    keys: list[TrustedKey] = []
    pem = entry.get("keys", {})
    if not isinstance(pem, Mapping):
        raise TrustConfigError(f"{where}: 'keys' maps each kid to a PEM public key (text or file path)")
    for kid, value in pem.items():
        at = f"{where} key {kid!r}"
        if not isinstance(value, str) or not value.strip():
            raise TrustConfigError(f"{at}: expected PEM text or the path of a PEM file")
        if "-----BEGIN" not in value:
            file = base / value
            try:
                value = file.read_text(encoding="ascii")
            except (OSError, UnicodeDecodeError) as exc:
                raise TrustConfigError(f"{at}: cannot read PEM file {file}") from exc
        key = _pem_key(value, at)
        keys.append(TrustedKey(str(kid), key, _algorithms_for(key, at)))
    if "jwks_file" in entry:
        if not isinstance(entry["jwks_file"], str):
            raise TrustConfigError(f"{where}: 'jwks_file' is the path of a JWK Set file")
        keys += _jwks_keys(base / entry["jwks_file"], where)
    by_kid: dict[str, TrustedKey] = {}
    for key in keys:
        if by_kid.setdefault(key.kid, key) is not key:
            raise TrustConfigError(f"{where}: kid {key.kid!r} is given twice")
    if not by_kid:
        raise TrustConfigError(f"{where}: no keys")
    return by_kid


def load_trusted_issuers(path: str | Path) -> dict[str, dict[str, TrustedKey]]:
    """iss -> kid -> key, from a JSON or YAML file `{issuers: {ISS: {keys: {KID: PEM}, jwks_file: F}}}`.

    Relative file names are relative to the file's folder. Raises TrustConfigError.
    """
    file = Path(path)
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))  # YAML is a superset of JSON
    except OSError as exc:
        raise TrustConfigError(f"{file}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise TrustConfigError(f"{file}: not valid JSON or YAML: {exc}") from exc
    issuers = data.get("issuers") if isinstance(data, Mapping) else None
    if not isinstance(issuers, Mapping) or not issuers or set(data) != {"issuers"}:
        raise TrustConfigError(f"{file}: expected {{\"issuers\": {{ISS: {{...}}}}}} with at least one issuer")
    return {str(iss): _issuer_keys(str(iss), entry, file.parent) for iss, entry in issuers.items()}


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


def describe(issuers: Mapping[str, Mapping[str, TrustedKey]]) -> Iterable[str]:
    """One line per issuer for the start-up log: issuer, kids and algorithms (no key material)."""
    for iss, keys in issuers.items():
        listed = ", ".join(f"{k.kid} ({'/'.join(sorted(k.algorithms))})" for k in keys.values())
        yield f"trusted issuer {iss}: {listed}"
