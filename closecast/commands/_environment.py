"""What every command sets up before Prefect is imported, and the servers a run needs.

* Prefect's anonymous analytics are off unless the user turned them on: an ephemeral
  ``closecast run`` must not phone home (offline it logged ``Failed to send telemetry``).
* A configured ``PREFECT_API_URL`` and a ``--dask-address`` are tried once, briefly, before
  a run starts, so that a server that is not there is one line and exit 2, not a traceback
  after a minute of retries.
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from closecast.storage.redaction import redact_url

ANALYTICS_SETTING = "PREFECT_SERVER_ANALYTICS_ENABLED"
"""Prefect 3's switch for the server's telemetry and the SDK's analytics events."""

STARTUP_TIMEOUT_SETTING = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"
"""How long a run waits for its temporary Prefect server (Prefect's setting)."""

REACH_TIMEOUT_SECONDS = 5.0
"""How long a run waits for the Prefect API or a Dask scheduler to answer before refusing."""


def keep_prefect_offline() -> None:
    """Turn Prefect's analytics off for this process and the servers it starts, unless the
    user set ``PREFECT_SERVER_ANALYTICS_ENABLED`` (environment or active Prefect profile).

    Call before Prefect is imported: its settings are read once, at import.
    """
    if ANALYTICS_SETTING in os.environ or ANALYTICS_SETTING in _active_profile_settings():
        return
    os.environ[ANALYTICS_SETTING] = "false"


def allow_slow_server_start() -> None:
    """Give Prefect's temporary API server 120 s to start instead of Prefect's 20, too little
    on a busy two-core machine; a user's own setting still wins.

    Call before Prefect is imported: its settings are read once, at import.
    """
    os.environ.setdefault(STARTUP_TIMEOUT_SETTING, "120")


def one_blas_thread() -> None:
    """Run NumPy's matrix products (OpenBLAS) on one thread, unless the user set
    ``OPENBLAS_NUM_THREADS``.

    The network runs forward in NumPy (:mod:`lstm_model.inference`) on a few hundred windows
    at a time, beside TensorFlow's and Prefect's own threads: OpenBLAS's helper threads then
    wait for cores the other threads hold, and a product of a few microseconds' work took
    milliseconds (a quarter of a cold run's model time on two busy cores). Every command
    sets it, so the Prefect worker and servers ``closecast stack up`` starts inherit it. Call
    before NumPy is imported: OpenBLAS reads it once, when it loads.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _active_profile_settings() -> dict[str, object]:
    """The settings of the active Prefect profile, read as Prefect does (empty if none)."""
    home = Path(os.environ.get("PREFECT_HOME") or Path.home() / ".prefect").expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH") or home / "profiles.toml").expanduser()
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return {}
    active = os.environ.get("PREFECT_PROFILE") or document.get("active") or "ephemeral"
    profile = document.get("profiles", {}).get(active, {})
    return profile if isinstance(profile, dict) else {}


def prefect_api_problem() -> str | None:
    """Why the configured Prefect API cannot be used, or None (also when none is set: a run
    then starts a temporary server of its own).

    Any HTTP answer counts as reachable; only a connection that fails or times out is a
    problem, since a refused login or a proxy's error page needs its own message.
    """
    import httpx
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    if not url:
        return None
    try:
        httpx.get(f"{url.rstrip('/')}/health", timeout=REACH_TIMEOUT_SECONDS)
    except httpx.TransportError as exc:
        return (
            f"cannot reach the Prefect API at {redact_url(url)} (PREFECT_API_URL): "
            f"{type(exc).__name__}: {exc or 'no answer'}; start it (`closecast stack up`) or "
            "unset PREFECT_API_URL to run with a temporary server"
        )
    return None


def dask_address_problem(address: str) -> str | None:
    """Why the Dask scheduler at ``address`` (``tcp://host:port``) cannot be used, or None.

    Only TCP addresses are tried (a TCP connection within ``REACH_TIMEOUT_SECONDS``);
    other protocols are left to Dask.
    """
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    if parts.scheme != "tcp":
        return None
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        port = None
    if not host or port is None:
        return f"--dask-address: {address!r} is not a scheduler address like tcp://host:8786"
    try:
        with socket.create_connection((host, port), timeout=REACH_TIMEOUT_SECONDS):
            return None
    except OSError as exc:
        return (
            f"--dask-address: cannot reach the Dask scheduler at {address} "
            f"({exc.strerror or type(exc).__name__}, {REACH_TIMEOUT_SECONDS:.0f}s timeout); "
            "start it or leave --dask-address out for a local cluster"
        )
