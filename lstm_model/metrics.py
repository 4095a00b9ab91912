"""Forecast metrics as pure functions of aligned arrays (NumPy arrays, lists or Series).

Conventions: ``actual[i]`` and ``predicted[i]`` refer to the same day; ``previous[i]`` is the
actual price of the day before (what the naive forecast "tomorrow = today" predicts).
Series are compared by position, not by index -- align them first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "coverage",
    "directional_accuracy",
    "format_u2",
    "mae",
    "mape",
    "naive_forecast",
    "naive_rmse",
    "rmse",
    "summarize",
    "u2",
    "u2_per_horizon",
]


def _array(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    if array.ndim != 1:
        array = array.reshape(-1) if array.size == max(array.shape, default=0) else array
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(
            f"{name} has {bad.size} NaN/infinite value(s), first at position {int(bad[0])}"
        )
    return array


def _pair(actual: Any, predicted: Any, names: tuple[str, str] = ("actual", "predicted")):
    a = _array(actual, names[0])
    p = _array(predicted, names[1])
    if a.shape != p.shape:
        raise ValueError(f"{names[0]} has {a.size} values but {names[1]} has {p.size}")
    return a, p


def rmse(actual: Any, predicted: Any) -> float:
    """Root mean squared error."""
    a, p = _pair(actual, predicted)
    return float(np.sqrt(np.mean((a - p) ** 2)))


def mae(actual: Any, predicted: Any) -> float:
    """Mean absolute error."""
    a, p = _pair(actual, predicted)
    return float(np.mean(np.abs(a - p)))


def mape(actual: Any, predicted: Any) -> float:
    """Mean absolute percentage error, in percent (``100 * mean(|a - p| / |a|)``).

    Raises:
        ValueError: An actual value is zero.
    """
    a, p = _pair(actual, predicted)
    if np.any(a == 0):
        raise ValueError("mape is undefined when an actual value is zero")
    return float(100.0 * np.mean(np.abs((a - p) / a)))


def directional_accuracy(actual: Any, predicted: Any, previous: Any) -> float:
    """Share of days where the predicted move has the sign of the actual move.

    Both moves are measured from ``previous`` (the actual price of the day before):
    ``sign(predicted - previous) == sign(actual - previous)``. A flat prediction on a flat day
    counts as correct; a flat prediction on a moving day does not.
    """
    a, p = _pair(actual, predicted)
    prev = _array(previous, "previous")
    if prev.shape != a.shape:
        raise ValueError(f"actual has {a.size} values but previous has {prev.size}")
    return float(np.mean(np.sign(p - prev) == np.sign(a - prev)))


def naive_forecast(actual: Any) -> Any:
    """Tomorrow = today: the value at day ``d`` is the actual at ``d - 1``.

    Returns a Series (same index, first value NaN) for a Series, else a float array with a
    leading NaN.
    """
    if isinstance(actual, pd.Series):
        return actual.astype("float64").shift(1).rename("naive")
    a = _array(actual, "actual")
    out = np.empty_like(a)
    out[0] = np.nan
    out[1:] = a[:-1]
    return out


def naive_rmse(actual: Any, previous: Any | None = None) -> float:
    """RMSE of the naive forecast.

    With ``previous`` (the actual of each day before), over all of ``actual``; without it,
    over ``actual[1:]`` (the first day has no previous value).
    """
    if previous is None:
        a = _array(actual, "actual")
        if a.size < 2:
            raise ValueError("naive_rmse needs at least 2 actual values when previous is not given")
        return rmse(a[1:], a[:-1])
    a, prev = _pair(actual, previous, ("actual", "previous"))
    return rmse(a, prev)


def u2(actual: Any, predicted: Any, previous: Any | None = None) -> float:
    """Theil's U2: ``rmse(actual, predicted) / naive_rmse``; below 1 beats "tomorrow = today".

    Without ``previous`` the first day is dropped from both RMSEs. Infinite when the naive
    forecast is perfect (a flat series) and the model is not; undefined (NaN) when both RMSEs
    are 0: on flat prices nothing tells the model from naive, which is not "as good as
    naive" (U2 0 would read as a perfect model). :func:`format_u2` says so in messages.
    """
    a, p = _pair(actual, predicted)
    if previous is None:
        if a.size < 2:
            raise ValueError("u2 needs at least 2 values when previous is not given")
        model_rmse, base = rmse(a[1:], p[1:]), naive_rmse(a)
    else:
        model_rmse, base = rmse(a, p), naive_rmse(a, previous)
    if base == 0:
        return float("nan") if model_rmse == 0 else float("inf")
    return model_rmse / base


U2_UNDEFINED = "undefined (model and naive RMSE both 0: flat prices)"
"""How messages show a U2 of NaN (see :func:`u2`)."""


def format_u2(value: float | None) -> str:
    """A U2 for messages: three decimals, ``n/a`` when there is none, and the reason when it
    is undefined (:data:`U2_UNDEFINED`) or infinite."""
    if value is None:
        return "n/a"
    if math.isnan(value):
        return U2_UNDEFINED
    if math.isinf(value):
        return "inf (naive RMSE 0: flat prices, the model was not)"
    return f"{value:.3f}"


@dataclass(frozen=True)
class Scores:
    """Point-forecast scores of predictions against their actuals and the naive forecast
    (``previous``: the last known price at each origin)."""

    rmse: float
    naive_rmse: float
    u2: float
    mae: float
    mape: float
    directional_accuracy: float
    n: int


def summarize(actual: Any, predicted: Any, previous: Any) -> Scores:
    """All metrics at once: rmse, naive_rmse, u2, mae, mape, directional_accuracy, n.

    Each input is converted and checked once, here: every metric below then gets arrays
    (a pandas Series costs far more to convert, and a run scores every record of every
    model of every ticker)."""
    a, p = _pair(actual, predicted)
    prev = _array(previous, "previous")
    return Scores(
        rmse=rmse(a, p),
        naive_rmse=naive_rmse(a, prev),
        u2=u2(a, p, prev),
        mae=mae(a, p),
        mape=mape(a, p),
        directional_accuracy=directional_accuracy(a, p, prev),
        n=int(a.size),
    )


def coverage(actual: Any, lower: Any, upper: Any) -> float:
    """Share of actuals inside ``[lower, upper]`` (bounds inclusive): an interval's coverage.

    Raises:
        ValueError: Empty input, different lengths, or a NaN bound (an infinite bound is fine:
            it means "no bound").
    """
    a = _array(actual, "actual")
    lo = np.asarray(lower, dtype="float64").reshape(-1)
    hi = np.asarray(upper, dtype="float64").reshape(-1)
    if not a.size == lo.size == hi.size:
        raise ValueError(f"actual has {a.size} values but lower has {lo.size}, upper {hi.size}")
    if np.isnan(lo).any() or np.isnan(hi).any():
        raise ValueError("lower/upper bounds contain NaN")
    return float(np.mean((a >= lo) & (a <= hi)))


def u2_per_horizon(actual: Any, predicted: Any, last_known: Any, steps: Any) -> dict[int, float]:
    """Theil's U2 for each forecast horizon, against the naive forecast for that horizon.

    The naive forecast ``h`` steps ahead is the last known price at the forecast origin
    (``last_known``), whatever ``h``. Rows are aligned forecasts in long form: one row per
    (origin, step).

    Args:
        actual: The price on each row's target day.
        predicted: The model's forecast for it.
        last_known: The last price known at the row's origin (the naive forecast).
        steps: The row's horizon (1 = next trading day).

    Returns:
        ``{step: u2}`` in ascending step order.
    """
    a, p = _pair(actual, predicted)
    prev = _array(last_known, "last_known")
    h = np.asarray(steps).reshape(-1)
    if not a.size == prev.size == h.size:
        raise ValueError(
            f"actual has {a.size} values, last_known {prev.size}, steps {h.size}: must match"
        )
    return {int(step): u2(a[h == step], p[h == step], prev[h == step]) for step in np.unique(h)}
