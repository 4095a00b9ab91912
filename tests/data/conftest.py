"""Fixtures for the data layer: yfinance-shaped frames and a fake ``yfinance.Ticker``.

The frames are built the way yfinance 1.x builds them (``scrapers/history.py`` and
``multi.py``), so the tests exercise the real shapes without network access:

* ``Ticker.history(interval="1d", auto_adjust=False, actions=False)``: columns
  ``Open, High, Low, Close, Adj Close, Volume`` (Volume int64), index
  ``pd.to_datetime(dates).tz_localize(exchange_tz)`` named ``Date``;
* ``yf.download``: the same per-ticker frames, index made naive (``ignore_tz`` defaults to
  True for daily data), concatenated with ``keys=[ticker], names=["Ticker", "Price"]``, levels
  swapped to ``("Price", "Ticker")`` and sorted (Adj Close, Close, High, Low, Open, Volume);
* unknown ticker: ``yfinance.utils.empty_df()``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yfinance

Row = tuple[str, float, float, float, float, float, int]
"""(date, open, high, low, close, adj close, volume)."""


def history_frame(rows: Sequence[Row], tz: str = "America/New_York") -> pd.DataFrame:
    """A frame shaped like ``yf.Ticker(t).history(auto_adjust=False, actions=False)``."""
    dates = [row[0] for row in rows]
    index = pd.to_datetime(dates).tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    frame = pd.DataFrame(
        {
            "Open": [row[1] for row in rows],
            "High": [row[2] for row in rows],
            "Low": [row[3] for row in rows],
            "Close": [row[4] for row in rows],
            "Adj Close": [row[5] for row in rows],
            "Volume": np.array([row[6] for row in rows], dtype=np.int64),
        },
        index=index,
    )
    frame.index.name = "Date"
    return frame


def download_frame(per_ticker: dict[str, pd.DataFrame], *, ignore_tz: bool = True) -> pd.DataFrame:
    """A frame shaped like ``yf.download(tickers, auto_adjust=False)`` (group_by='column')."""
    dfs = {}
    for ticker, frame in per_ticker.items():
        frame = frame.copy()
        if ignore_tz and not frame.empty:
            frame.index = frame.index.tz_localize(None)
        dfs[ticker] = frame
    data = pd.concat(dfs.values(), axis=1, sort=True, keys=dfs.keys(), names=["Ticker", "Price"])
    data.columns = data.columns.swaplevel(0, 1)
    data = data.sort_index(level=0, axis=1)
    return data


def stock_rows(dates: Sequence[str], start_price: float = 100.0) -> list[Row]:
    """Plausible OHLCV rows, one per date, prices rising by 1 a day."""
    rows: list[Row] = []
    for offset, day in enumerate(dates):
        close = start_price + offset
        rows.append((day, close - 0.5, close + 1.0, close - 1.0, close, close * 0.98, 1_000_000))
    return rows


@dataclass
class FakeTicker:
    """Stands in for ``yfinance.Ticker``; ``history`` returns or raises what the test set."""

    ticker: str
    outcome: pd.DataFrame | BaseException
    calls: list[dict[str, Any]] = field(default_factory=list)

    def history(self, **kwargs: Any) -> pd.DataFrame:
        self.calls.append(kwargs)
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        return self.outcome.copy()


@dataclass
class YFinanceFake:
    """Records every ``history`` call made through the patched ``yfinance.Ticker``."""

    outcomes: dict[str, pd.DataFrame | BaseException] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def ticker(self, symbol: str) -> FakeTicker:
        fake = FakeTicker(symbol, self.outcomes.get(symbol, yfinance.utils.empty_df()))
        original = fake.history

        def history(**kwargs: Any) -> pd.DataFrame:
            self.calls.append((symbol, kwargs))
            return original(**kwargs)

        fake.history = history  # type: ignore[method-assign]
        return fake


@pytest.fixture
def fake_yfinance(monkeypatch: pytest.MonkeyPatch) -> Iterator[YFinanceFake]:
    """Patch ``yfinance.Ticker`` (and make ``yfinance.download`` fail loudly if used)."""
    fake = YFinanceFake()
    monkeypatch.setattr(yfinance, "Ticker", fake.ticker)

    def no_download(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("closecast must not use yf.download (it hides rate limits)")

    monkeypatch.setattr(yfinance, "download", no_download)
    # The source flips this global; restore it so tests stay independent. (monkeypatch
    # cannot restore attributes of yfinance's NestedConfig.)
    saved = yfinance.config.debug.hide_exceptions
    yfinance.config.debug.hide_exceptions = True
    yield fake
    yfinance.config.debug.hide_exceptions = saved


@pytest.fixture
def make_history() -> Callable[..., pd.DataFrame]:
    return history_frame


@pytest.fixture
def make_download() -> Callable[..., pd.DataFrame]:
    return download_frame


@pytest.fixture
def make_rows() -> Callable[..., list[Row]]:
    return stock_rows


def history_from_prices(prices: pd.DataFrame, tz: str = "America/New_York") -> pd.DataFrame:
    """A price frame (e.g. a shipped sample history) served the way ``Ticker.history`` would.

    Rows without a volume (Yahoo's ``null`` rows) keep NaN prices and get volume 0, as
    yfinance's int64 Volume column cannot hold NaN.
    """
    index = pd.DatetimeIndex(prices["date"]).tz_localize(tz)
    frame = pd.DataFrame(
        {
            "Open": prices["open"].to_numpy(dtype="float64"),
            "High": prices["high"].to_numpy(dtype="float64"),
            "Low": prices["low"].to_numpy(dtype="float64"),
            "Close": prices["close"].to_numpy(dtype="float64"),
            "Adj Close": prices["adj_close"].to_numpy(dtype="float64"),
            "Volume": prices["volume"].fillna(0).round().to_numpy(dtype=np.int64),
        },
        index=index,
    )
    frame.index.name = "Date"
    return frame


@pytest.fixture
def history_from() -> Callable[..., pd.DataFrame]:
    return history_from_prices
