"""The bot's side of the acknowledging process (:mod:`bot.transport.acker`): start it on the
listening socket, restart it if it dies, stop it first on shutdown.

The listening socket is opened here and stays open in this process for as long as the bot
serves, so a restarted acknowledger takes over the same port, and connections that arrive while
it restarts wait in the kernel's queue instead of being refused. The bot's own server listens on
a Unix socket in a private directory (mode 0700) that only the acknowledger connects to; every
request it forwards is verified again there, so that socket is not what keeps anything safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from bot.transport.acker import BACKLOG, SECRET_VARIABLE

log = logging.getLogger(__name__)

START_SECONDS = 15.0
"""The longest the acknowledger may take to say it is ready (a Python start and one import of
``httptools``: well under a second on an idle machine)."""

STOP_SECONDS = 10.0
"""The longest it may take to finish what it started after SIGTERM, before it is killed."""

RESTART_DELAYS = (0.1, 0.5, 1.0, 2.0, 5.0)
"""Waits before each restart after it died; the last repeats."""


SOURCE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
"""Where the ``bot`` package is, for a checkout run without installing it."""


class AcknowledgerFailed(RuntimeError):
    """The acknowledging process did not start (its own message is in the log)."""


BIND_SECONDS = 10.0
"""How long binding the port is retried while it is taken: the acknowledger of a process that
just died may still hold it for a moment (it closes it as soon as it sees the pipe close)."""


async def listening_socket(host: str, port: int) -> socket.socket:
    """The public socket, bound and listening (IPv6 when ``host`` names an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = asyncio.get_running_loop().time() + BIND_SECONDS
    while True:
        try:
            return socket.create_server((host, port), family=family, backlog=BACKLOG)
        except OSError as error:
            if error.errno != errno.EADDRINUSE or asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.05)


def private_socket_path() -> Path:
    """A path for the bot's Unix socket in a new directory only this user can enter."""
    return Path(tempfile.mkdtemp(prefix="slack-bot-")) / "bot.sock"


def unix_listening_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(BACKLOG)
    return sock


class AckProcess:
    """One acknowledging process at a time on ``listening``, forwarding to ``upstream``.

    Invariant: while :meth:`run` has not been told to stop, an acknowledger is running or about
    to be restarted; once stopping, none is started again.
    """

    def __init__(self, listening: socket.socket, upstream: Path, secret: str) -> None:
        self.listening = listening
        self.upstream = upstream
        self.secret = secret
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._stopping = False

    async def start(self) -> None:
        """Start it and wait (bounded) until it accepts; :class:`AcknowledgerFailed` if not."""
        fd = self.listening.fileno()
        env = {**os.environ, SECRET_VARIABLE: self.secret}
        env.setdefault("PYTHONPATH", SOURCE_ROOT)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot.transport.acker",
            "--fd",
            str(fd),
            "--upstream",
            str(self.upstream),
            pass_fds=(fd,),
            stdin=asyncio.subprocess.PIPE,  # its end-of-file tells it this process is gone
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        self.starts += 1
        assert self.process.stdout is not None
        try:
            line = await asyncio.wait_for(self.process.stdout.readline(), START_SECONDS)
        except TimeoutError:
            line = b""
        if line.strip() != b"READY":
            await self._end()
            raise AcknowledgerFailed("the acknowledging process did not start (see its log)")
        log.info("acknowledging process %s accepts on the listening socket", self.process.pid)

    def running(self) -> bool:
        """Not told to stop."""
        return not self._stopping

    async def supervise(self) -> None:
        """Restart it whenever it exits until :meth:`stop` is called (runs as a task)."""
        failures = 0
        while self.running() and self.process is not None:
            code = await self.process.wait()
            if not self.running():
                return
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            log.error("the acknowledging process exited (%s); restarting in %.1f s", code, delay)
            await asyncio.sleep(delay)
            try:
                await self.start()
                failures = 0
            except AcknowledgerFailed:
                failures += 1

    async def stop(self) -> None:
        """SIGTERM: it stops accepting and finishes what it started (bounded), then exits."""
        self._stopping = True
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
        await self._end()

    async def _end(self) -> None:
        process = self.process
        if process is None:
            return
        try:
            await asyncio.wait_for(process.wait(), STOP_SECONDS)
        except TimeoutError:
            log.warning("the acknowledging process did not stop in time; killing it")
            process.kill()
            await process.wait()
        if process.stdin is not None:
            process.stdin.close()


@asynccontextmanager
async def acknowledging(
    listening: socket.socket, upstream: Path, secret: str
) -> AsyncIterator[AckProcess]:
    """An acknowledger on ``listening`` while the block runs, restarted if it dies; stopped
    (finishing its requests) on leaving."""
    acker = AckProcess(listening, upstream, secret)
    await acker.start()
    supervisor = asyncio.create_task(acker.supervise())
    try:
        yield acker
    finally:
        await acker.stop()
        supervisor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervisor


def remove_private_socket(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)
