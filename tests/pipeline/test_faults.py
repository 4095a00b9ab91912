"""Faults on purpose: a run killed (SIGKILL) at each step of publishing, storage failing
mid-run, two runs of one date at once, tampered objects. After each, a reader never sees a
manifest that disagrees with storage, the champion names a complete model, and a rerun
recovers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from datetime import date

import pyarrow.parquet as pq
import pytest

from closecast.control import locks
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.publish import verify_manifest
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.versions import VERSION_FILE, read_champion
from closecast.storage import StorageUnreachableError, open_storage
from closecast.storage.local import LocalStorage
from closecast.storage.s3 import S3Storage
from flows.daily_forecast import daily_forecast

DAY = date(2020, 12, 11)
SCOPE = RunScope(DAY, "adhoc")
TICKERS = ["QQQ", "BTC-USD"]
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"

# Runs the flow in child processes whose storage kills the process (SIGKILL, no clean-up)
# right before the N-th write of a key containing PATTERN. One process imports the flow once
# (no thread runs yet and TensorFlow is not loaded: safe to fork), then forks a child per
# line it reads (JSON: pattern, nth, root, models, log file) and prints the child's exit code.
# Each child is a process of its own, killed for real, without importing everything again
# (5-6 CPU-s per child).
KILLER = textwrap.dedent(
    """
    import json, os, signal, sys, threading
    from datetime import date
    from closecast.storage.local import LocalStorage
    from closecast.pipeline.settings import RunSettings
    from flows.daily_forecast import daily_forecast
    original = LocalStorage.write_bytes

    def run_until_killed(pattern, nth, root, models):
        seen = 0
        def write_bytes(self, key, data, content_type=None):
            nonlocal seen
            if pattern in key:
                seen += 1
                if seen == nth:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(self, key, data, content_type)
        LocalStorage.write_bytes = write_bytes
        settings = RunSettings(tickers=["QQQ", "BTC-USD"], storage=root,
                               as_of=date(2020, 12, 11), preset="fast", epochs=1,
                               lease_ttl_seconds=3, lease_wait_seconds=60, models=models)
        return 0 if daily_forecast(settings, return_state=True).is_completed() else 1

    assert threading.active_count() == 1, threading.enumerate()  # forking is safe
    for line in sys.stdin:
        pattern, nth, root, models, log = json.loads(line)
        pid = os.fork()
        if pid == 0:
            out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(out, 1)
            os.dup2(out, 2)
            code = run_until_killed(pattern, nth, root, models)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status), flush=True)
    """
)


def assert_consistent(root: str) -> None:
    storage = open_storage(root)
    assert verify_manifest(storage, SCOPE) == []
    for ticker in TICKERS:
        champion = read_champion(storage, ticker)
        if champion is not None:
            for name in champion.files:
                assert storage.exists(f"{catalog.model_prefix(ticker, champion.version)}/{name}")


def run_flow(root: str, tickers=TICKERS, **params):
    settings = RunSettings(
        tickers=tickers, storage=root, as_of=DAY, preset="fast", epochs=1, models=MODELS,
        **params,
    )  # fmt: skip
    return daily_forecast(settings, return_state=True)


@pytest.fixture(scope="module")
def published(tmp_path_factory, prefect_harness) -> str:
    """One published run of TICKERS: where each test starts, copied (one flow run for the
    module instead of one per test)."""
    root = str(tmp_path_factory.mktemp("published") / "store")
    assert run_flow(root).is_completed()
    return root


def copy_of(published: str, root: str) -> str:
    """Every object of the published store written to ``root`` (local or S3) through the
    storage API, as the run left them; returns ``root``."""
    source, target = open_storage(published), open_storage(root)
    for key in source.list_keys(""):
        target.write_bytes(key, source.read_bytes(key))
    assert verify_manifest(target, SCOPE) == [] and not target.list_keys("leases/")
    return root


@pytest.mark.slow  # a child process killed at each step
def test_a_rerun_killed_at_each_publish_step_never_leaves_a_lying_manifest(
    published, tmp_path
) -> None:
    root = copy_of(published, str(tmp_path / "store"))
    storage = open_storage(root)
    assert storage.exists(catalog.MANIFEST.key(SCOPE))
    from prefect.settings import PREFECT_API_URL

    # The child reports to this test's Prefect API rather than starting a server of its own.
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
    }
    killer = subprocess.Popen(
        [sys.executable, "-c", KILLER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,
    )
    try:
        # Killed while rewriting a ticker's objects, the run tables, the manifest itself.
        for pattern, nth in [("forecast.png", 1), ("metrics.parquet", 1), ("manifest.json", 1)]:
            log = tmp_path / f"child-{pattern}.log"
            killer.stdin.write(json.dumps([pattern, nth, root, MODELS, str(log)]) + "\n")
            killer.stdin.flush()
            returncode = int(killer.stdout.readline() or "0")
            assert returncode == -signal.SIGKILL, log.read_text()[-2000:] if log.exists() else ""
            # The manifest was withdrawn before anything was rewritten: absent, never lying.
            assert not storage.exists(catalog.MANIFEST.key(SCOPE)), pattern
            assert_consistent(root)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(killer.pid, signal.SIGKILL)
        killer.wait()
    # The killed runs' leases are taken over at once (their processes are gone); a rerun
    # recovers the scope.
    state = run_flow(root, lease_wait_seconds=60)
    assert state.is_completed(), state.message
    assert storage.exists(catalog.MANIFEST.key(SCOPE))
    assert_consistent(root)


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_storage_failing_mid_run_fails_the_run_without_a_lying_manifest(
    backend, published, tmp_path, monkeypatch, request
) -> None:
    if backend == "s3":
        request.getfixturevalue("s3_env")
        root, storage_class = request.getfixturevalue("s3_root"), S3Storage
    else:
        root, storage_class = str(tmp_path / "store"), LocalStorage
    copy_of(published, root)
    original = storage_class.write_bytes

    def failing(self, key, data, content_type=None):
        if key.startswith("metrics/"):
            raise StorageUnreachableError("storage went away (injected)")
        return original(self, key, data, content_type)

    # The storage answers until the run publishes its tables, then stops answering.
    monkeypatch.setattr(storage_class, "write_bytes", failing)
    state = run_flow(root, mode="retrain")
    assert state.is_failed()
    monkeypatch.setattr(storage_class, "write_bytes", original)
    storage = open_storage(root)
    assert not storage.exists(catalog.MANIFEST.key(SCOPE))
    assert verify_manifest(storage, SCOPE) == []
    for ticker in TICKERS:
        champion = read_champion(storage, ticker)
        for name in champion.files:
            assert storage.exists(f"{catalog.model_prefix(ticker, champion.version)}/{name}")
    # Storage back: the next run recovers the scope, and leaves no lease behind.
    assert run_flow(root).is_completed()
    assert verify_manifest(storage, SCOPE) == [] and storage.exists(catalog.MANIFEST.key(SCOPE))
    assert not storage.list_keys("leases/")


def test_a_run_of_a_date_another_run_holds_fails_naming_it_and_touches_nothing(
    published, tmp_path
) -> None:
    """Two runs of one date at once, made deterministic: the test is the other run, holding
    the scope's lease itself while the second run starts (no threads, no sleeps)."""
    root = copy_of(published, str(tmp_path / "store"))
    storage = open_storage(root)
    before = {key: storage.read_bytes(key) for key in storage.list_keys("")}
    lease_key = catalog.scope_lease_key(SCOPE)
    with locks.held(storage, lease_key, what="watchlist 2020-12-11-adhoc", owner="manual-run"):
        state = run_flow(root, mode="retrain", tickers=["QQQ"], lease_wait_seconds=0)
        assert state.is_failed()
        assert "being worked on by another run" in state.message
        assert "manual-run" in state.message, state.message
        # It withdrew no manifest, trained nothing and published nothing.
        now = {k: storage.read_bytes(k) for k in storage.list_keys("") if k != lease_key}
        assert now == before
    # The first run's outputs agree with the champion, and no lease is left behind.
    champion = read_champion(storage, "QQQ")
    manifest = json.loads(storage.read_bytes(catalog.MANIFEST.key(SCOPE)))
    assert manifest["tickers"]["QQQ"]["status"] == "ok"
    forecasts = pq.read_table(str(tmp_path / "store" / catalog.FORECASTS.key(SCOPE))).to_pylist()
    (qqq,) = [row for row in forecasts if row["ticker"] == "QQQ"]
    assert qqq["model_version"] == champion.version
    assert_consistent(root)
    assert not storage.list_keys("leases/")


def test_tampered_objects_are_detected_and_a_tampered_champion_is_retrained(
    published, tmp_path
) -> None:
    root = copy_of(published, str(tmp_path / "store"))
    storage = open_storage(root)
    plot = catalog.TICKER_PLOTS.key(SCOPE, "QQQ")
    storage.write_bytes(plot, b"not the plot")
    assert verify_manifest(storage, SCOPE) == [
        f"{plot}: differs from the manifest (size or sha256)"
    ]
    champion = read_champion(storage, "QQQ")
    assert champion.files == (VERSION_FILE,)
    storage.write_bytes(f"{catalog.model_prefix('QQQ', champion.version)}/{VERSION_FILE}", b"junk")
    state = run_flow(root)
    assert state.is_completed(), state.message
    after = read_champion(storage, "QQQ")
    assert after.version != champion.version and after.lineage == after.version
    assert verify_manifest(storage, SCOPE) == []
