"""A ticker the run reports as failed leaves its champion pointer and its ledgers as they were
(issue 17: on a full disk, champion.json was promoted and served.parquet recorded a forecast
for a ticker reported failed). Real flow runs on a storage that fails on a chosen write; the
run after the disk has room again is the flow's per-ticker pipeline, in-process (a flow run
costs about 2 CPU-s more, for nothing its check reads)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.run_tickers import select
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import SampleSource
from closecast.storage import StorageError, open_storage
from closecast.storage.local import LocalStorage
from flows.daily_forecast import daily_forecast

DAY1, DAY2 = date(2020, 12, 10), date(2020, 12, 11)
TICKERS = ["QQQ", "GOOG"]
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = ("lstm", "naive", "drift", "seasonal_naive", "global_ar")
# The write that finds the disk full, per ticker: QQQ's last state write (its champion
# pointer, after its ledgers), GOOG's first run object (its plot, before any state).
FULL_AT = {"models/QQQ/champion.json", catalog.TICKER_PLOTS.key(RunScope(DAY2, "adhoc"), "GOOG")}


def state_keys(ticker: str) -> list[str]:
    return [catalog.champion_key(ticker)] + [catalog.served_key(ticker, kind) for kind in MODELS]


def run(root: str, day: date, ticker_plots: int = 0):
    """A real run; by default without ticker plots, which only the failing run needs (GOOG's
    plot is where its disk fills)."""
    settings = RunSettings(
        tickers=TICKERS, source="sample", storage=root, as_of=day, preset="fast", epochs=1,
        models=MODELS, ticker_plots=ticker_plots,
    )  # fmt: skip
    return daily_forecast(settings, return_state=True)


@pytest.mark.usefixtures("prefect_harness")
def test_a_ticker_failing_on_a_full_disk_leaves_its_champion_and_ledgers(
    tmp_path, monkeypatch
) -> None:
    root = str(tmp_path / "store")
    assert run(root, DAY1).is_completed()
    storage = open_storage(root)
    before = {key: storage.read_bytes(key) for t in TICKERS for key in state_keys(t)}

    original = LocalStorage.write_bytes

    def disk_full(self, key, data, content_type=None):
        if key in FULL_AT:
            raise StorageError(f"could not write {key!r}: [Errno 28] No space left on device")
        return original(self, key, data, content_type)

    monkeypatch.setattr(LocalStorage, "write_bytes", disk_full)
    state = run(root, DAY2, ticker_plots=len(TICKERS))
    monkeypatch.setattr(LocalStorage, "write_bytes", original)

    assert state.is_failed() and "failed: QQQ, GOOG" in state.message
    metrics = pd.read_parquet(Path(root) / catalog.METRICS.key(RunScope(DAY2, "adhoc")))
    rows = metrics.set_index("ticker")
    for ticker in TICKERS:
        assert rows.loc[ticker, "status"] == "failed"
        assert "No space left" in rows.loc[ticker, "error"]
        for key in state_keys(ticker):
            assert storage.read_bytes(key) == before[key], key
    # The disk has room again: the next run serves both from the champions they had.
    items = list(select(None, TICKERS).items)  # as the flow selects them
    fetches = {i.symbol: fetch_and_store(i, DAY2, storage, SampleSource()) for i in items}
    settings = RunSettings(
        tickers=TICKERS, source="sample", storage=root, as_of=DAY2, preset="fast", epochs=1,
        models=MODELS,
    )  # fmt: skip
    outcomes = forecast_tickers(items, RunScope(DAY2, "adhoc"), settings, fetches, draw_plots=False)
    assert [asdict(o.metrics)["status"] for o in outcomes] == ["ok", "ok"], outcomes
    for ticker in TICKERS:
        assert (
            storage.read_bytes(catalog.champion_key(ticker)) != before[catalog.champion_key(ticker)]
        )
