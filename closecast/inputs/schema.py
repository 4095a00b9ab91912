"""The one in-memory shape of a daily price history, shared by every source and store."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import pandas as pd

PRICE_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "adj_close", "volume")
"""Columns of a price frame, in order. ``date`` is a timezone-naive ``datetime64[ns]`` at
midnight (the trading day); prices are float64; volume is float64 so that a missing volume
can be NaN without changing the dtype."""

PRICE_SCHEMA = pa.schema(
    [
        pa.field("date", pa.date32(), nullable=False),
        pa.field("open", pa.float64()),
        pa.field("high", pa.float64()),
        pa.field("low", pa.float64()),
        pa.field("close", pa.float64()),
        pa.field("adj_close", pa.float64()),
        pa.field("volume", pa.float64()),
    ]
)
"""The Parquet schema of the price store (``prices/ticker=<T>/prices.parquet``)."""

YAHOO_HEADER: tuple[str, ...] = ("Date", "Open", "High", "Low", "Close", "Adj Close", "Volume")
"""Column names of Yahoo's "Download historical data" CSV export."""


def in_price_contract(frame: pd.DataFrame) -> bool:
    """Whether the price columns already have the contract's dtypes, dates at midnight."""
    dtypes = frame.dtypes
    if dtypes["date"] != np.dtype("datetime64[ns]"):
        return False
    if any(dtypes[column] != np.dtype("float64") for column in PRICE_COLUMNS[1:]):
        return False
    nanoseconds = frame["date"].to_numpy().view("int64")
    return bool((nanoseconds % (86_400 * 10**9) == 0).all())
