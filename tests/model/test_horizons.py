"""Multi-step paths for any model, their long-form backtest, and the validation backtest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lstm_model import horizons, metrics
from lstm_model.baselines import DriftForecaster, NaiveForecaster, SeasonalNaiveForecaster
from lstm_model.data import InsufficientDataError


class OnlyNextDay:
    """The real model with its own ``forecast_path`` hidden, to exercise the recursion."""

    def __init__(self, model) -> None:
        self._model = model
        self.meta = model.meta

    def forecast_next(self, prices: pd.Series) -> float:
        return self._model.forecast_next(prices)


def test_recursive_path_feeds_each_forecast_back(window_model, random_walk) -> None:
    # window_model has no shrinkage gain: a gain of 0 would make every step the last price
    # whatever is fed back, and the recursion would go untested.
    known = random_walk.iloc[:320]
    path = horizons.forecast_path(window_model, known, 3)
    assert path[0] == pytest.approx(window_model.forecast_next(known))
    assert path[0] != pytest.approx(known.iloc[-1], rel=1e-7)
    extended = pd.concat(
        [known, pd.Series([path[0]], index=[known.index[-1] + pd.Timedelta(days=1)])]
    )
    assert path[1] == pytest.approx(window_model.forecast_next(extended))
    assert len(set(path)) == 3  # each step moved on from the one fed back
    # the recursion reproduces the baselines' closed forms
    for cls in (NaiveForecaster, DriftForecaster, SeasonalNaiveForecaster):
        model = cls.fit(known)
        np.testing.assert_allclose(
            horizons.forecast_path(OnlyNextDay(model), known, 7), model.forecast_path(known, 7)
        )


def test_naive_path_is_the_last_known_price(random_walk) -> None:
    np.testing.assert_array_equal(
        horizons.naive_path(random_walk.iloc[:10], 4), [random_walk.iloc[9]] * 4
    )
    with pytest.raises(ValueError, match="horizon must be an integer >= 1"):
        horizons.naive_path(random_walk, 0)


def test_path_backtest_scores_every_step_on_the_same_days(random_walk) -> None:
    model = DriftForecaster.fit(random_walk.iloc[:300])
    start = random_walk.index[350]
    frame = horizons.path_backtest(model, random_walk, start, 3)
    assert list(frame.columns) == list(horizons.PATH_COLUMNS)
    for step in (1, 2, 3):
        part = frame[frame["step"] == step]
        assert part["date"].tolist() == list(random_walk.index[350:])
        positions = random_walk.index.get_indexer(part["date"])
        # origin is `step` trading days before the target; naive = the price at the origin
        assert (random_walk.index[positions - step] == part["origin"].to_numpy()).all()
        np.testing.assert_array_equal(part["naive"], random_walk.to_numpy()[positions - step])
        np.testing.assert_allclose(
            part["predicted"], part["naive"] * np.exp(step * model.mean_log_return)
        )
        np.testing.assert_array_equal(part["actual"], random_walk.to_numpy()[positions])
    u2 = metrics.u2_per_horizon(frame["actual"], frame["predicted"], frame["naive"], frame["step"])
    assert set(u2) == {1, 2, 3}
    # the naive model's path backtest is exactly the naive forecast
    naive = horizons.path_backtest(
        NaiveForecaster.fit(random_walk.iloc[:300]), random_walk, start, 2
    )
    np.testing.assert_array_equal(naive["predicted"], naive["naive"])


def test_path_backtest_uses_only_prices_up_to_each_origin(window_model, random_walk) -> None:
    start = random_walk.index[340]
    before = horizons.path_backtest(window_model, random_walk.iloc[:360], start, 2)
    assert (before["predicted"] != before["naive"]).all()
    perturbed = random_walk.iloc[:360].copy()
    perturbed.iloc[350:] *= 2.0
    after = horizons.path_backtest(window_model, perturbed, start, 2)
    early = before["origin"] < random_walk.index[350]
    np.testing.assert_array_equal(after.loc[early, "predicted"], before.loc[early, "predicted"])
    assert not np.allclose(after.loc[~early, "predicted"], before.loc[~early, "predicted"])


def test_validation_backtest_covers_the_validation_slice_only(fast_model, random_walk) -> None:
    frame = horizons.validation_backtest(fast_model, random_walk, 2)  # later prices ignored
    meta = fast_model.meta
    for step in (1, 2):
        dates = frame.loc[frame["step"] == step, "date"]
        assert f"{dates.iloc[0]:%Y-%m-%d}" == meta["val_start"]
        assert f"{dates.iloc[-1]:%Y-%m-%d}" == meta["train_end"]
    model = NaiveForecaster.fit(random_walk.iloc[:300])
    model.meta.pop("val_start")
    with pytest.raises(InsufficientDataError, match="no validation slice"):
        horizons.validation_backtest(model, random_walk, 1)
    with pytest.raises(InsufficientDataError, match="no prices on or after"):
        horizons.path_backtest(model, random_walk.iloc[:10], random_walk.index[20], 1)
    # A ticker with no price before a global model's cut: the same error, not an IndexError.
    with pytest.raises(InsufficientDataError, match="no prices at all"):
        horizons.path_backtest(model, random_walk.iloc[:0], random_walk.index[20], 1)


def test_batched_lstm_paths_equal_one_origin_at_a_time(window_model, random_walk) -> None:
    start = random_walk.index[330]
    frame = horizons.path_backtest(window_model, random_walk.iloc[:345], start, 3)
    # every step moved away from the origin's price, and later steps from earlier ones
    assert (np.abs(frame["predicted"] / frame["naive"] - 1) > 1e-7).all()
    by_origin = frame.pivot(index="origin", columns="step", values="predicted").dropna()
    assert (by_origin[2] != by_origin[1]).all() and (by_origin[3] != by_origin[2]).all()
    one_step = window_model.predict_one_step(random_walk.iloc[:345], start)
    np.testing.assert_allclose(frame.loc[frame["step"] == 1, "predicted"], one_step, rtol=1e-9)
    for origin in (329, 335, 341):
        path = horizons.forecast_path(window_model, random_walk.iloc[: origin + 1], 3)
        rows = frame[frame["origin"] == random_walk.index[origin]].sort_values("step")
        np.testing.assert_allclose(rows["predicted"], path[: len(rows)], rtol=1e-6)


def test_path_positions_are_the_path_backtest_by_position(fast_model, random_walk) -> None:
    start = random_walk.index[330]
    for horizon in (1, 3):
        frame = horizons.path_backtest(fast_model, random_walk.iloc[:345], start, horizon)
        positions = horizons.path_positions(fast_model, random_walk.iloc[:345], start, horizon)
        index = random_walk.index
        assert (index[positions.origin] == pd.DatetimeIndex(frame["origin"])).all()
        assert (index[positions.target] == pd.DatetimeIndex(frame["date"])).all()
        np.testing.assert_array_equal(positions.step, frame["step"])
        np.testing.assert_array_equal(positions.predicted, frame["predicted"])
    # The validation slice by position: the same rows as validation_backtest's frame.
    frame = horizons.validation_backtest(fast_model, random_walk, 1)
    positions = horizons.validation_positions(fast_model, random_walk, 1)
    assert (random_walk.index[positions.target] == pd.DatetimeIndex(frame["date"])).all()
    np.testing.assert_array_equal(positions.predicted, frame["predicted"])
