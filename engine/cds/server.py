"""uvicorn set up for the service: h11 with a deadline for a request's headers, bounded header size.

uvicorn times out an idle keep-alive connection, but not a client that connects and then sends
its headers a byte at a time (or nothing at all): each such connection is held for as long as
the client likes. The protocol below closes a connection whose request headers are not complete
within `header_timeout` seconds of its first byte (or of the connection); the body has its own
deadline in the app (engine/cds/body.py). After an answer given before the body was read (413),
uvicorn discards the rest of the body, however long it takes: the client gets LINGER seconds to
finish sending it (so that it can read the answer), then the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from engine.cds.config import CdsConfig, bind_address

MAX_HEADER_BYTES = 16 * 1024  # h11's incomplete-event limit: a request line and headers larger than this get 400
KEEP_ALIVE_TIMEOUT = 5        # seconds an idle connection is kept between requests (uvicorn's default)
LINGER = 2.0                  # seconds to finish sending a body already answered (413), then closed


class _DeadlineH11(H11Protocol):
    header_timeout = 10.0  # set per server by `protocol`

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._waiting() and not self.transport.is_closing():
            self._arm()  # a request has begun (or the next one on a kept-alive connection): headers due
        else:
            self._disarm()  # the headers are in, and the app reads the body within its own deadline

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._waiting() and self.conn.their_state is h11.SEND_BODY:
            self._arm(LINGER)  # answered before the body was read: the rest is discarded, for a while

    def _waiting(self) -> bool:
        """Headers not complete yet, or the rest of an answered request's body not yet sent."""
        return self.conn.their_state is h11.IDLE or (self.conn.their_state is h11.SEND_BODY
                                                     and self.conn.our_state is h11.DONE)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float | None = None) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(seconds or self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self._waiting() and not self.transport.is_closing():
            self.logger.warning("closed a connection whose request %s", "headers did not arrive in time"
                                if self.conn.their_state is h11.IDLE else "body was still coming after its answer")
            self.transport.close()


def protocol(header_timeout: float) -> type[H11Protocol]:
    """The h11 protocol class closing connections whose headers take longer than `header_timeout` s."""
    return type("DeadlineH11", (_DeadlineH11,), {"header_timeout": header_timeout})


def uvicorn_config(app: Any, config: CdsConfig, **overrides: Any) -> uvicorn.Config:
    """The uvicorn configuration `guideline serve` runs (tests pass `log_level` and bind their own socket)."""
    settings: dict[str, Any] = {
        "host": bind_address(config.host), "port": config.port, "log_level": "info", "server_header": False,
        "http": protocol(config.header_timeout), "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
        "timeout_keep_alive": KEEP_ALIVE_TIMEOUT, **overrides}
    return uvicorn.Config(app, **settings)
