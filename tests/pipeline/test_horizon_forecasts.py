"""Forecasts for several trading days ahead: one per day of the ticker's own calendar, each
scored against the naive forecast for its horizon (the last price known when it was made)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from closecast.calendars import next_trading_day
from closecast.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.live import read_ledger
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_ticker
from closecast.price_store import PriceStore
from closecast.sources import SampleSource
from closecast.watchlist import WatchItem

DAYS = [date(2020, 12, 7), date(2020, 12, 8), date(2020, 12, 9), date(2020, 12, 10)]
ITEM = WatchItem("QQQ", "etf")


def test_a_three_day_horizon_is_served_scored_and_calibrated_per_step(tmp_path) -> None:
    options = RunSettings(storage=str(tmp_path), preset="fast", horizon=3)
    storage = open_run_storage(options)
    outcomes = []
    for day in DAYS:
        fetch_and_store(ITEM, day, storage, SampleSource())
        outcomes.append(forecast_ticker(ITEM, RunScope(day, "h"), options))
    first = outcomes[0].forecasts
    # Three forecasts, for the next three trading days of the ETF's calendar.
    assert [f.step for f in first] == [1, 2, 3]
    assert first[0].target_date == next_trading_day("etf", DAYS[0])
    assert first[1].target_date == next_trading_day("etf", first[0].target_date)
    assert first[2].target_date == next_trading_day("etf", first[1].target_date)
    prices = PriceStore(storage).read("QQQ").set_index("date")["adj_close"]
    last_known = float(prices.loc[str(DAYS[0])])
    assert [f.naive for f in first] == pytest.approx([last_known] * 3)  # the last known price
    for f in first:  # each step has its own interval, from that step's residuals
        assert f.lower_95 < f.lower_80 < f.forecast < f.upper_80 < f.upper_95

    # On the fourth day, the step-3 forecast of the first day has been scored.
    ledger = read_ledger(storage, "QQQ")
    row = next(r for r in ledger.rows if r.step == 3 and r.served_on == DAYS[0])
    assert row.target_date == DAYS[3] and row.actual == pytest.approx(prices.loc[str(DAYS[3])])
    assert all(r.data_end < r.target_date for r in ledger.rows)
    live = {(s.window, s.step): s for s in outcomes[-1].live_scores}
    assert (live[("lineage", 1)].n_scored, live[("lineage", 2)].n_scored) == (3, 2)
    assert live[("lineage", 3)].n_scored == 1
    step2 = [r for r in ledger.scored(step=2)]
    actual = np.array([r.actual for r in step2])
    hand = np.sqrt(np.mean((actual - [r.forecast for r in step2]) ** 2)) / np.sqrt(
        np.mean((actual - [r.naive for r in step2]) ** 2)
    )
    assert live[("lineage", 2)].u2 == pytest.approx(hand)

    # The line-up has a backtest per step for every model, on the same target days.
    backtests = [r for r in outcomes[-1].model_scores if r.record == "backtest"]
    assert {(r.model, r.step) for r in backtests} >= {
        (m, k) for m in ("lstm", "naive", "drift") for k in (1, 2, 3)
    }
    assert len({(r.n, r.first_date, r.last_date) for r in backtests}) == 1
    naive = {r.step: r.u2 for r in backtests if r.model == "naive"}
    assert naive == {1: pytest.approx(1.0), 2: pytest.approx(1.0), 3: pytest.approx(1.0)}


def test_horizon_is_validated() -> None:
    for bad in (0, 11):
        with pytest.raises(ValueError, match="horizon"):
            RunSettings(storage="x", horizon=bad)
