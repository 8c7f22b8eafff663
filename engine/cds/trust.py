"""The trusted-issuers file: each EHR issuer's public keys, and the algorithms each key may verify.

Keys come only from this file (PEM text or files, JWK Sets), public keys only; an RSA key has at
least 2048 bits; each key is bound to the asymmetric algorithms that fit it, so that a token's
`alg` can never choose a weaker check.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

from engine.errors import ConfigError

MIN_RSA_BITS = 2048
_RSA_ALGS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ASYMMETRIC_ALGORITHMS = frozenset({*_RSA_ALGS, *_EC_ALGS.values(), "EdDSA"})


class TrustConfigError(ConfigError):
    """The trusted-issuers file cannot be used; the service does not start."""


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    key: Any                      # a cryptography public key object
    algorithms: frozenset[str]    # the asymmetric algorithms this key may verify


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



def describe(issuers: Mapping[str, Mapping[str, TrustedKey]]) -> Iterable[str]:
    """One line per issuer for the start-up log: issuer, kids and algorithms (no key material)."""
    for iss, keys in issuers.items():
        listed = ", ".join(f"{k.kid} ({'/'.join(sorted(k.algorithms))})" for k in keys.values())
        yield f"trusted issuer {iss}: {listed}"
