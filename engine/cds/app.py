"""The CDS Hooks 2.0 service over HTTP (Starlette): routes, authentication, body limit, errors as statuses.

GET /cds-services is discovery; POST /cds-services/{id} a hook call; POST
/cds-services/{id}/feedback feedback. Each request is authenticated, its body read within the
limit, and the synchronous core (engine/cds/hooks.py) run in a worker thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.cds.auth import AuthError, Claims, TokenVerifier, audiences
from engine.cds.body import read_body
from engine.cds.config import CdsConfig, check_config
from engine.cds.discovery import Service
from engine.cds.hooks import CdsCore
from engine.cds.requests import RequestError
from engine.cds.trust import describe, load_trusted_issuers
from engine.errors import RuleEngineError
from engine.guideline import load
from engine.products.audit import AuditLogError

_log = logging.getLogger("engine.cds")
Handler = Callable[[Service, bytes, str], dict[str, Any]]


def _error(status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))


def _unauthorized(exc: AuthError) -> JSONResponse:
    # RFC 6750: no error code when no credentials were sent; invalid_token otherwise.
    challenge = 'Bearer realm="cds-services"'
    if not exc.no_token:  # a header is latin-1 and quoted: the message may echo bytes from the token
        description = re.sub(r'[^\x20-\x7e]|["\\]', "?", str(exc))
        challenge += f', error="invalid_token", error_description="{description}"'
    return _error(exc.http_status, {"error": str(exc)}, {"WWW-Authenticate": challenge})


class _Endpoints:
    def __init__(self, config: CdsConfig, core: CdsCore, verifier: TokenVerifier | None):
        self.config = config
        self.core = core
        self.verifier = verifier

    def authenticate(self, request: Request, *also: str) -> str:
        """The client's name for the audit log; AuthError when its token is not valid for this URL."""
        if self.verifier is None:
            _log.warning("UNAUTHENTICATED %s %s accepted: --dev-no-auth is for local development only",
                         request.method, request.url.path)
            return "dev-no-auth"
        assert self.config.public_url is not None
        claims: Claims = self.verifier.verify(request.headers.get("authorization"),
                                              audiences(self.config.public_url, request.url.path, *also))
        return claims.iss + (f" sub={claims.sub}" if claims.sub else "")

    async def discovery(self, request: Request) -> JSONResponse:
        try:
            self.authenticate(request)
        except AuthError as exc:
            return _unauthorized(exc)
        return JSONResponse(self.core.discovery())

    async def hook(self, request: Request) -> JSONResponse:
        return await self._post(request, self.core.call)

    async def feedback(self, request: Request) -> JSONResponse:
        return await self._post(request, self.core.feedback, feedback=True)

    async def _post(self, request: Request, handler: Handler, feedback: bool = False) -> JSONResponse:
        service_id = request.path_params["service_id"]
        try:
            # The token's aud for feedback may name the feedback URL or the service it belongs to.
            client = self.authenticate(request, *([f"/cds-services/{service_id}"] if feedback else []))
        except AuthError as exc:
            return _unauthorized(exc)
        try:
            service = self.core.service(service_id)
            body = await read_body(request, self.config.max_body_bytes, self.config.body_timeout)
            return JSONResponse(await run_in_threadpool(handler, service, body, client))
        except RequestError as exc:  # a client too slow to send its body is not kept (engine/cds/server.py: 413)
            return _error(exc.http_status, exc.body(), {"Connection": "close"} if exc.http_status == 408 else None)
        except AuditLogError as exc:
            _log.error("%s", exc)
            return _error(500, {"error": "the evaluation could not be recorded in the audit log, so no result "
                                         "is given"})
        except RuleEngineError as exc:
            _log.error("evaluation failed: %s", exc)
            return _error(500, {"error": "the evaluation failed; no partial result is given"})


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return _error(exc.status_code, {"error": exc.detail}, exc.headers)


async def _internal_error(request: Request, exc: Exception) -> JSONResponse:
    return _error(500, {"error": "internal error"})


def create_app(config: CdsConfig) -> Starlette:
    """The ASGI app: loads the guideline (and the trusted keys) once, now. Raises CdsConfigError."""
    check_config(config)
    issuers = load_trusted_issuers(config.trusted_issuers) if config.trusted_issuers else None
    guideline = load(config.guideline)
    core = CdsCore(guideline, config.audit_log, config.fetch_options())
    endpoints = _Endpoints(config, core, TokenVerifier(issuers) if issuers is not None else None)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        _log.info("guideline %s %s (%s), %s: services %s", guideline.id, guideline.version,
                  guideline.content.metadata.status, guideline.digest, ", ".join(core.services))
        for line in describe(issuers or {}):
            _log.info("%s", line)
        _log.info("audit log: %s; request body limit %d bytes; a request's headers within %g s, its body within "
                  "%g s", config.audit_log or "none", config.max_body_bytes, config.header_timeout,
                  config.body_timeout)
        _log.info("absent prefetch is fetched from the request's fhirServer (%s only): at most %g s, %d bytes and "
                  "%d pages per hook call", "http or https" if config.allow_http_fhir else "https",
                  config.fhir_timeout, config.max_body_bytes, config.fhir_max_pages)
        if config.allow_http_fhir:
            _log.warning("*** --allow-http-fhir: the EHR's access token and patient data may be fetched over "
                         "plain http. For local tests only. ***")
        if config.dev_no_auth:
            _log.warning("*** --dev-no-auth: NO AUTHENTICATION. Any local process can call this service. "
                         "For local development only; never with patient data. ***")
        yield

    routes = [Route("/cds-services", endpoints.discovery, methods=["GET"]),
              Route("/cds-services/{service_id}", endpoints.hook, methods=["POST"]),
              Route("/cds-services/{service_id}/feedback", endpoints.feedback, methods=["POST"])]
    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: _http_error, Exception: _internal_error})


def serve(config: CdsConfig) -> None:
    """Run the service with uvicorn until interrupted."""
    import uvicorn

    from engine.cds.server import uvicorn_config

    app = create_app(config)
    if not _log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        _log.addHandler(handler)
        _log.setLevel(logging.INFO)
    uvicorn.Server(uvicorn_config(app, config)).run()
