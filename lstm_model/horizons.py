"""Multi-step forecasts for any model, their backtest, and the validation-slice backtest.

A model with its own ``forecast_paths`` (the global models: every origin of a backtest at
once) uses it for a backtest; one with its own ``forecast_path`` (the baselines: closed forms)
uses that from each origin; any other :class:`~lstm_model.base.ForecastModel` (the LSTM) is
run recursively: each forecast is appended to the prices as if it had happened and the next
day is forecast from that (with ``forecast_windows``, every origin's window in one call per
step). The
naive forecast for every horizon is the last known price.

Steps count the ticker's own trading days: step ``k`` is the ``k``-th trading day after the
origin. Mapping steps to calendar dates is the caller's job (it knows the exchange calendar).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lstm_model.base import ForecastModel
from lstm_model.data import InsufficientDataError, check_prices

__all__ = [
    "PATH_COLUMNS",
    "PathPositions",
    "check_horizon",
    "forecast_path",
    "naive_path",
    "path_backtest",
    "path_positions",
    "validation_backtest",
    "validation_positions",
]

PATH_COLUMNS = ("origin", "step", "date", "actual", "predicted", "naive")
"""Columns of :func:`path_backtest`: forecast origin (last known day), horizon step, target
date, actual price on it, model forecast, naive forecast (the price at the origin)."""


def check_horizon(horizon: int) -> int:
    if not isinstance(horizon, int) or isinstance(horizon, bool) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    return horizon


def naive_path(prices: pd.Series, horizon: int) -> np.ndarray:
    """The naive forecast for each of the next ``horizon`` days: the last known price."""
    check_prices(prices)
    if prices.empty:
        raise InsufficientDataError("need at least 1 price for a naive forecast, got 0")
    return np.full(check_horizon(horizon), float(prices.iloc[-1]))


def forecast_path(model: ForecastModel, prices: pd.Series, horizon: int) -> np.ndarray:
    """Forecasts for the next ``horizon`` trading days after ``prices`` ends.

    Uses ``model.forecast_path`` when the model has one; otherwise feeds each
    ``forecast_next`` back as the next price. The appended prices get placeholder dates (one
    calendar day apart, after the last real date): one-step models read positions, not dates.

    Args:
        model: Any fitted model.
        prices: Known prices up to the forecast origin (ascending DatetimeIndex).
        horizon: Number of steps (1 = just the next day).
    """
    check_horizon(horizon)
    own = getattr(model, "forecast_path", None)
    if callable(own):
        return np.asarray(own(prices, horizon), dtype="float64")
    path = np.empty(horizon)
    extended = prices
    for step in range(horizon):
        path[step] = model.forecast_next(extended)
        if step + 1 < horizon:
            placeholder = extended.index[-1] + pd.Timedelta(days=1)
            extended = pd.concat([extended, pd.Series([path[step]], index=[placeholder])])
    return path


def _window_length(model: ForecastModel) -> int | None:
    """Prices a window-based model reads (``representation.history``), else ``None``."""
    history = getattr(getattr(model, "representation", None), "history", None)
    return int(history) if isinstance(history, int | np.integer) else None


def _paths_from_origins(
    model: ForecastModel, prices: pd.Series, origins: np.ndarray, horizon: int
) -> np.ndarray:
    """``forecast_path`` from each origin position (rows of NaN where history is too short)."""
    batched = getattr(model, "forecast_paths", None)
    if callable(batched):  # a model that forecasts from many origins at once (baselines, global)
        return np.asarray(batched(prices, origins, horizon), dtype="float64")
    paths = np.full((len(origins), horizon), np.nan)
    length = _window_length(model)
    by_windows = getattr(model, "forecast_windows", None)
    if (
        length is None
        or not callable(by_windows)
        or callable(getattr(model, "forecast_path", None))
    ):
        for row, origin in enumerate(origins):
            try:
                paths[row] = forecast_path(model, prices.iloc[: origin + 1], horizon)
            except InsufficientDataError:
                continue
        return paths
    # A window-based model without a closed form (the LSTM): batch every origin per step.
    values = prices.to_numpy(dtype="float64")
    usable = np.flatnonzero(origins + 1 >= length)
    if not usable.size:
        return paths
    windows = np.stack([values[o + 1 - length : o + 1] for o in origins[usable]])
    for step in range(horizon):
        forecast = by_windows(windows)
        paths[usable, step] = forecast
        windows = np.concatenate([windows[:, 1:], forecast[:, None]], axis=1)
    return paths


@dataclass(frozen=True)
class PathPositions:
    """A multi-step backtest by position in its prices, sorted by step then target: row ``i``
    is the ``step[i]``-step forecast ``predicted[i]`` made at position ``origin[i]`` (the last
    known price) for position ``origin[i] + step[i]``. What :func:`path_backtest` returns as a
    frame, for callers that only compute with it (intervals of every model of every ticker)."""

    origin: np.ndarray
    step: np.ndarray
    predicted: np.ndarray

    @property
    def target(self) -> np.ndarray:
        """Position of each forecast's target date."""
        return self.origin + self.step


def path_positions(
    model: ForecastModel, prices: pd.Series, start: pd.Timestamp, horizon: int
) -> PathPositions:
    """:func:`path_backtest` by position in ``prices`` (no frame built).

    Raises:
        InsufficientDataError: No price on or after ``start``.
    """
    check_prices(prices)
    check_horizon(horizon)
    first = int(prices.index.searchsorted(pd.Timestamp(start), side="left"))
    n = len(prices)
    if first >= n:
        ends = f"prices end {prices.index[-1]:%Y-%m-%d}" if n else "no prices at all"
        raise InsufficientDataError(
            f"no prices on or after {pd.Timestamp(start):%Y-%m-%d} ({ends})"
        )
    origins = np.arange(max(0, first - horizon), n - 1)
    paths = _paths_from_origins(model, prices, origins, horizon)
    # Origins too early for the model's window have a NaN path: skipped.
    forecast = ~np.isnan(paths[:, 0])
    made, steps, predicted = [], [], []
    for step in range(1, horizon + 1):
        targets = origins + step
        keep = forecast & (targets >= first) & (targets < n)
        made.append(origins[keep])
        steps.append(np.full(int(keep.sum()), step))
        predicted.append(paths[keep, step - 1])
    # Each step's targets are in date order already: sorted by step then date.
    return PathPositions(np.concatenate(made), np.concatenate(steps), np.concatenate(predicted))


def path_backtest(
    model: ForecastModel, prices: pd.Series, start: pd.Timestamp, horizon: int
) -> pd.DataFrame:
    """Every ``1..horizon``-step forecast whose target date is ``>= start``, in long form.

    For each target day ``t >= start`` and step ``k``, the forecast is made at origin
    ``t - k`` trading days from the prices up to the origin only (so each step is scored on
    the same target days). Origins too early for the model's window are skipped. A
    window-based model (one with ``representation.history``, like the LSTM) is evaluated for
    all origins at once per step, the same numbers as :func:`forecast_path` one origin at a
    time, without one network call per origin and step.

    Returns:
        Columns :data:`PATH_COLUMNS`, sorted by step then date.

    Raises:
        InsufficientDataError: No price on or after ``start``.
    """
    positions = path_positions(model, prices, start, horizon)
    values = prices.to_numpy(dtype="float64")
    made, target = positions.origin, positions.target
    columns = (
        prices.index[made], positions.step, prices.index[target], values[target],
        positions.predicted, values[made],
    )  # fmt: skip
    return pd.DataFrame(dict(zip(PATH_COLUMNS, columns, strict=True)))


def _validation_prices(model: ForecastModel, train_prices: pd.Series) -> pd.Series:
    """The prices up to the end of ``model``'s original fit; raises without a validation
    slice (see :func:`validation_backtest`)."""
    if model.meta.get("val_start") is None:
        raise InsufficientDataError(
            "the model has no validation slice (meta has no val_start); calibrate its "
            "intervals on its live record instead"
        )
    end = model.meta.get("train_end", model.meta.get("trained_through"))
    return train_prices.loc[:end] if end is not None else train_prices


def validation_backtest(
    model: ForecastModel, train_prices: pd.Series, horizon: int = 1
) -> pd.DataFrame:
    """The model's forecasts on its own validation slice, in long form (:data:`PATH_COLUMNS`).

    The validation slice (targets dated ``>= meta["val_start"]``, the end of the training
    period) was not used for gradient steps, so these forecasts are out of sample: the
    calibration set of :func:`lstm_model.intervals.calibrate_frame`.

    Args:
        model: A fitted model whose ``meta`` has ``val_start``.
        train_prices: The prices it was fit on; prices after ``meta["train_end"]`` (the end of
            the original fit, before any fine-tuning) are ignored so that no scored or
            fine-tuned day enters the calibration.
        horizon: Steps ahead.

    Raises:
        InsufficientDataError: The model has no validation slice (e.g. trained without early
            stopping and shrinkage), so it must be calibrated on its live record instead.
    """
    known = _validation_prices(model, train_prices)
    return path_backtest(model, known, pd.Timestamp(model.meta["val_start"]), horizon)


def validation_positions(
    model: ForecastModel, train_prices: pd.Series, horizon: int = 1
) -> PathPositions:
    """:func:`validation_backtest` by position in ``train_prices`` (a prefix of them is used,
    so the positions are also those of any longer history that starts the same).

    Raises:
        InsufficientDataError: As :func:`validation_backtest`.
    """
    known = _validation_prices(model, train_prices)
    return path_positions(model, known, pd.Timestamp(model.meta["val_start"]), horizon)
