"""The price-source protocol, its errors, and frame helpers shared by every source."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from closecast.inputs.schema import PRICE_COLUMNS, in_price_contract
from closecast.inputs.tickers import normalize_symbol


class PriceSourceError(Exception):
    """Base of every error a price source raises.

    Attributes:
        ticker: The ticker being fetched, if any.
        source: The source's name.
    """

    def __init__(self, message: str, *, ticker: str | None = None, source: str = "") -> None:
        super().__init__(message)
        self.ticker = ticker
        self.source = source


class UnknownTickerError(PriceSourceError):
    """The source has no data for this ticker (unknown or delisted). Final: do not retry."""


class SourceUnavailableError(PriceSourceError):
    """The source could not be reached or refused (network, rate limit). Retryable."""


@runtime_checkable
class PriceSource(Protocol):
    """Where raw daily prices come from."""

    name: str

    def fetch(self, ticker: str, *, start: date | None, end: date) -> pd.DataFrame:
        """Return the raw price frame of ``ticker`` for ``start <= date <= end``.

        Args:
            ticker: The ticker symbol, e.g. ``AAPL`` or ``BTC-USD``.
            start: First date wanted, or None for the full history.
            end: Last date wanted (inclusive).

        Returns:
            A frame with the columns of :data:`closecast.inputs.schema.PRICE_COLUMNS`, not yet
            validated (it may hold NaN rows, duplicates, or text in a price column).

        Raises:
            UnknownTickerError: The source has no such ticker.
            SourceUnavailableError: A transient failure; retry later.
        """
        ...

    def today(self, tickers: Sequence[str] = ()) -> date:
        """The market's current date as this source sees it for ``tickers``.

        For ``yahoo`` the New York date and for ``sample`` its snapshot date, whatever the
        tickers; for ``csv:DIR`` the latest date of the requested tickers' files. A run is
        never dated after it (:func:`check_run_date`).
        """
        ...

    def describe_today(self, tickers: Sequence[str] = ()) -> str:
        """Where :meth:`today` comes from, for messages (e.g. naming the files it read)."""
        ...


class FutureRunDateError(ValueError):
    """A run dated after its source's current date for the requested tickers."""


def check_run_date(source: PriceSource, as_of: date, tickers: Sequence[str]) -> date:
    """Return ``as_of``, refusing a date after the source's current date for ``tickers``.

    Such a run's outputs would claim prices nobody has seen, and its champion would outrank
    every real run after it.

    Raises:
        FutureRunDateError: ``as_of`` is after ``source.today(tickers)``; the message says
            where that date comes from (for ``csv:DIR``, the files' own last dates).
    """
    today = source.today(tickers)
    if as_of > today:
        raise FutureRunDateError(
            f"{as_of} is after the {source.name} source's current date {today} "
            f"({source.describe_today(tickers)}); a run cannot be dated in the future"
        )
    return as_of


def normalize_ticker(ticker: str) -> str:
    """Upper-case and check a ticker symbol with the one rule of :mod:`closecast.inputs.tickers`.

    Tickers end up in file names and storage keys, so only Yahoo's symbol characters are
    accepted (ASCII letters, digits and ``. ^ = _ -``).

    Raises:
        InvalidTickerError: (a ``ValueError``) naming the ticker and what is wrong with it.
    """
    return normalize_symbol(ticker)


def empty_price_frame() -> pd.DataFrame:
    """A price frame with no rows and the right columns and dtypes."""
    frame = pd.DataFrame({column: pd.Series(dtype="float64") for column in PRICE_COLUMNS})
    frame["date"] = pd.Series(dtype="datetime64[ns]")
    return frame


def to_price_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Return ``frame`` with exactly the price columns, in order, with the contract's dtypes.

    ``date`` becomes timezone-naive ``datetime64[ns]`` at midnight (pandas 3 would otherwise
    infer microsecond resolution from strings), the other columns float64. Rows are kept as
    they are: no sorting, deduplication or dropping.

    Raises:
        KeyError: A price column is missing.
    """
    missing = [column for column in PRICE_COLUMNS if column not in frame.columns]
    if missing:
        raise KeyError(f"price frame lacks column(s) {', '.join(missing)}")
    # rename_axis: a frame cut from yf.download's MultiIndex keeps the level name "Price".
    out = frame.loc[:, list(PRICE_COLUMNS)].rename_axis(columns=None).copy()
    if in_price_contract(out):  # a stored frame read back: nothing to convert
        return out.reset_index(drop=True)
    dates = pd.to_datetime(out["date"])
    if getattr(dates.dt, "tz", None) is not None:
        # Keep the local wall date: a bar at midnight New York is that New York day.
        dates = dates.dt.tz_localize(None)
    out["date"] = dates.dt.normalize().astype("datetime64[ns]")
    for column in PRICE_COLUMNS[1:]:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return out.reset_index(drop=True)


def clip_dates(frame: pd.DataFrame, start: date | None, end: date) -> pd.DataFrame:
    """Rows of a price frame with ``start <= date <= end`` (no lower bound if start is None)."""
    dates = frame["date"]
    if dates.dtype != np.dtype("datetime64[ns]"):  # a source's own types: pandas compares
        mask = (dates <= pd.Timestamp(end)).to_numpy()
        if start is not None:
            mask &= (dates >= pd.Timestamp(start)).to_numpy()
    else:  # the contract's dates: compared as arrays, without pandas' per-call set-up
        days = dates.to_numpy()
        mask = days <= np.datetime64(end, "ns")
        if start is not None:
            mask &= days >= np.datetime64(start, "ns")
    return frame.iloc[np.flatnonzero(mask)].reset_index(drop=True)


DEFAULT_OVERLAP_DAYS = 5
"""Calendar days an incremental fetch re-reads before the last stored date."""


def incremental_start(
    last_stored: date | None, overlap_days: int = DEFAULT_OVERLAP_DAYS
) -> date | None:
    """Where an incremental fetch should start.

    Re-fetching a few days already stored picks up Yahoo's revisions (late corrections, a
    partial bar stored before it was final), which the store's merge replaces, and shows when
    Yahoo re-based the whole history after a split or dividend
    (:func:`closecast.pipeline.fetch.detect_rebase`). It applies to every source.

    Args:
        last_stored: The last date in the store, or None if nothing is stored.
        overlap_days: Calendar days to re-fetch before ``last_stored``.

    Returns:
        ``last_stored - overlap_days``, or None (fetch the full history) if nothing is stored.
    """
    if overlap_days < 0:
        raise ValueError(f"overlap_days must be >= 0, got {overlap_days}")
    if last_stored is None:
        return None
    return last_stored - timedelta(days=overlap_days)
