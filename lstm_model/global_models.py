"""The interface of a *global* model: one model fit on many tickers' histories at once.

A per-ticker model (:class:`~lstm_model.base.ForecastModel`) learns from one history; a global
model learns from every ticker of a run and forecasts any ticker, including one it never saw,
from that ticker's own recent prices. The contract (tested for every entry of
:data:`lstm_model.registry.GLOBAL_MODELS`):

* ``fit(histories, cut, config)`` trains on every history's prices dated **before** ``cut``
  only: the cut is by date, the same for every ticker whatever its calendar (a crypto
  ticker's weekend days before the cut are used, its days from the cut on are not). The model
  applies the cut itself (:func:`cut_histories`), so no caller can leak a later day.
  ``meta["cut"]`` records it and ``meta["trained_through"]`` is the latest date trained on by
  *any* ticker: the live record refuses a forecast for a date on or before it.
* ``refit(histories, cut, config)`` continues the model on data before a later cut with the
  hyper-parameters it chose (the global "fine-tune"; it may re-estimate from scratch).
* ``predict_one_step(ticker, prices, start)`` and ``forecast_path(ticker, prices, horizon)``
  forecast one ticker from its own prices: the value for date ``d`` reads only prices dated
  before ``d``. ``ticker`` may be one the model never trained on.
* ``save(dir)`` writes ``meta.json`` (with ``"kind"``) and whatever else it needs;
  ``load(dir)`` restores an equal model.

:func:`for_ticker` binds a global model to one ticker as an ordinary
:class:`~lstm_model.base.ForecastModel`, so the backtest, the intervals, the Diebold-Mariano
test and serving treat it exactly like every other model.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self, runtime_checkable

import numpy as np
import pandas as pd

from lstm_model.config import ModelConfig
from lstm_model.data import check_prices, n_test_rows

__all__ = [
    "GlobalModel",
    "TickerView",
    "cut_histories",
    "for_ticker",
    "holdout_start",
    "serving_cut",
]


@runtime_checkable
class GlobalModel(Protocol):
    """A model fit on many tickers' histories, forecasting any one of them (see module doc)."""

    kind: ClassVar[str]
    meta: dict[str, Any]

    @classmethod
    def fit(
        cls, histories: Mapping[str, pd.Series], cut: date, config: ModelConfig, **params: Any
    ) -> Self: ...

    def refit(
        self, histories: Mapping[str, pd.Series], cut: date, config: ModelConfig, **params: Any
    ) -> Self: ...

    def predict_one_step(
        self, ticker: str, prices: pd.Series, start: pd.Timestamp
    ) -> pd.Series: ...

    def forecast_path(self, ticker: str, prices: pd.Series, horizon: int) -> np.ndarray: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


def cut_histories(
    histories: Mapping[str, pd.Series], cut: date | pd.Timestamp
) -> dict[str, pd.Series]:
    """Every history's prices dated strictly before ``cut`` (the same date for every ticker,
    whatever its calendar); tickers with none are left out.

    Raises:
        ValueError: A history is not a positive, finite, date-ascending Series (names it).
    """
    limit = pd.Timestamp(cut)
    kept = {}
    for ticker, prices in histories.items():
        check_prices(prices, what=f"{ticker} prices")
        before = prices[prices.index < limit]
        if len(before):
            kept[ticker] = before
    return kept


def trained_through(histories: Mapping[str, pd.Series]) -> str:
    """The latest date of any history (ISO), what a model fit on them trained through."""
    return max(prices.index[-1] for prices in histories.values()).strftime("%Y-%m-%d")


def serving_cut(as_of: date) -> date:
    """The cut of a model that serves on ``as_of``: every price through the run date."""
    return as_of + timedelta(days=1)


def holdout_start(histories: Mapping[str, pd.Series], test_size: float | int) -> date:
    """The global backtest's hold-out start: one date for every ticker. Each ticker's own
    hold-out (its last ``test_size`` rows) starts on some date; the median of those dates,
    so a stale or short ticker does not drag the cut, and a 7-day (crypto) calendar gets
    the same cut as its 5-day neighbours.

    Raises:
        ValueError: No history.
    """
    if not histories:
        raise ValueError("no history to place a hold-out in")
    starts = sorted(
        prices.index[len(prices) - min(n_test_rows(len(prices), test_size), len(prices) - 1)]
        for prices in histories.values()
    )
    return starts[(len(starts) - 1) // 2].date()


@dataclass
class TickerView:
    """A global model bound to one ticker: a :class:`~lstm_model.base.ForecastModel`.

    ``meta`` is the global model's (``trained_through`` is the latest date any ticker was
    trained on), so every leakage guard written for per-ticker models holds for it too.
    """

    model: GlobalModel
    ticker: str

    @property
    def meta(self) -> dict[str, Any]:
        return self.model.meta

    @classmethod
    def fit(cls, train_prices: pd.Series, config: ModelConfig) -> Self:
        raise TypeError("a global model is fit on many tickers (GlobalModel.fit), not one")

    def predict_one_step(self, prices: pd.Series, start: pd.Timestamp) -> pd.Series:
        return self.model.predict_one_step(self.ticker, prices, start)

    def forecast_next(self, prices: pd.Series) -> float:
        return float(self.model.forecast_path(self.ticker, prices, 1)[0])

    def forecast_path(self, prices: pd.Series, horizon: int) -> np.ndarray:
        return self.model.forecast_path(self.ticker, prices, horizon)

    @property
    def forecast_paths(self) -> Callable[[pd.Series, np.ndarray, int], np.ndarray] | None:
        """The global model's batched ``forecast_paths`` (many origins at once) bound to the
        ticker, or None when it has none (``lstm_model.horizons`` then goes origin by
        origin)."""
        batched = getattr(self.model, "forecast_paths", None)
        return None if batched is None else functools.partial(batched, self.ticker)

    def save(self, directory: Path) -> None:
        self.model.save(directory)

    @classmethod
    def load(cls, directory: Path) -> Self:
        raise TypeError("load a global model with lstm_model.registry.load_global_model")


def for_ticker(model: GlobalModel, ticker: str) -> TickerView:
    """``model`` as one ticker's :class:`~lstm_model.base.ForecastModel`."""
    return TickerView(model, ticker)
