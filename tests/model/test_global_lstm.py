"""The global LSTM: one network over many tickers, cut by date, scales and gains per ticker."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from lstm_model.config import ConfigError
from lstm_model.data import InsufficientDataError
from lstm_model.global_lstm import GlobalLSTM, GlobalLSTMConfig, pass_order

CUT = pd.Timestamp("2016-01-04")  # a Monday: the crypto ticker trades the weekend before it


def _walk(seed: int, index: pd.DatetimeIndex, vol: float = 0.015) -> pd.Series:
    rng = np.random.default_rng(seed)
    # A little reversal so there is something shared to learn.
    noise = rng.normal(0.0, vol, len(index))
    returns = noise - 0.2 * np.concatenate([[0.0], noise[:-1]])
    return pd.Series(40 * np.exp(np.cumsum(returns)), index=index, name="adj_close")


@pytest.fixture(scope="module")
def histories() -> dict[str, pd.Series]:
    stocks = pd.bdate_range("2015-03-02", "2016-03-31", name="date")
    crypto = pd.date_range("2015-06-01", "2016-03-31", freq="D", name="date")
    return {
        "AAA": _walk(1, stocks),
        "BBB": _walk(2, stocks, vol=0.03),
        "BTC-USD": _walk(3, crypto, vol=0.04),
    }


@pytest.fixture(scope="module")
def config() -> GlobalLSTMConfig:
    # Tiny and without the gain: with a gain of 0 a model predicts yesterday's price whatever
    # the window, and a leak could hide behind it.
    return GlobalLSTMConfig(
        look_back=5, units=4, batch_size=128, epochs=2, early_stopping_patience=1, shrinkage=False
    )


@pytest.fixture(scope="module")
def model(histories, config) -> GlobalLSTM:
    return GlobalLSTM.fit(histories, CUT, config)


def _with_leak(histories: dict[str, pd.Series], ticker: str, on: pd.Timestamp) -> dict:
    """A copy of ``histories`` with ``ticker``'s prices from ``on`` on multiplied by 50."""
    leaked = dict(histories)
    series = histories[ticker].copy()
    series[series.index >= on] *= 50.0
    leaked[ticker] = series
    return leaked


def _weights_equal(a: GlobalLSTM, b: GlobalLSTM) -> bool:
    return all(
        np.array_equal(x, y)
        for x, y in zip(a.network.get_weights(), b.network.get_weights(), strict=True)
    )


def test_trains_on_every_ticker_before_the_cut_only(model, histories):
    assert model.meta["cut"] == "2016-01-04"
    assert model.meta["tickers"] == ["AAA", "BBB", "BTC-USD"]
    # The crypto ticker's last training day is the Sunday before the cut.
    assert model.meta["trained_through"] == "2016-01-03"
    assert pd.Timestamp(model.meta["val_start"]) < CUT


def test_prediction_depends_on_the_window(model, histories):
    """The honesty tests below could not fail on a model that ignores its window."""
    day = histories["AAA"].index[histories["AAA"].index >= CUT][10]
    moved = dict(histories)
    series = histories["AAA"].copy()
    series.iloc[series.index.get_loc(day) - 3] *= 1.1  # inside the window, not the last price
    moved["AAA"] = series
    before = model.predict_one_step("AAA", histories["AAA"], day).iloc[0]
    after = model.predict_one_step("AAA", moved["AAA"], day).iloc[0]
    assert before != pytest.approx(after, rel=1e-6)


@pytest.mark.parametrize("leaky", ["BBB", "BTC-USD"])
def test_a_leak_in_another_tickers_series_from_the_cut_changes_nothing(
    model, histories, config, leaky
):
    """Planted on the cut date itself (a Monday for BBB, so also the crypto Sunday-after rule:
    BTC-USD's leak starts on the cut too). Training reading a price dated on/after the cut
    (e.g. ``<=`` for ``<`` in the cut) changes the weights, the scales or AAA's forecasts."""
    leaked = _with_leak(histories, leaky, CUT)
    other = GlobalLSTM.fit(leaked, CUT, config)
    assert _weights_equal(model, other)
    assert other.scales == model.scales
    assert other.meta["trained_through"] == model.meta["trained_through"]
    clean = model.predict_panel(histories, CUT)["AAA"]
    again = other.predict_panel(leaked, CUT)["AAA"]
    pd.testing.assert_series_equal(clean, again)


def test_the_market_input_is_cut_by_date_too(histories):
    config = GlobalLSTMConfig(
        look_back=5,
        units=4,
        batch_size=128,
        epochs=1,
        early_stopping_patience=1,
        shrinkage=False,
        inputs=("market", "weekday"),
    )
    a = GlobalLSTM.fit(histories, CUT, config)
    b = GlobalLSTM.fit(_with_leak(histories, "BTC-USD", CUT), CUT, config)
    assert _weights_equal(a, b)
    # Predicting AAA on the cut date: the market input reads BTC-USD's days before it only.
    clean = a.predict_panel(histories, CUT)["AAA"].loc[:CUT]
    leaked = b.predict_panel(_with_leak(histories, "BTC-USD", CUT), CUT)["AAA"].loc[:CUT]
    pd.testing.assert_series_equal(clean, leaked)
    with pytest.raises(ValueError, match=r"market input.*predict_panel"):
        a.predict_one_step("AAA", histories["AAA"], CUT)


def test_a_leak_one_day_before_the_cut_is_trained_on(model, histories, config):
    """The control: the same leak a day earlier is inside training, so the test above can
    tell a cut that holds from one that does not."""
    day_before = histories["BBB"].index[histories["BBB"].index < CUT][-1]
    other = GlobalLSTM.fit(_with_leak(histories, "BBB", day_before), CUT, config)
    assert not _weights_equal(model, other)


def test_a_pool_within_the_epoch_budget_trains_as_with_no_budget(model, histories, config):
    """The budget changes nothing for a watchlist whose pool fits in it (a 4- or 60-ticker
    run keeps its numbers): the same weights as every window every epoch. Using the
    sampled path whatever the pool's size fails it."""
    assert model.meta["n_windows"] <= config.windows_per_epoch
    unbudgeted = GlobalLSTM.fit(histories, CUT, dataclasses.replace(config, windows_per_epoch=None))
    assert _weights_equal(model, unbudgeted)


def test_a_pool_larger_than_the_budget_is_sampled_the_same_way_and_cut_by_date(
    model, histories, config
):
    """Two batches an epoch from a pool of about 500 windows: a different model from the
    whole pool's, the same one on every fit, and still blind to a leak from the cut on and
    not to one the day before (the sampled path's own leak checks)."""
    sampled = dataclasses.replace(config, windows_per_epoch=2 * config.batch_size)
    a = GlobalLSTM.fit(histories, CUT, sampled)
    assert a.meta["n_windows"] > sampled.windows_per_epoch
    assert not _weights_equal(a, model)
    assert _weights_equal(a, GlobalLSTM.fit(_with_leak(histories, "BTC-USD", CUT), CUT, sampled))
    day_before = histories["BBB"].index[histories["BBB"].index < CUT][-1]
    assert not _weights_equal(
        a, GlobalLSTM.fit(_with_leak(histories, "BBB", day_before), CUT, sampled)
    )


def test_each_pass_over_a_large_pool_is_a_seeded_shuffle_of_whole_batches():
    first = pass_order(1000, 128, 42, 0)
    assert len(first) == 896 and len(set(first.tolist())) == 896  # 7 batches, no repeat
    assert set(first.tolist()) <= set(range(1000))
    np.testing.assert_array_equal(first, pass_order(1000, 128, 42, 0))
    assert not np.array_equal(first, pass_order(1000, 128, 42, 1))
    assert not np.array_equal(first, pass_order(1000, 128, 7, 0))


def test_forecast_next_is_the_one_step_prediction_of_the_next_day(model, histories):
    prices = histories["AAA"]
    day = prices.index[prices.index >= CUT][5]
    forecast = model.forecast_next("AAA", prices.loc[prices.index < day])
    predicted = model.predict_one_step("AAA", prices, day)
    assert forecast == pytest.approx(predicted.iloc[0], rel=1e-9)
    panel = model.forecast_panel({t: s.loc[s.index < day] for t, s in histories.items()})
    assert panel["AAA"] == pytest.approx(forecast, rel=1e-9)
    path = model.forecast_path("AAA", prices.loc[prices.index < day], 3)
    assert path[0] == pytest.approx(forecast, rel=1e-9) and len(path) == 3


def _fed_back(model, ticker, prices, origin, daily):
    """Steps 1 and 2 from ``origin`` as the one-step predictions of separate calls: step 1
    of the next day, step 2 of the day after with step 1 appended as if it had happened
    (``predict_one_step`` builds its features its own way, from a dated series)."""
    step = pd.offsets.Day(1) if daily else pd.offsets.BDay(1)
    day1 = prices.index[origin] + step
    day2 = day1 + step
    known = prices.iloc[: origin + 1]
    with_day1 = pd.concat([known, pd.Series([1.0], index=[day1])])
    one = model.predict_one_step(ticker, with_day1, day1).iloc[0]
    with_day2 = pd.concat([known, pd.Series([one, 1.0], index=[day1, day2])])
    return one, model.predict_one_step(ticker, with_day2, day2).iloc[0]


@pytest.mark.parametrize("inputs", [(), ("weekday",)])
def test_forecast_paths_feed_each_origins_forecasts_back_all_origins_at_once(
    histories, config, model, inputs
):
    """The backtest's batched paths (one network call per step for every origin) are what
    forecasting from each origin alone gives, dates included (the weekday input reads the
    next weekday for a stock, the next day for a crypto); an origin with fewer than
    ``history`` prices before it gets a row of NaN."""
    weekday = model if not inputs else GlobalLSTM.fit(
        histories, CUT, dataclasses.replace(config, inputs=inputs)
    )  # fmt: skip
    newcomer = _walk(9, pd.bdate_range("2015-09-01", "2016-03-31", name="date"))
    for ticker, prices, daily in (
        ("AAA", histories["AAA"], False),
        ("BTC-USD", histories["BTC-USD"], True),
        ("NEW", newcomer, False),  # unseen: scaled on its own prices before the cut
    ):
        first = int(prices.index.searchsorted(CUT))
        # Before the cut too: there an unseen ticker's scale is fit on its prices so far.
        origins = np.array(
            [0, weekday.config.history - 2, first - 8, first - 1, first + 4, first + 17]
        )
        paths = weekday.forecast_paths(ticker, prices, origins, 2)
        assert np.isnan(paths[:2]).all() and np.isfinite(paths[2:]).all()
        for row, origin in enumerate(origins[2:], start=2):
            alone = weekday.forecast_path(ticker, prices.iloc[: origin + 1], 2)
            np.testing.assert_allclose(paths[row], alone, rtol=1e-7)
            expected = _fed_back(weekday, ticker, prices, origin, daily)
            # A path keeps the origin's scale; predict_one_step would rescale an unseen
            # ticker on the appended step-1 price before the cut, so compare step 1 there.
            steps = 2 if ticker in weekday.scales or origin >= first - 1 else 1
            np.testing.assert_allclose(paths[row, :steps], expected[:steps], rtol=1e-7)


def test_refit_trains_on_the_days_since_the_cut_and_never_past_the_new_one(model, histories):
    new_cut = pd.Timestamp("2016-02-01")
    refit = model.refit(histories, new_cut)
    assert refit.meta["cut"] == "2016-02-01"
    assert refit.meta["trained_through"] == "2016-01-31"  # BTC-USD's Sunday
    assert refit.meta["fine_tunes"][-1]["n_windows"] > 0
    assert not _weights_equal(model, refit)
    assert refit.scales == model.scales  # scales and gains stay per ticker
    again = model.refit(_with_leak(histories, "BBB", new_cut), new_cut)
    assert _weights_equal(refit, again)


def test_save_and_load_give_the_same_predictions(model, histories, tmp_path):
    model.save(tmp_path / "g")
    loaded = GlobalLSTM.load(tmp_path / "g")
    assert loaded.scales == model.scales
    assert loaded.config == model.config
    assert loaded._network is None  # the weights are read from the file, no Keras network
    a = model.predict_panel(histories, CUT)
    b = loaded.predict_panel(histories, CUT)
    for ticker in a:
        np.testing.assert_allclose(a[ticker].to_numpy(), b[ticker].to_numpy(), rtol=1e-6)
    # A warm day refits the loaded champion: the same network as refitting it in memory.
    new_cut = pd.Timestamp("2016-02-01")
    assert _weights_equal(loaded.refit(histories, new_cut), model.refit(histories, new_cut))


def test_a_corrupt_network_file_is_a_clear_error_naming_it(model, tmp_path):
    model.save(tmp_path / "g")
    (tmp_path / "g" / "model.keras").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"g/model\.keras: BadZipFile"):
        GlobalLSTM.load(tmp_path / "g")


def test_an_unseen_ticker_is_forecast_without_retraining(model, histories):
    newcomer = _walk(9, pd.bdate_range("2015-09-01", "2016-03-31", name="date"))
    predicted = model.predict_one_step("NEW", newcomer, CUT)
    assert predicted.index[0] == newcomer.index[newcomer.index >= CUT][0]
    assert np.all(np.isfinite(predicted.to_numpy()))
    assert "NEW" not in model.scales


def test_too_little_history_before_the_cut_is_a_clear_error(histories, config):
    short = {t: s.loc["2015-12-15":] for t, s in histories.items()}
    with pytest.raises(InsufficientDataError, match="no ticker has 26 prices before 2016-01-04"):
        GlobalLSTM.fit(short, CUT, config)


def test_volume_input_without_volumes_names_the_ticker(histories):
    config = GlobalLSTMConfig(look_back=5, units=4, epochs=1, inputs=("volume",))
    with pytest.raises(ValueError, match="no volume given for AAA"):
        GlobalLSTM.fit(histories, CUT, config)


def test_unknown_input_is_refused():
    with pytest.raises(ConfigError, match="inputs"):
        GlobalLSTMConfig(inputs=("sentiment",))


def test_an_epoch_budget_smaller_than_a_batch_is_refused():
    with pytest.raises(ConfigError, match=r"windows_per_epoch.*>= batch_size \(512\), got 100"):
        GlobalLSTMConfig(windows_per_epoch=100)
