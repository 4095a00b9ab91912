"""Interval coverage and per-horizon U2 on hand-checked values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lstm_model import metrics


def test_coverage_by_hand() -> None:
    actual = [10.0, 12.0, 11.0, 13.0]
    lower = [9.0, 12.0, 11.5, 0.0]
    upper = [11.0, 13.0, 12.0, math.inf]
    # inside, on the lower bound (inclusive), below, unbounded -> 3 of 4
    assert metrics.coverage(actual, lower, upper) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="lower has 3"):
        metrics.coverage(actual, lower[:3], upper)
    with pytest.raises(ValueError, match="NaN"):
        metrics.coverage(actual, [np.nan, 0, 0, 0], upper)


def test_u2_per_horizon_uses_the_last_known_price_as_naive() -> None:
    # two origins (last known 10 and 12), two steps each
    actual = [12.0, 11.0, 11.0, 13.0]
    predicted = [11.0, 11.0, 12.0, 12.0]
    last_known = [10.0, 10.0, 12.0, 12.0]
    steps = [1, 2, 1, 2]
    out = metrics.u2_per_horizon(actual, predicted, last_known, steps)
    # step 1: model errors 1, -1 (mse 1); naive errors 2, -1 (mse 2.5)
    # step 2: model errors 0, 1 (mse 0.5); naive errors 1, 1 (mse 1)
    assert out == {1: pytest.approx(math.sqrt(1 / 2.5)), 2: pytest.approx(math.sqrt(0.5))}
    with pytest.raises(ValueError, match="steps 3"):
        metrics.u2_per_horizon(actual, predicted, last_known, steps[:3])
