"""Validation of a daily price history before it is stored or trained on.

Rules, in order: dates parsed and sorted; duplicate dates resolved (the last occurrence wins);
rows dated after ``as_of`` dropped; rows without ``close`` or ``adj_close`` dropped; prices
that are not positive and finite rejected; too short a history rejected; stale data flagged.
Drops are counted in the :class:`ValidationReport`; rejections raise
:class:`PriceValidationError`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from closecast.calendars import (
    AssetClass,
    check_asset_class,
    expected_last_date,
    trading_days_between,
)
from closecast.schema import PRICE_COLUMNS

PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
REQUIRED_FIELDS: tuple[str, ...] = ("close", "adj_close")
"""A row missing one of these is useless (Yahoo's ``null`` rows) and is dropped."""

DEFAULT_STALE_AFTER_DAYS = 3
"""Trading days a history may lag :func:`expected_last_date` before it is flagged stale."""

_MAX_NAMED_DATES = 5


class PriceValidationError(ValueError):
    """A price history that must not be stored or trained on.

    Attributes:
        ticker: The ticker whose history failed.
    """

    def __init__(self, ticker: str, message: str) -> None:
        super().__init__(f"{ticker}: {message}")
        self.ticker = ticker


@dataclass(frozen=True)
class ValidationReport:
    """What validation found and did. Counts are rows."""

    ticker: str
    asset_class: str
    as_of: date
    rows_in: int
    rows_out: int
    duplicates_resolved: int
    null_rows_dropped: int
    future_rows_dropped: int
    first_date: date
    last_date: date
    expected_last_date: date
    lag_trading_days: int
    stale: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready values (dates as ISO strings, warnings as a list)."""
        data = asdict(self)
        for key, value in data.items():
            if isinstance(value, date):
                data[key] = value.isoformat()
        data["warnings"] = list(self.warnings)
        return data


@dataclass(frozen=True)
class ValidatedPrices:
    """A cleaned price frame (columns of ``PRICE_COLUMNS``, sorted, unique dates) and its report."""

    frame: pd.DataFrame
    report: ValidationReport


def _name_dates(dates: pd.Series) -> str:
    shown = ", ".join(day.date().isoformat() for day in dates.iloc[:_MAX_NAMED_DATES])
    extra = len(dates) - _MAX_NAMED_DATES
    return shown + (f" and {extra} more" if extra > 0 else "")


def _parse(frame: pd.DataFrame, ticker: str) -> pd.DataFrame:
    missing = [column for column in PRICE_COLUMNS if column not in frame.columns]
    if missing:
        raise PriceValidationError(ticker, f"price frame lacks column(s) {', '.join(missing)}")
    out = frame.loc[:, list(PRICE_COLUMNS)].reset_index(drop=True)
    try:
        dates = pd.to_datetime(out["date"])
    except (ValueError, TypeError) as exc:
        raise PriceValidationError(ticker, f"unparseable dates ({exc})") from exc
    if dates.isna().any():
        rows = dates.index[dates.isna()].tolist()[:_MAX_NAMED_DATES]
        raise PriceValidationError(ticker, f"missing dates in row(s) {rows}")
    if dates.dt.tz is not None:
        dates = dates.dt.tz_localize(None)
    out["date"] = dates.dt.normalize().astype("datetime64[ns]")
    for column in PRICE_COLUMNS[1:]:
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    return out


def _sort_dedupe(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    # A stable sort keeps input order among equal dates, so "last" is the last one given
    # (the later fetch when an overlap was appended).
    ordered = frame.sort_values("date", kind="mergesort")
    unique = ordered.drop_duplicates("date", keep="last")
    return unique.reset_index(drop=True), len(ordered) - len(unique)


def _check_values(frame: pd.DataFrame, ticker: str) -> None:
    prices = frame.loc[:, list(PRICE_FIELDS)].to_numpy()
    # NaN in open/high/low is tolerated (close/adj_close NaN rows are already gone).
    bad_price = (np.isinf(prices) | (prices <= 0)).any(axis=1)
    if bad_price.any():
        raise PriceValidationError(
            ticker,
            f"non-positive or non-finite prices on {int(bad_price.sum())} day(s): "
            f"{_name_dates(frame.loc[bad_price, 'date'])}",
        )
    volume = frame["volume"].to_numpy()
    bad_volume = np.isinf(volume) | (volume < 0)
    if bad_volume.any():
        raise PriceValidationError(
            ticker,
            f"negative or infinite volume on {int(bad_volume.sum())} day(s): "
            f"{_name_dates(frame.loc[bad_volume, 'date'])}",
        )


def validate_prices(
    frame: pd.DataFrame,
    *,
    ticker: str,
    asset_class: AssetClass,
    as_of: date,
    min_rows: int,
    stale_after_days: int = DEFAULT_STALE_AFTER_DAYS,
    need_explanation: str | None = None,
) -> ValidatedPrices:
    """Clean and check one ticker's daily history.

    Args:
        frame: A raw price frame (columns of ``PRICE_COLUMNS``; extra columns are ignored).
        ticker: Named in every message.
        asset_class: ``stock``, ``etf`` or ``crypto``: chooses the calendar for staleness.
        as_of: The date the data is used for; later rows are dropped (no look-ahead).
        min_rows: Fewest rows the caller can use (look-back plus test period).
        stale_after_days: Trading days the last date may lag ``expected_last_date`` before a
            warning is added.
        need_explanation: Why ``min_rows`` rows are needed, e.g. ``"look-back 240 + test
            50"``; appended to the too-short message.

    Returns:
        The cleaned frame (sorted, unique dates, ``date`` as datetime64[ns]) and its report.

    Raises:
        PriceValidationError: Empty input, missing columns or dates, non-positive or
            non-finite prices, negative volume, or fewer than ``min_rows`` rows after cleaning.
        ValueError: An unknown asset class or ``min_rows < 1``.
    """
    check_asset_class(asset_class)
    if min_rows < 1:
        raise ValueError(f"min_rows must be >= 1, got {min_rows}")
    rows_in = len(frame)
    if rows_in == 0:
        raise PriceValidationError(ticker, "no price rows")

    cleaned, duplicates = _sort_dedupe(_parse(frame, ticker))

    future = cleaned["date"] > pd.Timestamp(as_of)
    cleaned = cleaned.loc[~future]
    null = cleaned.loc[:, list(REQUIRED_FIELDS)].isna().any(axis=1)
    cleaned = cleaned.loc[~null].reset_index(drop=True)
    if cleaned.empty:
        raise PriceValidationError(
            ticker,
            f"no usable rows on or before {as_of} ({rows_in} in, {int(future.sum())} after "
            f"as_of, {int(null.sum())} without close/adj_close)",
        )
    _check_values(cleaned, ticker)

    if len(cleaned) < min_rows:
        reason = f" ({need_explanation})" if need_explanation else ""
        raise PriceValidationError(
            ticker, f"{len(cleaned)} rows after cleaning, need at least {min_rows}{reason}"
        )

    first = cleaned["date"].iloc[0].date()
    last = cleaned["date"].iloc[-1].date()
    expected = expected_last_date(asset_class, as_of)
    lag = trading_days_between(asset_class, last, expected)
    warnings: list[str] = []
    stale = lag > stale_after_days
    if stale:
        warnings.append(
            f"{ticker}: stale data: last date {last} is {lag} trading day(s) behind the "
            f"expected {expected} (tolerance {stale_after_days})"
        )
    report = ValidationReport(
        ticker=ticker,
        asset_class=asset_class,
        as_of=as_of,
        rows_in=rows_in,
        rows_out=len(cleaned),
        duplicates_resolved=duplicates,
        null_rows_dropped=int(null.sum()),
        future_rows_dropped=int(future.sum()),
        first_date=first,
        last_date=last,
        expected_last_date=expected,
        lag_trading_days=lag,
        stale=stale,
        warnings=tuple(warnings),
    )
    return ValidatedPrices(frame=cleaned, report=report)
