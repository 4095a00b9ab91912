"""The ``sample`` source: real Yahoo histories shipped inside the package.

It behaves like a market frozen on its last shipped date, so that the whole pipeline runs
offline and reproducibly. See ``closecast/sample_data/SOURCES.md`` for where the files come
from and their caveats.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import pandas as pd

from closecast.inputs.yahoo_csv import last_csv_date, read_yahoo_csv
from closecast.sources.base import UnknownTickerError, clip_dates, normalize_ticker

SAMPLE_PACKAGE = "closecast.sample_data"


def _data_dir() -> Traversable:
    return resources.files(SAMPLE_PACKAGE)


@contextmanager
def _as_path(name: str) -> Iterator[Path]:
    # as_file gives a real path even when the package is installed as a zip.
    with resources.as_file(_data_dir().joinpath(name)) as path:
        yield Path(path)


@cache
def available_tickers() -> tuple[str, ...]:
    """The tickers shipped in the sample, sorted."""
    return tuple(
        sorted(
            entry.name.removesuffix(".csv")
            for entry in _data_dir().iterdir()
            if entry.name.endswith(".csv")
        )
    )


@cache
def sample_today() -> date:
    """The sample market's "today": the earliest latest date over the shipped files.

    The stock and ETF files end on 2020-12-11 and BTC-USD runs longer; taking the minimum
    makes every ticker complete as of that day, like one consistent download.
    """
    last_dates: list[date] = []
    for ticker in available_tickers():
        with _as_path(f"{ticker}.csv") as path:
            last = last_csv_date(path)
        if last is not None:
            last_dates.append(last)
    if not last_dates:
        raise RuntimeError(f"no readable CSV files in package {SAMPLE_PACKAGE}")
    return min(last_dates)


@cache
def _load(ticker: str) -> pd.DataFrame:
    with _as_path(f"{ticker}.csv") as path:
        return read_yahoo_csv(path, coerce=False)


class SampleSource:
    """Shipped daily histories (AAPL, GOOG, QQQ, BTC-USD), frozen at :func:`sample_today`."""

    name = "sample"

    def today(self, tickers: Sequence[str] = ()) -> date:
        """The last date of the shipped stock/ETF files (2020-12-11), whatever the tickers."""
        return sample_today()

    def describe_today(self, tickers: Sequence[str] = ()) -> str:
        """Where :meth:`today` comes from."""
        return "the shipped histories are one snapshot of that day"

    def fetch(self, ticker: str, *, start: date | None, end: date) -> pd.DataFrame:
        """Rows of the shipped file with ``start <= date <= min(end, today())``.

        Rows after :meth:`today` (BTC-USD goes on to 2024) are never returned, so the sample
        is one consistent snapshot. Yahoo's ``null`` rows are kept for the validator.

        Raises:
            UnknownTickerError: The ticker is not shipped; the message lists those that are.
        """
        symbol = normalize_ticker(ticker)
        if symbol not in available_tickers():
            raise UnknownTickerError(
                f"{symbol}: not in the sample data; available: {', '.join(available_tickers())}",
                ticker=symbol,
                source=self.name,
            )
        return clip_dates(_load(symbol), start, min(end, self.today())).copy()
