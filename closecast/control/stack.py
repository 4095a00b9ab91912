"""A one-command local Prefect stack: server + UI on loopback, a process work pool, the
deployments of ``deployments/prefect.yaml`` and a worker, all as subprocesses of this machine.
The ``closecast stack up|down|status`` command (``closecast/commands/stack.py``) drives it.

Everything the stack writes lives in one state directory (``.closecast-stack/`` in the project
by default): the Prefect home (SQLite database, profiles), one log per process and
``state.json`` with the process ids. Every process started here carries the environment
variable ``CLOSECAST_STACK_DIR=<state dir>``, so that :func:`stop` finds them all again,
including flow-run processes a worker started in their own session and processes orphaned by
a crash, and leaves none behind: that clean-up is the part no Prefect command does.

What Prefect does itself, it does here: the server, the deployments and the worker are
Prefect's own CLI commands (``prefect server start``, ``prefect deploy``, ``prefect worker
start``), and the stack talks to the server through Prefect's client, pointed explicitly at
the stack's own API so that the caller's Prefect settings (another server, a Cloud key) never
leak in. The server runs in the foreground of its own session rather than with
``prefect server start --background``, which pipes the server's output to the exiting CLI
(so its log is lost) and records its pid in the Prefect home only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

STATE_DIR_NAME = ".closecast-stack"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4200
DEFAULT_POOL = "closecast-process"
PREFECT_FILE = "deployments/prefect.yaml"
DEFAULT_SOURCE = "sample"
DEFAULT_STORAGE_DIR = "closecast-data"
MARKER_ENV = "CLOSECAST_STACK_DIR"

# Settings of the caller that must not leak into the stack: it talks to its own server only.
_DROPPED_ENV = (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "PREFECT_PROFILE",
    "PREFECT_PROFILES_PATH",
    "PREFECT_UI_URL",
    "PREFECT_UI_API_URL",
    "PREFECT_API_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_DATABASE_CONNECTION_URL",
    "PREFECT_SERVER_API_HOST",
    "PREFECT_SERVER_API_PORT",
)


class StackError(RuntimeError):
    """The stack could not be started; the message says what to look at."""


def find_project_root(start: Path | None = None) -> Path:
    """The closecast checkout: ``$CLOSECAST_HOME``, else the first of the current directory,
    its parents and this package's parent that holds ``deployments/prefect.yaml``."""
    if home := os.environ.get("CLOSECAST_HOME"):
        return Path(home).expanduser().resolve()
    here = (start or Path.cwd()).resolve()
    package_parent = Path(__file__).resolve().parents[2]
    for candidate in (here, *here.parents, package_parent):
        if (candidate / PREFECT_FILE).is_file():
            return candidate
    raise StackError(
        f"no {PREFECT_FILE} in {here}, its parents or {package_parent}; "
        "run from the closecast checkout or set CLOSECAST_HOME"
    )


@dataclass(frozen=True)
class StackConfig:
    """Where the stack lives and what it serves.

    Attributes:
        project_root: The checkout holding ``deployments/prefect.yaml`` (the worker's flow
            runs change into it through the deployments' pull step).
        state_dir: Prefect home, logs and ``state.json``.
        host, port: Where the Prefect server, its API and UI listen.
        pool: The process work pool the deployments name.
        storage: The storage root the deployments pass (``CLOSECAST_STORAGE``).
        source: The price source the deployments pass (``CLOSECAST_SOURCE``).
        ui: Serve the Prefect UI.
        env: Extra environment for every process (after the caller's environment).
    """

    project_root: Path
    state_dir: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    pool: str = DEFAULT_POOL
    storage: str = ""
    source: str = DEFAULT_SOURCE
    ui: bool = True
    prefect_file: str = PREFECT_FILE
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_environment(cls, project_root: Path | None = None, **overrides: Any) -> StackConfig:
        """Defaults from ``CLOSECAST_STACK_*`` / ``CLOSECAST_STORAGE`` / ``CLOSECAST_SOURCE``."""
        root = (project_root or find_project_root()).resolve()
        config = cls(
            project_root=root,
            state_dir=Path(os.environ.get("CLOSECAST_STACK_STATE_DIR") or root / STATE_DIR_NAME),
            host=os.environ.get("CLOSECAST_STACK_HOST") or DEFAULT_HOST,
            port=int(os.environ.get("CLOSECAST_STACK_PORT") or DEFAULT_PORT),
            pool=os.environ.get("CLOSECAST_STACK_POOL") or DEFAULT_POOL,
            storage=os.environ.get("CLOSECAST_STORAGE") or str(root / DEFAULT_STORAGE_DIR),
            source=os.environ.get("CLOSECAST_SOURCE") or DEFAULT_SOURCE,
        )
        overrides = {k: v for k, v in overrides.items() if v is not None}
        if "state_dir" in overrides:
            overrides["state_dir"] = Path(overrides["state_dir"]).resolve()
        return replace(config, **overrides)

    @property
    def api_url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    @property
    def ui_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def prefect_home(self) -> Path:
        return self.state_dir / "prefect-home"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def log_file(self, name: str) -> Path:
        return self.state_dir / f"{name}.log"


def stack_environment(config: StackConfig) -> dict[str, str]:
    """The environment of every stack process: the caller's (AWS settings included), minus
    Prefect settings pointing elsewhere, plus the stack's own."""
    env = {k: v for k, v in os.environ.items() if k not in _DROPPED_ENV}
    env.update(
        {
            "PREFECT_HOME": str(config.prefect_home),
            "PREFECT_API_URL": config.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "true" if config.ui else "false",
            "PREFECT_CLI_PROMPT": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            # Deploy-time values of deployments/prefect.yaml's {{ $VAR }} placeholders, and
            # the run-time working directory of the pull step.
            "CLOSECAST_HOME": str(config.project_root),
            "CLOSECAST_STORAGE": config.storage or str(config.project_root / DEFAULT_STORAGE_DIR),
            "CLOSECAST_SOURCE": config.source,
            "PYTHONUNBUFFERED": "1",
            MARKER_ENV: str(config.state_dir),
        }
    )
    env.update(config.env)
    return env


def _prefect_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "prefect", *args]


def _port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text("utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


@contextmanager
def prefect_client(config: StackConfig, timeout: float = 10) -> Iterator[Any]:
    """Prefect's (synchronous) client for the stack's own API.

    Built with the stack's URL and no credentials rather than through ``get_client()``, which
    would follow the calling process's settings or an enclosing flow run's client.
    """
    from prefect.client.orchestration import SyncPrefectClient

    client = SyncPrefectClient(
        config.api_url, api_key=None, auth_string=None, httpx_settings={"timeout": timeout}
    )
    with client:
        yield client


def is_healthy(config: StackConfig) -> bool:
    """The server answers its health check."""
    with prefect_client(config, timeout=2) as client:
        return client.api_healthcheck() is None


def _spawn(config: StackConfig, name: str, command: list[str]) -> subprocess.Popen[bytes]:
    """A long-running stack process in its own session (process group), logging to a file."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    with open(config.log_file(name), "ab") as log:
        return subprocess.Popen(
            command,
            cwd=config.project_root,
            env=stack_environment(config),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _run(
    config: StackConfig,
    name: str,
    command: list[str],
    timeout: float,
    drop_env: tuple[str, ...] = (),
) -> str:
    """A one-shot Prefect CLI command; its output is appended to ``<name>.log``."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in stack_environment(config).items() if k not in drop_env}
    try:
        result = subprocess.run(
            command,
            cwd=config.project_root,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as exc:
        raise StackError(f"{' '.join(command[2:])} did not finish within {timeout:.0f} s") from exc
    output = result.stdout + result.stderr
    with open(config.log_file(name), "a", encoding="utf-8") as log:
        log.write(f"$ {' '.join(command)}\n{output}\n")
    if result.returncode != 0:
        raise StackError(
            f"{' '.join(command[2:])} failed (exit {result.returncode}):\n"
            + "\n".join(output.splitlines()[-30:])
        )
    return output


def read_state(config: StackConfig) -> dict[str, Any]:
    """``state.json``: pids and URLs of a started stack, ``{}`` when there is none."""
    try:
        return json.loads(config.state_file.read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _write_state(config: StackConfig, **values: Any) -> None:
    state = read_state(config) | values
    config.state_dir.mkdir(parents=True, exist_ok=True)
    tmp = config.state_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2), "utf-8")
    tmp.replace(config.state_file)


def _wait_until(
    ready: Callable[[], bool],
    process: subprocess.Popen[bytes],
    config: StackConfig,
    *,
    log_name: str,
    what: str,
    state: str,
    timeout: float,
) -> None:
    """Poll ``ready`` until it holds; fail with the log's tail if the process dies first."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            log = config.log_file(log_name)
            raise StackError(f"{what} exited ({process.returncode}); {log}:\n{_tail(log)}")
        if time.monotonic() > deadline:
            raise StackError(f"{what} was not {state} within {timeout:.0f} s")
        time.sleep(0.5)


def start_server(config: StackConfig, timeout: float = 120) -> int:
    """Start ``prefect server start`` on ``host:port`` and wait until ``/api/health`` answers.

    Returns:
        The server's pid (also its process group id).
    """
    if _port_in_use(config.host, config.port):
        raise StackError(
            f"{config.host}:{config.port} is already in use; stop what listens there or "
            "choose another port (--port or CLOSECAST_STACK_PORT)"
        )
    config.prefect_home.mkdir(parents=True, exist_ok=True)
    command = _prefect_command("server", "start", "--host", config.host, "--port", str(config.port))
    command.append("--ui" if config.ui else "--no-ui")
    process = _spawn(config, "server", command)
    _write_state(config, server=process.pid, api_url=config.api_url, ui_url=config.ui_url)
    _wait_until(
        lambda: is_healthy(config),
        process,
        config,
        log_name="server",
        what="the Prefect server",
        state="healthy",
        timeout=timeout,
    )
    return process.pid


def create_pool(config: StackConfig) -> None:
    """Create (or keep) the process work pool, with the process worker's default job template
    (what ``prefect work-pool create --type process`` would set)."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound
    from prefect.workers.process import ProcessWorker

    with prefect_client(config) as client:
        try:
            client.read_work_pool(config.pool)
            return
        except ObjectNotFound:
            pass
        client.create_work_pool(
            WorkPoolCreate(
                name=config.pool,
                type=ProcessWorker.type,
                base_job_template=ProcessWorker.get_default_base_job_template(),
            )
        )


def apply_deployments(config: StackConfig, timeout: float = 300) -> list[dict[str, Any]]:
    """``prefect deploy --all --prefect-file deployments/prefect.yaml`` from the project root.

    ``CLOSECAST_HOME`` is withheld from the deploy so that the pull step keeps its
    placeholder and each worker resolves it to its own checkout when a run starts.

    Returns:
        The deployments now on the server (name, id, work pool).
    """
    _run(
        config,
        "deploy",
        _prefect_command("--no-prompt", "deploy", "--all", "--prefect-file", config.prefect_file),
        timeout,
        drop_env=("CLOSECAST_HOME",),
    )
    return list_deployments(config)


def list_deployments(config: StackConfig) -> list[dict[str, Any]]:
    """The deployments on the stack's server: name, id, work pool."""
    with prefect_client(config) as client:
        deployments = client.read_deployments(limit=200)
    return [{"name": d.name, "id": str(d.id), "work_pool": d.work_pool_name} for d in deployments]


def online_workers(config: StackConfig) -> list[str]:
    """Names of the pool's workers that sent a heartbeat recently ([] if none can be read)."""
    from prefect.client.schemas.objects import WorkerStatus

    try:
        with prefect_client(config, timeout=5) as client:
            workers = client.read_workers_for_work_pool(config.pool)
    except Exception:  # no server yet, no pool yet: nobody is online
        return []
    return [w.name for w in workers if w.status == WorkerStatus.ONLINE]


def start_worker(config: StackConfig, timeout: float = 120) -> int:
    """Start a process worker for the pool and wait until it is online.

    Returns:
        The worker's pid (also its process group id).
    """
    name = f"closecast-{socket.gethostname()}-{config.port}"
    process = _spawn(
        config,
        "worker",
        _prefect_command(
            "worker", "start", "--pool", config.pool, "--type", "process", "--name", name
        ),
    )
    _write_state(config, worker=process.pid, worker_name=name)
    _wait_until(
        lambda: name in online_workers(config),
        process,
        config,
        log_name="worker",
        what="the worker",
        state="online",
        timeout=timeout,
    )
    return process.pid


def up(config: StackConfig, *, timeout: float = 300) -> dict[str, Any]:
    """Start server, pool, deployments and worker; on any failure stop what was started.

    Returns:
        The stack's state (pids, URLs, deployments).
    """
    if status(config)["running"]:
        raise StackError(
            f"a stack is already running from {config.state_dir}; `closecast stack down` first"
        )
    stop(config)  # leftovers of a crashed stack
    try:
        start_server(config, timeout=min(timeout, 180))
        create_pool(config)
        deployments = apply_deployments(config, timeout=timeout)
        start_worker(config, timeout=min(timeout, 120))
    except BaseException:
        stop(config)
        raise
    _write_state(
        config,
        deployments=deployments,
        pool=config.pool,
        storage=config.storage,
        source=config.source,
        project_root=str(config.project_root),
    )
    return read_state(config)


# --- stopping ------------------------------------------------------------------------------


def _psutil():
    import psutil  # a dependency of distributed (prefect-dask); imported only to stop

    return psutil


def stack_processes(config: StackConfig) -> list[Any]:
    """Every live process of this stack: the recorded pids, their descendants, and any
    process of this user carrying ``CLOSECAST_STACK_DIR=<state dir>``."""
    psutil = _psutil()
    found: dict[int, Any] = {}
    state = read_state(config)
    for key in ("server", "worker"):
        pid = state.get(key)
        if not pid:
            continue
        try:
            process = psutil.Process(pid)
            if _carries_marker(process, config):
                found[pid] = process
                for child in process.children(recursive=True):
                    found[child.pid] = child
        except psutil.Error:
            continue
    me = os.getpid()
    for process in psutil.process_iter():
        if process.pid in found or process.pid == me:
            continue
        try:
            if process.uids().real == os.getuid() and _carries_marker(process, config):
                found[process.pid] = process
        except psutil.Error:
            continue
    return list(found.values())


def _carries_marker(process: Any, config: StackConfig) -> bool:
    try:
        return process.environ().get(MARKER_ENV) == str(config.state_dir)
    except Exception:
        return False


def _signal_all(processes: Iterable[Any], sig: int) -> None:
    for process in processes:
        try:
            # Each stack process leads its own group: signal the group, then the process.
            if os.getpgid(process.pid) == process.pid:
                os.killpg(process.pid, sig)
            process.send_signal(sig)
        except (ProcessLookupError, PermissionError, OSError):
            continue
        except Exception:  # psutil.NoSuchProcess and friends
            continue


def stop(config: StackConfig, *, grace: float = 15) -> list[int]:
    """Stop every process of the stack (SIGTERM, then SIGKILL after ``grace`` seconds).

    Returns:
        The pids that were running.
    """
    psutil = _psutil()
    processes = stack_processes(config)
    pids = sorted(p.pid for p in processes)
    if processes:
        _signal_all(processes, signal.SIGTERM)
        _, alive = psutil.wait_procs(processes, timeout=grace)
        # Processes started meanwhile (a flow run picked up during shutdown) are found again.
        alive = {p.pid: p for p in alive} | {p.pid: p for p in stack_processes(config)}
        if alive:
            _signal_all(alive.values(), signal.SIGKILL)
            psutil.wait_procs(list(alive.values()), timeout=5)
    if config.state_file.exists():
        _write_state(config, server=None, worker=None, worker_name=None)
    return pids


def status(config: StackConfig) -> dict[str, Any]:
    """What runs: pids alive, server health, workers online."""
    psutil = _psutil()
    state = read_state(config)
    alive = {}
    for key in ("server", "worker"):
        pid = state.get(key)
        alive[key] = bool(pid) and psutil.pid_exists(pid)
    healthy = is_healthy(config)
    return {
        "running": healthy or any(alive.values()),
        "healthy": healthy,
        "server_pid": state.get("server") if alive["server"] else None,
        "worker_pid": state.get("worker") if alive["worker"] else None,
        "workers_online": online_workers(config) if healthy else [],
        "api_url": config.api_url,
        "ui_url": config.ui_url,
        "state_dir": str(config.state_dir),
        "processes": len(stack_processes(config)),
    }


def remove_state(config: StackConfig) -> None:
    """Delete the state directory (database, logs); only when nothing runs."""
    if stack_processes(config):
        raise StackError("the stack is still running; stop it first")
    shutil.rmtree(config.state_dir, ignore_errors=True)
