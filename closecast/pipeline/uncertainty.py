"""Prediction intervals (80% and 95%, in price units) for backtests and served forecasts,
and how often they held.

Conformal prediction on the model's own out-of-sample residuals, volatility-scaled
(:mod:`lstm_model.intervals`): a backtest day is calibrated on the backtest model's
validation slice plus the backtest days before it; a served forecast on its lineage's
backtest plus the lineage's scored live record. Never on the day being scored.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date

import numpy as np
import pandas as pd

from closecast.outputs.records import ServedRow
from lstm_model.data import InsufficientDataError
from lstm_model.forecaster import Forecaster
from lstm_model.horizons import validation_positions
from lstm_model.intervals import (
    LEVELS,
    band_columns,
    calibrate,
    ewma_volatility,
    log_residuals,
    path_bounds,
    sequential_bounds,
)

BAND_COLUMNS: tuple[str, ...] = band_columns(LEVELS)
"""The bound columns of every banded frame and served row (80% and 95%)."""
MIN_CALIBRATION = 20
"""Out-of-sample residuals a served forecast's interval needs; with fewer, no interval."""


_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _positions(dates: Iterable[object], index: pd.DatetimeIndex) -> np.ndarray:
    """The position of each date in ``index`` (-1: not one of its dates).

    Dates as ``datetime.date`` objects (what a frame read from Parquet or a ledger holds)
    are converted by their ordinal: exact for whole days, and ``pd.to_datetime`` on date
    objects costs several times the lookup (a run looks up every model's backtest of every
    ticker); anything else goes through ``pd.to_datetime``."""
    values = np.asarray(dates.to_numpy() if isinstance(dates, pd.Series) else list(dates))
    if index.tz is None and values.dtype == object and all(type(d) is date for d in values):
        days = np.fromiter((d.toordinal() for d in values), "int64", len(values))
        stamps = (days - _EPOCH_ORDINAL).astype("datetime64[D]").astype(index.dtype)
        return index.get_indexer(stamps)
    return index.get_indexer(pd.DatetimeIndex(pd.to_datetime(values)))


def _target_positions(predictions: pd.DataFrame, prices: pd.Series) -> np.ndarray:
    """The position in ``prices`` of each one-step prediction's date; each needs a price
    before it (its forecast origin)."""
    positions = _positions(predictions["date"], prices.index)
    if (positions < 1).any():
        raise ValueError("every prediction date needs a price before it (its origin)")
    return positions


def _scale_at(volatility: np.ndarray, origins: np.ndarray, prices: pd.Series) -> np.ndarray:
    """:func:`~lstm_model.intervals.volatility_at` by position (``volatility`` is on
    ``prices.index``)."""
    scale = volatility[origins]
    if np.isnan(scale).any():
        missing = prices.index[origins[np.isnan(scale)][0]]
        raise ValueError(f"volatility has no value at forecast origin {missing:%Y-%m-%d}")
    return scale


def _calibration_scores(
    model: Forecaster, prices: pd.Series, start: pd.Timestamp, volatility: np.ndarray
) -> np.ndarray:
    """Conformity scores of the model's one-step forecasts on its validation slice (none
    without one)."""
    try:
        calibration = validation_positions(model, prices[prices.index < start], 1)
    except InsufficientDataError:
        return np.empty(0)
    if not calibration.origin.size:
        return np.empty(0)
    actual = prices.to_numpy(dtype="float64")[calibration.target]
    scale = _scale_at(volatility, calibration.origin, prices)
    return log_residuals(actual, calibration.predicted) / scale


def backtest_with_bands(
    model: Forecaster, prices: pd.Series, predictions: pd.DataFrame
) -> pd.DataFrame:
    """The backtest predictions with 80%/95% bounds, each day calibrated on the model's
    validation slice and the backtest days before it (as a live record grows).

    The numbers of :func:`lstm_model.intervals.backtest_bounds` on the validation backtest,
    computed on arrays by position: a run bands every model's backtest of every ticker."""
    start = pd.Timestamp(predictions["date"].iloc[0])
    volatility = ewma_volatility(prices).to_numpy()
    targets = _target_positions(predictions, prices)
    order = np.argsort(targets, kind="stable")  # scored in date order
    actual = predictions["actual"].to_numpy(dtype="float64")[order]
    predicted = predictions["predicted"].to_numpy(dtype="float64")[order]
    scale = _scale_at(volatility, targets[order] - 1, prices)
    banded = sequential_bounds(
        _calibration_scores(model, prices, start, volatility),
        log_residuals(actual, predicted) / scale,
        predicted,
        scale,
        levels=LEVELS,
    )
    columns = {column: np.empty(len(order)) for column in BAND_COLUMNS}
    for column, values in columns.items():
        values[order] = banded[column]
    bounds = pd.DataFrame(columns, index=predictions.index)
    if set(BAND_COLUMNS) & set(predictions.columns):  # banded again: replaced in place
        return predictions.assign(**bounds)
    return pd.concat([predictions, bounds], axis=1)  # a third of assign's cost


def coverage(actual, lower, upper) -> float | None:
    """Share of days whose actual price fell inside its interval (days without one skipped)."""
    a, lo, hi = (np.asarray(x, dtype="float64") for x in (actual, lower, upper))
    known = np.isfinite(a) & np.isfinite(lo) & np.isfinite(hi)
    if not known.any():
        return None
    return float(np.mean((a[known] >= lo[known]) & (a[known] <= hi[known])))


def frame_coverage(frame: pd.DataFrame | None) -> tuple[float | None, float | None]:
    """80% and 95% coverage of a frame with ``actual`` and band columns."""
    if frame is None or not set(BAND_COLUMNS) <= set(frame.columns):
        return None, None
    # Arrays, not Series: converting a Series costs far more (every record of every model).
    actual, lower_80, upper_80, lower_95, upper_95 = (
        frame[column].to_numpy(dtype="float64") for column in ("actual", *BAND_COLUMNS)
    )
    return coverage(actual, lower_80, upper_80), coverage(actual, lower_95, upper_95)


def served_bands(
    prices: pd.Series,
    forecast: float,
    backtest: pd.DataFrame | None,
    scored: Sequence[ServedRow],
    *,
    step: int = 1,
    backtest_path: pd.DataFrame | None = None,
    volatility: pd.Series | None = None,
) -> dict[str, float | None]:
    """80%/95% bounds for a forecast ``step`` trading days ahead, calibrated on the
    lineage's backtest and its scored live record at that step (all out of sample); empty
    bounds with too few residuals.

    Args:
        prices: The history the forecast was made from (its last day is the origin).
        forecast: The forecast.
        backtest: The lineage's one-step backtest (date, actual, predicted, naive).
        scored: The lineage's scored served forecasts (every step; this step's are used).
        step: Trading days ahead.
        backtest_path: The lineage's multi-step backtest (long form, with ``origin`` and
            ``step``), for steps beyond 1.
        volatility: :func:`~lstm_model.intervals.ewma_volatility` of ``prices``, when the
            caller has it (computed here otherwise): a ticker serves every model of its
            line-up from the same prices, so it is computed once per ticker.
    """
    origins, actual, predicted = _calibration_rows(prices, backtest, scored, step, backtest_path)
    if volatility is None:
        volatility = ewma_volatility(prices)
    # Origins no longer among the prices (a date since removed) cannot be scaled: left out.
    known = origins >= 0
    if int(known.sum()) < MIN_CALIBRATION:
        return dict.fromkeys(BAND_COLUMNS)
    scale = _scale_at(volatility.to_numpy(dtype="float64"), origins[known], prices)
    residuals = log_residuals(actual[known], predicted[known]) / scale
    # One radius, calibrated on this step's residuals only.
    calibration = calibrate([residuals], LEVELS, source="backtest+live", scaled=True)
    bounds = path_bounds([forecast], calibration, scale=float(volatility.iloc[-1]))
    return {column: float(bounds[column][0]) for column in BAND_COLUMNS}


def _calibration_rows(
    prices: pd.Series,
    backtest: pd.DataFrame | None,
    scored: Sequence[ServedRow],
    step: int,
    backtest_path: pd.DataFrame | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Origin (its position in ``prices``; -1: not a price date), actual and predicted of
    every out-of-sample forecast at ``step``: the lineage's backtest first, then its scored
    live record. NumPy arrays, not a frame: a run calibrates every model's forecast of every
    ticker."""
    origins: list[np.ndarray] = []
    actual: list[np.ndarray] = []
    predicted: list[np.ndarray] = []
    if step == 1 and backtest is not None and len(backtest):
        origins.append(_target_positions(backtest, prices) - 1)
        actual.append(backtest["actual"].to_numpy(dtype="float64"))
        predicted.append(backtest["predicted"].to_numpy(dtype="float64"))
    elif step > 1 and backtest_path is not None and len(backtest_path):
        rows = backtest_path[backtest_path["step"] == step]
        origins.append(_positions(rows["origin"], prices.index))
        actual.append(rows["actual"].to_numpy(dtype="float64"))
        predicted.append(rows["predicted"].to_numpy(dtype="float64"))
    live = [r for r in scored if r.actual is not None and r.step == step]
    if live:
        origins.append(_positions([r.data_end for r in live], prices.index))
        actual.append(np.array([r.actual for r in live], dtype="float64"))
        predicted.append(np.array([r.forecast for r in live], dtype="float64"))
    if not origins:
        return np.empty(0, dtype="int64"), np.empty(0), np.empty(0)
    return np.concatenate(origins), np.concatenate(actual), np.concatenate(predicted)
