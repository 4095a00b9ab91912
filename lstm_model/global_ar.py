"""``global_ar``: one AR(p) on per-ticker-standardised daily log returns, its coefficients
shared by every ticker of the run (a :class:`~lstm_model.global_models.GlobalModel`).

Per ticker, log returns are divided by that ticker's standard deviation on the training
rows, so a volatile ticker does not outweigh a quiet one, and clipped at :data:`CLIP`
standard deviations, so one crash day does not set everyone's coefficients. The pooled
coefficients are the least-squares fit of each standardised return on its ``p`` predecessors
(no intercept: a daily mean is a small fraction of a daily deviation and the drift baseline
already carries it). Because the model is linear without intercept, the scale cancels when it
forecasts: a ticker's next log return is ``sum_k phi_k * r_{t-k}`` of its own raw returns, so
any ticker (one added to the watchlist after the fit, too) is forecast from its own prices.

``p`` is chosen in ``1..max_lag`` by the pooled squared error on the validation days: the
last ``validation_fraction`` of the training dates (one date for every ticker), each ``p``
fit on the days before them with scales from those days only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from lstm_model.base import read_meta, write_meta
from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices
from lstm_model.global_models import cut_histories, trained_through
from lstm_model.horizons import check_horizon

__all__ = ["CLIP", "MAX_LAG", "GlobalARForecaster"]

FORMAT_VERSION = 1
MAX_LAG = 10
"""Largest ``p`` tried on the validation days."""
CLIP = 5.0
"""Standardised returns beyond this many deviations are clipped when fitting."""


def _iso(day: Any) -> str:
    return pd.Timestamp(day).strftime("%Y-%m-%d")


@dataclass(frozen=True)
class _Standardised:
    z: np.ndarray  # clipped standardised log returns
    dates: pd.DatetimeIndex  # the date of each return (its second price)


def _log_returns(prices: pd.Series) -> np.ndarray:
    return np.diff(np.log(prices.to_numpy(dtype="float64")))


def _scales(histories: Mapping[str, pd.Series]) -> dict[str, float]:
    """Each ticker's standard deviation of log returns (tickers with a usable one only)."""
    scales = {}
    for ticker, prices in histories.items():
        returns = _log_returns(prices)
        scale = float(returns.std()) if len(returns) > 1 else 0.0
        if np.isfinite(scale) and scale > 0:
            scales[ticker] = scale
    return scales


def _standardise(
    histories: Mapping[str, pd.Series], scales: Mapping[str, float]
) -> list[_Standardised]:
    return [
        _Standardised(np.clip(_log_returns(prices) / scales[ticker], -CLIP, CLIP), prices.index[1:])
        for ticker, prices in histories.items()
        if ticker in scales
    ]


def _design(
    series: list[_Standardised], lags: int, *, first: int, from_date: pd.Timestamp | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled regressors (column ``k-1`` = the return ``k`` days before) and targets, for
    targets at position ``>= first`` (and dated ``>= from_date``)."""
    xs, ys = [], []
    for one in series:
        start = max(first, lags)
        if from_date is not None:
            start = max(start, int(one.dates.searchsorted(from_date, side="left")))
        if start >= len(one.z):
            continue
        windows = sliding_window_view(one.z, lags)[start - lags : len(one.z) - lags]
        xs.append(windows[:, ::-1])
        ys.append(one.z[start:])
    if not xs:
        return np.empty((0, lags)), np.empty(0)
    return np.concatenate(xs), np.concatenate(ys)


def _least_squares(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.linalg.lstsq(x, y, rcond=None)[0]


def _capped(histories: Mapping[str, pd.Series], max_days: int | None) -> dict[str, pd.Series]:
    """The most recent ``max_days`` prices of each history (the same span the LSTM sees)."""
    if max_days is None:
        return dict(histories)
    return {ticker: prices.iloc[-max_days:] for ticker, prices in histories.items()}


def _validation_start(histories: Mapping[str, pd.Series], fraction: float) -> pd.Timestamp:
    """The first validation date: the last ``fraction`` of the training dates of all
    tickers together (one date for every calendar)."""
    dates = pd.DatetimeIndex(np.unique(np.concatenate([p.index[1:] for p in histories.values()])))
    return dates[min(len(dates) - 1, int(len(dates) * (1.0 - fraction)))]


def _choose_lags(
    histories: Mapping[str, pd.Series], max_lag: int, fraction: float
) -> tuple[int, pd.Timestamp, dict[str, float]]:
    """The ``p`` with the least pooled squared error on the validation days, each fit on
    the days before them (scales too), all scored on the same targets."""
    val_start = _validation_start(histories, fraction)
    before = cut_histories(histories, val_start)
    scales = _scales(before)
    fitting = _standardise(before, scales)
    scoring = _standardise({t: p for t, p in histories.items() if t in scales}, scales)
    errors: dict[str, float] = {}
    for lags in range(1, max_lag + 1):
        x, y = _design(fitting, lags, first=lags)
        vx, vy = _design(scoring, lags, first=max_lag, from_date=val_start)
        if len(y) <= lags or not len(vy):
            break
        errors[str(lags)] = float(np.mean((vy - vx @ _least_squares(x, y)) ** 2))
    if not errors:
        raise InsufficientDataError(
            f"global_ar: too few returns before {_iso(val_start)} and after it to choose p "
            f"({len(histories)} ticker(s))"
        )
    best = min(errors, key=lambda k: (errors[k], int(k)))
    return int(best), val_start, errors


@dataclass
class GlobalARForecaster:
    """A pooled AR(p) on standardised log returns (see the module docstring)."""

    kind: ClassVar[str] = "global_ar"
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def lags(self) -> int:
        return int(self.meta["state"]["lags"])

    @property
    def coefficients(self) -> np.ndarray:
        return np.asarray(self.meta["state"]["coefficients"], dtype="float64")

    # ----------------------------------------------------------------- training
    @classmethod
    def fit(
        cls,
        histories: Mapping[str, pd.Series],
        cut: date,
        config: ModelConfig | None = None,
        *,
        max_lag: int = MAX_LAG,
        lags: int | None = None,
    ) -> Self:
        """Fit on every history's prices dated before ``cut``.

        Args:
            histories: Ticker -> prices (ascending DatetimeIndex); rows from ``cut`` on are
                ignored.
            cut: The first date not trained on, for every ticker.
            config: ``max_train_days`` (per ticker) and ``validation_fraction``.
            max_lag: Largest ``p`` tried.
            lags: Use this ``p`` instead of choosing one (a refit of a lineage).

        Raises:
            InsufficientDataError: Too few returns before ``cut``.
        """
        config = config or ModelConfig()
        training = _capped(cut_histories(histories, cut), config.max_train_days)
        if not training:
            raise InsufficientDataError(f"global_ar: no prices before {_iso(cut)}")
        validation: dict[str, float] = {}
        val_start = None
        if lags is None:
            lags, val_start, validation = _choose_lags(
                training, max_lag, config.validation_fraction
            )
        scales = _scales(training)
        x, y = _design(_standardise(training, scales), lags, first=lags)
        if len(y) <= lags:
            raise InsufficientDataError(
                f"global_ar: {len(y)} returns before {_iso(cut)} cannot fit AR({lags})"
            )
        meta = {
            "kind": cls.kind,
            "format": FORMAT_VERSION,
            "cut": _iso(cut),
            "trained_through": trained_through(training),
            "train_end": trained_through(training),
            "train_start": _iso(min(p.index[0] for p in training.values())),
            "tickers": sorted(scales),
            "n_train": len(y),
            "state": {"lags": int(lags), "coefficients": _least_squares(x, y).tolist()},
            "validation_mse": validation,
            "max_train_days": config.max_train_days,
        }
        if val_start is not None:
            meta["val_start"] = _iso(val_start)
        return cls(meta=meta)

    def refit(
        self, histories: Mapping[str, pd.Series], cut: date, config: ModelConfig | None = None
    ) -> Self:
        """The same ``p``, estimated on every price before a later ``cut``."""
        refit = type(self).fit(histories, cut, config, lags=self.lags)
        for key in ("val_start", "validation_mse"):
            if key in self.meta:
                refit.meta[key] = self.meta[key]
        return refit

    # ---------------------------------------------------------------- forecasting
    @property
    def history(self) -> int:
        """Prices needed before the first forecast day: ``p`` returns."""
        return self.lags + 1

    def predict_one_step(self, ticker: str, prices: pd.Series, start: pd.Timestamp) -> pd.Series:
        """One-step-ahead predictions for every date ``>= start`` in ``prices``, each from
        the ``p`` log returns before it.

        Raises:
            InsufficientDataError: No date ``>= start``, or fewer than ``p + 1`` prices before it.
        """
        check_prices(prices, what=f"{ticker} prices")
        first = int(prices.index.searchsorted(pd.Timestamp(start), side="left"))
        if first >= len(prices):
            raise InsufficientDataError(
                f"{ticker}: no prices on or after {_iso(start)} (prices end "
                f"{_iso(prices.index[-1])})"
            )
        if first < self.history:
            raise InsufficientDataError(
                f"global_ar: {ticker} needs {self.history} prices before "
                f"{_iso(prices.index[first])}, got {first}"
            )
        values = prices.to_numpy(dtype="float64")
        returns = np.diff(np.log(values))
        # Target position j reads returns j-2 .. j-1-p (dated j-1 .. j-p).
        windows = sliding_window_view(returns, self.lags)[
            first - 1 - self.lags : len(values) - 1 - self.lags
        ]
        predicted = values[first - 1 : -1] * np.exp(windows[:, ::-1] @ self.coefficients)
        return pd.Series(predicted, index=prices.index[first:], name="predicted")

    def forecast_path(self, ticker: str, prices: pd.Series, horizon: int) -> np.ndarray:
        """Forecasts for the next ``horizon`` trading days, each step's forecast return fed
        back as the latest return.

        Raises:
            InsufficientDataError: Fewer than ``p + 1`` prices.
        """
        check_prices(prices, what=f"{ticker} prices")
        check_horizon(horizon)
        if len(prices) < self.history:
            raise InsufficientDataError(
                f"global_ar: {ticker} needs at least {self.history} prices to forecast, "
                f"got {len(prices)}"
            )
        recent = list(_log_returns(prices.iloc[-self.history :])[::-1])  # newest first
        steps = []
        for _ in range(horizon):
            step = float(np.dot(self.coefficients, recent[: self.lags]))
            steps.append(step)
            recent.insert(0, step)
        return float(prices.iloc[-1]) * np.exp(np.cumsum(steps))

    def forecast_paths(
        self, ticker: str, prices: pd.Series, origins: np.ndarray, horizon: int
    ) -> np.ndarray:
        """:meth:`forecast_path` from each origin position of ``prices`` (from the prices up
        to and including it), every origin at once (a backtest has hundreds of origins).

        Returns:
            ``(len(origins), horizon)``; a row of NaN where fewer than ``p + 1`` prices reach
            the origin.
        """
        check_prices(prices, what=f"{ticker} prices")
        check_horizon(horizon)
        origins = np.asarray(origins, dtype="int64")
        paths = np.full((len(origins), horizon), np.nan)
        usable = np.flatnonzero(origins + 1 >= self.history)
        if not usable.size:
            return paths
        values = prices.to_numpy(dtype="float64")
        # Origin o's newest p returns, newest first: returns o-1 .. o-p (dated o .. o-p+1).
        returns = np.diff(np.log(values))
        recent = sliding_window_view(returns, self.lags)[origins[usable] - self.lags][:, ::-1]
        steps = np.empty((len(usable), horizon))
        for step in range(horizon):
            steps[:, step] = recent @ self.coefficients
            recent = np.concatenate([steps[:, step : step + 1], recent[:, :-1]], axis=1)
        paths[usable] = values[origins[usable], np.newaxis] * np.exp(np.cumsum(steps, axis=1))
        return paths

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``meta.json`` (the coefficients are in it)."""
        write_meta(directory, self.meta)

    @classmethod
    def load(cls, directory: Path) -> Self:
        """Load what :meth:`save` wrote.

        Raises:
            FileNotFoundError: No ``meta.json``.
            ValueError: The saved kind is not ``global_ar``.
        """
        return cls(meta=read_meta(directory, cls.kind))
