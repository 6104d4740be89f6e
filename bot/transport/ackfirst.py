"""Acknowledgements before decisions: a click's decision starts only once no request is waiting
for its answer, so a burst of clicks is acknowledged before the work it causes crowds the event
loop.

Everything the bot does shares one event loop. A click is acknowledged as soon as its signature
checks out (:func:`bot.transport.http.http_app`), and its decision (Bolt's dispatch, then the
review, the graph, the checkpoints and the Slack calls) runs afterwards. Started at once, the
decisions of the first clicks of a burst run between the acknowledgements of the later ones:
each later request waits behind their CPU work at every step (body read, answer). The gate
makes decisions wait while any request is being read or answered, and lets them go when none
is; a decision waits at most :data:`LONGEST_HOLD_SECONDS`, so a steady stream of requests
cannot starve them (they are acknowledged already: the delay is the decision's, not Slack's).
"""

from __future__ import annotations

import asyncio
import weakref

from starlette.types import ASGIApp, Message, Receive, Scope, Send

LONGEST_HOLD_SECONDS = 0.5
"""The longest a decision waits for the acknowledgements to be done (starvation bound)."""


class AckFirst:
    """The requests an event loop is reading or answering, and the decisions waiting for there
    to be none. One per event loop (:func:`gate`): acknowledgements and decisions compete for
    the loop, whichever server or app instance they came through.

    Invariant: ``open`` counts the HTTP requests (through :func:`count_requests`) whose ASGI
    call has started and whose ``http.response.start`` has not been sent (or whose call ended
    without one). Waiters are woken when it reaches zero, or after ``longest`` seconds.
    """

    def __init__(self, longest: float = LONGEST_HOLD_SECONDS) -> None:
        self.open = 0
        self.longest = longest
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def waiting(self) -> int:
        """Decisions waiting for the requests to be answered."""
        return sum(not waiter.done() for waiter in self._waiters)

    def opened(self) -> None:
        self.open += 1

    def answered(self) -> None:
        self.open -= 1
        if self.open == 0:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def quiet(self) -> bool:
        """Return once no request is waiting for its answer (True), or after ``longest``
        seconds of waiting (False)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.longest
        while self.open > 0:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            timer = loop.call_later(remaining, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        return True


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AckFirst] = weakref.WeakKeyDictionary()


def gate() -> AckFirst:
    """The running event loop's gate (made on first use, gone with the loop)."""
    loop = asyncio.get_running_loop()
    found = _GATES.get(loop)
    if found is None:
        found = _GATES[loop] = AckFirst()
    return found


def count_requests(app: ASGIApp) -> ASGIApp:
    """``app``, with each HTTP request counted in :func:`gate` from its start until its answer
    starts (or its call ends without one)."""

    async def counted(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        requests = gate()
        requests.opened()
        pending = True

        async def answer(message: Message) -> None:
            nonlocal pending
            if pending and message["type"] == "http.response.start":
                pending = False
                requests.answered()
            await send(message)

        try:
            await app(scope, receive, answer)
        finally:
            if pending:
                requests.answered()

    return counted


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
