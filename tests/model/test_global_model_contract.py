"""The global-model contract (:mod:`lstm_model.global_models`), for every registered global
model: the date cut across tickers and calendars, forecasts from a ticker's own past only,
any ticker (one never trained on too), save/load; and ``global_ar``'s own fit."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from lstm_model.config import ModelConfig
from lstm_model.global_ar import GlobalARForecaster
from lstm_model.global_models import cut_histories, for_ticker, holdout_start, serving_cut
from lstm_model.registry import GLOBAL_MODELS, load_global_model

CUT = date(2021, 6, 7)  # a Monday: crypto's weekend before it is trained on, stocks' is not there
# Three epochs: the contract is about which days a model reads, not how well it learns
# (global_lstm's default 20 epochs cost 1.7 CPU-s more per fit, and the file fits it 5 times).
CONFIG = ModelConfig(max_train_days=None, epochs=3)


def _ar_prices(index: pd.DatetimeIndex, seed: int, phi: float = -0.3, scale: float = 0.01):
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, scale, len(index))
    returns = np.zeros(len(index))
    for i in range(1, len(index)):
        returns[i] = phi * returns[i - 1] + shocks[i]
    return pd.Series(100.0 * np.exp(np.cumsum(returns)), index=index)


def histories() -> dict[str, pd.Series]:
    """Three stocks (weekdays) of different volatility and one crypto (every day)."""
    stocks = pd.bdate_range("2020-01-01", "2021-09-30")
    every_day = pd.date_range("2020-01-01", "2021-09-30")
    series = {f"S{i}": _ar_prices(stocks, i, scale=0.01 * (i + 1)) for i in range(3)}
    series["BTC"] = _ar_prices(every_day, 9, scale=0.04)
    return series


@pytest.fixture(scope="module", params=sorted(GLOBAL_MODELS))
def kind(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def fitted(kind: str):
    """The model of ``kind`` fit on :func:`histories` at :data:`CUT`, shared by the tests that
    only read it (a global_lstm fit trains a network over every ticker)."""
    return _fit(kind, histories())


def _fit(kind: str, series: dict[str, pd.Series], cut: date = CUT):
    return GLOBAL_MODELS[kind].fit(series, cut, CONFIG)


def _same_model(a, b, probe: dict[str, pd.Series]) -> bool:
    """Same forecasts for every ticker on the days after the cut (what a backtest scores)."""
    return all(
        np.allclose(
            a.predict_one_step(t, p, pd.Timestamp(CUT)), b.predict_one_step(t, p, pd.Timestamp(CUT))
        )
        for t, p in probe.items()
    )


def test_the_cut_is_one_date_for_every_ticker_and_calendar(kind, fitted) -> None:
    series, model = histories(), fitted
    assert pd.Timestamp(model.meta["trained_through"]) == pd.Timestamp("2021-06-06")  # BTC's Sunday
    assert model.meta["cut"] == CUT.isoformat()
    # A leak planted in ANOTHER ticker's series from the cut on changes nothing...
    leaked = dict(series)
    btc = series["BTC"].copy()
    btc[btc.index >= pd.Timestamp(CUT)] *= np.exp(
        np.linspace(0.5, 3.0, int((btc.index >= pd.Timestamp(CUT)).sum()))
    )
    leaked["BTC"] = btc
    s1 = series["S1"].copy()
    s1[s1.index >= pd.Timestamp(CUT)] = s1[s1.index >= pd.Timestamp(CUT)][::-1].to_numpy()
    leaked["S1"] = s1
    assert _same_model(model, _fit(kind, leaked), {"S0": series["S0"]})
    # ...while crypto's weekend days before the cut are trained on (the cut is by date, not
    # by a count of rows): moving them moves the model.
    weekend = dict(series)
    btc = series["BTC"].copy()
    btc[pd.Timestamp("2021-06-05") : pd.Timestamp("2021-06-06")] *= 1.3
    weekend["BTC"] = btc
    assert not _same_model(model, _fit(kind, weekend), {"S0": series["S0"]})


def test_a_forecast_reads_only_the_tickers_own_past_and_any_ticker_can_be_forecast(kind) -> None:
    series = histories()
    model = _fit(kind, {t: p for t, p in series.items() if t != "S2"})
    new = series["S2"]  # never trained on: a ticker added to the watchlist after the fit
    view = for_ticker(model, "S2")
    start = pd.Timestamp(CUT)
    predicted = view.predict_one_step(new, start)
    assert predicted.index[0] == start and predicted.index[-1] == new.index[-1]
    day = predicted.index[10]
    changed = new.copy()
    changed[changed.index >= day] *= 2.0  # the day itself and after: not read for that day
    assert view.predict_one_step(changed, start)[day] == pytest.approx(predicted[day])
    assert view.forecast_next(new[new.index < day]) == pytest.approx(predicted[day])
    path = view.forecast_path(new, 3)
    assert len(path) == 3 and path[0] == pytest.approx(view.forecast_next(new))


def test_a_saved_global_model_loads_equal(fitted, tmp_path) -> None:
    series, model = histories(), fitted
    model.save(tmp_path)
    loaded = load_global_model(tmp_path)
    assert loaded.meta == model.meta
    assert _same_model(model, loaded, series)


def test_a_refit_keeps_its_choices_and_trains_through_the_later_cut(fitted) -> None:
    series, model = histories(), fitted
    later = serving_cut(date(2021, 9, 30))
    refit = model.refit(series, later, CONFIG)
    assert refit.meta["trained_through"] == "2021-09-30"
    assert refit.meta["cut"] == later.isoformat()


def test_holdout_start_is_the_median_tickers_and_cut_histories_drops_from_it() -> None:
    series = histories()
    start = holdout_start(series, 100)
    stock_start = series["S0"].index[-100].date()
    assert start == stock_start  # three stocks outvote the crypto's later start
    before = cut_histories(series, start)
    assert all(p.index[-1] < pd.Timestamp(start) for p in before.values())


def test_global_ar_chooses_p_on_validation_days_and_finds_a_shared_reversal() -> None:
    stocks = pd.bdate_range("2018-01-01", periods=900)
    series = {f"S{i}": _ar_prices(stocks, i, phi=-0.25, scale=0.005 * (i + 1)) for i in range(6)}
    model = GlobalARForecaster.fit(series, stocks[700].date(), CONFIG, max_lag=4)
    assert set(model.meta["validation_mse"]) <= {"1", "2", "3", "4"}
    errors = model.meta["validation_mse"]
    assert errors[str(model.lags)] == min(errors.values())
    assert model.coefficients[0] == pytest.approx(-0.25, abs=0.05)
    assert pd.Timestamp(model.meta["val_start"]) < stocks[700]


def test_global_ar_forecast_paths_are_each_origins_own_path() -> None:
    stocks = pd.bdate_range("2018-01-01", periods=400)
    series = {f"S{i}": _ar_prices(stocks, i, phi=-0.3, scale=0.01) for i in range(4)}
    model = GlobalARForecaster.fit(series, stocks[300].date(), CONFIG, max_lag=3)
    prices = series["S1"]
    origins = np.array([0, model.history - 2, model.history - 1, 150, 320, len(prices) - 1])
    paths = model.forecast_paths("S1", prices, origins, 3)
    assert np.isnan(paths[:2]).all() and np.isfinite(paths[2:]).all()
    for row, origin in enumerate(origins[2:], start=2):
        alone = model.forecast_path("S1", prices.iloc[: origin + 1], 3)
        np.testing.assert_allclose(paths[row], alone, rtol=1e-12)
    assert len({round(p, 9) for p in paths[2:, 1]}) == len(origins) - 2  # each origin its own
