"""HTTP(S) connections that cannot outlast a deadline, for fetching from the EHR's FHIR server (urllib).

Besides the socket timeout, a watchdog shuts a session's connections down at its deadline, so a
server trickling its answer cannot hold a hook call. No redirect is followed (a 3xx is an error)
and a plain-http request never goes through a proxy: the access token goes to fhirServer only.
"""

from __future__ import annotations

import functools
import http.client
import socket
import ssl
import threading
import time
import urllib.request
from typing import Any, cast


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()  # certificates and host names are verified


class Watchdog:
    """Shuts down the session's connections at its deadline, so that no read or write outlasts it."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:  # connected just as the time ran out
                self._shutdown(sock)
            elif self._timer is None:
                self._timer = threading.Timer(max(self.deadline - time.monotonic(), 0.0), self._expire)
                self._timer.daemon = True
                self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        try:  # the plain socket's shutdown, also for an SSLSocket: the reader sees the end of the stream
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # already closed: its fd is gone, nothing else is touched
            pass

    def cancel(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()


class _WatchedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, *, watchdog: Watchdog, **kwargs: Any):
        super().__init__(host, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self._watchdog.watch(self.sock)


class _WatchedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, *, watchdog: Watchdog, **kwargs: Any):
        super().__init__(host, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()  # TCP and TLS handshake: bounded by the socket timeout
        self._watchdog.watch(self.sock)


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog):
        super().__init__()
        self.watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(cast(Any, _WatchedHTTP), req, watchdog=self.watchdog)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog):
        self.tls = _tls()
        super().__init__(context=self.tls)
        self.watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(cast(Any, _WatchedHTTPS), req, context=self.tls, watchdog=self.watchdog)


def opener(scheme: str, watchdog: Watchdog) -> urllib.request.OpenerDirector:
    """http(s) only; no redirect handler (a 3xx is an error); a proxy for https (a tunnel) only."""
    opener = urllib.request.OpenerDirector()
    proxies = {k: v for k, v in urllib.request.getproxies().items() if k == "https"}
    handlers: list[urllib.request.BaseHandler] = [
        urllib.request.ProxyHandler(proxies),
        urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()]
    handlers.append(_HTTPSHandler(watchdog) if scheme == "https" else _HTTPHandler(watchdog))
    for handler in handlers:
        opener.add_handler(handler)
    return opener
