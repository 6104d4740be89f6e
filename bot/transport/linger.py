"""A lingering close for responses sent before the request's body was read (413).

Closing a TCP socket whose receive buffer still holds unread bytes makes the kernel send a
reset instead of a FIN, and a reset can reach the client before it has read the response
already sent: under load, a client still sending a 16 MiB body saw "connection reset" instead
of the 413 (tests/test_hostile_requests.py). So, when uvicorn closes a connection whose
request body has not all arrived, this protocol first sends a FIN after the response
(``write_eof``), then keeps reading and discarding what the client still sends (unparsed) until
the client closes, :data:`LINGER_BYTES` were discarded or :data:`LINGER_SECONDS` passed, and
only then closes. The app never sees those bytes: it read at most the body cap.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from bot.transport.checks import LINGER_BYTES, LINGER_SECONDS


class _ClosesLingering:
    """The connection's transport, whose ``close()`` lingers while the body is unread; every
    other attribute is the transport's own (not a subclass of ``asyncio.Transport``, whose
    methods would shadow the delegation)."""

    def __init__(self, transport: asyncio.Transport, protocol: LingeringHttpToolsProtocol) -> None:
        self.real = transport
        self.protocol = protocol

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def is_closing(self) -> bool:
        return self.real.is_closing() or self.protocol.lingering

    def pause_reading(self) -> None:
        if not self.protocol.lingering:
            self.real.pause_reading()

    def close(self) -> None:
        if self.protocol.lingering or self.real.is_closing():
            return
        cycle = self.protocol.cycle
        unread = cycle is not None and cycle.more_body and not self.protocol.lost
        if not unread or not self.real.can_write_eof():
            self.real.close()
            return
        self.protocol.linger()


class LingeringHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a lingering close (see the module's docstring)."""

    lingering = False
    lost = False
    discarded = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(cast(asyncio.Transport, _ClosesLingering(transport, self)))

    def linger(self) -> None:
        """Send the FIN after the response, then discard what comes, for a bounded time."""
        real = self.real_transport
        self.lingering = True
        real.write_eof()
        real.resume_reading()
        self.loop.call_later(LINGER_SECONDS, real.close)

    @property
    def real_transport(self) -> asyncio.Transport:
        transport: Any = self.transport
        return transport.real if isinstance(transport, _ClosesLingering) else self.transport

    def data_received(self, data: bytes) -> None:
        if not self.lingering:
            super().data_received(data)
            return
        self.discarded += len(data)
        if self.discarded > LINGER_BYTES:
            self.real_transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        super().connection_lost(exc)
