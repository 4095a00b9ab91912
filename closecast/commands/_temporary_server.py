"""Prefect's temporary API server, started by a run command at once instead of on first use.

Without ``PREFECT_API_URL`` Prefect starts a temporary ("ephemeral") server when the flow
first talks to the API: the run then waits, doing nothing, for that server to import
Prefect's server stack and check its database, after it has imported everything else. Started
by ``closecast run``/``replay`` as soon as the arguments are read, the same server boots in
its own process while this one loads the pipeline and TensorFlow, and the wait is mostly gone.
The command is Prefect's own (``prefect.server.api.server.SubprocessASGIServer``: uvicorn on
``create_app`` with the ephemeral flags, so services and the UI stay off), started without
importing Prefect's server stack into this process, which only talks to it. Block types are
not registered on its start (a flow run does not need them; ``prefect server start`` on the
same database registers them).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prefect.settings import Setting

PORT_IN_USE_EXIT = 3
"""uvicorn's exit code when its port was taken meanwhile: start again on another port."""

STOP_SECONDS = 5.0
"""How long the server gets to exit after SIGTERM before it is killed (Prefect's own)."""

SERVER_ENVIRONMENT = {
    "PREFECT_UI_ENABLED": "0",
    "PREFECT__SERVER_EPHEMERAL": "1",
    "PREFECT__SERVER_FINAL": "1",
    "PREFECT_API_BLOCKS_REGISTER_ON_START": "false",
    "PREFECT_MEMOIZE_BLOCK_AUTO_REGISTRATION": "false",
}
"""The ephemeral server's switches (Prefect's), and no block registration on start."""


class TemporaryServerError(RuntimeError):
    """The temporary server did not answer in time or exited."""


@dataclass
class TemporaryServer:
    """A Prefect API server in a child process, for the lifetime of one command.

    Attributes:
        process: The server's process (uvicorn).
        port: The loopback port it listens on.
    """

    process: subprocess.Popen[bytes]
    port: int

    @property
    def api_url(self) -> str:
        """The API's address, as ``PREFECT_API_URL`` takes it."""
        return f"http://127.0.0.1:{self.port}/api"

    @classmethod
    def start(cls) -> TemporaryServer:
        """Start the server's process and return at once (:meth:`wait_until_ready` waits)."""
        port = _free_loopback_port()
        return cls(_launch(port), port)

    def wait_until_ready(self, timeout: float) -> None:
        """Block until the API answers its health check.

        Raises:
            TemporaryServerError: No answer within ``timeout`` seconds, or the process
                exited (its exit code in the message).
        """
        import httpx

        deadline = time.monotonic() + timeout
        with httpx.Client() as client:
            while time.monotonic() < deadline:
                code = self.process.poll()
                if code == PORT_IN_USE_EXIT:
                    self.port = _free_loopback_port()
                    self.process = _launch(self.port)
                elif code is not None:
                    raise TemporaryServerError(
                        f"Prefect's temporary server exited with code {code} before answering"
                    )
                try:
                    if client.get(f"{self.api_url}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise TemporaryServerError(
            f"Prefect's temporary server did not answer within {timeout:.0f} s "
            "(PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS)"
        )

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after :data:`STOP_SECONDS`)."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@contextmanager
def prefect_api_for_this_command() -> Iterator[TemporaryServer | None]:
    """The Prefect API a run command uses: the configured one (yields None), or a temporary
    server started now (yields it), which this process and its children use until it is
    stopped on exit.

    Call after :func:`closecast.commands._environment.keep_prefect_offline` (the server
    inherits the analytics switch) and before the flow is first called.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.settings import get_current_settings, temporary_settings

    settings = get_current_settings()
    if settings.api.url or not settings.server.ephemeral.enabled:
        yield None
        return
    server = TemporaryServer.start()
    print(  # as Prefect says it, on stderr, where its log lines go
        f"Starting temporary server on {server.api_url.removesuffix('/api')} (it stops with "
        "this command; set PREFECT_API_URL to use a running Prefect server instead)",
        file=sys.stderr,
        flush=True,
    )
    previous = os.environ.get("PREFECT_API_URL")
    # The process-wide settings, not a context of this thread's: threads that do not copy
    # the caller's context (and task processes, through the environment) must see it too,
    # or Prefect starts a server of its own for them.
    os.environ["PREFECT_API_URL"] = server.api_url
    refresh_global_settings_context()
    try:
        # This server dies with the process: no heartbeats to mark a dead run crashed.
        with temporary_settings(no_flow_heartbeats()):
            try:
                yield server
            finally:
                _deliver_pending_records()
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = previous
        refresh_global_settings_context()


def no_flow_heartbeats() -> dict[Setting, None]:
    """The Prefect setting that turns flow-run heartbeats off, for ``temporary_settings``.

    Heartbeats let a server mark a run crashed when its process dies: nothing to gain from a
    server that stops with the command (or the test session). Their thread sleeps in 1 s
    steps and every flow run waited for it to wake at exit: measured, a one-ticker daily run
    took 1-2 s less wall with them off (4.7, 4.0, 3.3 s against 8.4, 6.2, 4.2 s).
    """
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY

    return {PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}


def _deliver_pending_records() -> None:
    """Send the run's queued log lines and events (task runs are recorded as events) to the
    server before it stops, as Prefect's own test harness does (Prefect drains them at exit,
    when this server would already be gone)."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    APILogWorker.drain_all(timeout=STOP_SECONDS)
    EventsWorker.drain_all(timeout=STOP_SECONDS)


def startup_timeout() -> float:
    """Seconds the temporary server gets to answer (Prefect's own setting)."""
    from prefect.settings import get_current_settings

    return float(get_current_settings().server.ephemeral.startup_timeout_seconds)


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(port: int) -> subprocess.Popen[bytes]:
    import prefect
    from prefect.settings import get_current_settings

    environment = {
        **os.environ,
        **get_current_settings().to_environment_variables(exclude_unset=True),
        **SERVER_ENVIRONMENT,
    }
    environment.pop("PREFECT_API_URL", None)
    return subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn",
            "--app-dir", str(Path(prefect.__file__).parent.parent),
            "--factory", "prefect.server.api.server:create_app",
            "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "error", "--lifespan", "on",
        ],
        env=environment,
    )  # fmt: skip
