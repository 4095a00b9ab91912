"""Forecasts for several trading days ahead: one per day of the ticker's own calendar, each
scored against the naive forecast for its horizon (the last price known when it was made)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from closecast.inputs.calendars import next_trading_day
from closecast.inputs.price_store import PriceStore
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.live import read_ledger
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import SampleSource

DAYS = [date(2020, 12, d) for d in (1, 2, 3, 4, 7, 8, 9)]  # QQQ's trading days
ITEM = WatchItem("QQQ", "etf")


def test_a_three_day_horizon_is_served_scored_and_calibrated_per_step(tmp_path, hand_dm) -> None:
    options = RunSettings(storage=str(tmp_path), preset="fast", horizon=3)
    storage = open_run_storage(options)
    outcomes = []
    for day in DAYS:
        fetch_and_store(ITEM, day, storage, SampleSource())
        # The ticker's plot (its step-1 forecasts of a multi-step ledger) on the last day only:
        # drawing one costs about 0.3 CPU-s, and the days before check the forecasts.
        (outcome,) = forecast_tickers(
            [ITEM], RunScope(day, "h"), options, draw_plots=day == DAYS[-1]
        )
        outcomes.append(outcome)
    last = RunScope(DAYS[-1], "h")
    assert storage.exists(catalog.TICKER_PLOTS.key(last, "QQQ"))
    assert not storage.exists(catalog.TICKER_PLOTS.key(RunScope(DAYS[0], "h"), "QQQ"))
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
    assert all(o.metrics.status == "ok" for o in outcomes), [o.metrics.error for o in outcomes]
    row = next(r for r in ledger.rows if r.step == 3 and r.served_on == DAYS[0])
    assert row.target_date == DAYS[3] and row.actual == pytest.approx(prices.loc[str(DAYS[3])])
    assert all(r.data_end < r.target_date for r in ledger.rows)
    live = {(s.window, s.step): s for s in outcomes[3].live_scores}
    assert (live[("lineage", 1)].n_scored, live[("lineage", 2)].n_scored) == (3, 2)
    assert live[("lineage", 3)].n_scored == 1
    step2 = [r for r in ledger.scored(step=2) if r.target_date <= DAYS[3]]
    actual = np.array([r.actual for r in step2])
    hand = np.sqrt(np.mean((actual - [r.forecast for r in step2]) ** 2)) / np.sqrt(
        np.mean((actual - [r.naive for r in step2]) ** 2)
    )
    assert live[("lineage", 2)].u2 == pytest.approx(hand)

    # The line-up has a backtest per step for every model, on the same target days.
    backtests = [r for r in outcomes[3].model_scores if r.record == "backtest"]
    assert {(r.model, r.step) for r in backtests} >= {
        (m, k) for m in ("lstm", "naive", "drift") for k in (1, 2, 3)
    }
    assert len({(r.n, r.first_date, r.last_date) for r in backtests}) == 1
    naive = {r.step: r.u2 for r in backtests if r.model == "naive"}
    assert naive == {1: pytest.approx(1.0), 2: pytest.approx(1.0), 3: pytest.approx(1.0)}

    # The last day's live windows have 6, 5 and 4 scored forecasts at steps 1, 2 and 3 (the
    # sixth day had exactly 3 at step 3: too few for a horizon-3 test, which must be left
    # out, not fail the ticker). Each published Diebold-Mariano number is the test of its
    # ledger rows with horizon = step.
    checked = set()
    for row in outcomes[-1].model_scores:
        if not row.record.startswith("live_") or row.dm_p is None:
            continue
        rows = [
            r
            for r in read_ledger(storage, "QQQ", row.model).scored(step=row.step)
            if row.first_date <= r.target_date <= row.last_date
        ]
        assert len(rows) == row.n
        stat, p = hand_dm([r.actual for r in rows], [r.forecast for r in rows],
                          [r.naive for r in rows], row.step)  # fmt: skip
        assert (row.dm_stat, row.dm_p) == (pytest.approx(stat), pytest.approx(p))
        checked.add((row.model, row.step, row.n))
    assert {("lstm", 1, 6), ("lstm", 2, 5), ("lstm", 3, 4), ("drift", 3, 4)} <= checked


def test_horizon_is_validated() -> None:
    assert RunSettings(storage="x", horizon=10).horizon == 10  # the limit itself is allowed
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        RunSettings(storage="x", horizon=0)
    with pytest.raises(ValueError, match=r"horizon\n.*less than or equal to 10"):
        RunSettings(storage="x", horizon=11)
