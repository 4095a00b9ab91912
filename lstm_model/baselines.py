"""Baselines with the LSTM's interface (:class:`~lstm_model.base.ForecastModel`).

* :class:`NaiveForecaster`: persistence, "tomorrow = today".
* :class:`DriftForecaster`: today's price moved by the training mean of daily log returns.
* :class:`SeasonalNaiveForecaster`: the price one season ago (``season_length`` observations:
  5 for a weekday-trading stock's week, 7 for crypto trading every day). Daily prices rarely
  have a weekly pattern, so this is a sanity line rather than a contender; it fits series with
  a real period.

Each reads only prices dated before the day it predicts, records ``trained_through`` and
``val_start`` (the first day of the validation slice, the same share of training windows the
LSTM holds back) in ``meta``, and saves as a single ``meta.json`` carrying ``"kind"``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd

from lstm_model.base import read_meta, write_meta
from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices
from lstm_model.horizons import check_horizon

__all__ = ["DriftForecaster", "NaiveForecaster", "SeasonalNaiveForecaster", "infer_season_length"]

FORMAT_VERSION = 1


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def infer_season_length(prices: pd.Series) -> int:
    """A week in observations: 7 if the series trades on weekends (crypto), else 5."""
    weekdays = pd.DatetimeIndex(prices.index).day_of_week
    return 7 if bool(np.any(weekdays >= 5)) else 5


@dataclass
class _Baseline(ABC):
    """Shared fitting, validation, prediction and persistence; subclasses set the rule."""

    kind: ClassVar[str]
    meta: dict[str, Any] = field(default_factory=dict)

    # --------------------------------------------------------------- subclass hooks
    @property
    def history(self) -> int:
        """Prices needed before the first predicted day."""
        return 1

    @abstractmethod
    def _predict_at(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Predictions for target positions (``len(values)`` = the day after the data)."""

    @abstractmethod
    def _paths_at(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """Forecast paths (one row per origin position, ``horizon`` columns) from
        ``values[: origin + 1]``; every origin has at least :attr:`history` prices."""

    @classmethod
    def _fit_state(cls, prices: pd.Series, params: dict[str, Any]) -> dict[str, Any]:
        """Learned parameters (stored in ``meta["state"]``)."""
        return {}

    @classmethod
    def _from_meta(cls, meta: dict[str, Any]) -> Self:
        return cls(meta=meta)

    # ----------------------------------------------------------------- training
    @classmethod
    def fit(cls, train_prices: pd.Series, config: ModelConfig | None = None, **params: Any) -> Self:
        """ "Train" on training prices only.

        Args:
            train_prices: Prices indexed by an ascending DatetimeIndex (training rows only).
            config: Supplies ``max_train_days`` (the same history the LSTM sees) and
                ``validation_fraction`` (where ``meta["val_start"]`` falls); defaults to
                :class:`~lstm_model.config.ModelConfig`'s.
            **params: Model-specific parameters (``season_length`` for the seasonal naive).

        Raises:
            InsufficientDataError: Fewer prices than the rule forecasts from (one for naive,
                two for drift, a season for the seasonal naive).
        """
        check_prices(train_prices, what="train_prices")
        config = config or ModelConfig()
        prices = train_prices
        if config.max_train_days is not None and len(prices) > config.max_train_days:
            prices = prices.iloc[-config.max_train_days :]
        params = cls._resolve_params(prices, params)
        history = cls._history_of(params)
        need = cls._fit_minimum(params)
        if len(prices) < need:
            raise InsufficientDataError(
                f"{cls.kind}: need at least {need} training prices, got {len(prices)}"
            )
        # A history too short for a validation slice (a listing a few days old) still gets
        # a model; its intervals are calibrated on its live record alone.
        n_targets = len(prices) - history
        n_val = max(1, round(n_targets * config.validation_fraction))
        validated = n_targets - n_val >= 1
        meta = {
            "kind": cls.kind,
            "format": FORMAT_VERSION,
            "params": params,
            "max_train_days": config.max_train_days,
            "validation_fraction": config.validation_fraction,
            "data_start": _iso(train_prices.index[0]),
            "train_start": _iso(prices.index[0]),
            "train_end": _iso(prices.index[-1]),
            "trained_through": _iso(prices.index[-1]),
            "n_train": len(prices),
            "val_start": _iso(prices.index[len(prices) - n_val]) if validated else None,
            "n_val": int(n_val) if validated else 0,
            "state": cls._fit_state(prices, params),
        }
        return cls._from_meta(meta)

    @classmethod
    def _resolve_params(cls, prices: pd.Series, params: dict[str, Any]) -> dict[str, Any]:
        if params:
            raise TypeError(f"{cls.kind} takes no parameters, got {', '.join(sorted(params))}")
        return {}

    @classmethod
    def _history_of(cls, params: dict[str, Any]) -> int:
        return 1

    @classmethod
    def _fit_minimum(cls, params: dict[str, Any]) -> int:
        """Fewest training prices the rule can be fit on: the prices it forecasts from."""
        return cls._history_of(params)

    # ---------------------------------------------------------------- forecasting
    def predict_one_step(self, prices: pd.Series, start: pd.Timestamp) -> pd.Series:
        """One-step-ahead predictions for every date ``>= start`` in ``prices``.

        The prediction for date ``d`` uses only prices dated before ``d``.

        Raises:
            InsufficientDataError: No date ``>= start``, or too few prices before it.
        """
        check_prices(prices)
        first = int(prices.index.searchsorted(pd.Timestamp(start), side="left"))
        if first >= len(prices):
            raise InsufficientDataError(
                f"no prices on or after {_iso(start)} (prices end {_iso(prices.index[-1])})"
            )
        if first < self.history:
            raise InsufficientDataError(
                f"{self.kind}: need {self.history} prices before "
                f"{_iso(prices.index[first])}, got {first}"
            )
        positions = np.arange(first, len(prices))
        predicted = self._predict_at(prices.to_numpy(dtype="float64"), positions)
        return pd.Series(predicted, index=prices.index[positions], name="predicted")

    def forecast_next(self, prices: pd.Series) -> float:
        """The forecast for the trading day after the last date in ``prices``."""
        values = self._checked_values(prices)
        return float(self._predict_at(values, np.array([len(values)]))[0])

    def forecast_path(self, prices: pd.Series, horizon: int) -> np.ndarray:
        """Forecasts for the next ``horizon`` trading days after ``prices`` ends."""
        values = self._checked_values(prices)
        return self._paths_at(values, np.array([len(values) - 1]), check_horizon(horizon))[0]

    def forecast_paths(self, prices: pd.Series, origins: np.ndarray, horizon: int) -> np.ndarray:
        """:meth:`forecast_path` from each origin position of ``prices`` at once (the prices
        up to and including it), a row of NaN where it has too little history: a backtest
        scores hundreds of origins per ticker."""
        check_prices(prices)
        origins = np.asarray(origins, dtype=np.int64)
        paths = np.full((origins.size, check_horizon(horizon)), np.nan)
        usable = origins + 1 >= self.history
        if usable.any():
            values = prices.to_numpy(dtype="float64")
            paths[usable] = self._paths_at(values, origins[usable], horizon)
        return paths

    def _checked_values(self, prices: pd.Series) -> np.ndarray:
        check_prices(prices)
        if len(prices) < self.history:
            raise InsufficientDataError(
                f"{self.kind}: need at least {self.history} prices to forecast, got {len(prices)}"
            )
        return prices.to_numpy(dtype="float64")

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``meta.json`` (everything the model is) into ``directory``."""
        write_meta(directory, self.meta)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Load what :meth:`save` wrote.

        Raises:
            FileNotFoundError: No ``meta.json`` in ``directory``.
            ValueError: The saved kind is not this class's.
        """
        return cls._from_meta(read_meta(directory, cls.kind))


class NaiveForecaster(_Baseline):
    """Persistence: every future day is forecast at the last known price."""

    kind = "naive"

    def _predict_at(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return values[positions - 1]

    def _paths_at(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """The price at the origin, ``horizon`` times."""
        return np.repeat(values[origins][:, None], horizon, axis=1)


class DriftForecaster(_Baseline):
    """The last price moved by the mean daily log return of the training prices.

    ``meta["state"]["mean_log_return"]`` is fit once on the training prices (capped at
    ``max_train_days``) and never updated from later prices.
    """

    kind = "drift"

    @property
    def mean_log_return(self) -> float:
        return float(self.meta["state"]["mean_log_return"])

    @classmethod
    def _fit_minimum(cls, params: dict[str, Any]) -> int:
        return 2  # one daily return

    @classmethod
    def _fit_state(cls, prices: pd.Series, params: dict[str, Any]) -> dict[str, Any]:
        values = prices.to_numpy(dtype="float64")
        return {"mean_log_return": float(np.mean(np.diff(np.log(values))))}

    def _predict_at(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return values[positions - 1] * np.exp(self.mean_log_return)

    def _paths_at(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """``price at the origin * exp(k * mean_log_return)`` for ``k = 1..horizon``."""
        steps = np.arange(1, horizon + 1)
        return values[origins][:, None] * np.exp(steps * self.mean_log_return)[None, :]


class SeasonalNaiveForecaster(_Baseline):
    """The price one season (``season_length`` observations) before the predicted day."""

    kind = "seasonal_naive"

    @property
    def season_length(self) -> int:
        return int(self.meta["params"]["season_length"])

    @property
    def history(self) -> int:
        return self.season_length

    @classmethod
    def _resolve_params(cls, prices: pd.Series, params: dict[str, Any]) -> dict[str, Any]:
        unknown = set(params) - {"season_length"}
        if unknown:
            raise TypeError(f"{cls.kind}: unknown parameter(s) {', '.join(sorted(unknown))}")
        season = params.get("season_length")
        if season is None:
            season = infer_season_length(prices)
        if not isinstance(season, int) or isinstance(season, bool) or season < 1:
            raise ValueError(f"season_length must be an integer >= 1, got {season!r}")
        return {"season_length": season}

    @classmethod
    def _history_of(cls, params: dict[str, Any]) -> int:
        return int(params["season_length"])

    def _predict_at(self, values: np.ndarray, positions: np.ndarray) -> np.ndarray:
        return values[positions - self.season_length]

    def _paths_at(self, values: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
        """The last season repeated: step ``k`` is the price ``m - (k - 1) % m`` observations
        before the day after the origin."""
        m = self.season_length
        steps = np.arange(horizon)
        return values[origins[:, None] + 1 - m + steps % m]
