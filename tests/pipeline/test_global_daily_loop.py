"""The run's pooled step and the daily loop of a global model (``closecast.pipeline.pooled``):
one champion per watchlist and model, scored per ticker by the line-up's code, and the
honesty rules for many series at once (a date cut across tickers and calendars, a planted
leak in another ticker's series, the live record refusing a forecast whose model trained on
its target date for any ticker)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import ServedRow
from closecast.pipeline import lineup, live
from closecast.pipeline.evaluation import LeakageError
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.lineup import (
    compute_global_backtests,
    global_backtest,
    lineage_global_backtests,
)
from closecast.pipeline.pooled import (
    fit_global,
    fit_global_models,
    load_global,
    load_globals,
    read_global_champion,
)
from closecast.pipeline.services import RunServices, open_run_storage
from closecast.pipeline.serving import Lineage, serve
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import get_source
from closecast.storage import open_storage
from lstm_model.config import ModelConfig
from lstm_model.global_models import for_ticker

CONFIG = ModelConfig(max_train_days=None, test_size=60)
KIND = "global_ar"


def _prices(index: pd.DatetimeIndex, seed: int, scale: float, phi: float = -0.3) -> pd.Series:
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, scale, len(index))
    returns = np.zeros(len(index))
    for i in range(1, len(index)):
        returns[i] = phi * returns[i - 1] + shocks[i]
    return pd.Series(100.0 * np.exp(np.cumsum(returns)), index=index)


def histories(end: str = "2020-12-10") -> dict[str, pd.Series]:
    stocks = pd.bdate_range("2019-06-03", end)
    return {
        "AAPL": _prices(stocks, 1, 0.02),
        "GOOG": _prices(stocks, 2, 0.015),
        "BTC-USD": _prices(pd.date_range("2019-06-01", end), 3, 0.04),
    }


def _fit(tmp_path, series, day: date = date(2020, 12, 10), **kw):
    storage = open_storage(str(tmp_path))
    ref, keys = fit_global(storage, KIND, series, RunScope(day, "wl"), CONFIG, **kw)
    return storage, ref, keys


def test_one_champion_per_watchlist_and_model_retrained_then_refit_then_kept(tmp_path) -> None:
    series = histories()
    storage, ref, keys = _fit(tmp_path, {t: p[: "2020-12-09"] for t, p in series.items()},
                              date(2020, 12, 9))  # fmt: skip
    assert (ref.mode, ref.champion.version, ref.champion.lineage) == ("retrain", "v0001", "v0001")
    prefix = catalog.global_model_prefix("wl", KIND, "v0001")
    assert prefix == "models/_global/wl/global_ar/v0001"
    assert {f"{prefix}/model/meta.json", f"{prefix}/backtest/meta.json"} <= set(keys)
    assert read_global_champion(storage, "wl", KIND) == ref.champion
    # The next day: the same lineage refit through the new prices, a new version.
    _, ref, _ = _fit(tmp_path, series)
    assert (ref.mode, ref.champion.version, ref.champion.lineage) == ("finetune", "v0002", "v0001")
    assert ref.champion.trained_through == date(2020, 12, 10)
    # No new price: the champion serves as is.
    _, ref, keys = _fit(tmp_path, series, date(2020, 12, 11))
    assert (ref.mode, ref.champion.version, keys) == ("keep", "v0002", [])
    # A partial rerun never refits the watchlist's model on a few tickers.
    more = histories("2020-12-14")
    _, ref, _ = _fit(tmp_path, {"AAPL": more["AAPL"]}, date(2020, 12, 14), partial=True)
    assert (ref.mode, ref.champion.version) == ("keep", "v0002")
    # Not even when the rerun asks to retrain (that request is for its tickers' own models).
    _, ref, keys = _fit(
        tmp_path, {"AAPL": more["AAPL"]}, date(2020, 12, 14), partial=True, mode="retrain"
    )
    assert (ref.mode, ref.champion.version, keys) == ("keep", "v0002", [])
    # A run dated before the champion's promotion (a backfill) trains its own, unpromoted.
    _, ref, _ = _fit(tmp_path, {t: p[: "2020-12-01"] for t, p in series.items()},
                     date(2020, 12, 1))  # fmt: skip
    assert ref.champion.version == "v0003" and ref.champion.trained_through == date(2020, 12, 1)
    assert read_global_champion(storage, "wl", KIND).version == "v0002"
    assert read_global_champion(storage, "wl", KIND).latest == "v0003"


def test_a_pooled_live_record_gone_bad_with_evidence_retrains_the_global_model(tmp_path) -> None:
    series = histories()
    early = {t: p[:"2020-11-20"] for t, p in series.items()}
    storage, ref, _ = _fit(tmp_path, early, date(2020, 11, 20))
    assert ref.champion.backtest_u2 is not None and ref.champion.backtest_u2 < 1
    # The lineage served every ticker 3% too high since: far worse than naive, on every day.
    for ticker, prices in series.items():
        days = prices[prices.index > pd.Timestamp("2020-11-20")]
        rows = [
            ServedRow(ticker=ticker, target_date=day.date(), data_end=before.date(),
                      forecast=1.03 * float(prices[before]), naive=float(prices[before]),
                      model_version="v0001", lineage="v0001", trained_through=before.date(),
                      served_on=before.date(), model=KIND)
            for before, day in zip(prices.index[prices.index.get_loc(days.index[0]) - 1 :],
                                   days.index, strict=False)
        ]  # fmt: skip
        live.write_ledger(storage, ticker, live.Ledger(rows=tuple(rows)), KIND)
    _, ref, _ = _fit(tmp_path, series)
    assert ref.mode == "retrain" and ref.champion.lineage == "v0002"
    assert ref.reason.startswith("pooled live U2") and "above its backtest U2" in ref.reason


def test_the_global_backtest_cuts_by_date_and_ignores_a_leak_planted_in_another_ticker(
    tmp_path,
) -> None:
    series = histories()
    storage, ref, _ = _fit(tmp_path / "clean", series)
    cut = pd.Timestamp(ref.champion.cut)
    loaded = load_global(storage, ref)
    assert pd.Timestamp(loaded.backtest.meta["trained_through"]) < cut
    clean, _, own = global_backtest(loaded, WatchItem("AAPL", "stock"), series["AAPL"], 1)
    assert pd.Timestamp(clean.frame["date"].iloc[0]) >= cut and len(clean.frame) >= 40
    assert own is False  # no serving lineage's days given: the global lineage's own
    # On the serving lineage's hold-out days, as every model is, when none is before the cut;
    # never on a day the backtest model trained on.
    days = list(clean.frame["date"].iloc[5:30])
    same, _, on_days = global_backtest(loaded, WatchItem("AAPL", "stock"), series["AAPL"], 1,
                                       days)  # fmt: skip
    assert on_days and list(same.frame["date"]) == days
    pd.testing.assert_frame_equal(
        same.frame[["date", "actual", "predicted", "naive"]],
        clean.frame[["date", "actual", "predicted", "naive"]].iloc[5:30].reset_index(drop=True),
    )
    earlier = [d.date() for d in series["AAPL"].index[-80:-40]]  # starts before the cut
    _, _, on_days = global_backtest(loaded, WatchItem("AAPL", "stock"), series["AAPL"], 1,
                                    earlier)  # fmt: skip
    assert not on_days
    # Plant a leak: another stock's and the crypto's prices from the cut on are the future
    # of AAPL's returns (a model trained on them would forecast AAPL's hold-out well).
    leaked = dict(series)
    aapl_returns = np.log(series["AAPL"]).diff().shift(-1).fillna(0.0)
    for other in ("GOOG", "BTC-USD"):
        prices = series[other].copy()
        after = prices.index >= cut
        future = aapl_returns.reindex(prices.index).fillna(0.0)[after]
        prices[after] = prices[~after].iloc[-1] * np.exp(np.cumsum(future.to_numpy() * 5.0))
        leaked[other] = prices
    storage, ref_leaked, _ = _fit(tmp_path / "leaked", leaked)
    assert ref_leaked.champion.cut == ref.champion.cut  # the cut is by dates, not values
    with_leak, _, _ = global_backtest(load_global(storage, ref_leaked), WatchItem("AAPL", "stock"),
                                   series["AAPL"], 1)  # fmt: skip
    pd.testing.assert_frame_equal(clean.frame, with_leak.frame)


def test_a_forecast_from_a_model_that_trained_on_its_target_date_for_any_ticker_is_refused(
    tmp_path,
) -> None:
    # AAPL's prices stop on Friday; the crypto trades on through Monday, the run date.
    series = histories("2020-12-07")
    series["AAPL"] = series["AAPL"][:"2020-12-04"]
    storage, ref, _ = _fit(tmp_path, series, date(2020, 12, 7))
    loaded = load_global(storage, ref)
    assert ref.champion.trained_through == date(2020, 12, 7)  # BTC-USD's Monday
    aapl = WatchItem("AAPL", "stock")
    lineage = Lineage(ref.champion.version, ref.champion.lineage)
    # AAPL's next trading day is Monday, a date the global model trained on (BTC's price):
    # serving refuses it...
    with pytest.raises(LeakageError, match="trained through 2020-12-07"):
        serve(KIND, for_ticker(loaded.model, "AAPL"), live.Ledger(rows=()), item=aapl,
              prices=series["AAPL"], as_of=date(2020, 12, 7), lineage=lineage, horizon=1,
              storage=None)  # fmt: skip
    # ...and a forecast recorded anyway is refused by the live record when scored.
    btc = serve(KIND, for_ticker(loaded.model, "BTC-USD"), live.Ledger(rows=()),
                item=WatchItem("BTC-USD", "crypto"), prices=series["BTC-USD"],
                as_of=date(2020, 12, 7), lineage=lineage, horizon=1, storage=None)  # fmt: skip
    assert btc.rows[0].target_date == date(2020, 12, 8)
    planted = replace(btc.rows[0], ticker="AAPL", target_date=date(2020, 12, 7),
                      data_end=date(2020, 12, 4))  # fmt: skip
    later = histories("2020-12-08")["AAPL"]
    with pytest.raises(LeakageError, match="cannot be scored on 2020-12-07"):
        live.score_served(live.Ledger(rows=(planted,)), later, date(2020, 12, 8))


def _write_csv(directory, ticker: str, prices: pd.Series) -> None:
    frame = pd.DataFrame(
        {"Date": prices.index.strftime("%Y-%m-%d"), "Open": prices, "High": prices,
         "Low": prices, "Close": prices, "Adj Close": prices, "Volume": 1000}
    )  # fmt: skip
    frame.to_csv(directory / f"{ticker}.csv", index=False)


def test_the_line_up_scores_and_serves_the_global_model_and_auto_serves_it_on_evidence(
    tmp_path,
) -> None:
    """Every ticker's line-up has global_ar, on the serving lineage's days; on tickers
    sharing a strong reversal, auto serves it (it beats naive with evidence); a ticker the
    global model never saw is served by it without a retrain."""
    csv = tmp_path / "csv"
    csv.mkdir()
    stocks = pd.bdate_range("2017-01-02", "2020-12-10")
    symbols = ["AAA", "BBB", "CCC", "NEW"]
    for i, symbol in enumerate(symbols):
        _write_csv(csv, symbol, _prices(stocks, 10 + i, 0.01 * (1 + i % 2), phi=-0.8))
    options = RunSettings(storage=str(tmp_path / "store"), source=f"csv:{csv}", preset="fast",
                          epochs=1, serve="auto")  # fmt: skip
    storage, scope = open_run_storage(options), RunScope(date(2020, 12, 10), "wl")
    items = [WatchItem(s, "stock") for s in symbols]
    for item in items:
        fetch_and_store(item, scope.run_date, storage, get_source(options.source))
    config = RunServices.open(options).config
    # NEW is not in the fit. Only global_ar, the model under test: global_lstm would train a
    # network for nothing here (test_daily_forecast fits every model through the flow).
    pooled = fit_global_models(storage, items[:3], scope, config, kinds=(KIND,))
    assert [r.kind for r in pooled.refs] == [KIND] and not pooled.failures
    (ref,) = [r for r in pooled.refs if r.kind == KIND]
    loaded, unloaded = load_globals(storage, pooled)
    assert not unloaded
    # No ticker plots (about 0.5 CPU-s each): the global model's scores and serving are the point.
    outcomes = forecast_tickers(items, scope, options, global_models=loaded, draw_plots=False)
    for outcome in outcomes:
        metrics = outcome.metrics
        assert metrics.status == "ok", metrics.error
        scores = {(r.model, r.record): r for r in outcome.model_scores}
        backtest = scores[(KIND, "backtest")]
        assert (backtest.first_date, backtest.last_date, backtest.n) == (
            metrics.backtest_start, metrics.backtest_end, metrics.backtest_n)  # fmt: skip
        assert backtest.u2 < 1 and backtest.dm_p < 0.05
        assert metrics.served_model == KIND, metrics.mode_reason
        assert f"auto: {KIND} beats naive with evidence" in metrics.mode_reason
        ledger = live.read_ledger(storage, metrics.ticker, KIND)
        assert outcome.forecasts[0].forecast == ledger.rows[-1].forecast
        assert ledger.rows[-1].model_version == ref.champion.version
    assert "NEW" not in load_global(storage, ref).model.meta["tickers"]


def test_the_global_backtests_are_kept_per_lineage_and_global_lineage(tmp_path) -> None:
    series = histories()
    storage, ref, _ = _fit(tmp_path, series)
    loaded, item, prices = [load_global(storage, ref)], WatchItem("AAPL", "stock"), series["AAPL"]
    days = [ts.date() for ts in prices.index[-30:]]
    key = catalog.lineup_global_backtest_key("AAPL", "v0001", lineup.global_lineup_tag(loaded))
    fresh = compute_global_backtests(item, prices, days, 3, loaded)
    assert fresh.same_days == {KIND} and set(fresh.by_kind) == {KIND}

    _, keys = lineage_global_backtests(storage, item, "v0001", prices, days, 3, loaded)
    assert keys == [key]
    kept, keys = lineage_global_backtests(storage, item, "v0001", prices, days, 3, loaded)
    assert keys == []  # read, not recomputed nor rewritten
    (record, path), (kept_record, kept_path) = fresh.by_kind[KIND], kept.by_kind[KIND]
    pd.testing.assert_frame_equal(kept_record.frame, record.frame, check_exact=True)
    pd.testing.assert_frame_equal(kept_path, path, check_exact=True)
    assert (kept.same_days, kept.failed) == (fresh.same_days, fresh.failed)

    # A revised price inside the hold-out: recomputed from it, the kept object untouched.
    revised = prices.copy()
    revised.iloc[-10] *= 1.01
    stored = storage.read_bytes(key)
    again, keys = lineage_global_backtests(storage, item, "v0001", revised, days, 3, loaded)
    expected = compute_global_backtests(item, revised, days, 3, loaded).by_kind[KIND][0].frame
    assert keys == [] and storage.read_bytes(key) == stored
    pd.testing.assert_frame_equal(again.by_kind[KIND][0].frame, expected, check_exact=True)
    assert not expected.equals(record.frame)
    # Another global lineage (a global retrain): its own object, the first one kept.
    other = [replace(loaded[0], ref=replace(ref, champion=replace(ref.champion, lineage="v0009")))]
    _, keys = lineage_global_backtests(storage, item, "v0001", prices, days, 3, other)
    assert keys and keys != [key] and storage.read_bytes(key) == stored
