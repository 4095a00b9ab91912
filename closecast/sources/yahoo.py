"""The ``yahoo`` source: daily prices from Yahoo Finance through yfinance 1.x.

Why ``yf.Ticker(t).history`` and not ``yf.download``: ``download`` catches *every* exception
per ticker (rate limits and network errors included), logs it and returns an empty frame, so a
transient outage would look exactly like a delisted ticker and be treated as final.
``history`` re-raises ``YFRateLimitError`` always, and everything else once
``yf.config.debug.hide_exceptions`` is False, which this module sets before each request.
Frames shaped like ``download``'s (MultiIndex columns ``('Price', 'Ticker')``, tz-naive index)
are still accepted by :func:`frame_from_yfinance`.

What yfinance 1.x returns for a daily ``history(auto_adjust=False, actions=False)``: columns
``Open, High, Low, Close, Adj Close, Volume`` (Volume int64), a ``DatetimeIndex`` named
``Date`` at midnight in the exchange's timezone (America/New_York for US stocks, UTC for
crypto). Unknown or delisted tickers raise ``YFTzMissingError``/``YFPricesMissingError`` (or
return an empty frame if exceptions are hidden). During a session the last row is the live,
partial bar of the day; Yahoo's crypto day runs 00:00-24:00 UTC.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from closecast.inputs.calendars import AssetClass, bar_final_at
from closecast.sources.base import (
    PriceSourceError,
    SourceUnavailableError,
    UnknownTickerError,
    clip_dates,
    empty_price_frame,
    incremental_start,
    normalize_ticker,
    to_price_frame,
)

logger = logging.getLogger(__name__)

# incremental_start lives in closecast.sources.base (it applies to every source); it is
# re-exported here for callers that still import it from this module.
__all__ = ["YahooSource", "drop_unfinished_bars", "frame_from_yfinance", "incremental_start"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware."""

YAHOO_COLUMNS: dict[str, str] = {
    "Open": "open",
    "High": "high",
    "Low": "low",
    "Close": "close",
    "Adj Close": "adj_close",
    "Volume": "volume",
}
"""yfinance column name -> price-frame column name."""

MARKET_TZ = "America/New_York"
NEW_YORK_TZS = frozenset({"America/New_York", "US/Eastern", "EST5EDT"})
UTC_TZS = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z"})


def utc_now() -> datetime:
    """The current time in UTC (the default clock)."""
    return datetime.now(UTC)


def _select_ticker_columns(raw: pd.DataFrame, ticker: str) -> pd.DataFrame:
    """Flatten ``yf.download``'s MultiIndex columns to the price names of one ticker."""
    columns = raw.columns
    if not isinstance(columns, pd.MultiIndex):
        return raw
    price_level = next(
        (level for level in range(columns.nlevels) if "Close" in columns.get_level_values(level)),
        None,
    )
    if price_level is None or columns.nlevels != 2:
        raise PriceSourceError(
            f"{ticker}: unexpected yfinance columns {list(columns)}", ticker=ticker, source="yahoo"
        )
    ticker_level = 1 - price_level
    tickers = list(dict.fromkeys(columns.get_level_values(ticker_level)))
    if ticker in tickers:
        chosen = ticker
    elif len(tickers) == 1:
        chosen = tickers[0]
    else:
        raise PriceSourceError(
            f"{ticker}: yfinance frame holds tickers {tickers}, not {ticker}",
            ticker=ticker,
            source="yahoo",
        )
    return raw.xs(chosen, axis=1, level=ticker_level)


def frame_from_yfinance(raw: pd.DataFrame, ticker: str) -> tuple[pd.DataFrame, str | None]:
    """Turn a yfinance price frame into a raw price frame.

    Accepts both shapes yfinance 1.x produces: ``Ticker.history`` (flat columns, tz-aware
    index) and ``download`` (MultiIndex columns ``('Price', 'Ticker')`` or, with
    ``group_by='ticker'``, ``('Ticker', 'Price')``; tz-naive index for daily data by default).

    Args:
        raw: What yfinance returned.
        ticker: The requested ticker (selects the column group of a multi-ticker frame).

    Returns:
        The price frame (dates are the exchange-local trading days, naive) and the index's
        timezone name, or None if the index was naive.

    Raises:
        PriceSourceError: The frame lacks price columns (e.g. requested with auto_adjust=True).
    """
    flat = _select_ticker_columns(raw, ticker)
    index = pd.DatetimeIndex(flat.index)
    tz_name = str(index.tz) if index.tz is not None else None
    if flat.empty:
        return empty_price_frame(), tz_name
    missing = [name for name in YAHOO_COLUMNS if name not in flat.columns]
    if missing:
        raise PriceSourceError(
            f"{ticker}: yfinance frame lacks {', '.join(missing)} (was auto_adjust left on?)",
            ticker=ticker,
            source="yahoo",
        )
    frame = flat.loc[:, list(YAHOO_COLUMNS)].rename(columns=YAHOO_COLUMNS)
    # tz_localize(None) keeps the wall time, so a bar at 00:00 New York stays on its own day
    # (converting to UTC first would move Asian exchanges' bars to the previous day).
    frame.insert(0, "date", index.tz_localize(None) if tz_name else index)
    return to_price_frame(frame), tz_name


def _bar_asset_class(tz_name: str | None) -> AssetClass:
    # Yahoo reports crypto in UTC and US listings in New York time; naive frames (from
    # yf.download) are judged by the stricter UTC day end.
    if tz_name in NEW_YORK_TZS:
        return "stock"
    return "crypto"


def drop_unfinished_bars(frame: pd.DataFrame, tz_name: str | None, now: datetime) -> pd.DataFrame:
    """Drop bars whose day is not over yet at ``now`` (Yahoo's live, partial bar).

    Crypto (UTC) bars are final at the next 00:00 UTC; New York bars 30 minutes after the NYSE
    close; bars in any other timezone at the end of their local day.

    Args:
        frame: A price frame from :func:`frame_from_yfinance`.
        tz_name: The timezone of yfinance's index (None if it was naive).
        now: The current time, timezone-aware.
    """
    if frame.empty:
        return frame
    asset_class = _bar_asset_class(tz_name)
    if tz_name in NEW_YORK_TZS or tz_name in UTC_TZS or tz_name is None:

        def final_at(day: date) -> datetime:
            return bar_final_at(asset_class, day)

    else:
        zone = ZoneInfo(tz_name)

        def final_at(day: date) -> datetime:
            return datetime.combine(day + timedelta(days=1), datetime.min.time(), tzinfo=zone)

    # Only the last few rows can be unfinished; check from the end and stop at the first final.
    keep = len(frame)
    while keep > 0 and final_at(frame["date"].iloc[keep - 1].date()) > now:
        keep -= 1
    if keep < len(frame):
        dropped = frame["date"].iloc[keep:].dt.date.tolist()
        logger.info("dropping unfinished bar(s) %s (now %s)", dropped, now.isoformat())
    return frame.iloc[:keep].reset_index(drop=True)


class YahooSource:
    """Yahoo Finance daily prices, one ticker per request.

    Args:
        clock: Gives the current time (timezone-aware); injectable for tests.
        timeout: Seconds before a request is abandoned (then SourceUnavailableError).
        market_tz: The timezone whose calendar date is :meth:`today`.
    """

    name = "yahoo"

    def __init__(
        self, *, clock: Clock = utc_now, timeout: float = 30.0, market_tz: str = MARKET_TZ
    ) -> None:
        self._clock = clock
        self.timeout = timeout
        self.market_tz = ZoneInfo(market_tz)

    def now(self) -> datetime:
        """The clock's current time, in UTC."""
        return self._clock().astimezone(UTC)

    def today(self, tickers: Sequence[str] = ()) -> date:
        """The current date in New York, the trading day US stocks are on, for every ticker.

        The New York date rather than UTC's: between 00:00 UTC and midnight New York the UTC
        date is already tomorrow although the US session of today has only just closed.
        """
        return self._clock().astimezone(self.market_tz).date()

    def describe_today(self, tickers: Sequence[str] = ()) -> str:
        """Where :meth:`today` comes from."""
        return f"today in {self.market_tz.key}"

    def fetch(self, ticker: str, *, start: date | None, end: date) -> pd.DataFrame:
        """Daily bars of ``ticker`` with ``start <= date <= end``, unfinished bars dropped.

        Args:
            ticker: A Yahoo symbol (``AAPL``, ``QQQ``, ``BTC-USD``).
            start: First date, or None for the full history (``period="max"``). Pass
                :func:`incremental_start` of the stored history to fetch only the new tail.
            end: Last date (inclusive).

        Raises:
            UnknownTickerError: Yahoo has no data for the ticker (unknown or delisted).
            SourceUnavailableError: Rate limit, network failure or Yahoo being down.
        """
        symbol = normalize_ticker(ticker)
        if start is not None and start > end:
            raise ValueError(f"{symbol}: start {start} is after end {end}")
        raw = self._history(symbol, start, end)
        frame, tz_name = frame_from_yfinance(raw, symbol)
        if frame.empty:
            raise UnknownTickerError(
                f"{symbol}: Yahoo returned no prices for {_describe_range(start, end)} "
                "(unknown or delisted ticker)",
                ticker=symbol,
                source=self.name,
            )
        frame = drop_unfinished_bars(frame, tz_name, self.now())
        return clip_dates(frame, start, end)

    def _history(self, symbol: str, start: date | None, end: date) -> pd.DataFrame:
        import yfinance as yf  # lazily: importing yfinance costs about a second
        from yfinance import exceptions as yf_errors

        # Without this, yfinance turns network errors into "possibly delisted" empty frames.
        yf.config.debug.hide_exceptions = False
        kwargs: dict[str, Any] = {
            "interval": "1d",
            "auto_adjust": False,  # keep both Close and Adj Close
            "actions": False,
            "repair": False,
            "timeout": self.timeout,
            # yfinance's end is exclusive.
            "end": (end + timedelta(days=1)).isoformat(),
        }
        if start is None:
            kwargs["period"] = "max"
        else:
            kwargs["start"] = start.isoformat()
        where = _describe_range(start, end)
        try:
            return yf.Ticker(symbol).history(**kwargs)
        except yf_errors.YFRateLimitError as exc:
            raise SourceUnavailableError(
                f"{symbol}: Yahoo rate limit ({exc}); retry later", ticker=symbol, source=self.name
            ) from exc
        except yf_errors.YFTickerMissingError as exc:
            raise UnknownTickerError(
                f"{symbol}: Yahoo has no prices for {where}: {exc}", ticker=symbol, source=self.name
            ) from exc
        except (yf_errors.YFException, OSError, json.JSONDecodeError) as exc:
            # OSError covers curl_cffi's and requests' RequestException (connection, timeout,
            # HTTP errors); JSONDecodeError an HTML error page; YFException "Yahoo is down".
            # Ambiguous failures count as retryable: a wrong "unknown ticker" would be final.
            raise SourceUnavailableError(
                f"{symbol}: Yahoo request failed for {where}: {type(exc).__name__}: {exc}",
                ticker=symbol,
                source=self.name,
            ) from exc


def _describe_range(start: date | None, end: date) -> str:
    return f"{start or 'full history'}..{end}"
