"""The one in-memory shape of a daily price history, shared by every source and store."""

from __future__ import annotations

import pyarrow as pa

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
