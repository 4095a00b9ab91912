"""What the CLI sets up around Prefect: no phoning home unless asked, and one clear line
(exit 2) when the Prefect API or the Dask scheduler it was pointed at is not there.

Each check runs ``closecast`` in a fresh process with the user's Prefect settings removed,
as a user's shell would start it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]

# What a fresh ``closecast`` process makes of the user's Prefect settings: analytics on or off,
# and its temporary server's start-up timeout. Both are read once, when Prefect is imported,
# so each environment needs a fresh process; one process reads both.
READ_SETTINGS = (
    "from closecast import cli; cli.keep_prefect_offline(); cli.allow_slow_server_start()\n"
    "from prefect.settings import get_current_settings\n"
    "from closecast.commands._temporary_server import startup_timeout\n"
    "print(get_current_settings().server.analytics_enabled, startup_timeout())"
)
# Unset before Prefect reads its settings (once, at import), or it is silently ignored.
UNSET_STARTUP_TIMEOUT = (
    "import os; os.environ.pop('PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS')\n"
)


def _environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(
        PYTHONPATH=str(PROJECT_ROOT),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="300",
        TF_CPP_MIN_LOG_LEVEL="3",
    )
    env.update(extra)
    return env


def _python(code: str, tmp_path: Path, **extra: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=_environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.strip()


def _closecast(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "closecast.cli", *args],
        cwd=tmp_path,
        env=_environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=600,
    )


class ReadSettings(NamedTuple):
    """(analytics enabled, temporary server start-up timeout) as a fresh process reads them:
    with the user's defaults (start-up timeout 300), with analytics turned on and no start-up
    timeout of the user's, and with analytics turned on in the user's Prefect profile."""

    default: tuple[str, str]
    analytics_env_no_timeout: tuple[str, str]
    analytics_profile: tuple[str, str]


@pytest.fixture(scope="module")
def read_settings(tmp_path_factory) -> ReadSettings:
    """Three fresh Python processes, shared by the two tests below."""
    tmp_path = tmp_path_factory.mktemp("settings")
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(
        'active = "mine"\n[profiles.mine]\nPREFECT_SERVER_ANALYTICS_ENABLED = "true"\n'
    )
    return ReadSettings(
        tuple(_python(READ_SETTINGS, tmp_path).split()),
        tuple(
            _python(
                UNSET_STARTUP_TIMEOUT + READ_SETTINGS,
                tmp_path,
                PREFECT_SERVER_ANALYTICS_ENABLED="true",
            ).split()
        ),
        tuple(_python(READ_SETTINGS, tmp_path, PREFECT_PROFILES_PATH=str(profiles)).split()),
    )


@pytest.mark.slow  # fresh Python processes
def test_prefect_analytics_are_off_unless_the_user_turns_them_on(read_settings) -> None:
    assert read_settings.default[0] == "False"
    assert read_settings.analytics_env_no_timeout[0] == "True"
    assert read_settings.analytics_profile[0] == "True"


# ``closecast run`` as the CLI runs it, its temporary server watched from inside: still in
# the command, after the flow, a plain thread (one that does not copy the caller's context)
# reads the API URL, and after the command the server is stopped and the API unset.
RUN_WATCHING_THE_TEMPORARY_SERVER = """
import sys, threading
from contextlib import contextmanager
from closecast import cli
from closecast.commands import run as run_command

servers, seen = [], []
open_api = run_command.prefect_api_for_this_command

@contextmanager
def watched_api():
    with open_api() as server:
        servers.append(server)
        yield server
        from prefect.settings import get_current_settings
        thread = threading.Thread(target=lambda: seen.append(get_current_settings().api.url))
        thread.start(); thread.join()
        seen.append(server.process.poll() is None)

run_command.prefect_api_for_this_command = watched_api
code = cli.main(sys.argv[1:])
from prefect.settings import get_current_settings
(server,) = servers
print("server:", server.api_url == seen[0], seen[1], server.process.poll() is not None,
      get_current_settings().api.url)
sys.exit(code)
"""


@pytest.mark.slow
def test_an_ephemeral_run_prints_no_telemetry_line_and_its_server_serves_every_thread(
    tmp_path: Path,
) -> None:
    """The suite's run on a new machine: an empty Prefect home, so the temporary server
    creates and migrates its database first (the other server-starting tests copy a migrated
    one in: tests/conftest.py's ``migrated_prefect_home``).

    The same run's temporary server is the API of every thread, not only of threads that
    copy the caller's context (pointed anywhere else, Prefect would start a second server
    for them), and stops with the command."""
    # A Saturday: the flow starts its temporary Prefect server, then has nothing to do.
    assert not (tmp_path / "prefect-home").exists()
    result = subprocess.run(
        [sys.executable, "-c", RUN_WATCHING_THE_TEMPORARY_SERVER, "run", "--tickers", "AAPL",
         "--as-of", "2020-12-05", "--storage", str(tmp_path / "s")],
        cwd=tmp_path, env=_environment(tmp_path), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "Starting temporary server" in output, output[-3000:]
    assert "markets closed" in output, output[-3000:]
    assert "telemetry" not in output.lower(), output[-3000:]
    # The plain thread saw the server's URL while it ran; after the command it had stopped
    # and the process's API was unset again.
    assert "server: True True True None" in result.stdout.splitlines(), output[-3000:]


@pytest.mark.slow  # a fresh closecast process
def test_an_unreachable_prefect_api_is_one_line_and_exit_2(tmp_path, closed_port) -> None:
    url = f"http://127.0.0.1:{closed_port}/api"
    result = _closecast(
        ["run", "--tickers", "AAPL", "--storage", str(tmp_path / "s")],
        tmp_path,
        PREFECT_API_URL=url,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    assert url in lines[0] and "cannot reach the Prefect API" in lines[0]
    assert "Traceback" not in result.stdout + result.stderr


# ``closecast`` as ``python -m closecast.cli`` runs it, then the thread count OpenBLAS
# (NumPy's matrix products) actually runs with, read from the library NumPy loaded.
CLOSECAST_THEN_BLAS_THREADS = (
    "import ctypes, glob, os, sys\n"
    "from closecast import cli\n"
    "code = cli.main(sys.argv[1:])\n"
    "import numpy\n"
    "libs = os.path.join(os.path.dirname(numpy.__file__), '..', 'numpy.libs')\n"
    "lib = ctypes.CDLL(glob.glob(os.path.join(libs, 'libscipy_openblas*'))[0])\n"
    "print('blas threads:', lib.scipy_openblas_get_num_threads64_())\n"
    "sys.exit(code)\n"
)


class DaskAddressRun(NamedTuple):
    """``closecast run`` pointed at a Dask scheduler nobody runs, and the BLAS thread count
    its process ended with (the user's OPENBLAS_NUM_THREADS removed)."""

    address: str
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def unreachable_dask_run(tmp_path_factory) -> DaskAddressRun:
    """One fresh process, shared by the two tests below."""
    tmp_path = tmp_path_factory.mktemp("dask-address")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # a loopback port nothing listens on
        address = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    env = {k: v for k, v in _environment(tmp_path).items() if k != "OPENBLAS_NUM_THREADS"}
    result = subprocess.run(
        [sys.executable, "-c", CLOSECAST_THEN_BLAS_THREADS, "run", "--tickers", "AAPL",
         "--storage", str(tmp_path / "s"), "--task-runner", "dask", "--dask-address", address],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return DaskAddressRun(address, result)


@pytest.mark.slow  # a fresh closecast process (shared with the BLAS test below)
def test_an_unreachable_dask_address_fails_fast_with_one_line(unreachable_dask_run) -> None:
    address, result = unreachable_dask_run
    assert result.returncode == 2, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and address in lines[0], result.stderr[-3000:]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.slow  # fresh Python processes
def test_a_run_gives_its_temporary_server_two_minutes_unless_the_user_says(read_settings) -> None:
    assert read_settings.analytics_env_no_timeout[1] == "120.0"
    assert read_settings.default[1] == "300.0"  # the user's own setting


def test_a_temporary_server_that_exits_or_never_answers_is_named(tmp_path) -> None:
    from closecast.commands._temporary_server import TemporaryServer, TemporaryServerError

    exited = TemporaryServer(subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"]), 9)
    with pytest.raises(TemporaryServerError, match="exited with code 1"):
        exited.wait_until_ready(timeout=60)
    silent = TemporaryServer(subprocess.Popen([sys.executable, "-c", "input()"],
                                              stdin=subprocess.PIPE), 9)  # fmt: skip
    try:
        with pytest.raises(TemporaryServerError, match="did not answer within 1 s"):
            silent.wait_until_ready(timeout=1)
    finally:
        silent.stop()
    assert silent.process.poll() is not None


@pytest.mark.slow  # a fresh Python process (shared with the Dask address test above)
def test_numpys_blas_runs_on_one_thread_unless_the_user_says(unreachable_dask_run) -> None:
    # The CLI set it before building its parser (which loads NumPy).
    assert unreachable_dask_run.result.stdout.splitlines()[-1] == "blas threads: 1"
