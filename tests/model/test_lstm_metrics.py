"""Metrics on hand-checked values, and clear errors for bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from lstm_model import metrics

ACTUAL = [10.0, 12.0, 11.0, 13.0]
PREDICTED = [11.0, 11.0, 12.0, 13.0]
PREVIOUS = [9.0, 10.0, 12.0, 11.0]


def test_rmse_mae_mape_by_hand() -> None:
    # errors 1, -1, 1, 0 -> mse 3/4
    assert metrics.rmse(ACTUAL, PREDICTED) == pytest.approx(math.sqrt(0.75))
    assert metrics.mae(ACTUAL, PREDICTED) == pytest.approx(0.75)
    assert metrics.mape(ACTUAL, PREDICTED) == pytest.approx(100 * (1 / 10 + 1 / 12 + 1 / 11) / 4)


def test_naive_forecast_at_d_is_actual_at_d_minus_1() -> None:
    s = pd.Series(ACTUAL, index=pd.bdate_range("2021-01-04", periods=4))
    naive = metrics.naive_forecast(s)
    assert math.isnan(naive.iloc[0])
    for d in range(1, 4):
        assert naive.iloc[d] == s.iloc[d - 1]
    arr = metrics.naive_forecast(np.array(ACTUAL))
    assert np.isnan(arr[0])
    assert arr[1:].tolist() == ACTUAL[:-1]


def test_u2_on_flat_prices_is_undefined_not_zero() -> None:
    # Both RMSEs 0 used to give U2 0.000, which reads as a perfect model.
    flat = [5.0, 5.0, 5.0, 5.0]

    assert math.isnan(metrics.u2(flat, flat, flat))
    assert math.isnan(metrics.summarize(flat, flat, flat).u2)
    assert metrics.u2(flat, [5.0, 5.0, 5.0, 6.0], flat) == math.inf
    assert metrics.format_u2(metrics.u2(flat, flat, flat)) == (
        "undefined (model and naive RMSE both 0: flat prices)"
    )
    assert metrics.format_u2(None) == "n/a"
    assert metrics.format_u2(0.98765) == "0.988"


def test_naive_rmse_and_u2() -> None:
    # naive errors vs previous: 1, 2, -1, 2 -> mse 10/4
    assert metrics.naive_rmse(ACTUAL, PREVIOUS) == pytest.approx(math.sqrt(2.5))
    assert metrics.u2(ACTUAL, PREDICTED, PREVIOUS) == pytest.approx(math.sqrt(0.75 / 2.5))
    # without previous: the first day is dropped; naive errors 2, -1, 2 -> mse 3
    assert metrics.naive_rmse(ACTUAL) == pytest.approx(math.sqrt(3.0))
    assert metrics.u2(ACTUAL, PREDICTED) == pytest.approx(math.sqrt((1 + 1 + 0) / 3 / 3.0))
    # predicting the previous value is exactly the naive forecast
    assert metrics.u2(ACTUAL, PREVIOUS, PREVIOUS) == pytest.approx(1.0)


def test_directional_accuracy_by_hand() -> None:
    # actual moves vs previous: +1, +2, -1, +2; predicted moves: +2, +1, 0, +2
    assert metrics.directional_accuracy(ACTUAL, PREDICTED, PREVIOUS) == pytest.approx(0.75)


def test_summarize_has_every_metric() -> None:
    out = metrics.summarize(ACTUAL, PREDICTED, PREVIOUS)
    assert out.n == len(ACTUAL)
    assert out.rmse == metrics.rmse(ACTUAL, PREDICTED)
    assert out.mae == metrics.mae(ACTUAL, PREDICTED)
    assert out.mape == metrics.mape(ACTUAL, PREDICTED)
    assert out.directional_accuracy == metrics.directional_accuracy(ACTUAL, PREDICTED, PREVIOUS)
    assert out.u2 == pytest.approx(out.rmse / out.naive_rmse)


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="actual has 4 values but predicted has 3"):
        metrics.rmse(ACTUAL, PREDICTED[:3])
    with pytest.raises(ValueError, match="predicted has 1 NaN"):
        metrics.mae(ACTUAL, [1.0, np.nan, 1.0, 1.0])
    with pytest.raises(ValueError, match="empty"):
        metrics.rmse([], [])
    with pytest.raises(ValueError, match="zero"):
        metrics.mape([0.0, 1.0], [1.0, 1.0])
    with pytest.raises(ValueError, match="previous"):
        metrics.directional_accuracy(ACTUAL, PREDICTED, PREVIOUS[:2])
