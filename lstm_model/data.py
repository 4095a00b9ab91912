"""Data preparation: chronological splits, a JSON-serialisable 0..1 scaler, look-back windows."""

from __future__ import annotations

import json
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view


class InsufficientDataError(ValueError):
    """Too few prices for the requested split, window or model; the message names the lengths."""


PandasT = TypeVar("PandasT", pd.Series, pd.DataFrame)


def price_series(frame: pd.DataFrame, column: str = "adj_close") -> pd.Series:
    """One price column of a price frame as a float Series indexed by date.

    Rows with a missing price (Yahoo's ``null`` rows) are dropped; dates are sorted and must
    be unique.

    Raises:
        ValueError: No such column, or duplicate dates.
    """
    if column not in frame.columns:
        raise ValueError(f"price frame has no column {column!r} (columns: {list(frame.columns)})")
    dates = pd.DatetimeIndex(pd.to_datetime(frame["date"]) if "date" in frame else frame.index)
    series = pd.Series(frame[column].to_numpy(dtype="float64"), index=dates, name=column)
    series = series[np.isfinite(series.to_numpy())].sort_index()
    if series.index.has_duplicates:
        dupes = series.index[series.index.duplicated()].strftime("%Y-%m-%d")
        raise ValueError(f"duplicate dates in price frame: {', '.join(dupes[:5])}")
    series.index.name = "date"
    return series


def check_prices(prices: pd.Series, *, what: str = "prices") -> None:
    """Raise ``ValueError`` unless ``prices`` is a positive, finite, date-ascending Series."""
    if not isinstance(prices, pd.Series):
        raise TypeError(f"{what} must be a pandas Series, got {type(prices).__name__}")
    if not isinstance(prices.index, pd.DatetimeIndex):
        raise ValueError(f"{what} must be indexed by a DatetimeIndex")
    if not prices.index.is_monotonic_increasing or prices.index.has_duplicates:
        raise ValueError(f"{what} dates must be strictly increasing")
    values = prices.to_numpy(dtype="float64")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what} contain NaN or infinite values; drop them first")
    if values.size and values.min() <= 0:
        raise ValueError(f"{what} must be positive (minimum {values.min()})")


def n_test_rows(n: int, test_size: float | int) -> int:
    """Number of trailing rows that ``test_size`` (fraction or day count) selects out of ``n``."""
    if isinstance(test_size, bool):
        raise ValueError(f"test_size must be a fraction or a day count, got {test_size!r}")
    if isinstance(test_size, int | np.integer):
        n_test = int(test_size)
        if n_test < 1:
            raise ValueError(f"test_size must be >= 1 day, got {test_size}")
    elif isinstance(test_size, float) and 0.0 < test_size < 1.0:
        n_test = n - int(np.floor(n * (1.0 - test_size)))
    else:
        raise ValueError(
            f"test_size must be a fraction in (0, 1) or a day count, got {test_size!r}"
        )
    return n_test


MIN_TRAIN_WINDOWS = 20
"""Beyond the look-back window and the test period, windows a model needs to learn from."""


POOL_FLOOR = 60
"""Fewest clean prices a ticker needs to enter the global models' training pool. Every
ticker with a price is served (below the LSTM's :func:`minimum_history` by a baseline), but a
history of a few days cannot be standardised (its volatility is a handful of returns) and a
listing's first weeks are rarely like its later ones: such a ticker is forecast by the global
models, once it has their look-back, without being trained on."""


def minimum_history(look_back: int, test_size: float | int) -> tuple[int, str]:
    """How many clean prices the LSTM needs to be trained and tested, and why (the one place
    this rule is computed; a shorter history is served by a baseline:
    ``closecast.pipeline.short_history``)."""
    train_rows = look_back + MIN_TRAIN_WINDOWS
    windows = f"look-back {look_back} + {MIN_TRAIN_WINDOWS} training windows"
    if isinstance(test_size, int):
        return train_rows + test_size, f"{windows} + test {test_size}"
    need = int(train_rows / (1 - test_size)) + 1
    return need, f"({windows}) / (1 - test fraction {test_size})"


def split_by_date(data: PandasT, test_size: float | int) -> tuple[PandasT, PandasT]:
    """Split a date-indexed Series/DataFrame into (train, test); never shuffled.

    Args:
        data: Rows indexed by an ascending DatetimeIndex.
        test_size: A fraction in (0, 1) of the rows (``0.5`` is the tutorial's 50/50 split;
            train gets the first ``floor(n * (1 - f))`` rows) or an int number of trailing
            trading days.

    Returns:
        ``(train, test)``: every train date is before every test date.

    Raises:
        InsufficientDataError: Either side would be empty.
    """
    if not isinstance(data.index, pd.DatetimeIndex) or not data.index.is_monotonic_increasing:
        raise ValueError("split_by_date needs rows indexed by an ascending DatetimeIndex")
    n = len(data)
    n_test = n_test_rows(n, test_size)
    if n_test >= n:
        raise InsufficientDataError(
            f"cannot hold out {n_test} test rows from {n} rows: no training rows would remain"
        )
    return data.iloc[: n - n_test], data.iloc[n - n_test :]


class MinMaxScaler:
    """Scale values to 0..1 with the minimum and maximum of the data it was fit on.

    Fit on training rows only; values outside that range map outside 0..1 (no clipping).
    Serialises to JSON (never pickle).
    """

    def __init__(self, data_min: float | None = None, data_max: float | None = None) -> None:
        self.data_min = data_min
        self.data_max = data_max

    @property
    def fitted(self) -> bool:
        return self.data_min is not None and self.data_max is not None

    def fit(self, values: Any) -> MinMaxScaler:
        array = np.asarray(values, dtype="float64")
        if array.size == 0 or not np.all(np.isfinite(array)):
            raise ValueError("MinMaxScaler.fit needs at least one value and no NaN/inf")
        self.data_min = float(array.min())
        self.data_max = float(array.max())
        return self

    def _scale(self) -> float:
        if not self.fitted:
            raise RuntimeError("MinMaxScaler is not fitted")
        span = float(self.data_max) - float(self.data_min)  # type: ignore[arg-type]
        return span if span > 0 else 1.0

    def transform(self, values: Any) -> np.ndarray:
        scale = self._scale()
        return (np.asarray(values, dtype="float64") - self.data_min) / scale

    def inverse_transform(self, values: Any) -> np.ndarray:
        scale = self._scale()
        return np.asarray(values, dtype="float64") * scale + self.data_min

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "minmax", "data_min": self.data_min, "data_max": self.data_max}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MinMaxScaler:
        return cls(data_min=data["data_min"], data_max=data["data_max"])

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> MinMaxScaler:
        return cls.from_dict(json.loads(text))

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, MinMaxScaler)
            and self.data_min == other.data_min
            and self.data_max == other.data_max
        )

    def __repr__(self) -> str:
        return f"MinMaxScaler(data_min={self.data_min!r}, data_max={self.data_max!r})"


def window_view(values: np.ndarray, look_back: int) -> np.ndarray:
    """Every run of ``look_back`` consecutive values, as a read-only view (no copy).

    Row ``k`` is ``values[k : k + look_back]``; there are ``len(values) - look_back + 1`` rows.
    """
    values = np.asarray(values)
    if len(values) < look_back:
        raise InsufficientDataError(
            f"need at least {look_back} values for a {look_back}-day window, got {len(values)}"
        )
    return sliding_window_view(values, look_back)


def make_windows(values: np.ndarray, look_back: int) -> tuple[np.ndarray, np.ndarray]:
    """Supervised pairs: each window of ``look_back`` values and the value right after it.

    ``X[k] = values[k : k + look_back]`` (a view, no copy) and ``y[k] = values[k + look_back]``:
    the target is the next day's value and the window holds only earlier days.

    Returns:
        ``(X, y)`` with shapes ``(n - look_back, look_back)`` and ``(n - look_back,)``.
    """
    values = np.asarray(values)
    if len(values) <= look_back:
        raise InsufficientDataError(
            f"need more than {look_back} values to make {look_back}-day windows with a "
            f"target, got {len(values)}"
        )
    return window_view(values[:-1], look_back), values[look_back:]
