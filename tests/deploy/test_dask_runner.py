"""The per-ticker work spread in chunks over a local Dask cluster of two processes gives the
same results as one process on threads."""

from __future__ import annotations

from datetime import date

import pytest

from closecast import catalog
from closecast.pipeline.settings import RunSettings
from closecast.storage import open_storage
from closecast.storage.io import read_parquet
from flows.daily_forecast import daily_forecast

AS_OF = date(2020, 12, 11)
TICKERS = ["QQQ", "BTC-USD"]


def _metrics(root: str) -> dict[str, dict]:
    scope = catalog.RunScope(AS_OF, "adhoc")
    frame = read_parquet(open_storage(root), catalog.METRICS.key(scope)).to_pandas()
    return {row["ticker"]: row for row in frame.to_dict("records")}


def test_dask_local_cluster_matches_threads(prefect_harness, tmp_path):
    common = dict(tickers=TICKERS, source="sample", as_of=AS_OF, preset="fast", epochs=2)
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
