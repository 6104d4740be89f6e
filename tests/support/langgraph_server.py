"""A ``langgraph dev`` a test may stop and start again, on the same port with the same state.

:func:`tests.support.langgraph_dev.running_langgraph_dev` runs one server for a whole session;
an outage test needs to take its server away and bring it back where the bot expects it (the
bot's ``AGENT_URL`` does not change). This starts the same server (same config, environment and
command) in its own working directory, which the in-memory runtime saves its state to when it
stops gracefully and reads back when it starts. It may host more graphs than the session's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from tests.support import langgraph_dev as dev


class RestartableServer:
    """One ``langgraph dev`` on a fixed port; :meth:`stop` and :meth:`start` at will."""

    def __init__(self, workdir: Path, port: int, graphs: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.config = workdir / "langgraph.json"
        config = dev.server_config()
        hosted = config["graphs"]
        assert isinstance(hosted, dict)
        hosted.update(graphs or {})
        self.config.write_text(json.dumps(config, indent=2))
        self.starts = 0

    @property
    def server(self) -> dev.LangGraphDev:
        pid = self.process.pid if self.process is not None else 0
        return dev.LangGraphDev(
            url=self.url, log=self.workdir / f"server-{self.starts}.log", pid=pid
        )

    def start(self) -> None:
        assert self.process is None, "already running"
        self.starts += 1
        with self.server.log.open("wb") as log:
            self.process = subprocess.Popen(
                dev._command(self.config, self.port),
                cwd=self.workdir,
                env=dev.server_env(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        dev._wait_until_ready(self.process, self.server, dev.START_TIMEOUT_SECONDS)

    def stop(self) -> None:
        if self.process is not None:
            dev._stop(self.process)
            self.process = None


@contextmanager
def restartable_langgraph_dev(
    graphs: Mapping[str, str] | None = None,
) -> Iterator[RestartableServer]:
    """``graphs``: more graph ids and specs to host, next to the session server's."""
    workdir = Path(tempfile.mkdtemp(prefix="approval-bot-langgraph-restart-"))
    server = RestartableServer(workdir, dev.free_port(), graphs)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
