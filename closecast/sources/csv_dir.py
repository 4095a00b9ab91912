"""The ``csv:DIR`` source: Yahoo CSV exports in a directory, one ``<TICKER>.csv`` per ticker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import pandas as pd

from closecast.sources.base import UnknownTickerError, clip_dates, normalize_ticker
from closecast.yahoo_csv import last_csv_date, read_yahoo_csv


class CsvDirSource:
    """Daily histories from ``DIR/<TICKER>.csv`` files in Yahoo's export format.

    Files may have Yahoo's header row or none, and may contain Yahoo's ``null`` rows or text
    in a price column (left for the validator to drop and count).

    Args:
        directory: The directory holding the CSV files.
        clock_today: Gives the date to report when the directory holds no readable file.
    """

    def __init__(
        self, directory: str | Path, *, clock_today: Callable[[], date] = date.today
    ) -> None:
        self.directory = Path(directory)
        self.name = f"csv:{self.directory}"
        self._clock_today = clock_today

    def path_for(self, ticker: str) -> Path:
        """The file that holds ``ticker``."""
        return self.directory / f"{normalize_ticker(ticker)}.csv"

    def today(self) -> date:
        """The earliest last date over the directory's CSV files, like a frozen export.

        Falls back to the clock's date when there is no file with a readable last date.
        """
        last_dates = [
            last
            for path in sorted(self.directory.glob("*.csv"))
            if (last := last_csv_date(path)) is not None
        ]
        return min(last_dates) if last_dates else self._clock_today()

    def fetch(self, ticker: str, *, start: date | None, end: date) -> pd.DataFrame:
        """Rows of ``DIR/<TICKER>.csv`` with ``start <= date <= end``.

        Raises:
            UnknownTickerError: There is no such file (the message names the path).
            closecast.yahoo_csv.PriceFileError: The file is not a Yahoo CSV export.
        """
        path = self.path_for(ticker)
        symbol = path.stem
        if not path.is_file():
            raise UnknownTickerError(
                f"{symbol}: no price file {path}", ticker=symbol, source=self.name
            )
        return clip_dates(read_yahoo_csv(path, coerce=False), start, end)
