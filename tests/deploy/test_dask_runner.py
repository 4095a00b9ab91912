"""The per-ticker work spread in chunks over a local Dask cluster of two processes gives the
same results as one process on threads, and a run's own cluster listens on loopback only
(both read one Dask run)."""

from __future__ import annotations

import threading
from datetime import date
from typing import NamedTuple

import psutil
import pytest
from prefect.states import State

from closecast.outputs import catalog
from closecast.pipeline.settings import RunSettings, every_model
from closecast.storage import open_storage
from closecast.storage.io import read_parquet
from flows.daily_forecast import daily_forecast

AS_OF = date(2020, 12, 11)
TICKERS = ["QQQ", "BTC-USD"]
# Every model but global_lstm (no test here looks at it; it trains a network over every
# ticker): global_ar keeps the pooled step and the global models' loading in the chunks.
MODELS = tuple(kind for kind in every_model() if kind != "global_lstm")


class Runs(NamedTuple):
    """The same run on threads and on a local Dask cluster, and what listened meanwhile."""

    threads: State
    dask: State
    threads_root: str
    dask_root: str
    listening: set[tuple[int, str, int]]
    """(pid, address, port) of the sockets this process and its children listened on
    during the Dask run, beyond those listening before it."""


@pytest.fixture(scope="module")
def runs(prefect_harness, tmp_path_factory) -> Runs:
    """One run on threads, then the same on a local Dask cluster of two worker processes,
    sampling the listening sockets while it runs: one cluster serves both tests below (each
    cluster starts processes that import TensorFlow and Prefect)."""
    tmp_path = tmp_path_factory.mktemp("dask")
    # No ticker plots: no test here reads them (each Dask worker would import matplotlib).
    common = dict(tickers=TICKERS, source="sample", as_of=AS_OF, preset="fast", epochs=2,
                  models=MODELS, ticker_plots=0)  # fmt: skip
    roots = str(tmp_path / "threads"), str(tmp_path / "dask")
    threads = daily_forecast(
        RunSettings(storage=roots[0], task_runner="threads", **common), return_state=True
    )
    before = _listening_sockets()
    seen: set[tuple[int, str, int]] = set()
    stop = threading.Event()

    def sample() -> None:
        # Every 2 s: the listeners (scheduler, dashboard, nannies, workers) live as long as
        # the cluster, tens of seconds. Each sample parses the machine's whole socket tables
        # (every process's connections) once per process of ours: at 0.5 s the sampler took
        # about 13 CPU-s of this test's ~90 (py-spy, on the shared machine under load).
        while not stop.is_set():
            seen.update(_listening_sockets() - before)
            stop.wait(2.0)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        dask = daily_forecast(
            RunSettings(storage=roots[1], task_runner="dask", workers=2, **common),
            return_state=True,
        )
    finally:
        stop.set()
        sampler.join(timeout=30)
    return Runs(threads, dask, *roots, listening=seen)


def _metrics(root: str) -> dict[str, dict]:
    scope = catalog.RunScope(AS_OF, "adhoc")
    frame = read_parquet(open_storage(root), catalog.METRICS.key(scope)).to_pandas()
    return {row["ticker"]: row for row in frame.to_dict("records")}


@pytest.mark.slow  # a local Dask cluster of processes
def test_dask_local_cluster_matches_threads(runs: Runs) -> None:
    assert runs.threads.is_completed(), runs.threads.message
    assert runs.dask.is_completed(), runs.dask.message

    by_threads, by_dask = _metrics(runs.threads_root), _metrics(runs.dask_root)
    assert sorted(by_threads) == sorted(by_dask) == sorted(TICKERS)
    for ticker in TICKERS:
        a, b = by_threads[ticker], by_dask[ticker]
        assert a["status"] == b["status"] == "ok"
        assert (a["n_train"], a["backtest_n"], a["mode"]) == (
            b["n_train"],
            b["backtest_n"],
            b["mode"],
        )
        assert a["model_version"] == b["model_version"]
        for column in ("backtest_rmse", "backtest_naive_rmse", "backtest_u2"):
            assert b[column] == pytest.approx(a[column], rel=1e-9, abs=1e-12), (ticker, column)
    # The served forecasts agree too: the refit models are the same models.
    scope = catalog.RunScope(AS_OF, "adhoc")
    forecasts = [
        read_parquet(open_storage(root), catalog.FORECASTS.key(scope)).to_pandas()
        for root in (runs.threads_root, runs.dask_root)
    ]
    assert forecasts[0]["forecast"].to_numpy() == pytest.approx(forecasts[1]["forecast"].to_numpy())


def _listening_sockets() -> set[tuple[int, str, int]]:
    """(pid, address, port) of every listening socket of this process and its descendants."""
    me = psutil.Process()
    found = set()
    for process in [me, *me.children(recursive=True)]:
        try:
            # TCP only: "inet" adds the UDP tables, whose sockets never listen.
            connections = process.net_connections(kind="tcp")
        except psutil.Error:  # exited meanwhile
            continue
        found |= {
            (process.pid, c.laddr.ip, c.laddr.port)
            for c in connections
            if c.status == psutil.CONN_LISTEN
        }
    return found


@pytest.mark.slow  # a local Dask cluster of processes (shared with the test above)
def test_a_local_dask_run_listens_on_loopback_only(runs: Runs) -> None:
    seen = runs.listening
    assert runs.dask.is_completed(), runs.dask.message
    # The scheduler and dashboard (this process) and the workers (children) were seen...
    assert len({pid for pid, _, _ in seen}) >= 2, seen
    # ...and none of them listens beyond loopback (Dask's default dashboard: 0.0.0.0:8787).
    assert {address for _, address, _ in seen} <= {"127.0.0.1", "::1"}, seen
