"""Trading calendars: which days have a daily bar, and when a day's bar is final.

Stocks and ETFs follow the New York Stock Exchange (exchange-calendars ``XNYS``); crypto
trades every calendar day, with Yahoo's daily bar running from 00:00 to 24:00 UTC.

The NYSE calendar is built once, lazily, for a fixed window (:data:`NYSE_FIRST_DAY` to the end
of the year after next). exchange-calendars' default window is only the last 20 years, which
would cut off most of the shipped histories (AAPL starts 1980). Outside the window the
functions fall back to Monday-Friday, which is right except for holidays.
"""

from __future__ import annotations

import warnings
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    import exchange_calendars as xcals

AssetClass = Literal["stock", "etf", "crypto"]
ASSET_CLASSES: tuple[str, ...] = get_args(AssetClass)

NYSE_FIRST_DAY = date(1960, 1, 1)
"""First day of the cached NYSE calendar (before every history we handle)."""

NYSE_CLOSE_SETTLE = timedelta(minutes=30)
"""Time after the NYSE close before Yahoo's daily bar is treated as final (the closing
auction prints and Yahoo's own delay; yfinance uses the same 30 minutes for its cache)."""

_WEEKDAY_SEARCH_LIMIT = 14


def check_asset_class(asset_class: str) -> AssetClass:
    """Return ``asset_class`` if it is one of :data:`ASSET_CLASSES`.

    Raises:
        ValueError: Any other value, listing the valid ones.
    """
    if asset_class not in ASSET_CLASSES:
        raise ValueError(
            f"unknown asset class {asset_class!r}; expected one of {', '.join(ASSET_CLASSES)}"
        )
    return asset_class  # type: ignore[return-value]


@cache
def nyse_calendar() -> xcals.ExchangeCalendar:
    """The NYSE calendar from :data:`NYSE_FIRST_DAY` to the end of next year plus one.

    Cached: building it takes about half a second, so it is done once, on first use.
    """
    import exchange_calendars as xcals  # lazily: importing it takes about a second

    last = date(date.today().year + 2, 12, 31)
    with warnings.catch_warnings():
        # exchange-calendars 4.x trips a pandas 3.1 deprecation (Series.values on tz-aware
        # data) inside its constructor; harmless for us and not ours to fix.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return xcals.get_calendar("XNYS", start=NYSE_FIRST_DAY.isoformat(), end=last.isoformat())


@cache
def _nyse_sessions() -> np.ndarray:
    # Sessions as datetime64[D]: searchsorted on these is far cheaper than calendar methods.
    return nyse_calendar().sessions.values.astype("datetime64[D]")


def _nyse_bounds() -> tuple[date, date]:
    sessions = _nyse_sessions()
    return sessions[0].astype(date), sessions[-1].astype(date)


def _in_nyse_window(day: date) -> bool:
    first, last = _nyse_bounds()
    return first <= day <= last


def is_trading_day(asset_class: AssetClass, day: date) -> bool:
    """Whether ``day`` has a daily bar for ``asset_class``."""
    check_asset_class(asset_class)
    if asset_class == "crypto":
        return True
    if not _in_nyse_window(day):
        return day.weekday() < 5
    sessions = _nyse_sessions()
    position = np.searchsorted(sessions, np.datetime64(day, "D"))
    return bool(position < len(sessions) and sessions[position] == np.datetime64(day, "D"))


def _step_weekday(day: date, step: int) -> date:
    for _ in range(_WEEKDAY_SEARCH_LIMIT):
        day += timedelta(days=step)
        if day.weekday() < 5:
            return day
    raise AssertionError("unreachable: a week always has a weekday")


def next_trading_day(asset_class: AssetClass, day: date) -> date:
    """The first trading day strictly after ``day``.

    Example: ``next_trading_day("stock", date(2020, 11, 25))`` is 2020-11-27 (Thanksgiving).
    """
    check_asset_class(asset_class)
    if asset_class == "crypto":
        return day + timedelta(days=1)
    sessions = _nyse_sessions()
    position = np.searchsorted(sessions, np.datetime64(day, "D"), side="right")
    if not _in_nyse_window(day) or position >= len(sessions):
        return _step_weekday(day, +1)
    return sessions[position].astype(date)


def next_trading_days(asset_class: AssetClass, day: date, count: int) -> list[date]:
    """The first ``count`` trading days strictly after ``day``, in order."""
    days: list[date] = []
    while len(days) < count:
        days.append(next_trading_day(asset_class, days[-1] if days else day))
    return days


def previous_trading_day(asset_class: AssetClass, day: date) -> date:
    """The last trading day strictly before ``day``."""
    check_asset_class(asset_class)
    if asset_class == "crypto":
        return day - timedelta(days=1)
    sessions = _nyse_sessions()
    position = np.searchsorted(sessions, np.datetime64(day, "D"), side="left")
    if not _in_nyse_window(day) or position == 0:
        return _step_weekday(day, -1)
    return sessions[position - 1].astype(date)


def latest_trading_day(asset_class: AssetClass, day: date) -> date:
    """``day`` itself if it is a trading day, else the trading day before it."""
    if is_trading_day(asset_class, day):
        return day
    return previous_trading_day(asset_class, day)


def expected_last_date(asset_class: AssetClass, as_of: date) -> date:
    """The latest session a complete history should contain when looked at on ``as_of``.

    That is the last trading day on or before ``as_of``: a run at the end of ``as_of`` (after
    the close) should see that day's bar. A run earlier in the day is one session behind,
    which the validator's staleness tolerance absorbs.
    """
    return latest_trading_day(asset_class, as_of)


def trading_days_between(asset_class: AssetClass, start: date, end: date) -> int:
    """Number of trading days ``d`` with ``start < d <= end`` (0 if ``end <= start``).

    This is how many bars a history ending on ``start`` is missing to reach ``end``.
    """
    check_asset_class(asset_class)
    if end <= start:
        return 0
    if asset_class == "crypto":
        return (end - start).days
    if _in_nyse_window(start) and _in_nyse_window(end):
        sessions = _nyse_sessions()
        lo = np.searchsorted(sessions, np.datetime64(start, "D"), side="right")
        hi = np.searchsorted(sessions, np.datetime64(end, "D"), side="right")
        return int(hi - lo)
    return int(np.busday_count(start + timedelta(days=1), end + timedelta(days=1)))


def bar_final_at(asset_class: AssetClass, day: date) -> datetime:
    """When the daily bar dated ``day`` stops changing (timezone-aware, UTC).

    Crypto: midnight UTC at the end of ``day``. Stocks/ETFs: the NYSE close of ``day`` (13:00
    on early-close days) plus :data:`NYSE_CLOSE_SETTLE`; outside the calendar window or on a
    non-session, the end of ``day`` in New York.
    """
    check_asset_class(asset_class)
    if asset_class == "crypto":
        return datetime.combine(day + timedelta(days=1), time(), tzinfo=UTC)
    if _in_nyse_window(day) and is_trading_day(asset_class, day):
        close = nyse_calendar().session_close(pd.Timestamp(day))
        return close.to_pydatetime().astimezone(UTC) + NYSE_CLOSE_SETTLE
    end_of_day = pd.Timestamp(day + timedelta(days=1)).tz_localize("America/New_York")
    return end_of_day.to_pydatetime().astimezone(UTC)
