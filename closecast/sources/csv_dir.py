"""The ``csv:DIR`` source: Yahoo CSV exports in a directory, one ``<TICKER>.csv`` per ticker.

Exports are often downloaded on different days, so the directory has no single current date:
each ticker's file has its own. Only the requested tickers' files are ever read (never the
whole directory), each only if it is a regular file of bounded size, so a bad or stale file
affects only its own ticker.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path

import pandas as pd

from closecast.inputs.yahoo_csv import PriceFileError, last_csv_date, read_yahoo_csv
from closecast.sources.base import UnknownTickerError, clip_dates, normalize_ticker

_MAX_NAMED_FILES = 5


class CsvDirSource:
    """Daily histories from ``DIR/<TICKER>.csv`` files in Yahoo's export format.

    Files may have Yahoo's header row or none, rows in any order, and Yahoo's ``null`` rows or
    text in a price column (left for the validator to drop and count).

    Args:
        directory: The directory holding the CSV files.
        clock_today: Gives the date to report when no requested file has a readable date.
    """

    def __init__(
        self, directory: str | Path, *, clock_today: Callable[[], date] = date.today
    ) -> None:
        self.directory = Path(directory)
        self.name = f"csv:{self.directory}"
        self._clock_today = clock_today

    def path_for(self, ticker: str) -> Path:
        """The file that holds ``ticker``: ``DIR/<TICKER>.csv``, or else the one file whose
        name is that in another case (``aapl.csv``, ``BRK.B.CSV``), as saved on a
        case-insensitive disk.

        Raises:
            PriceFileError: More than one file's name matches in another case.
        """
        exact = self.directory / f"{normalize_ticker(ticker)}.csv"
        if exact.exists() or exact.is_symlink() or not self.directory.is_dir():
            return exact
        wanted = exact.name.casefold()
        matches = sorted(p for p in self.directory.iterdir() if p.name.casefold() == wanted)
        if len(matches) > 1:
            raise PriceFileError(
                f"{exact}: several files differ only in case ({', '.join(p.name for p in matches)})"
            )
        return matches[0] if matches else exact

    def last_dates(self, tickers: Sequence[str]) -> dict[str, date]:
        """The latest date in each requested ticker's file, latest first.

        A missing or unreadable file is left out here: its own ticker fails when fetched,
        with a message naming the file.
        """
        found: dict[str, date] = {}
        for ticker in tickers:
            try:
                last = last_csv_date(self.path_for(ticker))
            except (PriceFileError, ValueError):
                continue
            if last is not None:
                found[normalize_ticker(ticker)] = last
        return dict(sorted(found.items(), key=lambda pair: pair[1], reverse=True))

    def today(self, tickers: Sequence[str] = ()) -> date:
        """The latest date any requested ticker's file reaches.

        The latest, not the earliest: a run dated then is not in the future for the source,
        and tickers whose exports end earlier are judged on their own (flagged stale when they
        lag), instead of one old export holding back every other ticker. Falls back to the
        clock's date when no requested file has a readable date (there is nothing to judge by,
        and those tickers fail on fetch).
        """
        last = self.last_dates(tickers)
        return next(iter(last.values())) if last else self._clock_today()

    def describe_today(self, tickers: Sequence[str] = ()) -> str:
        """Where :meth:`today` comes from, naming the files."""
        last = self.last_dates(tickers)
        if not last:
            return "no requested price file has a readable date: the clock's date"
        named = [f"{ticker}.csv ends {day}" for ticker, day in last.items()]
        extra = len(named) - _MAX_NAMED_FILES
        shown = ", ".join(named[:_MAX_NAMED_FILES]) + (f" and {extra} more" if extra > 0 else "")
        return f"the latest date of the requested files in {self.directory}: {shown}"

    def fetch(self, ticker: str, *, start: date | None, end: date) -> pd.DataFrame:
        """Rows of ``DIR/<TICKER>.csv`` with ``start <= date <= end``, ordered by date.

        Raises:
            UnknownTickerError: There is no such file (the message names the path).
            closecast.inputs.yahoo_csv.PriceFileError: The file is not a regular file, is too big,
                or is not a Yahoo CSV export.
        """
        path = self.path_for(ticker)
        symbol = normalize_ticker(ticker)
        if not path.exists() and not path.is_symlink():
            raise UnknownTickerError(
                f"{symbol}: no price file {path}", ticker=symbol, source=self.name
            )
        return clip_dates(read_yahoo_csv(path, coerce=False), start, end)
