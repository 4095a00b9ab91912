"""The live record and the leakage guards: what gets scored, when, and what is refused."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from closecast.outputs.records import ServedRow
from closecast.pipeline import live
from closecast.pipeline.evaluation import LeakageError, evaluate
from closecast.storage import open_storage
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster

PRICES = pd.Series(
    [100.0, 101.0, 99.0, 102.0, 104.0],
    index=pd.to_datetime(["2020-12-07", "2020-12-08", "2020-12-09", "2020-12-10", "2020-12-11"]),
)


def served(target: date, forecast: float, *, trained_through: date | None = None, **changes):
    data_end = target - timedelta(days=1)
    fields = {
        "ticker": "T",
        "target_date": target,
        "data_end": data_end,
        "forecast": forecast,
        "naive": float(PRICES[str(data_end)]) if str(data_end) in PRICES else 1.0,
        "model_version": "v0002",
        "lineage": "v0001",
        "trained_through": trained_through or data_end,
        "served_on": data_end,
    }
    fields.update(changes)
    return ServedRow(**fields)


def test_scoring_fills_known_days_only_and_counts_them() -> None:
    ledger = live.Ledger(
        rows=(
            served(date(2020, 12, 9), 100.0),
            served(date(2020, 12, 10), 101.0),
            served(date(2020, 12, 14), 105.0, data_end=date(2020, 12, 11)),
        )
    )
    scored, n = live.score_served(ledger, PRICES[:"2020-12-10"], date(2020, 12, 10))
    assert n == 2
    by_target = {r.target_date: r for r in scored.rows}
    assert by_target[date(2020, 12, 9)].actual == 99.0
    assert by_target[date(2020, 12, 10)].actual == 102.0
    assert by_target[date(2020, 12, 10)].scored_on == date(2020, 12, 10)
    assert by_target[date(2020, 12, 14)].actual is None  # not known yet
    # Scoring again scores nothing twice.
    again, n_again = live.score_served(scored, PRICES[:"2020-12-10"], date(2020, 12, 10))
    assert n_again == 0 and again.rows == scored.rows


def test_a_target_day_without_a_price_is_closed_unscored() -> None:
    holiday = served(date(2020, 12, 5), 100.0, data_end=date(2020, 12, 4), naive=1.0)
    ledger, n = live.score_served(live.Ledger(rows=(holiday,)), PRICES, date(2020, 12, 11))
    (row,) = ledger.rows
    assert n == 0 and row.actual is None and row.scored_on == date(2020, 12, 11)
    assert ledger.scored() == []


def test_scores_are_a_hand_computation_of_the_scored_rows() -> None:
    rows = (served(date(2020, 12, 9), 100.0), served(date(2020, 12, 10), 101.0))
    ledger, _ = live.score_served(live.Ledger(rows=rows), PRICES, date(2020, 12, 11))
    stats = live.live_stats(ledger.scored())
    actual, forecast, naive = np.array([99.0, 102.0]), np.array([100.0, 101.0]), [101.0, 99.0]
    assert stats.n == 2
    assert stats.rmse == pytest.approx(np.sqrt(np.mean((actual - forecast) ** 2)))
    assert stats.naive_rmse == pytest.approx(np.sqrt(np.mean((actual - naive) ** 2)))
    assert stats.u2 == pytest.approx(stats.rmse / stats.naive_rmse)
    # Both called the direction from the last known price right (down, then up).
    assert stats.directional_accuracy == 1.0


def test_windows_count_trading_days_of_the_history_and_the_lineage() -> None:
    rows = (
        served(date(2020, 12, 8), 100.0, lineage="v0000"),
        served(date(2020, 12, 9), 100.0),
        served(date(2020, 12, 10), 101.0),
        served(date(2020, 12, 11), 103.0),
    )
    ledger, _ = live.score_served(live.Ledger(rows=rows), PRICES, date(2020, 12, 11))
    assert [r.target_date for r in live.window_rows(ledger, PRICES.index, 2)] == [
        date(2020, 12, 10),
        date(2020, 12, 11),
    ]
    scores = live.live_score_rows(
        ledger, ticker="T", price_dates=PRICES.index, lineage="v0001", backtest_u2=0.99
    )
    by_window = {s.window: s for s in scores}
    assert by_window["20d"].n_scored == 4
    assert by_window["lineage"].n_scored == 3 and by_window["lineage"].lineage == "v0001"
    assert by_window["lineage"].first_target == date(2020, 12, 9)
    assert all(s.backtest_u2 == 0.99 for s in scores)


def test_serving_again_replaces_an_unscored_forecast_but_never_a_scored_one() -> None:
    ledger = live.record_served(live.Ledger(rows=()), served(date(2020, 12, 14), 100.0))
    ledger = live.record_served(ledger, served(date(2020, 12, 14), 101.0))
    assert [r.forecast for r in ledger.rows] == [101.0]
    scored, _ = live.score_served(
        live.Ledger(rows=(served(date(2020, 12, 10), 101.0),)), PRICES, date(2020, 12, 11)
    )
    with pytest.raises(ValueError, match="already scored"):
        live.record_served(scored, served(date(2020, 12, 10), 99.0))


@pytest.mark.parametrize(
    "changes",
    [
        {"trained_through": date(2020, 12, 10)},  # trained on the target day itself
        {"trained_through": date(2020, 12, 11)},  # or later
        {"data_end": date(2020, 12, 10)},  # the forecast saw the target's price
    ],
)
def test_the_live_record_refuses_to_score_a_model_on_days_it_trained_on(changes) -> None:
    row = served(date(2020, 12, 10), 101.0, **changes)
    with pytest.raises(LeakageError, match="cannot be scored on 2020-12-10"):
        live.check_served_before_target(row)
    with pytest.raises(LeakageError):
        live.score_served(live.Ledger(rows=(row,)), PRICES, date(2020, 12, 11))


def test_evaluation_refuses_days_the_model_trained_on_up_to_the_edge() -> None:
    rng = np.random.default_rng(3)
    index = pd.bdate_range("2019-01-01", periods=200)
    prices = pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))), index=index)
    config = get_preset("fast").with_overrides(epochs=1, max_train_days=None)
    model = Forecaster.fit(prices.iloc[:150], config)
    last_trained = prices.index[149]
    # Scoring from the last training day (the edge) is refused...
    with pytest.raises(LeakageError, match=f"trained through {last_trained.date()}"):
        evaluate(model, prices, last_trained)
    # ...and from the next day on it is allowed.
    scored = evaluate(model, prices, prices.index[150])
    assert len(scored.predictions) == 50


def test_an_unreadable_ledger_is_set_aside_and_the_record_restarts(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    storage.write_bytes("served/ticker=T/served.parquet", b"not parquet")
    ledger = live.read_ledger(storage, "T")
    assert ledger.rows == () and "unreadable" in ledger.warning
    assert storage.read_bytes("served/ticker=T/served.parquet.unreadable-1") == b"not parquet"
