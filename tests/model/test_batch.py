"""The batched path (lstm_model.batch): real grouped TensorFlow training on tiny data, checked
against the per-ticker Keras path and the honesty rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_model import metrics
from lstm_model.batch import (
    fine_tune_many,
    fit_many,
    forecast_next_many,
    predict_one_step_many,
    refit_many,
)
from lstm_model.data import InsufficientDataError
from lstm_model.forecaster import Forecaster, cap_history
from lstm_model.representation import RelativeLogReturn

N_TRAIN = 300


def _momentum(make_series, seed: int, n: int = 400, vol: float = 0.012) -> pd.Series:
    """Prices whose daily log returns follow an AR(1) with coefficient 0.6: there is
    something in the window to learn, so each network's shrinkage gain is above 0 (with a
    gain of 0 every prediction is the previous price and the window code goes untested)."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, vol, n)
    returns = np.zeros(n)
    for t in range(1, n):
        returns[t] = 0.6 * returns[t - 1] + shocks[t]
    return make_series(40 * np.exp(np.cumsum(returns))).rename(f"T{seed}")


@pytest.fixture(scope="module")
def tickers(make_series) -> list[pd.Series]:
    # Three tickers: a group of several, chunked unevenly below, stopping at different epochs
    # (8, 3 and 2). Each is also fit alone (``per_ticker``), at 2.5-3 CPU-s per Keras fit.
    return [_momentum(make_series, seed, vol=0.008 + 0.004 * seed) for seed in range(3)]


@pytest.fixture(scope="module")
def es_config(fast_config):
    # early stopping with a short patience, so tickers stop at different epochs
    return fast_config.with_overrides(early_stopping_patience=1, epochs=8)


@pytest.fixture(scope="module")
def per_ticker(tickers, es_config) -> list[Forecaster]:
    return [Forecaster.fit(s.iloc[:N_TRAIN], es_config) for s in tickers]


@pytest.fixture(scope="module")
def batched(tickers, es_config) -> list[Forecaster]:
    return fit_many([s.iloc[:N_TRAIN] for s in tickers], es_config)


def assert_window_dependent(predicted: pd.Series, prices: pd.Series) -> None:
    """Every prediction moves away from the previous price: the window shaped it."""
    previous = prices.shift(1).loc[predicted.index].to_numpy()
    assert np.all(np.abs(predicted.to_numpy() / previous - 1.0) > 1e-7)


def _u2(forecaster_predictions: pd.Series, prices: pd.Series) -> float:
    idx = forecaster_predictions.index
    return metrics.u2(
        prices.loc[idx].to_numpy(),
        forecaster_predictions.to_numpy(),
        prices.shift(1).loc[idx].to_numpy(),
    )


def test_fit_many_agrees_with_the_per_ticker_path(tickers, per_ticker, batched) -> None:
    starts = [s.index[N_TRAIN] for s in tickers]
    many = predict_one_step_many(batched, tickers, starts)
    for single, group, prices, start, predicted in zip(
        per_ticker, batched, tickers, starts, many, strict=True
    ):
        assert group.meta["batch"]["group_size"] == len(tickers)
        for a, b in zip(single.model.get_weights(), group.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert group.meta["epochs_run"] == single.meta["epochs_run"]
        assert group.meta["best_epoch"] == single.meta["best_epoch"]
        assert group.gain == pytest.approx(single.gain, abs=1e-4)
        assert group.gain > 0.1, group.gain
        assert_window_dependent(predicted, prices)
        alone = single.predict_one_step(prices, start)
        assert abs(_u2(predicted, prices) - _u2(alone, prices)) < 0.002
        np.testing.assert_allclose(predicted.to_numpy(), alone.to_numpy(), rtol=1e-5)


def test_early_stopping_is_per_ticker(per_ticker, batched, es_config) -> None:
    runs = [f.meta["epochs_run"] for f in batched]
    # the four tickers trained in one group, yet stopped after different numbers of epochs
    assert len(set(runs)) > 1, runs
    stopped = [i for i, f in enumerate(batched) if f.meta["epochs_run"] < es_config.epochs]
    assert stopped, runs
    for i in stopped:
        meta = batched[i].meta
        # it stopped once its patience ran out after its own best epoch...
        assert meta["epochs_run"] == meta["best_epoch"] + es_config.early_stopping_patience
        assert meta["best_val_loss"] == pytest.approx(per_ticker[i].meta["best_val_loss"])
        # ...and kept that epoch's weights, as Keras' restore_best_weights does alone
        for a, b in zip(batched[i].get_weights(), per_ticker[i].model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_group_size_does_not_change_results(tickers, es_config, batched) -> None:
    chunked = fit_many([s.iloc[:N_TRAIN] for s in tickers], es_config, group_size=2)
    assert [f.meta["batch"]["group_size"] for f in chunked] == [2, 2, 1]
    for a, b in zip(chunked, batched, strict=True):
        for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
            np.testing.assert_allclose(wa, wb, atol=1e-6)


def test_each_scaler_is_fit_on_its_own_training_rows(tickers, es_config, batched) -> None:
    for forecaster, prices in zip(batched, tickers, strict=True):
        own = RelativeLogReturn(es_config.look_back).fit(
            cap_history(prices.iloc[:N_TRAIN], es_config).to_numpy()
        )
        assert forecaster.representation.to_dict() == own.to_dict()
    # a spike after the training rows (in another ticker's data, and in the future of this
    # one) changes no scaler
    spiked = [s.copy() for s in tickers]
    spiked[1].iloc[N_TRAIN + 5] *= 50
    again = fit_many([s.iloc[:N_TRAIN] for s in spiked[:2]], es_config.with_overrides(epochs=1))
    assert [f.representation.to_dict() for f in again] == [
        f.representation.to_dict() for f in batched[:2]
    ]


def test_predictions_use_only_earlier_prices(tickers, batched) -> None:
    start = tickers[0].index[N_TRAIN]
    before = predict_one_step_many(batched[:2], tickers[:2], [start, start])
    perturbed = [s.copy() for s in tickers[:2]]
    for s in perturbed:
        s.iloc[350:] *= 3.0
    after = predict_one_step_many(batched[:2], perturbed, [start, start])
    for b, a, prices, shifted in zip(before, after, tickers[:2], perturbed, strict=True):
        assert b.index[0] == start
        assert_window_dependent(b, prices)
        np.testing.assert_array_equal(a.iloc[:51].to_numpy(), b.iloc[:51].to_numpy())
        assert a.iloc[51] != b.iloc[51]
        # Two days later the shift is inside the window but not its last day: the predicted
        # move from the previous price still differs, so the whole window is read.
        moved_before = b.iloc[52] / prices.iloc[351]
        moved_after = a.iloc[52] / shifted.iloc[351]
        assert abs(moved_after - moved_before) > 1e-6
    nxt = forecast_next_many(batched[:2], [s.iloc[:350] for s in tickers[:2]])
    assert nxt == pytest.approx([b.iloc[50] for b in before], rel=1e-6)


def test_batched_forecasters_save_and_load(tickers, batched, tmp_path) -> None:
    batched[2].save(tmp_path / "m")
    loaded = Forecaster.load(tmp_path / "m")
    assert loaded.gain == batched[2].gain
    assert loaded.meta["best_epoch"] == batched[2].meta["best_epoch"]
    for a, b in zip(loaded.model.get_weights(), batched[2].get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    start = tickers[2].index[N_TRAIN]
    (grouped,) = predict_one_step_many([batched[2]], [tickers[2]], [start])
    np.testing.assert_allclose(
        loaded.predict_one_step(tickers[2], start).to_numpy(), grouped.to_numpy(), rtol=1e-6
    )
    assert loaded.forecast_next(tickers[2]) == pytest.approx(
        forecast_next_many([batched[2]], [tickers[2]])[0], rel=1e-6
    )


def test_refit_many_agrees_with_refit(tickers, per_ticker, batched) -> None:
    refits = refit_many([s.iloc[: N_TRAIN + 50] for s in tickers[:2]], batched[:2])
    for refit, like, prices, single_like in zip(
        refits, batched[:2], tickers[:2], per_ticker[:2], strict=True
    ):
        alone = Forecaster.refit(prices.iloc[: N_TRAIN + 50], single_like)
        assert refit.meta["epochs_run"] == like.meta["best_epoch"] == alone.meta["epochs_run"]
        assert refit.meta["n_val"] == 0 and refit.gain == like.gain
        assert refit.meta["refit_of"]["train_end"] == like.meta["train_end"]
        assert refit.meta["trained_through"] == prices.index[N_TRAIN + 49].strftime("%Y-%m-%d")
        for a, b in zip(refit.get_weights(), alone.model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)


def test_fine_tune_many_agrees_with_fine_tune(tickers, per_ticker) -> None:
    new_from = [s.index[N_TRAIN] for s in tickers[:2]]
    prices = [s.iloc[: N_TRAIN + 3] for s in tickers[:2]]
    tuned = fine_tune_many(per_ticker[:2], prices, new_from, epochs=2, learning_rate=0.01)
    for t, f, p, start in zip(tuned, per_ticker[:2], prices, new_from, strict=True):
        alone = f.fine_tune(p, start, epochs=2, learning_rate=0.01)
        assert t.meta["fine_tunes"][-1]["n_windows"] == 3
        assert t.meta["trained_through"] == alone.meta["trained_through"]
        assert t.representation.to_dict() == f.representation.to_dict() and t.gain == f.gain
        for a, b in zip(t.get_weights(), alone.model.get_weights(), strict=True):
            np.testing.assert_allclose(a, b, atol=1e-5)
        assert f.meta["fine_tunes"] == []


def test_a_bad_series_is_named_and_does_not_sink_the_others(tickers, es_config) -> None:
    short = tickers[2].iloc[:8].rename("SHORT")
    series = [tickers[0].iloc[:N_TRAIN], short]
    with pytest.raises(InsufficientDataError, match=r"'SHORT'.*got 8"):
        fit_many(series, es_config.with_overrides(epochs=1))
    results = fit_many(series, es_config.with_overrides(epochs=1), return_exceptions=True)
    assert isinstance(results[0], Forecaster)
    assert isinstance(results[1], InsufficientDataError) and "'SHORT'" in str(results[1])
