"""A re-based history (a split, a dividend in adj_close) re-bases the ledgers too: a forecast
served before AAPL's 4:1 split of 2020-08-31 is scored against the re-based actual on one
basis, in a real sequence of daily runs whose source re-bases its export as Yahoo does."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from closecast.inputs.price_store import PriceStore
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import ServedRow
from closecast.pipeline import live
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.lineup import BASELINE_KINDS
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import get_source
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast

SPLIT_DAY = date(2020, 8, 31)  # AAPL's 4:1 split (closecast/sample_data/SOURCES.md)
SAMPLE_AAPL = Path(__file__).parents[2] / "closecast" / "sample_data" / "AAPL.csv"

PRICES = pd.Series(
    [100.0, 102.0, 101.0, 101.5, 103.0],
    index=pd.to_datetime(["2020-08-26", "2020-08-27", "2020-08-28", "2020-08-31", "2020-09-01"]),
)
OLD_BASIS = {date(2020, 8, 26): 400.0, date(2020, 8, 27): 408.0, date(2020, 8, 28): 404.0}


def served(data_end: date, target: date, forecast: float, **changes) -> ServedRow:
    fields = {
        "ticker": "AAPL",
        "target_date": target,
        "data_end": data_end,
        "forecast": forecast,
        "naive": changes.pop("naive", None) or OLD_BASIS[data_end],
        "model_version": "v0001",
        "lineage": "v0001",
        "trained_through": data_end,
        "served_on": data_end,
    }
    return ServedRow(**{**fields, **changes})


def old_basis_ledger() -> live.Ledger:
    """Two scored rows and one pending, served on the basis before the 4:1 split."""
    return live.Ledger(
        rows=(
            served(date(2020, 8, 26), date(2020, 8, 27), 404.0, actual=408.0,
                   scored_on=date(2020, 8, 27), lower_80=396.0, upper_80=412.0),
            served(date(2020, 8, 27), date(2020, 8, 28), 410.0, actual=404.0,
                   scored_on=date(2020, 8, 28)),
            served(date(2020, 8, 28), SPLIT_DAY, 405.0),
        )
    )  # fmt: skip


def test_a_split_puts_served_rows_on_the_new_basis_before_they_are_scored() -> None:
    aligned = live.align_basis(old_basis_ledger(), PRICES)
    ledger, n = live.score_served(aligned, PRICES, SPLIT_DAY)

    first, second, pending = ledger.rows
    assert (first.forecast, first.naive, first.actual) == (101.0, 100.0, 102.0)
    assert (first.lower_80, first.upper_80, first.lower_95) == (99.0, 103.0, None)
    assert (second.forecast, second.actual) == (102.5, 101.0)
    # The forecast served before the split is scored against the re-based actual.
    assert (n, pending.forecast, pending.naive, pending.actual) == (1, 101.25, 101.0, 101.5)
    assert {row.basis_factor for row in ledger.rows} == {0.25}
    assert pending.forecast / pending.basis_factor == 405.0  # what was served
    assert "3 served lstm forecast(s)" in ledger.warning and "x0.25" in ledger.warning
    # The alignment is idempotent: the rows now agree with the store.
    assert live.align_basis(ledger, PRICES).rows == ledger.rows


def test_without_the_alignment_the_split_poisons_the_record() -> None:
    # The failure the alignment prevents (issue 17): 405 scored against 101.5, an RMSE of
    # hundreds beside a naive RMSE as wrong (U2 near 1 says nothing).
    ledger, _ = live.score_served(old_basis_ledger(), PRICES, SPLIT_DAY)
    assert live.live_stats(ledger.scored()).rmse > 100
    aligned, _ = live.score_served(live.align_basis(old_basis_ledger(), PRICES), PRICES, SPLIT_DAY)
    stats = live.live_stats(aligned.scored())
    assert stats.rmse == pytest.approx(((1.0**2 + 1.5**2 + 0.25**2) / 3) ** 0.5)


def test_one_revised_bar_is_a_revision_not_a_rebasing() -> None:
    # Only 2020-08-28's price changed since it was served: that row stays as served...
    rows = (
        served(date(2020, 8, 27), date(2020, 8, 28), 102.5, naive=102.0),
        served(date(2020, 8, 28), SPLIT_DAY, 101.5, naive=100.0),
    )
    ledger = live.Ledger(rows=rows)
    assert live.align_basis(ledger, PRICES) == ledger
    # ...unless this run's fetch saw the history re-based by exactly that factor.
    aligned = live.align_basis(ledger, PRICES, known_factor=1.01)
    assert aligned.rows[0] == rows[0]
    assert aligned.rows[1].forecast == pytest.approx(101.5 * 1.01)


def test_a_row_whose_data_end_left_the_history_is_kept_as_served() -> None:
    gone = served(date(2020, 8, 25), date(2020, 8, 26), 400.0, naive=399.0)
    ledger = live.Ledger(rows=(gone, *old_basis_ledger().rows))
    aligned = live.align_basis(ledger, PRICES)
    assert aligned.rows[0] == gone and aligned.rows[1].basis_factor == 0.25


def test_a_stored_backtest_is_read_on_the_current_basis() -> None:
    stored = pd.DataFrame(
        {
            "date": [date(2020, 8, 27), date(2020, 8, 28)],
            "actual": [408.0, 404.0],
            "predicted": [404.0, 410.0],
            "naive": [400.0, 408.0],
            "lower_80": [396.0, 400.0],
        }
    )
    factor = live.backtest_basis_factor(stored, PRICES)
    assert factor == pytest.approx(0.25)
    aligned = live.align_backtest(stored, factor)
    assert list(aligned["actual"]) == [102.0, 101.0] and list(aligned["naive"]) == [100.0, 102.0]
    assert list(aligned["lower_80"]) == [99.0, 100.0] and list(stored["actual"]) == [408.0, 404.0]
    # On its own basis, or with one revised bar, the backtest is read as stored.
    assert live.backtest_basis_factor(live.align_backtest(stored, factor), PRICES) is None
    revised = aligned.assign(actual=[102.0, 100.0])
    assert live.backtest_basis_factor(revised, PRICES) is None
    # The multi-step backtest (long form) moves by the same factor, its steps and dates not.
    path = pd.DataFrame(
        {"origin": [date(2020, 8, 26)] * 2, "step": [1, 2], "date": [date(2020, 8, 27),
         date(2020, 8, 28)], "actual": [408.0, 404.0], "predicted": [404.0, 402.0],
         "naive": [400.0, 400.0]}
    )  # fmt: skip
    moved = live.align_backtest(path, factor)
    assert list(moved["predicted"]) == [101.0, 100.5] and list(moved["naive"]) == [100.0, 100.0]
    assert moved[["origin", "step", "date"]].equals(path[["origin", "step", "date"]])


# --- a real sequence of daily runs across the split ---------------------------------------------


def export_as_of(directory: Path, day: date) -> None:
    """``AAPL.csv`` as Yahoo exported it on ``day``: rows through ``day``, and before the
    split day (when ``day`` precedes it) every price 4x and volume / 4, as served then."""
    header, *lines = SAMPLE_AAPL.read_text().strip().splitlines()
    out = [header]
    for line in lines:
        cells = line.split(",")
        when = date.fromisoformat(cells[0])
        if when > day:
            break
        if day < SPLIT_DAY and "null" not in cells:
            cells[1:6] = [f"{float(v) * 4:.6f}" for v in cells[1:6]]
            cells[6] = str(int(cells[6]) // 4)
        out.append(",".join(cells))
    directory.mkdir(exist_ok=True)
    (directory / "AAPL.csv").write_text("\n".join(out) + "\n")


# Two runs before the split (a forecast scored on the old basis, one served on it and scored
# across the split), the split day and one after it.
DAYS = [date(2020, 8, 27), date(2020, 8, 28), SPLIT_DAY, date(2020, 9, 1)]
# The per-ticker line-up: the global models are fit by a flow run's pooled step, and the
# ledgers checked here are the LSTM's and the baselines'.
MODELS = "lstm,naive,drift,seasonal_naive"
ITEM = WatchItem("AAPL", "stock")


def day_in_process(settings: RunSettings) -> pd.Series:
    """The ticker's day as a daily flow run's fetch and modelling tasks do it (no plot); its
    metrics row."""
    day = settings.as_of
    fetched = fetch_and_store(
        ITEM, day, open_storage(settings.storage), get_source(settings.source)
    )
    (outcome,) = forecast_tickers(
        [ITEM], RunScope(day, "adhoc"), settings, {ITEM.symbol: fetched}, draw_plots=False
    )
    assert outcome.metrics.status == "ok", outcome.metrics.error
    return pd.Series(asdict(outcome.metrics))


@pytest.mark.usefixtures("prefect_harness")
def test_daily_runs_across_a_split_score_every_forecast_on_one_basis(tmp_path) -> None:
    """The days before the last run the per-ticker pipeline of a flow run in-process (a flow
    run costs about 2 CPU-s more, for nothing read of those days but the split day's metrics
    row); the last day is a real flow run, with the plot across the split (its re-based live
    record), whose published tables are read."""
    root, exports = str(tmp_path / "store"), tmp_path / "exports"
    rows = {}
    for day in DAYS:
        export_as_of(exports, day)
        settings = RunSettings(
            tickers=["AAPL"], source=f"csv:{exports}", storage=root, as_of=day,
            preset="fast", epochs=1, models=MODELS,
        )  # fmt: skip
        if day != DAYS[-1]:
            rows[day] = day_in_process(settings)
            continue
        state = daily_forecast(settings, return_state=True)
        assert state.is_completed(), state.message
    storage = open_storage(root)
    store = PriceStore(storage).read("AAPL").set_index("date")["adj_close"]
    assert store[pd.Timestamp("2020-08-28")] == pytest.approx(124.592552)  # re-based

    for model in ("lstm", *BASELINE_KINDS):
        ledger = live.read_ledger(storage, "AAPL", model)
        assert [r.target_date for r in ledger.scored()] == DAYS[1:], model
        for row in ledger.rows:
            # Every price of a row is on the current basis: its naive is the stored price.
            assert row.naive == pytest.approx(store[pd.Timestamp(row.data_end)]), model
            pre_split = row.data_end < SPLIT_DAY
            assert row.basis_factor == pytest.approx(0.25 if pre_split else 1.0), model
            if row.actual is not None:
                # A one-day move of AAPL, not the 4x of a basis mismatch.
                assert abs(row.actual / row.forecast - 1) < 0.15, (model, row)
            if row.lower_95 is not None:
                assert row.lower_95 < row.forecast < row.upper_95
        # What was served is recoverable: on the old basis, four times today's.
        first = ledger.rows[0]
        assert first.forecast / first.basis_factor > 400, model

    scores = pd.read_parquet(Path(root) / catalog.LIVE_SCORES.key(RunScope(DAYS[-1], "adhoc")))
    trailing = scores[(scores["window"] == "20d") & (scores["step"] == 1)].iloc[0]
    assert trailing["n_scored"] == len(DAYS) - 1 and trailing["u2"] < 3
    assert rows[SPLIT_DAY]["rebased"]
    assert "re-based x0.25" in rows[SPLIT_DAY]["warnings"]

    # The lineage's stored backtest (v0001's file, made before the split and never
    # rewritten) is read on the current basis too: the published backtest predictions are
    # the stored prices, the LSTM's backtest RMSE is in today's units (its naive RMSE is the
    # naive baseline's on the same days), and the metrics say so.
    last = RunScope(DAYS[-1], "adhoc")
    predictions = pd.read_parquet(Path(root) / catalog.PREDICTIONS.key(last, "AAPL"))
    on_store = store.reindex(pd.to_datetime(predictions["date"])).to_numpy()
    assert predictions["actual"].to_numpy() == pytest.approx(on_store)
    assert (predictions["lower_95"] < predictions["upper_95"]).all()
    lineup = pd.read_parquet(Path(root) / catalog.MODEL_SCORES.key(last))
    backtests = lineup[(lineup["record"] == "backtest") & (lineup["step"] == 1)]
    by_model = backtests.set_index("model")
    assert by_model.loc["lstm", "naive_rmse"] == pytest.approx(by_model.loc["naive", "rmse"])
    final = pd.read_parquet(Path(root) / catalog.METRICS.key(last)).set_index("ticker")
    assert final.loc["AAPL", "lineage"] == "v0001"  # the lineage from before the split
    assert final.loc["AAPL", "backtest_rmse"] == pytest.approx(by_model.loc["lstm", "rmse"])
    assert final.loc["AAPL", "backtest_naive_rmse"] == pytest.approx(by_model.loc["naive", "rmse"])
    assert "lineage v0001's backtest re-based x0.25" in final.loc["AAPL", "warnings"]
