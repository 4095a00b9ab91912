"""Diebold-Mariano with the HLN correction: by hand, on a learnable series, on a random walk."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lstm_model.baselines import DriftForecaster
from lstm_model.significance import (
    describe_evidence,
    diebold_mariano,
    evidence,
    loss_differential,
)

# Errors chosen so every step is small integers: actual 0, so error = -forecast.
E_MODEL = [1.0, -1.0, 2.0, 0.0, 1.0, -2.0]  # squared: 1 1 4 0 1 4
E_NAIVE = [2.0, 1.0, -2.0, 1.0, -2.0, 3.0]  # squared: 4 1 4 1 4 9
ACTUAL = [0.0] * 6


def _forecasts(errors: list[float]) -> list[float]:
    return [-e for e in errors]


def test_statistic_matches_a_hand_computation_for_h_1_and_h_2() -> None:
    predicted, naive = _forecasts(E_MODEL), _forecasts(E_NAIVE)
    # d = e_model^2 - e_naive^2 = [-3, 0, 0, -1, -3, -5]; n = 6; dbar = -12 / 6 = -2
    d = loss_differential(ACTUAL, predicted, naive)
    assert d.tolist() == [-3.0, 0.0, 0.0, -1.0, -3.0, -5.0]
    # centred: [-1, 2, 2, 1, -1, -3]
    # gamma0 = (1 + 4 + 4 + 1 + 1 + 9) / 6 = 20/6
    # gamma1 = (2*-1 + 2*2 + 1*2 + -1*1 + -3*-1) / 6 = 6/6 = 1
    n = 6

    # h = 1: V = gamma0 / n = 5/9; DM = -2 / sqrt(5/9) = -6/sqrt(5)
    # HLN factor sqrt((n + 1 - 2h + h(h-1)/n) / n) = sqrt(5/6); DM* = -6/sqrt(6) = -sqrt(6)
    one = diebold_mariano(ACTUAL, predicted, naive, horizon=1)
    assert one.mean_differential == pytest.approx(-2.0)
    assert one.statistic == pytest.approx(-math.sqrt(6.0))
    assert one.p_value == pytest.approx(stats.t.cdf(-math.sqrt(6.0), n - 1))
    assert one.p_value_two_sided == pytest.approx(2 * stats.t.cdf(-math.sqrt(6.0), n - 1))
    assert one.mse_model == pytest.approx(11 / 6) and one.mse_naive == pytest.approx(23 / 6)

    # h = 2: long-run variance gamma0 + 2 gamma1 = 20/6 + 2 = 16/3; V = 16/18 = 8/9
    # DM = -2 / sqrt(8/9) = -3/sqrt(2); HLN factor sqrt((7 - 4 + 2/6) / 6) = sqrt(5/9)
    # DM* = -3/sqrt(2) * sqrt(5)/3 = -sqrt(2.5)
    two = diebold_mariano(ACTUAL, predicted, naive, horizon=2)
    assert two.statistic == pytest.approx(-math.sqrt(2.5))
    assert two.p_value == pytest.approx(stats.t.cdf(-math.sqrt(2.5), n - 1))
    assert two.horizon == 2 and two.n == 6


def test_swapping_model_and_naive_flips_the_sign_and_the_one_sided_p() -> None:
    forward = diebold_mariano(ACTUAL, _forecasts(E_MODEL), _forecasts(E_NAIVE))
    backward = diebold_mariano(ACTUAL, _forecasts(E_NAIVE), _forecasts(E_MODEL))
    assert backward.statistic == pytest.approx(-forward.statistic)
    assert backward.p_value == pytest.approx(1 - forward.p_value)
    assert backward.p_value_two_sided == pytest.approx(forward.p_value_two_sided)


def _noisy_sine(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    clean = 100 + 10 * np.sin(2 * np.pi * np.arange(n) / 20)
    return clean, clean + rng.normal(0, 0.5, n)


def test_a_good_predictor_of_a_noisy_sine_beats_naive_with_p_below_0_01() -> None:
    clean, noisy = _noisy_sine(251, seed=3)
    actual, previous = noisy[1:], noisy[:-1]
    result = diebold_mariano(actual, clean[1:], previous)
    assert result.p_value < 0.01
    assert result.statistic < 0
    low, high = result.u2_interval(0.95)
    assert low <= result.u2 <= high < 1.0


def test_the_fast_lstm_on_the_sine_beats_naive_significantly(sine, fast_config) -> None:
    from lstm_model.forecaster import Forecaster

    model = Forecaster.fit(sine.iloc[:500], fast_config)
    predicted = model.predict_one_step(sine, sine.index[500])
    actual = sine.loc[predicted.index]
    result = diebold_mariano(actual, predicted, sine.shift(1).loc[predicted.index])
    assert result.p_value < 0.01
    assert result.u2_interval()[1] < 1.0


def test_drift_on_a_random_walk_is_not_significantly_better(random_walk) -> None:
    model = DriftForecaster.fit(random_walk.iloc[:300])
    predicted = model.predict_one_step(random_walk, random_walk.index[300])
    actual = random_walk.loc[predicted.index]
    result = diebold_mariano(actual, predicted, random_walk.shift(1).loc[predicted.index])
    assert result.p_value > 0.05
    assert result.p_value_two_sided > 0.05
    low, high = result.u2_interval(0.95)
    assert low < 1.0 < high  # the interval holds 1 exactly when the two-sided test keeps H0


@pytest.mark.parametrize("horizon", [1, 3])
def test_u2_interval_excludes_1_exactly_when_the_two_sided_test_rejects(horizon) -> None:
    rng = np.random.default_rng(11)
    actual = rng.normal(0, 1, 120)
    naive = actual + rng.normal(0, 1, 120)
    for scale in (0.6, 0.9, 1.0, 1.1, 1.5):
        predicted = actual + scale * rng.normal(0, 1, 120)
        result = diebold_mariano(actual, predicted, naive, horizon=horizon)
        low, high = result.u2_interval(0.95)
        assert (low > 1 or high < 1) == (result.p_value_two_sided < 0.05)


def test_a_model_identical_to_naive_shows_no_evidence(random_walk) -> None:
    values = random_walk.to_numpy()
    result = diebold_mariano(values[1:], values[:-1], values[:-1])
    assert (result.statistic, result.p_value, result.p_value_two_sided) == (0.0, 0.5, 1.0)
    assert result.u2 == 1.0 and result.u2_interval() == (1.0, 1.0)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="at least 2 scored days"):
        diebold_mariano([1.0], [1.0], [1.0])
    with pytest.raises(ValueError, match="horizon must be an integer"):
        diebold_mariano(ACTUAL, ACTUAL, ACTUAL, horizon=0)
    with pytest.raises(ValueError, match="horizon 6 needs more than 6"):
        diebold_mariano(ACTUAL, ACTUAL, ACTUAL, horizon=6)
    with pytest.raises(ValueError, match="naive 5"):
        diebold_mariano(ACTUAL, ACTUAL, ACTUAL[:5])
    with pytest.raises(ValueError, match="predicted has NaN"):
        diebold_mariano(ACTUAL, [np.nan, *ACTUAL[1:]], ACTUAL)
    with pytest.raises(ValueError, match="confidence"):
        diebold_mariano(ACTUAL, _forecasts(E_MODEL), _forecasts(E_NAIVE)).u2_interval(1.5)


def test_series_inputs_are_compared_by_position() -> None:
    index = pd.bdate_range("2021-01-04", periods=6)
    series = diebold_mariano(
        pd.Series(ACTUAL, index=index),
        pd.Series(_forecasts(E_MODEL), index=index[::-1]),  # index ignored: by position
        np.array(_forecasts(E_NAIVE)),
    )
    assert series.statistic == pytest.approx(-math.sqrt(6.0))


def _result(scale: float, seed: int = 0, n: int = 200):
    rng = np.random.default_rng(seed)
    actual = rng.normal(0, 1, n)
    naive = actual + rng.normal(0, 1, n)
    return diebold_mariano(actual, actual + scale * rng.normal(0, 1, n), naive)


def test_evidence_agrees_with_the_95_percent_u2_interval() -> None:
    for scale in (0.5, 0.8, 0.9, 1.0, 1.1, 1.3):
        for seed in range(3):
            result = _result(scale, seed)
            low, high = result.u2_interval(0.95)
            expected = "better" if high < 1 else "worse" if low > 1 else "unclear"
            assert evidence(result) == expected


def test_describe_evidence_names_each_ticker_under_its_verdict() -> None:
    text = describe_evidence({"AAA": _result(0.5), "BBB": _result(1.0, 1), "CCC": _result(1.5)})
    lines = text.splitlines()
    assert lines[0] == "**Backtest**, 3 ticker(s):"
    assert lines[1].startswith("- Beats naive with evidence") and "AAA (U2 0." in lines[1]
    assert lines[2].startswith("- No evidence either way") and "BBB" in lines[2]
    assert lines[3].startswith("- Worse than naive with evidence") and "CCC (U2 1." in lines[3]
    assert describe_evidence({}, what="live record") == "No ticker has a scored live record yet."
