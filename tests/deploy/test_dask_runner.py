"""The per-ticker work spread in chunks over a local Dask cluster of two processes gives the
same results as one process on threads, and a run's own cluster listens on loopback only."""

from __future__ import annotations

import threading
from datetime import date

import psutil
import pytest

from closecast.outputs import catalog
from closecast.pipeline.settings import RunSettings
from closecast.storage import open_storage
from closecast.storage.io import read_parquet
from flows.daily_forecast import daily_forecast

AS_OF = date(2020, 12, 11)
TICKERS = ["QQQ", "BTC-USD"]
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"


def _metrics(root: str) -> dict[str, dict]:
    scope = catalog.RunScope(AS_OF, "adhoc")
    frame = read_parquet(open_storage(root), catalog.METRICS.key(scope)).to_pandas()
    return {row["ticker"]: row for row in frame.to_dict("records")}


@pytest.mark.slow  # a local Dask cluster of processes
def test_dask_local_cluster_matches_threads(prefect_harness, tmp_path):
    common = dict(
        tickers=TICKERS, source="sample", as_of=AS_OF, preset="fast", epochs=2, models=MODELS
    )
    threads = daily_forecast(
        RunSettings(storage=str(tmp_path / "threads"), task_runner="threads", **common),
        return_state=True,
    )
    dask = daily_forecast(
        RunSettings(storage=str(tmp_path / "dask"), task_runner="dask", workers=2, **common),
        return_state=True,
    )
    assert threads.is_completed(), threads.message
    assert dask.is_completed(), dask.message

    by_threads, by_dask = _metrics(str(tmp_path / "threads")), _metrics(str(tmp_path / "dask"))
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
        read_parquet(open_storage(str(tmp_path / name)), catalog.FORECASTS.key(scope)).to_pandas()
        for name in ("threads", "dask")
    ]
    assert forecasts[0]["forecast"].to_numpy() == pytest.approx(forecasts[1]["forecast"].to_numpy())


def _listening_sockets() -> set[tuple[int, str, int]]:
    """(pid, address, port) of every listening socket of this process and its descendants."""
    me = psutil.Process()
    found = set()
    for process in [me, *me.children(recursive=True)]:
        try:
            connections = process.net_connections(kind="inet")
        except psutil.Error:  # exited meanwhile
            continue
        found |= {
            (process.pid, c.laddr.ip, c.laddr.port)
            for c in connections
            if c.status == psutil.CONN_LISTEN
        }
    return found


def test_a_local_dask_run_listens_on_loopback_only(prefect_harness, tmp_path):
    before = _listening_sockets()
    seen: set[tuple[int, str, int]] = set()
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.update(_listening_sockets() - before)
            stop.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        state = daily_forecast(
            RunSettings(storage=str(tmp_path / "dask"), task_runner="dask", workers=1,
                        tickers=["QQQ"], source="sample", as_of=AS_OF, preset="fast", epochs=1,
                        models=MODELS),
            return_state=True,
        )  # fmt: skip
    finally:
        stop.set()
        sampler.join(timeout=30)
    assert state.is_completed(), state.message
    # The scheduler and dashboard (this process) and the worker (a child) were seen...
    assert len({pid for pid, _, _ in seen}) >= 2, seen
    # ...and none of them listens beyond loopback (Dask's default dashboard: 0.0.0.0:8787).
    assert {address for _, address, _ in seen} <= {"127.0.0.1", "::1"}, seen
