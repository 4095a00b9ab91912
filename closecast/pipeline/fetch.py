"""Fetch one ticker's prices into the price store: incremental, re-base aware, self-healing.

An incremental fetch re-reads a few days already stored (:func:`incremental_start`). Those
overlap rows normally match the store, or differ on the last bar (a late correction). When
they all differ by one common factor, Yahoo has re-based the history: a split rescales every
price column backwards, a dividend rescales ``adj_close`` a little. Merging the new tail onto
the old basis would put a step into the series (a 75% drop after a 4:1 split), so the full
history is fetched again and replaces the stored one. An unreadable stored file is rebuilt the
same way. Both are reported in :class:`FetchSummary` (``rebased``, ``rebuilt``) and its
warnings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal

import numpy as np
import pandas as pd

from closecast.inputs.price_store import CorruptPriceFileError, MergeResult, PriceStore
from closecast.inputs.validation import (
    DEFAULT_PRICE_COLUMN,
    ValidatedPrices,
    ValidationReport,
    validate_prices,
)
from closecast.inputs.watchlist import WatchItem
from closecast.pipeline.histories import remember_stored
from closecast.sources.base import (
    DEFAULT_OVERLAP_DAYS,
    PriceSource,
    empty_price_frame,
    incremental_start,
)
from closecast.storage import Storage
from closecast.storage.recording import ObjectEntry, RecordingStorage

REBASE_TOLERANCE = 1e-4
"""Relative difference below which two prices of one day count as equal (Yahoo's rounding)."""

MIN_REBASE_ROWS = 2
"""Overlap rows that must share a factor before it counts as a re-basing, not a revision."""

RebaseKind = Literal["split", "dividend", "rebase"]


@dataclass(frozen=True)
class Rebase:
    """A re-basing of the stored history seen on the overlap rows of a fetch.

    Attributes:
        kind: ``split`` (close and adj_close moved by the same factor), ``dividend``
            (adj_close only) or ``rebase`` (both, by different factors).
        factor: New basis over stored basis for ``adj_close`` (0.25 after a 4:1 split).
        rows: Overlap rows that share the factor.
        first: First overlap date compared.
        last: Last overlap date compared.
    """

    kind: RebaseKind
    factor: float
    rows: int
    first: date
    last: date

    def describe(self) -> str:
        return (
            f"Yahoo re-based the history ({self.kind}: adj_close x{self.factor:.6g} on "
            f"{self.rows} overlap day(s) {self.first}..{self.last})"
        )


def _ratios(new: pd.DataFrame, old: pd.DataFrame, column: str) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return new[column].to_numpy(dtype="float64") / old[column].to_numpy(dtype="float64")


def _close_to(values: np.ndarray, target: float, tolerance: float) -> np.ndarray:
    with np.errstate(invalid="ignore"):
        return np.abs(values / target - 1.0) <= tolerance


def detect_rebase(
    stored: pd.DataFrame, fetched: pd.DataFrame, *, tolerance: float = REBASE_TOLERANCE
) -> Rebase | None:
    """Whether ``fetched`` is on another basis than ``stored``, judged on their common dates.

    A re-basing is a common ``adj_close`` factor away from 1 shared by at least
    :data:`MIN_REBASE_ROWS` overlap rows and by at least half of them; a single revised bar
    is a revision, not a re-basing. ``close`` tells its kind.

    Args:
        stored: The stored history (a price frame).
        fetched: The validated fetch (a price frame).
        tolerance: Relative difference that still counts as equal.

    Returns:
        The re-basing, or None when the overlap agrees (or is too short to tell).
    """
    common, at_old, at_new = np.intersect1d(
        stored["date"].to_numpy(), fetched["date"].to_numpy(), return_indices=True
    )
    if len(common) < MIN_REBASE_ROWS:
        return None
    old, new = stored.iloc[at_old], fetched.iloc[at_new]
    adjusted = _ratios(new, old, "adj_close")
    finite = np.isfinite(adjusted)
    if finite.sum() < MIN_REBASE_ROWS:
        return None
    factor = float(np.median(adjusted[finite]))
    if abs(factor - 1.0) <= tolerance:
        return None
    agreeing = _close_to(adjusted, factor, tolerance)
    if agreeing.sum() < max(MIN_REBASE_ROWS, math.ceil(len(common) / 2)):
        return None
    close_factor = float(np.nanmedian(_ratios(new, old, "close")[agreeing]))
    kind: RebaseKind
    if abs(close_factor / factor - 1.0) <= tolerance:
        kind = "split"
    elif abs(close_factor - 1.0) <= tolerance:
        kind = "dividend"
    else:
        kind = "rebase"
    return Rebase(
        kind=kind,
        factor=factor,
        rows=int(agreeing.sum()),
        first=pd.Timestamp(common[0]).date(),
        last=pd.Timestamp(common[-1]).date(),
    )


@dataclass(frozen=True)
class FetchSummary:
    """What one ticker's fetch did to the price store.

    Attributes:
        ticker: The ticker.
        key: The price file's storage key.
        n_new: Dates added.
        n_revised: Stored dates whose values changed.
        n_removed: Stored dates removed (rejected now, or absent from a replacing history).
        n_total: Rows stored afterwards.
        changed: Whether the price file was written.
        full_history: Whether the source's full history was fetched (first fetch, re-basing,
            rebuild).
        rebase: The re-basing that caused a full refetch, if any.
        rebuilt: Whether an unreadable price file was rebuilt from the source.
        report: Validation of what was fetched (None when the store was already complete).
        warnings: Validation warnings and what the fetch itself noticed.
        stored: The price object as this fetch left it (its size and sha256), or None: under
            the ticker's lease the run holds from the fetch through the modelling, the
            pooled step and the modelling take those bytes from memory
            (:func:`closecast.pipeline.histories.read_validated`) instead of reading them.
    """

    ticker: str
    key: str
    n_new: int
    n_revised: int
    n_removed: int
    n_total: int
    changed: bool
    full_history: bool
    rebase: Rebase | None
    rebuilt: bool
    report: ValidationReport | None
    warnings: tuple[str, ...]
    stored: ObjectEntry | None = None

    @property
    def rebased(self) -> bool:
        return self.rebase is not None

    @property
    def rebase_factor(self) -> float | None:
        """New basis over stored basis for ``adj_close`` when the history was re-based."""
        return self.rebase.factor if self.rebase is not None else None


@dataclass(frozen=True)
class FetchOutcome:
    """One ticker's fetch within a chunk: what it stored, or why it failed.

    Attributes:
        item: The ticker.
        summary: What the fetch did to the price store (None when it failed).
        error: ``Type: message`` of the error that failed it (None when it succeeded).
        attempts: How many times it was tried (network errors are retried).
    """

    item: WatchItem
    summary: FetchSummary | None = None
    error: str | None = None
    attempts: int = 1

    @property
    def ok(self) -> bool:
        return self.summary is not None


@dataclass(frozen=True)
class _Fetch:
    """Where the data goes and how to check it (one ticker, one run)."""

    item: WatchItem
    as_of: date
    store: PriceStore
    source: PriceSource
    price_column: str

    def validate(self, raw: pd.DataFrame, context: pd.DataFrame | None = None) -> ValidatedPrices:
        return validate_prices(
            raw,
            ticker=self.item.symbol,
            asset_class=self.item.asset_class,
            as_of=self.as_of,
            price_column=self.price_column,
            context=context,
        )

    def summary(
        self,
        result: MergeResult,
        report: ValidationReport | None,
        *,
        full_history: bool,
        rebase: Rebase | None = None,
        rebuilt: bool = False,
        notes: tuple[str, ...] = (),
    ) -> FetchSummary:
        warnings = (*(report.warnings if report else ()), *notes)
        return FetchSummary(
            ticker=self.item.symbol,
            key=self.store.key(self.item.symbol),
            n_new=result.n_new,
            n_revised=result.n_revised,
            n_removed=result.n_removed,
            n_total=result.n_total,
            changed=result.changed,
            full_history=full_history,
            rebase=rebase,
            rebuilt=rebuilt,
            report=replace(report, warnings=warnings) if report else None,
            warnings=warnings,
        )

    def replace_with_full_history(
        self,
        previous: pd.DataFrame,
        *,
        rebase: Rebase | None = None,
        corrupt: CorruptPriceFileError | None = None,
    ) -> FetchSummary:
        """Fetch the source's full history and store it in place of ``previous``."""
        validated = self.validate(self.source.fetch(self.item.symbol, start=None, end=self.as_of))
        result = self.store.replace(self.item.symbol, validated.frame, previous=previous)
        symbol, key = self.item.symbol, self.store.key(self.item.symbol)
        notes: list[str] = []
        if rebase is not None:
            notes.append(f"{symbol}: {rebase.describe()}: full history refetched, {key} replaced")
        if corrupt is not None:
            notes.append(f"{symbol}: {corrupt}; rebuilt from the source's full history")
        return self.summary(
            result,
            validated.report,
            full_history=True,
            rebase=rebase,
            rebuilt=corrupt is not None,
            notes=tuple(notes),
        )


def fetch_and_store(
    item: WatchItem,
    as_of: date,
    storage: Storage,
    source: PriceSource,
    *,
    price_column: str = DEFAULT_PRICE_COLUMN,
    overlap_days: int = DEFAULT_OVERLAP_DAYS,
) -> FetchSummary:
    """Bring one ticker's stored prices up to ``as_of``.

    Fetches from a few days before the last stored date (the full history if nothing is
    stored), validates (``closecast.inputs.validation.validate_prices``), and merges, removing
    stored
    copies of rows the validation rejected. When the overlap shows that the source re-based the
    history (split, dividend) the full history is fetched and replaces the stored one; an
    unreadable price file is rebuilt the same way, with a warning. Nothing is fetched when the
    store already reaches ``as_of`` (a rerun or backfill).

    Args:
        item: The ticker and its asset class.
        as_of: The run date: the last date fetched.
        storage: Where the price store lives.
        source: Where prices come from.
        price_column: The model's price column (a row without it is not stored).
        overlap_days: Calendar days re-read before the last stored date.

    Returns:
        What changed in the store, whether the history was re-based or rebuilt, and the
        validation report.

    Raises:
        closecast.sources.PriceSourceError: From the source (``SourceUnavailableError`` is
            the retryable one).
        closecast.inputs.validation.PriceValidationError: The fetch held no usable row.
        closecast.storage.StorageError: The storage failed.
    """
    key = PriceStore(storage).key(item.symbol)
    recording = RecordingStorage(storage, keep_bytes=lambda k: k == key)
    summary = _fetch_and_store(item, as_of, recording, source, price_column, overlap_days)
    try:
        data = recording.kept_bytes(key)  # what the fetch read, or wrote last
    except KeyError:
        return summary
    return summary if data is None else replace(summary, stored=remember_stored(key, data))


def _fetch_and_store(
    item: WatchItem,
    as_of: date,
    storage: Storage,
    source: PriceSource,
    price_column: str,
    overlap_days: int,
) -> FetchSummary:
    store = PriceStore(storage)
    fetch = _Fetch(item, as_of, store, source, price_column)
    symbol = item.symbol
    try:
        stored = store.read(symbol)
    except CorruptPriceFileError as exc:
        return fetch.replace_with_full_history(empty_price_frame(), corrupt=exc)
    if stored.empty:
        return fetch.replace_with_full_history(stored)

    last_stored = stored["date"].iloc[-1].date()
    if last_stored >= as_of:
        unchanged = MergeResult(n_new=0, n_revised=0, n_total=len(stored), changed=False)
        return fetch.summary(unchanged, None, full_history=False)

    raw = source.fetch(symbol, start=incremental_start(last_stored, overlap_days), end=as_of)
    validated = fetch.validate(raw, context=stored)
    rebase = detect_rebase(stored, validated.frame)
    if rebase is not None:
        return fetch.replace_with_full_history(stored, rebase=rebase)
    result = store.merge(symbol, validated.frame, remove=validated.rejected_dates, stored=stored)
    return fetch.summary(result, validated.report, full_history=False)
