"""A ticker's validated model column, parsed and validated once per process for the same
stored bytes, and the bytes a fetch stored, kept for the run's later readers.

A run reads every ticker's stored history twice after fetching it: the pooled step fits the
global models on all of them, then each chunk's modelling reads its own tickers. The run
holds each ticker's lease from its fetch through its modelling, so the object is what the
fetch left: the fetch keeps those bytes here (:func:`remember_stored`, by sha256) and its
summary names their digest, and both readers take them from memory when this process still
has them, else read the object. Parsing and validating the same bytes again gives the same
result: :func:`read_validated` keeps it, keyed by the bytes' sha256 and every argument the
result depends on, so a changed object (a later fetch, another run) is never answered from
memory.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import date
from typing import Generic, TypeVar

import pandas as pd

from closecast.inputs.price_store import PriceStore
from closecast.inputs.validation import ValidationReport, usable_series
from closecast.inputs.watchlist import WatchItem
from closecast.sources.base import empty_price_frame
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.recording import ObjectEntry, RecordingStorage

KEPT_VALUES = 8_000_000
"""Most prices kept in memory (about 16 bytes each with their dates: 128 MB at most): a
500-ticker run of 10,000-day histories fits, so every chunk finds what the pooled step read.
The least recently used go first."""

KEPT_STORED_BYTES = 64 * 1024 * 1024
"""Most bytes of fetched price objects kept for the run's later readers: a 500-ticker run of
10,000-day histories fits; the least recently used go first (their readers then read)."""

K = TypeVar("K")
V = TypeVar("V")


class _Bounded(Generic[K, V]):
    """A thread-safe map that drops its least recently used entries once their total size
    (``size`` of each value) passes ``limit``; the newest entry is always kept."""

    def __init__(self, limit: int, size: Callable[[V], int]) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._limit, self._size_of, self._size = limit, size, 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
            return found

    def put(self, key: K, value: V) -> None:
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return
            self._entries[key] = value
            self._size += self._size_of(value)
            while self._size > self._limit and len(self._entries) > 1:
                _, dropped = self._entries.popitem(last=False)
                self._size -= self._size_of(dropped)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._size = 0


_Validated = tuple[pd.Series, ValidationReport]
# Validated histories by what they are a function of: symbol, class, as-of, column, sha256.
_KEPT: _Bounded[tuple[str, str, date, str, str], _Validated] = _Bounded(
    KEPT_VALUES, lambda found: len(found[0])
)
_STORED: _Bounded[str, bytes] = _Bounded(KEPT_STORED_BYTES, len)  # price objects by sha256


def remember_stored(key: str, data: bytes) -> ObjectEntry:
    """Keep the bytes a fetch left at ``key`` for the run's later readers (the pooled step,
    the modelling, which hold on to the ticker's lease meanwhile) and return their entry,
    for the fetch's summary to carry."""
    entry = ObjectEntry.of(key, data)
    _STORED.put(entry.sha256, data)
    return entry


def stored_bytes(entry: ObjectEntry) -> bytes | None:
    """The bytes kept for ``entry`` (:func:`remember_stored`), or None when this process
    has not kept them (another process) or no longer has them."""
    return _STORED.get(entry.sha256)


def _stored_bytes(storage: Storage, key: str, stored: ObjectEntry | None) -> bytes | None:
    """The bytes the run's fetch left at ``key``, if this process still has them (recorded
    as read when ``storage`` records); None otherwise."""
    if stored is None or stored.key != key:
        return None
    data = stored_bytes(stored)
    if data is not None and isinstance(storage, RecordingStorage):
        storage.remember(key, data)
    return data


def read_validated(
    storage: Storage,
    item: WatchItem,
    as_of: date,
    *,
    price_column: str,
    min_rows: int,
    need_explanation: str | None = None,
    stored: ObjectEntry | None = None,
) -> tuple[pd.Series, ValidationReport]:
    """The ticker's stored history through ``as_of``, validated where the model uses it
    (:func:`closecast.inputs.validation.usable_series`): the bytes this run's fetch stored
    (``stored``, the fetch summary's entry) when this process keeps them, else one read of
    the stored object; the parse and validation only for bytes not seen before in this
    process.

    Returns:
        The prices (a copy the caller may change) and the validation report.

    Raises:
        CorruptPriceFileError: The stored object is not a readable price file.
        PriceValidationError: Too few usable prices (never kept: the message names this
            caller's ``need_explanation``).
    """
    store = PriceStore(storage)
    data = _stored_bytes(storage, store.key(item.symbol), stored)
    if data is None:
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
        _KEPT.put(key, found)
    series, report = found
    if len(series) < min_rows:
        validated(min_rows)  # raises, naming the rows it dropped and this caller's need
    return series.copy(), report


def forget_validated() -> None:
    """Drop every kept history and stored bytes (tests; memory)."""
    _KEPT.clear()
    _STORED.clear()
