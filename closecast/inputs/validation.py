"""Validation of daily price histories: before they are stored, and before a model uses them.

Real Yahoo histories carry decades-old junk (``Open = 0``, zero or missing prices, gaps) that
the model never looks at, and occasional bad ticks in recent data that it must not learn from.
So each stage checks what it needs and repairs or drops the rest, counting everything in a
:class:`ValidationReport`:

**Before storing** (:func:`validate_prices`, on every fetch):

1. dates parsed and sorted; price cells that are text count as ``unparsable_cells`` (missing);
2. rows dated after ``as_of`` dropped (``future_rows_dropped``);
3. duplicate dates resolved: the last row with a usable model price wins
   (``duplicates_resolved``); a date given with different usable prices is left out
   altogether, counted as ``conflicting_duplicates``, with a warning naming the dates (and a
   stored copy of it is removed: which price is right is unknown);
4. rows without ``close``, ``adj_close`` or the model's price column (Yahoo's ``null`` rows)
   dropped (``null_rows_dropped``); rows where one of them is non-positive or non-finite
   dropped (``invalid_rows_dropped``);
5. other cells that are non-positive or non-finite (``open``/``high``/``low``, negative or
   infinite ``volume``) set to missing (``repaired_cells``): the row's close stays usable;
6. single-day spikes (a huge move reverted the next day, judged on log returns against a robust
   median/MAD scale) dropped (``outliers_rejected``), so a bad tick never reaches the store;
7. a one-day move of a stock's or ETF's model price that looks like an n-for-1 (or reverse)
   split, within the last :data:`SPLIT_CHECK_DAYS`, is kept but warned about: an adjusted
   history never jumps at a split, so the file is probably unadjusted.

**Before modelling** (:func:`usable_series`, on the stored history): the same parsing, then only
the model's price column counts. The series is the clean stretch that ends at the last date:
older rows before a gap of more than ``max_gap_days`` calendar days (where decades of bad rows
were dropped) are left out (``old_rows_dropped``). Too short a stretch, or none, raises
:class:`PriceValidationError` naming the ticker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from closecast.inputs.calendars import (
    AssetClass,
    check_asset_class,
    expected_last_date,
    trading_days_between,
)
from closecast.inputs.schema import PRICE_COLUMNS, in_price_contract

PRICE_FIELDS: tuple[str, ...] = ("open", "high", "low", "close", "adj_close")
REQUIRED_FIELDS: tuple[str, ...] = ("close", "adj_close")
"""A stored row needs both: ``adj_close`` is the default model price, and comparing ``close``
with ``adj_close`` tells a split from a dividend when Yahoo re-bases a history."""

DEFAULT_PRICE_COLUMN = "adj_close"

DEFAULT_STALE_AFTER_DAYS = 3
"""Trading days a history may lag :func:`expected_last_date` before it is flagged stale."""

MAX_GAP_DAYS = 10
"""Calendar days between two usable rows beyond which a history is not one stretch. The
longest NYSE closure since 1980 (September 2001) left 7 days between bars."""

SPIKE_MIN_FACTOR = 3.0
"""A single-day spike moves the price by at least this factor and back the next day."""

EDGE_SPIKE_FACTOR = 100.0
"""The first or last row, which has no next day to confirm a reversal, is a spike only beyond
this factor (no listed security moves 100x in a day without a data error)."""

SPLIT_FACTORS = (2, 3, 4, 5, 6, 7, 8, 10, 15, 20, 25, 30, 40, 50, 100)
"""The n of the n-for-1 (and 1-for-n reverse) splits a one-day move is compared with."""

SPLIT_TOLERANCE = 0.05
"""How close (relatively) a one-day move must come to a split factor to look like one (the
day's own move comes on top of the split's)."""

SPLIT_CHECK_DAYS = 5 * 365
"""Calendar days before a history's last date in which split-like moves are reported: about
what the models train and test on (older ones are history the model does not see; AAPL's real
-52% day in 2000 is one)."""

SPIKE_MAD_MULTIPLE = 10.0
"""A spike also exceeds this many robust standard deviations (1.4826 x MAD) of log returns,
so that very volatile series need proportionally bigger moves."""


@dataclass(frozen=True, kw_only=True)
class ValidationCounts:
    """What validation counted: the one declaration of its counters (rows unless named cells).

    The report, the cleaning steps and the metrics row's columns all take their counters from
    these fields (:data:`REPORT_COUNTERS`).
    """

    null_rows_dropped: int = 0
    invalid_rows_dropped: int = 0
    duplicates_resolved: int = 0
    conflicting_duplicates: int = 0
    unparsable_cells: int = 0
    repaired_cells: int = 0
    outliers_rejected: int = 0
    old_rows_dropped: int = 0
    future_rows_dropped: int = 0

    def plus(self, **found: int) -> ValidationCounts:
        """These counts with ``found`` added (names of counters only)."""
        return replace(self, **{name: getattr(self, name) + n for name, n in found.items()})


REPORT_COUNTERS: tuple[str, ...] = tuple(f.name for f in fields(ValidationCounts))
"""The counters of a :class:`ValidationReport`, e.g. for columns of a metrics row."""

HISTORY_COUNTERS: tuple[str, ...] = (
    "invalid_rows_dropped",
    "outliers_rejected",
    "old_rows_dropped",
)
"""The counters :func:`usable_series` can find in a stored history (the others only concern
raw data, which :func:`validate_prices` cleans before it is stored)."""

_MAX_NAMED_DATES = 5


class PriceValidationError(ValueError):
    """A price history that must not be stored or trained on.

    Attributes:
        ticker: The ticker whose history failed.
    """

    def __init__(self, ticker: str, message: str) -> None:
        super().__init__(f"{ticker}: {message}")
        self.ticker = ticker


@dataclass(frozen=True, kw_only=True)
class ValidationReport(ValidationCounts):
    """What validation found and did: its counts (:class:`ValidationCounts`) and the rest."""

    ticker: str
    asset_class: str
    as_of: date
    rows_in: int
    rows_out: int
    first_date: date
    last_date: date
    expected_last_date: date
    lag_trading_days: int
    stale: bool
    warnings: tuple[str, ...] = field(default_factory=tuple)
    price_column: str = DEFAULT_PRICE_COLUMN

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
    """A cleaned price frame (columns of ``PRICE_COLUMNS``, sorted, unique dates) and its report.

    Attributes:
        frame: The rows to store.
        report: Counts and warnings.
        rejected_dates: Dates whose rows were rejected as wrong (invalid prices, spikes), so
            a store holding an earlier copy of them should drop it too.
    """

    frame: pd.DataFrame
    report: ValidationReport
    rejected_dates: tuple[date, ...] = ()


@dataclass
class _Findings:
    """Counts and warnings gathered by the cleaning steps, in order."""

    ticker: str
    counts: ValidationCounts = field(default_factory=ValidationCounts)
    rejected: list[pd.Timestamp] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def count(self, **found: int) -> None:
        self.counts = self.counts.plus(**found)

    def warn(self, message: str) -> None:
        self.warnings.append(f"{self.ticker}: {message}")


def _name_dates(dates: pd.Series | pd.Index) -> str:
    days = pd.DatetimeIndex(dates)
    shown = ", ".join(day.date().isoformat() for day in days[:_MAX_NAMED_DATES])
    extra = len(days) - _MAX_NAMED_DATES
    return shown + (f" and {extra} more" if extra > 0 else "")


def _parse(frame: pd.DataFrame, found: _Findings) -> pd.DataFrame:
    ticker = found.ticker
    missing = [column for column in PRICE_COLUMNS if column not in frame.columns]
    if missing:
        raise PriceValidationError(ticker, f"price frame lacks column(s) {', '.join(missing)}")
    if list(frame.columns) == list(PRICE_COLUMNS) and frame.columns.name is None:
        out = frame.reset_index(drop=True)  # a source's own frame: no selection to make
    else:
        out = frame.loc[:, list(PRICE_COLUMNS)].reset_index(drop=True)
    if in_price_contract(out):  # a stored history: dates and numbers parsed already
        return out
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
        given = out[column]
        parsed = pd.to_numeric(given, errors="coerce").astype("float64")
        unparsable = given.notna() & parsed.isna()
        if unparsable.any():
            found.count(unparsable_cells=int(unparsable.sum()))
            found.warn(
                f"{int(unparsable.sum())} unparsable {column} cell(s) read as missing, e.g. "
                f"{given[unparsable].iloc[0]!r} on {_name_dates(out.loc[unparsable, 'date'])}"
            )
        out[column] = parsed
    return out


def _usable(values: pd.Series | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    with np.errstate(invalid="ignore"):
        return np.isfinite(array) & (array > 0)


def _drop_future(frame: pd.DataFrame, as_of: date, found: _Findings) -> pd.DataFrame:
    future = frame["date"].to_numpy() > np.datetime64(as_of, "ns")
    found.count(future_rows_dropped=int(future.sum()))
    return frame.loc[~future] if future.any() else frame


def _resolve_duplicates(frame: pd.DataFrame, price_column: str, found: _Findings) -> pd.DataFrame:
    """One row per date: the last row given with a usable model price (else the last row).

    A date given twice with *different* usable prices is left out altogether (and listed in
    ``found.rejected``, so that a store holding an earlier copy drops it too): nothing tells
    which of the two is right, and keeping the later one would store a guess.
    """
    days = frame["date"].to_numpy().view("int64")  # parsed: never NaT here
    if (days[1:] > days[:-1]).all():
        return frame.reset_index(drop=True)  # one row per date, in order: nothing to resolve
    frame = frame.reset_index(drop=True).assign(
        _usable=_usable(frame[price_column]), _order=np.arange(len(frame))
    )
    # Sorting by (date, usable, input order) and keeping the last makes the choice
    # deterministic: the later fetch when an overlap was appended, unless it is a null row.
    ordered = frame.sort_values(["date", "_usable", "_order"], kind="mergesort")
    duplicated = ordered["date"].duplicated(keep=False)
    conflicts = pd.DatetimeIndex([])
    if duplicated.any():
        found.count(
            duplicates_resolved=int(duplicated.sum() - ordered.loc[duplicated, "date"].nunique())
        )
        conflicts = _conflicting_dates(ordered.loc[duplicated & ordered["_usable"]])
        if len(conflicts):
            found.count(conflicting_duplicates=len(conflicts))
            found.rejected += list(conflicts)
            found.warn(
                f"{len(conflicts)} date(s) given twice with different prices, left out of "
                f"the store (which one is right is unknown): {_name_dates(conflicts)}"
            )
    unique = ordered.drop_duplicates("date", keep="last")
    unique = unique.loc[~unique["date"].isin(conflicts)]
    return unique.drop(columns=["_usable", "_order"]).reset_index(drop=True)


def _conflicting_dates(rows: pd.DataFrame) -> pd.DatetimeIndex:
    values = rows.loc[:, list(PRICE_FIELDS)]
    distinct = values.groupby(rows["date"]).nunique(dropna=False)
    return pd.DatetimeIndex(distinct.index[(distinct > 1).any(axis=1)])


def _drop_unusable_rows(
    frame: pd.DataFrame, required: tuple[str, ...], found: _Findings
) -> pd.DataFrame:
    values = np.column_stack([frame[column].to_numpy(dtype="float64") for column in required])
    null = np.isnan(values).any(axis=1)
    invalid = ~null & ~_usable(values).all(axis=1)
    found.count(null_rows_dropped=int(null.sum()))
    if not null.any() and not invalid.any():  # the usual case: nothing to drop
        return frame.reset_index(drop=True)
    if invalid.any():
        found.count(invalid_rows_dropped=int(invalid.sum()))
        found.rejected += list(frame.loc[invalid, "date"])
        found.warn(
            f"{int(invalid.sum())} row(s) with non-positive or non-finite "
            f"{'/'.join(required)} dropped: {_name_dates(frame.loc[invalid, 'date'])}"
        )
    return frame.loc[~null & ~invalid].reset_index(drop=True)


def _repair_cells(frame: pd.DataFrame, found: _Findings) -> pd.DataFrame:
    """Set non-positive or non-finite prices and negative or infinite volumes to missing."""
    frame = frame.copy(deep=False)  # columns are replaced, never written into
    for column in (*PRICE_FIELDS, "volume"):
        values = frame[column].to_numpy(dtype="float64")
        with np.errstate(invalid="ignore"):
            if column == "volume":
                bad = np.isinf(values) | (values < 0)
                what = "negative or infinite"
            else:
                bad = ~np.isnan(values) & ~_usable(values)
                what = "non-positive or non-finite"
        if bad.any():
            found.count(repaired_cells=int(bad.sum()))
            found.warn(
                f"{int(bad.sum())} {what} {column} cell(s) set to missing: "
                f"{_name_dates(frame.loc[bad, 'date'])}"
            )
            frame[column] = np.where(bad, np.nan, values)
    return frame


def spike_positions(
    prices: np.ndarray,
    *,
    min_factor: float = SPIKE_MIN_FACTOR,
    edge_factor: float = EDGE_SPIKE_FACTOR,
    mad_multiple: float = SPIKE_MAD_MULTIPLE,
) -> np.ndarray:
    """Positions of single-day spikes in a positive price array.

    A row is a spike when its log return and the next one are both beyond the threshold
    (``max(log(min_factor), mad_multiple x 1.4826 x MAD)`` of all log returns), of opposite
    signs, and the next day undoes at least half the move. Real crashes (2020-03: -12%, then
    +9%) stay far below a 3x move; a bad tick (1000x, a misplaced decimal) does not. The first
    and last rows, with one neighbour only, are judged on their one return against
    ``log(edge_factor)``.

    Args:
        prices: Positive, finite prices in date order.
        min_factor: Smallest move (and reversal) that can be a spike.
        edge_factor: Smallest move of the first or last row that is a spike.
        mad_multiple: Robust standard deviations a spike's returns exceed.

    Returns:
        Sorted positions (indices into ``prices``) of the spikes.
    """
    if len(prices) < 2:
        return np.array([], dtype=int)
    returns = np.diff(np.log(np.asarray(prices, dtype="float64")))
    deviation = np.median(np.abs(returns - np.median(returns)))
    threshold = max(np.log(min_factor), mad_multiple * 1.4826 * deviation)
    into, out_of = returns[:-1], returns[1:]  # row i+1 is reached by into[i], left by out_of[i]
    reverted = np.abs(into + out_of) <= 0.5 * np.minimum(np.abs(into), np.abs(out_of))
    interior = (
        (np.abs(into) > threshold)
        & (np.abs(out_of) > threshold)
        & (np.sign(into) != np.sign(out_of))
        & reverted
    )
    positions = set(np.flatnonzero(interior) + 1)
    edge = max(threshold, np.log(edge_factor))
    if abs(returns[0]) > edge:
        positions.add(0)
    if abs(returns[-1]) > edge:
        positions.add(len(prices) - 1)
    return np.array(sorted(positions), dtype=int)


def split_like_moves(prices: np.ndarray, tolerance: float = SPLIT_TOLERANCE) -> np.ndarray:
    """Positions of one-day moves within ``tolerance`` of a split factor (:data:`SPLIT_FACTORS`),
    down (an n-for-1 split) or up (a 1-for-n reverse split), in positive prices in date order.
    """
    if len(prices) < 2:
        return np.array([], dtype=int)
    ratios = np.asarray(prices[1:], dtype="float64") / np.asarray(prices[:-1], dtype="float64")
    factors = np.maximum(ratios, 1.0 / ratios)
    near = np.zeros(len(factors), dtype=bool)
    for factor in SPLIT_FACTORS:
        near |= np.abs(factors / factor - 1.0) <= tolerance
    return np.flatnonzero(near) + 1


def _warn_unadjusted_splits(frame: pd.DataFrame, price_column: str, found: _Findings) -> None:
    """Warn about each one-day move of the model's price that looks like a split the history
    does not adjust for: Yahoo's adjusted close never jumps at a split, so such a file was
    probably saved unadjusted, and the model would learn the jump as a real move. Only a
    warning: a real crash of that size is possible and the row is kept."""
    dates = frame["date"].to_numpy()
    recent = np.flatnonzero(dates >= dates[-1] - np.timedelta64(SPLIT_CHECK_DAYS, "D"))
    prices = frame[price_column].to_numpy(dtype="float64")[recent]
    for position in split_like_moves(prices):
        ratio = prices[position] / prices[position - 1]
        kind = (
            f"{round(1 / ratio)}-for-1 split"
            if ratio < 1
            else f"1-for-{round(ratio)} reverse split"
        )
        found.warn(
            f"{price_column} moves {ratio - 1:+.1%} on "
            f"{pd.Timestamp(dates[recent[position]]).date()}, "
            f"like a {kind} the file does not adjust for; if it is one, the model learns it as "
            "a real move (use the split-adjusted history)"
        )


def _reject_spikes(
    frame: pd.DataFrame,
    columns: tuple[str, ...],
    found: _Findings,
    context: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Drop rows that are single-day spikes in any of ``columns``.

    ``context`` (earlier, already stored rows) lets the first rows of a short incremental
    fetch be judged against the days before them; context rows themselves are never dropped.
    """
    if frame.empty:
        return frame
    before = _context_before(context, frame["date"].iloc[0])
    spiked = np.zeros(len(frame), dtype=bool)
    for column in columns:
        earlier = (
            np.array([], dtype="float64")
            if context is None or context.empty
            else context[column].to_numpy(dtype="float64")[before]
        )
        values = np.concatenate([earlier, frame[column].to_numpy(dtype="float64")])
        owner = np.concatenate([np.full(len(earlier), -1), np.arange(len(frame))])
        usable = _usable(values)
        hits = owner[usable][spike_positions(values[usable])]
        spiked[hits[hits >= 0]] = True
    if not spiked.any():
        return frame.reset_index(drop=True)
    found.count(outliers_rejected=int(spiked.sum()))
    found.rejected += list(frame.loc[spiked, "date"])
    found.warn(
        f"{int(spiked.sum())} single-day price spike(s) rejected: "
        f"{_name_dates(frame.loc[spiked, 'date'])}"
    )
    return frame.loc[~spiked].reset_index(drop=True)


_CONTEXT_ROWS = 60
"""Stored rows before a fetch that its spike test looks at."""


def _context_before(context: pd.DataFrame | None, first: pd.Timestamp) -> np.ndarray:
    """Positions in ``context`` of its last :data:`_CONTEXT_ROWS` rows dated before ``first``."""
    if context is None or context.empty:
        return np.array([], dtype="int64")
    dates = context["date"]
    if dates.dtype != np.dtype("datetime64[ns]"):
        dates = pd.to_datetime(dates)
    return np.flatnonzero(dates.to_numpy() < np.datetime64(first, "ns"))[-_CONTEXT_ROWS:]


def _staleness(
    asset_class: AssetClass, as_of: date, last: date, stale_after_days: int, found: _Findings
) -> tuple[date, int, bool]:
    expected = expected_last_date(asset_class, as_of)
    lag = trading_days_between(asset_class, last, expected)
    stale = lag > stale_after_days
    if stale:
        found.warn(
            f"stale data: last date {last} is {lag} trading day(s) behind the "
            f"expected {expected} (tolerance {stale_after_days})"
        )
    return expected, lag, stale


def _report(
    found: _Findings,
    *,
    asset_class: AssetClass,
    as_of: date,
    price_column: str,
    rows_in: int,
    dates: pd.Series,
    stale_after_days: int,
) -> ValidationReport:
    first = dates.iloc[0].date()
    last = dates.iloc[-1].date()
    expected, lag, stale = _staleness(asset_class, as_of, last, stale_after_days, found)
    return ValidationReport(
        ticker=found.ticker,
        asset_class=asset_class,
        as_of=as_of,
        rows_in=rows_in,
        rows_out=len(dates),
        first_date=first,
        last_date=last,
        expected_last_date=expected,
        lag_trading_days=lag,
        stale=stale,
        warnings=tuple(found.warnings),
        price_column=price_column,
        **asdict(found.counts),
    )


def _check_price_column(price_column: str) -> None:
    if price_column not in PRICE_FIELDS:
        raise ValueError(
            f"price_column must be one of {', '.join(PRICE_FIELDS)}, got {price_column!r}"
        )


def _describe_drops(found: _Findings, rows_in: int) -> str:
    parts = [f"{rows_in} in"]
    for label, count in (
        ("after as_of", found.counts.future_rows_dropped),
        ("date(s) given twice with different prices", found.counts.conflicting_duplicates),
        ("missing prices", found.counts.null_rows_dropped),
        ("non-positive or non-finite prices", found.counts.invalid_rows_dropped),
        ("spikes", found.counts.outliers_rejected),
    ):
        if count:
            parts.append(f"{count} {label}")
    return ", ".join(parts)


def _start(
    frame: pd.DataFrame,
    ticker: str,
    asset_class: AssetClass,
    as_of: date,
    min_rows: int,
    price_column: str,
) -> tuple[_Findings, pd.DataFrame]:
    """The checks and first cleaning steps both validations share: arguments checked, dates
    parsed and sorted, rows after ``as_of`` dropped, duplicate dates resolved."""
    check_asset_class(asset_class)
    _check_price_column(price_column)
    if min_rows < 1:
        raise ValueError(f"min_rows must be >= 1, got {min_rows}")
    if len(frame) == 0:
        raise PriceValidationError(ticker, "no price rows")
    found = _Findings(ticker)
    cleaned = _drop_future(_parse(frame, found), as_of, found)
    return found, _resolve_duplicates(cleaned, price_column, found)


def validate_prices(
    frame: pd.DataFrame,
    *,
    ticker: str,
    asset_class: AssetClass,
    as_of: date,
    min_rows: int = 1,
    stale_after_days: int = DEFAULT_STALE_AFTER_DAYS,
    need_explanation: str | None = None,
    price_column: str = DEFAULT_PRICE_COLUMN,
    context: pd.DataFrame | None = None,
) -> ValidatedPrices:
    """Clean one ticker's fetched daily history for the price store.

    See the module docstring for the rules. Bad cells outside ``close``/``adj_close``/the
    model column are repaired (set to missing), not fatal: decades-old ``Open = 0`` rows keep
    their usable closes.

    Args:
        frame: A raw price frame (columns of ``PRICE_COLUMNS``; extra columns are ignored).
        ticker: Named in every message.
        asset_class: ``stock``, ``etf`` or ``crypto``: chooses the calendar for staleness.
        as_of: The date the data is used for; later rows are dropped (no look-ahead).
        min_rows: Fewest rows the caller can use.
        stale_after_days: Trading days the last date may lag ``expected_last_date`` before a
            warning is added.
        need_explanation: Why ``min_rows`` rows are needed; appended to the too-short message.
        price_column: The column the model uses (a row without it is not stored).
        context: Rows already stored before this fetch; only used to judge whether the first
            fetched rows are spikes (never returned).

    Returns:
        The cleaned frame (sorted, unique dates, ``date`` as datetime64[ns]), its report, and
        the dates rejected as wrong.

    Raises:
        PriceValidationError: Empty input, missing columns or dates, no usable row, or fewer
            than ``min_rows`` rows after cleaning.
        ValueError: An unknown asset class or price column, or ``min_rows < 1``.
    """
    found, cleaned = _start(frame, ticker, asset_class, as_of, min_rows, price_column)
    rows_in = len(frame)
    required = tuple(dict.fromkeys((*REQUIRED_FIELDS, price_column)))
    cleaned = _drop_unusable_rows(cleaned, required, found)
    cleaned = _repair_cells(cleaned, found)
    cleaned = _reject_spikes(cleaned, required, found, context)
    if cleaned.empty:
        raise PriceValidationError(
            ticker, f"no usable rows on or before {as_of} ({_describe_drops(found, rows_in)})"
        )
    if asset_class != "crypto":  # coins do not split
        _warn_unadjusted_splits(cleaned, price_column, found)
    if len(cleaned) < min_rows:
        reason = f" ({need_explanation})" if need_explanation else ""
        raise PriceValidationError(
            ticker, f"{len(cleaned)} rows after cleaning, need at least {min_rows}{reason}"
        )
    report = _report(
        found,
        asset_class=asset_class,
        as_of=as_of,
        price_column=price_column,
        rows_in=rows_in,
        dates=cleaned["date"],
        stale_after_days=stale_after_days,
    )
    rejected = tuple(sorted({day.date() for day in found.rejected}))
    return ValidatedPrices(frame=cleaned, report=report, rejected_dates=rejected)


_DAY_NANOSECONDS = 86_400 * 10**9


def _recent_stretch(series: pd.Series, max_gap_days: int, found: _Findings) -> pd.Series:
    """The rows after the last gap longer than ``max_gap_days`` (all rows if there is none)."""
    # Whole days between consecutive dates (sorted and unique here), none before the first.
    nanoseconds = series.index.to_numpy().view("int64")
    gaps = np.concatenate([[np.nan], np.diff(nanoseconds) // _DAY_NANOSECONDS])
    breaks = np.flatnonzero(gaps > max_gap_days)
    if len(breaks) == 0:
        return series
    start = int(breaks[-1])
    old = series.iloc[:start]
    found.count(old_rows_dropped=len(old))
    recent = series.iloc[start:]
    found.warn(
        f"{len(old)} older row(s) {old.index[0].date()}..{old.index[-1].date()} left out: "
        f"{gaps[start]:.0f} days without a usable price before {recent.index[0].date()} "
        f"(more than {max_gap_days}); the model uses the {len(recent)} row(s) since"
    )
    return recent


def usable_series(
    frame: pd.DataFrame,
    *,
    ticker: str,
    asset_class: AssetClass,
    as_of: date,
    min_rows: int,
    price_column: str = DEFAULT_PRICE_COLUMN,
    need_explanation: str | None = None,
    stale_after_days: int = DEFAULT_STALE_AFTER_DAYS,
    max_gap_days: int = MAX_GAP_DAYS,
) -> tuple[pd.Series, ValidationReport]:
    """The model's price series: the clean recent stretch of one column, ending at the last date.

    Only ``price_column`` is checked: rows where it is missing, non-positive or non-finite are
    dropped and counted, single-day spikes rejected, and everything before the last gap of
    more than ``max_gap_days`` calendar days (e.g. the decades where Yahoo has junk) left out
    with a counted warning. Other columns are ignored.

    Args:
        frame: A price frame, normally the stored history (``PriceStore.read``).
        ticker: Named in every message.
        asset_class: ``stock``, ``etf`` or ``crypto``: chooses the calendar for staleness.
        as_of: Rows after it are dropped (no look-ahead).
        min_rows: Fewest rows the model needs (look-back, training windows and test period).
        price_column: The column the model uses (``ModelConfig.price_column``).
        need_explanation: Why ``min_rows`` rows are needed, e.g. ``"look-back 240 + test
            50"``; appended to the too-short message.
        stale_after_days: Trading days the last date may lag before a warning is added.
        max_gap_days: Longest run of calendar days without a usable price inside the stretch.

    Returns:
        The prices (float64, indexed by a ``DatetimeIndex`` named ``date``, named ``ticker``)
        and the report (``old_rows_dropped`` counts the rows before the stretch).

    Raises:
        PriceValidationError: No usable price, or a clean recent stretch shorter than
            ``min_rows``.
        ValueError: An unknown asset class or price column, ``min_rows < 1`` or
            ``max_gap_days < 1``.
    """
    if max_gap_days < 1:
        raise ValueError(f"max_gap_days must be >= 1, got {max_gap_days}")
    found, cleaned = _start(frame, ticker, asset_class, as_of, min_rows, price_column)
    rows_in = len(frame)
    cleaned = _drop_unusable_rows(cleaned, (price_column,), found)
    cleaned = _reject_spikes(cleaned, (price_column,), found)
    if cleaned.empty:
        raise PriceValidationError(
            ticker,
            f"no usable {price_column} on or before {as_of} ({_describe_drops(found, rows_in)})",
        )
    series = pd.Series(
        cleaned[price_column].to_numpy(dtype="float64"),
        index=pd.DatetimeIndex(cleaned["date"], name="date"),
        name=ticker,
    )
    series = _recent_stretch(series, max_gap_days, found)
    if len(series) < min_rows:
        reason = f" ({need_explanation})" if need_explanation else ""
        older = (
            f" ({found.counts.old_rows_dropped} older rows before a gap left out)"
            if found.counts.old_rows_dropped
            else ""
        )
        raise PriceValidationError(
            ticker,
            f"{len(series)} usable {price_column} rows since {series.index[0].date()}{older}, "
            f"need at least {min_rows}{reason}",
        )
    report = _report(
        found,
        asset_class=asset_class,
        as_of=as_of,
        price_column=price_column,
        rows_in=rows_in,
        dates=series.index.to_series(),
        stale_after_days=stale_after_days,
    )
    return series, report
