"""Conformal intervals: the quantile rule, coverage guarantee, volatility scaling, no peeking."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lstm_model import intervals, metrics


def test_radius_is_the_ceil_n_plus_1_times_level_th_smallest_absolute_residual() -> None:
    residuals = [0.05, -0.01, 0.03, -0.09, 0.02, -0.07, 0.04, 0.08, -0.06]  # n = 9
    # |r| sorted: .01 .02 .03 .04 .05 .06 .07 .08 .09
    # 80%: ceil(10 * 0.8) = 8th -> 0.08; 50%: ceil(5) = 5th -> 0.05; 90%: ceil(9) = 9th -> 0.09
    assert intervals.conformal_radius(residuals, 0.8) == pytest.approx(0.08)
    assert intervals.conformal_radius(residuals, 0.5) == pytest.approx(0.05)
    assert intervals.conformal_radius(residuals, 0.9) == pytest.approx(0.09)
    # 95%: ceil(9.5) = 10 > 9 residuals -> no finite bound yet
    assert intervals.conformal_radius(residuals, 0.95) == math.inf
    assert intervals.conformal_radius([], 0.8) == math.inf


def test_interval_is_multiplicative_in_price_units() -> None:
    band = intervals.interval([100.0, 200.0], 0.1, 0.8)
    np.testing.assert_allclose(band.lower, [100 * math.exp(-0.1), 200 * math.exp(-0.1)])
    np.testing.assert_allclose(band.upper, [100 * math.exp(0.1), 200 * math.exp(0.1)])
    unbounded = intervals.interval([100.0], math.inf, 0.95)
    assert (unbounded.lower[0], unbounded.upper[0]) == (0.0, math.inf)


def test_split_conformal_covers_exchangeable_residuals_at_the_nominal_level() -> None:
    rng = np.random.default_rng(5)
    hits = {0.8: [], 0.95: []}
    for _ in range(300):
        calibration = rng.standard_t(4, 59) * 0.01
        scored = rng.standard_t(4, 200) * 0.01
        predicted = np.full(200, 50.0)
        actual = predicted * np.exp(scored)
        for level in hits:
            band = intervals.interval(
                predicted, intervals.conformal_radius(calibration, level), level
            )
            hits[level].append(metrics.coverage(actual, band.lower, band.upper))
    # the guarantee: level <= E[coverage] <= level + 1 / (n + 1) (n = 59), up to MC error
    for level, values in hits.items():
        assert level - 0.01 <= np.mean(values) <= level + 1 / 60 + 0.01


def _two_regimes(seed: int = 1) -> pd.Series:
    """A calm year, then a stormy one with daily volatility four times higher."""
    rng = np.random.default_rng(seed)
    returns = np.concatenate([rng.normal(0, 0.005, 300), rng.normal(0, 0.02, 250)])
    index = pd.bdate_range("2019-01-01", periods=551, name="date")
    return pd.Series(100 * np.exp(np.concatenate([[0.0], np.cumsum(returns)])), index=index)


def _naive_frame(prices: pd.Series, first: int) -> pd.DataFrame:
    """One-step naive forecasts for every day from position ``first`` on, in long form."""
    values = prices.to_numpy()
    return pd.DataFrame(
        {
            "origin": prices.index[first - 1 : -1],
            "step": 1,
            "date": prices.index[first:],
            "actual": values[first:],
            "predicted": values[first - 1 : -1],
        }
    )


def test_volatility_scaling_keeps_coverage_through_a_regime_change() -> None:
    prices = _two_regimes()
    calibration = _naive_frame(prices, 100).iloc[:200]  # calm days only
    scored = _naive_frame(prices, 301)  # the stormy year
    volatility = intervals.ewma_volatility(prices)

    def cover(volatility, sequential, level):
        bounded = intervals.backtest_bounds(scored, calibration, volatility, sequential=sequential)
        lower, upper = intervals.bound_columns(level)
        return metrics.coverage(bounded["actual"], bounded[lower], bounded[upper])

    # a band calibrated on calm days badly under-covers the storm...
    assert cover(None, False, 0.8) < 0.5
    # ...the volatility-scaled band follows it, and the growing record closes the rest
    assert abs(cover(volatility, True, 0.8) - 0.8) < 0.05
    assert abs(cover(volatility, True, 0.95) - 0.95) < 0.05


def test_ewma_volatility_by_hand_and_from_the_past_only() -> None:
    index = pd.bdate_range("2021-01-04", periods=4)
    prices = pd.Series([100.0, 110.0, 99.0, 99.0], index=index)
    r1, r2 = math.log(1.1), math.log(0.9)
    sigma = intervals.ewma_volatility(prices, decay=0.9)
    assert math.isnan(sigma.iloc[0])
    assert sigma.iloc[1] == pytest.approx(abs(r1))
    assert sigma.iloc[2] == pytest.approx(math.sqrt(0.9 * r1**2 + 0.1 * r2**2))
    assert sigma.iloc[3] == pytest.approx(math.sqrt(0.9 * (0.9 * r1**2 + 0.1 * r2**2)))
    changed = prices.copy()
    changed.iloc[3] = 500.0
    after = intervals.ewma_volatility(changed, decay=0.9)
    np.testing.assert_array_equal(after.iloc[:3].to_numpy(), sigma.iloc[:3].to_numpy())
    flat = intervals.ewma_volatility(pd.Series([5.0, 5.0, 5.0], index=index[:3]))
    assert flat.iloc[1] > 0  # floored: a flat stretch does not divide by zero


def test_backtest_bounds_never_use_the_day_being_scored() -> None:
    prices = _two_regimes(seed=4)
    volatility = intervals.ewma_volatility(prices)
    calibration = _naive_frame(prices, 100).iloc[:150]
    scored = _naive_frame(prices, 300)
    before = intervals.backtest_bounds(scored, calibration, volatility)
    # a huge miss on day 40 (its actual only) must not widen days 0..40, only later ones
    changed = scored.copy()
    changed.loc[40, "actual"] *= 1.5
    after = intervals.backtest_bounds(changed, calibration, volatility)
    columns = [c for level in intervals.LEVELS for c in intervals.bound_columns(level)]
    pd.testing.assert_frame_equal(before.loc[:40, columns], after.loc[:40, columns])
    assert (after.loc[41:, "upper_95"] >= before.loc[41:, "upper_95"]).all()
    assert (after.loc[41:, "upper_95"] > before.loc[41:, "upper_95"]).any()
    # with sequential=False only the calibration frame counts
    static = intervals.backtest_bounds(changed, calibration, volatility, sequential=False)
    reference = intervals.backtest_bounds(scored, calibration, volatility, sequential=False)
    pd.testing.assert_frame_equal(static[columns], reference[columns])


def test_sequential_radii_respect_the_lag_of_multi_step_forecasts() -> None:
    calibration = np.full(9, 0.01)
    scored = np.array([0.5, 0.5, 0.5, 0.5])
    # level 0.5, n = 9 + k known: the radius grows once enough big misses are known
    plain = intervals.sequential_radii(calibration, scored, 0.5)
    lagged = intervals.sequential_radii(calibration, scored, 0.5, lag=2)
    # day i sees scored[:i] without lag, scored[:i-2] with lag 2
    expected = [intervals.conformal_radius([*calibration, *scored[:i]], 0.5) for i in range(4)]
    expected_lagged = [
        intervals.conformal_radius([*calibration, *scored[: max(0, i - 2)]], 0.5) for i in range(4)
    ]
    np.testing.assert_allclose(plain, expected)
    np.testing.assert_allclose(lagged, expected_lagged)
    windowed = intervals.sequential_radii(calibration, scored, 0.5, window=2)
    assert windowed[2] == pytest.approx(0.5)  # only the two big misses are in the window


def test_calibrate_frame_gives_one_radius_per_step_and_round_trips_as_json() -> None:
    rng = np.random.default_rng(2)
    rows = []
    for step in (1, 2):
        for i in range(40):
            rows.append((pd.Timestamp("2021-01-01") + pd.Timedelta(days=i), step, 100.0, 1.0))
    frame = pd.DataFrame(rows, columns=["origin", "step", "predicted", "noise"])
    widths = np.where(frame["step"] == 1, 0.01, 0.03)
    frame["actual"] = frame["predicted"] * np.exp(widths * rng.normal(size=len(frame)))
    calibration = intervals.calibrate_frame(frame, None)
    assert calibration.horizon == 2 and calibration.n == (40, 40) and not calibration.scaled
    assert calibration.radius(0.8, 2) > 2 * calibration.radius(0.8, 1)
    assert calibration.radius(0.95, 1) > calibration.radius(0.8, 1)
    again = intervals.Calibration.from_dict(calibration.to_dict())
    assert again == calibration
    short = intervals.calibrate([[0.01, 0.02]], source="live")
    assert intervals.Calibration.from_dict(short.to_dict()).radius(0.95) == math.inf
    with pytest.raises(KeyError, match="step 3 not calibrated"):
        calibration.radius(0.8, 3)
    with pytest.raises(KeyError, match=r"level 0\.9 not calibrated"):
        calibration.radius(0.9, 1)


def test_forecast_bounds_scale_with_the_origin_volatility() -> None:
    calibration = intervals.calibrate([[1.0] * 30, [2.0] * 30])  # scaled radii 1 and 2
    path = [100.0, 101.0]
    calm = intervals.forecast_bounds(path, calibration, scale=0.01)
    stormy = intervals.forecast_bounds(path, calibration, scale=0.03)
    assert list(calm.columns) == [
        "step", "forecast", "lower_80", "upper_80", "lower_95", "upper_95",
    ]  # fmt: skip
    assert calm.loc[0, "upper_80"] == pytest.approx(100 * math.exp(0.01))
    assert calm.loc[1, "upper_80"] == pytest.approx(101 * math.exp(0.02))
    assert stormy.loc[1, "lower_95"] == pytest.approx(101 * math.exp(-0.06))
    with pytest.raises(ValueError, match="needs the origin's volatility"):
        intervals.forecast_bounds(path, calibration)
    unscaled = intervals.calibrate([[0.01] * 30], scaled=False)
    assert intervals.forecast_bounds([100.0], unscaled).loc[0, "upper_95"] == pytest.approx(
        100 * math.exp(0.01)
    )
    assert (calm["lower_80"] < calm["forecast"]).all() and (
        calm["forecast"] < calm["upper_80"]
    ).all()


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"level must be in \(0, 1\)"):
        intervals.conformal_radius([0.1], 1.2)
    with pytest.raises(ValueError, match="predicted must be positive"):
        intervals.log_residuals([1.0], [0.0])
    with pytest.raises(ValueError, match="actual has 2 values but predicted has 1"):
        intervals.log_residuals([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="lacks column"):
        intervals.scores(pd.DataFrame({"actual": [1.0], "predicted": [1.0]}), None)
    frame = pd.DataFrame(
        {"origin": [pd.Timestamp("2030-01-01")], "actual": [1.0], "predicted": [1.0]}
    )
    volatility = pd.Series([0.01], index=pd.DatetimeIndex(["2029-12-31"]))
    with pytest.raises(ValueError, match="no value at forecast origin 2030-01-01"):
        intervals.scores(frame, volatility)
    with pytest.raises(ValueError, match="decay"):
        intervals.ewma_volatility(pd.Series([1.0, 2.0]), decay=1.0)
    assert intervals.bound_columns(0.975) == ("lower_97.5", "upper_97.5")


def test_radii_at_several_levels_are_each_levels_own() -> None:
    rng = np.random.default_rng(3)
    calibration, scored = rng.normal(0, 1, 30), rng.normal(0, 2, 60)
    for window, lag in ((None, 0), (25, 2)):
        both = intervals.sequential_radii_at(
            calibration, scored, (0.8, 0.95), window=window, lag=lag
        )
        for level in (0.8, 0.95):
            alone = intervals.sequential_radii(calibration, scored, level, window=window, lag=lag)
            np.testing.assert_array_equal(both[level], alone)
