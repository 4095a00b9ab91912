"""The line-up: baselines behind the LSTM's interface, scored by the same code on the same
days, with their own live records; and the choice of which model's forecast is served."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from closecast.inputs.watchlist import WatchItem, WatchlistError, parse_watchlist
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.lineup import BASELINE_KINDS, GLOBAL_KINDS
from closecast.pipeline.live import read_ledger
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import SampleSource

DAYS = [date(2020, 12, 9), date(2020, 12, 10)]


def _run(options: RunSettings, item: WatchItem, day: date):
    fetch_and_store(item, day, open_run_storage(options), SampleSource())
    # No ticker plot (about 0.5 CPU-s each): these tests check the line-up's scores and
    # ledgers; the plot is test_daily_forecast's.
    (outcome,) = forecast_tickers([item], RunScope(day, "lineup"), options, draw_plots=False)
    return outcome


@pytest.fixture(scope="module")
def first_day(tmp_path_factory) -> Path:
    """A store after QQQ's first run (a retrain, every model served) on DAYS[0]: each test
    starts from a copy instead of training the same model again."""
    root = tmp_path_factory.mktemp("lineup") / "store"
    _run(RunSettings(storage=str(root), preset="fast"), WatchItem("QQQ", "etf"), DAYS[0])
    return root


def _copy(first_day: Path, tmp_path: Path) -> str:
    return str(shutil.copytree(first_day, tmp_path / "store"))


def test_every_model_is_scored_on_the_same_days_and_serves_into_its_own_ledger(first_day, tmp_path):
    options = RunSettings(storage=_copy(first_day, tmp_path), preset="fast")
    item = WatchItem("QQQ", "etf")
    outcome = _run(options, item, DAYS[1])  # day 2: day 1 is the copied store's
    rows = outcome.model_scores
    backtests = {r.model: r for r in rows if r.record == "backtest"}
    assert set(backtests) == {"lstm", *BASELINE_KINDS}
    # The same hold-out days for every model: the serving lineage's.
    assert {(r.n, r.first_date, r.last_date) for r in backtests.values()} == {
        (outcome.metrics.backtest_n, outcome.metrics.backtest_start,
         outcome.metrics.backtest_end)
    }  # fmt: skip
    assert backtests["lstm"].u2 == pytest.approx(outcome.metrics.backtest_u2)
    # Interval coverage beside every backtest score, each model's own bands.
    assert all(0.0 <= r.coverage_80 <= r.coverage_95 <= 1.0 for r in backtests.values())
    assert backtests["lstm"].coverage_80 == pytest.approx(outcome.metrics.backtest_coverage_80)
    assert backtests["naive"].u2 == pytest.approx(1.0)
    # Each baseline served a forecast each day; day 2 scored day 1's.
    storage = open_run_storage(options)
    for kind in BASELINE_KINDS:
        ledger = read_ledger(storage, "QQQ", kind)
        assert [r.served_on for r in ledger.rows] == DAYS
        assert ledger.rows[0].actual is not None and ledger.rows[0].model == kind
        assert ledger.rows[-1].lower_80 < ledger.rows[-1].forecast < ledger.rows[-1].upper_80
    live = {r.model: r for r in rows if r.record == "live_20d"}
    assert live["drift"].n == 1
    # By default the LSTM serves, and says so everywhere.
    assert outcome.forecasts[0].model == "lstm" == outcome.metrics.served_model
    assert [r.model for r in rows if r.serving] == ["lstm"] * 3


@pytest.mark.parametrize(("serve", "expected"), [("drift", "drift"), ("auto", "naive")])
def test_a_ticker_can_serve_another_model_and_mode_reason_says_why(
    first_day, tmp_path, serve, expected
):
    """A rerun of the first day (the champion kept as is) with the ticker's serve choice."""
    options = RunSettings(storage=_copy(first_day, tmp_path), preset="fast")
    item = WatchItem("QQQ", "etf", serve=serve)
    outcome = _run(options, item, DAYS[0])
    assert outcome.forecasts[0].model == expected == outcome.metrics.served_model
    drift_ledger = read_ledger(open_run_storage(options), "QQQ", expected)
    assert outcome.forecasts[0].forecast == drift_ledger.rows[-1].forecast
    if serve == "auto":
        # On a near random walk nothing beats naive with evidence: auto serves naive.
        assert "no model beats naive with evidence" in outcome.metrics.mode_reason
    else:
        assert "serving drift as configured" in outcome.metrics.mode_reason
    assert {r.model for r in outcome.model_scores if r.serving} == {expected}


def test_the_run_setting_applies_unless_the_watchlist_entry_says_otherwise(first_day, tmp_path):
    options = RunSettings(storage=_copy(first_day, tmp_path), preset="fast", serve="naive")
    outcome = _run(options, WatchItem("QQQ", "etf"), DAYS[0])
    assert outcome.forecasts[0].model == "naive"
    assert outcome.forecasts[0].forecast == outcome.forecasts[0].naive
    assert catalog.served_key("QQQ", "naive") == catalog.lineup_ledgers_key("QQQ")


def test_every_registered_model_is_in_the_line_up_and_may_serve() -> None:
    from closecast.control.choices import serve_choices
    from lstm_model.registry import GLOBAL_MODELS, MODELS

    assert set(BASELINE_KINDS) == set(MODELS) - {"lstm"}
    assert set(GLOBAL_KINDS) == set(GLOBAL_MODELS)
    assert set(serve_choices()) == set(MODELS) | set(GLOBAL_MODELS) | {"auto"}


def test_a_watchlist_entry_may_name_the_model_it_serves() -> None:
    items = parse_watchlist(
        "tickers:\n  - {symbol: AAPL, asset_class: stock, serve: auto}\n", origin="w.yaml"
    )
    assert items[0].serve == "auto"
    with pytest.raises(WatchlistError, match="serve 'gru' is not one of"):
        parse_watchlist(
            "tickers:\n  - {symbol: AAPL, asset_class: stock, serve: gru}\n", origin="w.yaml"
        )
