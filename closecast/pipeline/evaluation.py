"""Honest evaluation of one forecaster on one ticker's evaluation period."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from closecast.pipeline.uncertainty import backtest_with_bands
from lstm_model import metrics
from lstm_model.base import ForecastModel
from lstm_model.forecaster import Forecaster
from lstm_model.horizons import path_backtest
from lstm_model.significance import DieboldMarianoResult, diebold_mariano


class LeakageError(RuntimeError):
    """An evaluation would score a model on days it was trained on."""


@dataclass(frozen=True)
class Evaluation:
    """One-step-ahead predictions over the evaluation period and their scores."""

    predictions: pd.DataFrame  # date, actual, predicted, naive
    scores: metrics.Scores

    @property
    def rmse(self) -> float:
        return self.scores.rmse

    @property
    def u2(self) -> float:
        return self.scores.u2


def trained_through(forecaster: Forecaster) -> pd.Timestamp:
    """Last date whose price the forecaster was trained or fine-tuned on."""
    return pd.Timestamp(forecaster.meta["trained_through"])


MIN_TEST_DAYS = 3
"""Scored days a Diebold-Mariano test needs (fewer: no test is reported)."""


def significance(
    actual: Any, predicted: Any, naive: Any, *, horizon: int = 1
) -> DieboldMarianoResult | None:
    """The Diebold-Mariano test (HLN) of a scored record against its naive forecast, or None
    with fewer than :data:`MIN_TEST_DAYS` days or, for ``horizon`` steps ahead, no more days
    than steps (its long-run variance needs ``horizon - 1`` lags and more)."""
    if len(actual) < max(MIN_TEST_DAYS, horizon + 1):
        return None
    return diebold_mariano(actual, predicted, naive, horizon=horizon)


def check_unseen(forecaster: Forecaster, start: pd.Timestamp) -> None:
    """The backtest's leakage guard.

    Raises:
        LeakageError: The model was trained on a date at or after ``start``.
    """
    seen_until = trained_through(forecaster)
    if seen_until >= start:
        raise LeakageError(
            f"model trained through {seen_until.date()} cannot be scored on days "
            f"from {start.date()}"
        )


def score_predictions(prices: pd.Series, predicted: pd.Series) -> Evaluation:
    """Score one-step-ahead predictions against the prices of their dates and the naive
    forecast (the price of the date before)."""
    actual, previous = _actual_and_previous(prices, predicted.index)
    forecast = predicted.to_numpy(dtype="float64")
    frame = pd.DataFrame(
        {"date": predicted.index.date, "actual": actual, "predicted": forecast, "naive": previous}
    )
    # Arrays, not the frame's columns: every model of every ticker is scored.
    scores = metrics.summarize(actual, forecast, previous)
    return Evaluation(predictions=frame, scores=scores)


def _actual_and_previous(prices: pd.Series, dates: pd.Index) -> tuple[np.ndarray, np.ndarray]:
    """The price on each of ``dates`` and on the price date before it (NaN for the first).

    Raises:
        KeyError: A date without a price.
    """
    positions = prices.index.get_indexer(dates)
    if (positions < 0).any():
        missing = ", ".join(f"{day:%Y-%m-%d}" for day in dates[positions < 0][:5])
        raise KeyError(f"no price on the predicted date(s) {missing}")
    values = prices.to_numpy(dtype="float64")
    previous = np.where(positions > 0, values[positions - 1], np.nan)
    return values[positions], previous


@dataclass(frozen=True)
class BacktestFrames:
    """A model's backtest on its hold-out days, as published and as intervals need it."""

    predictions: pd.DataFrame  # one step ahead: date, actual, predicted, naive and bands
    path: pd.DataFrame | None  # every step 1..horizon in long form; None at horizon 1


def backtest_frames(
    model: ForecastModel, prices: pd.Series, predictions: pd.DataFrame, horizon: int
) -> BacktestFrames:
    """The one backtest path of every model, at any horizon: its one-step hold-out
    predictions with their 80%/95% bands and, beyond one step, its multi-step backtest from
    the first hold-out day (``prices`` ends on the last hold-out day)."""
    banded = backtest_with_bands(model, prices, predictions)
    if horizon == 1:
        return BacktestFrames(banded, None)
    start = pd.Timestamp(predictions["date"].iloc[0])
    return BacktestFrames(banded, path_backtest(model, prices, start, horizon))


def evaluate(forecaster: Forecaster, prices: pd.Series, start: pd.Timestamp) -> Evaluation:
    """Score one-step-ahead predictions for every date from ``start`` on.

    Args:
        forecaster: The model to score.
        prices: The whole price history up to the as-of date (earlier rows feed the windows).
        start: First evaluation date; the model must not have been trained on it or later.

    Raises:
        LeakageError: The model was trained on a date at or after ``start``.
    """
    check_unseen(forecaster, start)
    return score_predictions(prices, forecaster.predict_one_step(prices, start))
