"""A ticker's validated model column, parsed and validated once per process for the same
stored bytes.

A run reads every ticker's stored history twice after fetching it: the pooled step fits the
global models on all of them, then each chunk's modelling reads its own tickers again under
their leases. Both requests still go to the storage (a chunk must see what is stored when
it holds the lease), but parsing and validating the same bytes again gives the same result:
:func:`read_validated` keeps it, keyed by the bytes' sha256 and every argument the result
depends on, so a changed object (a later fetch, another run) is never answered from memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from datetime import date

import pandas as pd

from closecast.inputs.price_store import PriceStore
from closecast.inputs.validation import ValidationReport, usable_series
from closecast.inputs.watchlist import WatchItem
from closecast.sources.base import empty_price_frame
from closecast.storage import ObjectNotFoundError, Storage

KEPT_VALUES = 8_000_000
"""Most prices kept in memory (about 16 bytes each with their dates: 128 MB at most): a
500-ticker run of 10,000-day histories fits, so every chunk finds what the pooled step read.
The least recently used go first."""

_Key = tuple[str, str, date, str, int, str]


class _Kept:
    """Validated histories by what they are a function of, least recently used dropped
    first once they hold more than :data:`KEPT_VALUES` prices."""

    def __init__(self) -> None:
        self._entries: OrderedDict[_Key, tuple[pd.Series, ValidationReport]] = OrderedDict()
        self._values = 0
        self._lock = threading.Lock()

    def get(self, key: _Key) -> tuple[pd.Series, ValidationReport] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: _Key, series: pd.Series, report: ValidationReport) -> None:
        with self._lock:
            if key in self._entries:
                return
            self._entries[key] = (series, report)
            self._values += len(series)
            while self._values > KEPT_VALUES and len(self._entries) > 1:
                _, (dropped, _) = self._entries.popitem(last=False)
                self._values -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._values = 0


_KEPT = _Kept()


def read_validated(
    storage: Storage,
    item: WatchItem,
    as_of: date,
    *,
    price_column: str,
    min_rows: int,
    need_explanation: str | None = None,
) -> tuple[pd.Series, ValidationReport]:
    """The ticker's stored history through ``as_of``, validated where the model uses it
    (:func:`closecast.inputs.validation.usable_series`): one read of the stored object
    every call; the parse and validation only for bytes not seen before in this process.

    Returns:
        The prices (a copy the caller may change) and the validation report.

    Raises:
        CorruptPriceFileError: The stored object is not a readable price file.
        PriceValidationError: Too few usable prices (never kept: the message names this
            caller's ``need_explanation``).
    """
    store = PriceStore(storage)
    try:
        data = storage.read_bytes(store.key(item.symbol))
    except ObjectNotFoundError:
        data = None

    def validated(at_least: int) -> tuple[pd.Series, ValidationReport]:
        frame = store.parse(item.symbol, data, as_of) if data is not None else empty_price_frame()
        return usable_series(
            frame,
            ticker=item.symbol,
            asset_class=item.asset_class,
            as_of=as_of,
            min_rows=at_least,
            price_column=price_column,
            need_explanation=need_explanation,
        )

    digest = hashlib.sha256(data).hexdigest() if data is not None else ""
    # Kept whatever its length: callers needing different lengths (the pool, a ticker's
    # modelling) share one validation.
    key = (item.symbol, item.asset_class, as_of, price_column, digest)
    found = _KEPT.get(key)
    if found is None:
        found = validated(1)
        _KEPT.put(key, *found)
    series, report = found
    if len(series) < min_rows:
        validated(min_rows)  # raises, naming the rows it dropped and this caller's need
    return series.copy(), report


def forget_validated() -> None:
    """Drop every kept history (tests; memory)."""
    _KEPT.clear()
