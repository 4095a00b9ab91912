"""The price store: one Parquet file per ticker, merged idempotently.

Layout (Hive-style, so ``pyarrow.dataset`` or DuckDB can read the whole store as one table
partitioned by ticker)::

    prices/ticker=<TICKER>/prices.parquet

Each file holds the full daily history of one ticker with
:data:`closecast.inputs.schema.PRICE_SCHEMA`,
sorted by date, one row per date. Merging a fetch replaces the stored rows on the fetched
dates (Yahoo revises recent bars) and adds the new ones; a fetch that changes nothing does not
rewrite the object.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from closecast.inputs.schema import PRICE_COLUMNS, PRICE_SCHEMA, in_price_contract
from closecast.outputs import catalog
from closecast.sources.base import empty_price_frame, normalize_ticker, to_price_frame
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.io import write_parquet


class CorruptPriceFileError(ValueError):
    """A stored price file that cannot be read as the price schema (garbage, truncated, foreign).

    Not retryable: the fetch rebuilds the file from the source's full history.

    Attributes:
        key: The file's storage key.
    """

    def __init__(self, key: str, where: str, reason: str) -> None:
        super().__init__(f"unreadable price file {key} in {where}: {reason}")
        self.key = key


@dataclass(frozen=True)
class MergeResult:
    """What a merge did.

    Attributes:
        n_new: Dates that were not stored before.
        n_revised: Stored dates whose values the fetch changed.
        n_total: Rows stored after the merge.
        changed: Whether the object was written (``n_new + n_revised + n_removed > 0``).
        n_removed: Stored dates removed (rejected by a later fetch, or absent from a
            replacing history).
    """

    n_new: int
    n_revised: int
    n_total: int
    changed: bool
    n_removed: int = 0


def prices_key(ticker: str) -> str:
    """The storage key of a ticker's prices (``closecast.outputs.catalog``), symbol normalised."""
    return catalog.prices_key(normalize_ticker(ticker))


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """A price frame as an Arrow table with exactly :data:`PRICE_SCHEMA`."""
    return _table(_columns(to_price_frame(frame)))


def _table(columns: Mapping[str, np.ndarray]) -> pa.Table:
    """Price columns in the contract's dtypes as an Arrow table with :data:`PRICE_SCHEMA`."""
    # datetime64[ns] midnight -> datetime64[D] -> date32: a lossless cast Arrow accepts.
    arrays = [pa.array(columns["date"].astype("datetime64[D]"), type=pa.date32())]
    arrays += [pa.array(columns[name], type=pa.float64()) for name in PRICE_COLUMNS[1:]]
    return pa.Table.from_arrays(arrays, schema=PRICE_SCHEMA)


def table_to_frame(table: pa.Table) -> pd.DataFrame:
    """A stored table as a price frame (``date`` datetime64[ns], floats float64)."""
    prices = table.select(list(PRICE_COLUMNS))
    if prices.schema.types == PRICE_SCHEMA.types:
        # The store's own schema: straight to NumPy, without pandas' generic conversions
        # (about 25 ms a history before, every history read of every run).
        arrays = {"date": prices.column("date").to_numpy().astype("datetime64[ns]")}
        for name in PRICE_COLUMNS[1:]:
            arrays[name] = prices.column(name).to_numpy()
        return pd.DataFrame(arrays)
    return to_price_frame(prices.to_pandas(date_as_object=False))  # a foreign file's types


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    # Sorted, one row per date (the last given wins, as in validation).
    prices = to_price_frame(frame)
    days = prices["date"].to_numpy().view("int64")
    if (days[1:] > days[:-1]).all():  # a validated or stored frame: already so
        return prices
    prices = prices.sort_values("date", kind="mergesort")
    return prices.drop_duplicates("date", keep="last").reset_index(drop=True)


def _strictly_increasing(dates: np.ndarray) -> bool:
    """Whether datetime64 dates are sorted and unique, none missing (NaT)."""
    days = dates.view("int64")
    return bool((days[1:] > days[:-1]).all()) and not np.isnat(dates[:1]).any()


def _columns(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """A price frame's columns as arrays (the merge works on these, not on pandas)."""
    return {name: frame[name].to_numpy() for name in PRICE_COLUMNS}


def _values(columns: Mapping[str, np.ndarray]) -> np.ndarray:
    return np.column_stack([columns[name] for name in PRICE_COLUMNS[1:]]).astype("float64")


def _count_revised(old: Mapping[str, np.ndarray], new: Mapping[str, np.ndarray]) -> tuple[int, int]:
    """Dates two canonical histories share, and how many of them carry other values."""
    _, at_old, at_new = np.intersect1d(
        old["date"].view("int64"), new["date"].view("int64"), assume_unique=True,
        return_indices=True,
    )  # fmt: skip
    a, b = _values(old)[at_old], _values(new)[at_new]
    # Exact comparison is right: float64 round-trips through Parquet unchanged; NaN equals NaN.
    same = ((a == b) | (np.isnan(a) & np.isnan(b))).all(axis=1)
    return len(at_old), int((~same).sum())


class PriceStore:
    """Daily price histories in a :class:`closecast.storage.Storage`, one file per ticker.

    Args:
        storage: Where the files live (local directory or S3 bucket).
    """

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def key(self, ticker: str) -> str:
        """The storage key of ``ticker``'s file."""
        return prices_key(ticker)

    def read(self, ticker: str, as_of: date | None = None) -> pd.DataFrame:
        """The stored history of ``ticker``, rows up to ``as_of`` (all if None).

        Returns:
            A price frame sorted by date; empty (with the right columns) if nothing is stored.

        Raises:
            CorruptPriceFileError: The stored object is not a readable price file.
        """
        try:
            data = self.storage.read_bytes(self.key(ticker))
        except ObjectNotFoundError:
            return empty_price_frame()
        return self.parse(ticker, data, as_of)

    def parse(self, ticker: str, data: bytes, as_of: date | None = None) -> pd.DataFrame:
        """``ticker``'s stored file, already read as ``data``, as :meth:`read` returns it.

        Raises:
            CorruptPriceFileError: ``data`` is not a readable price file.
        """
        frame = _parse_price_file(data, self.key(ticker), self.storage.describe())
        if as_of is not None:
            frame = frame.loc[frame["date"] <= pd.Timestamp(as_of)].reset_index(drop=True)
        return frame

    def last_date(self, ticker: str) -> date | None:
        """The last stored date of ``ticker``, or None if nothing is stored."""
        frame = self.read(ticker)
        if frame.empty:
            return None
        return frame["date"].iloc[-1].date()

    def merge(
        self,
        ticker: str,
        frame: pd.DataFrame,
        *,
        remove: Iterable[date] = (),
        stored: pd.DataFrame | None = None,
    ) -> MergeResult:
        """Merge a fetched (validated) frame into the stored history.

        Rows on dates already stored replace them (revisions); other rows are added; stored
        rows on ``remove`` dates are deleted. If nothing changes, nothing is written, so
        merging the same fetch twice is a no-op.

        Args:
            ticker: The ticker.
            frame: A price frame, normally ``validate_prices(...).frame``.
            remove: Dates the fetch rejected as wrong (``ValidatedPrices.rejected_dates``),
                so an earlier stored copy of them goes too.
            stored: The stored history as just read under the ticker's lease (read again
                when None): one request less.

        Returns:
            Counts of new, revised and removed rows, the total, and whether the file was
            written.

        Raises:
            CorruptPriceFileError: The stored file is unreadable (rebuild it with
                :meth:`replace`).
        """
        if stored is None:
            stored = self.read(ticker)
        elif not in_price_contract(stored):
            stored = to_price_frame(stored)
        old, new = _columns(stored), _columns(_canonical(frame))
        old_days, new_days = old["date"].view("int64"), new["date"].view("int64")
        replaced = np.isin(old_days, new_days)
        rejected = np.array([pd.Timestamp(day).value for day in remove], dtype="int64")
        removed = np.isin(old_days, rejected) & ~replaced
        n_removed = int(removed.sum())
        n_common, n_revised = _count_revised(old, new)
        n_new = len(new_days) - n_common
        if n_new == 0 and n_revised == 0 and n_removed == 0:
            return MergeResult(n_new=0, n_revised=0, n_total=len(old_days), changed=False)

        # The kept stored rows and the incoming ones have no date in common: merged in
        # date order (a stable sort of two sorted runs), one row per date.
        keep = ~replaced & ~removed
        order = np.argsort(np.concatenate([old["date"][keep], new["date"]]), kind="stable")
        merged = {
            name: np.concatenate([old[name][keep], new[name]])[order] for name in PRICE_COLUMNS
        }
        self._write(ticker, _table(merged))
        return MergeResult(
            n_new=n_new,
            n_revised=n_revised,
            n_total=len(order),
            changed=True,
            n_removed=n_removed,
        )

    def replace(
        self, ticker: str, frame: pd.DataFrame, *, previous: pd.DataFrame | None = None
    ) -> MergeResult:
        """Store ``frame`` as the whole history of ``ticker``, dropping what was there.

        Args:
            ticker: The ticker.
            frame: The full validated history.
            previous: The history being replaced, to count changes against; read from the
                store when None (an unreadable file counts as empty).

        Returns:
            Counts against the previous history; the file is always written.
        """
        if previous is None:
            try:
                previous = self.read(ticker)
            except CorruptPriceFileError:
                previous = empty_price_frame()
        history = _columns(_canonical(frame))
        old = _columns(_canonical(previous))
        n_common, n_revised = _count_revised(old, history)
        self._write(ticker, _table(history))
        return MergeResult(
            n_new=len(history["date"]) - n_common,
            n_revised=n_revised,
            n_total=len(history["date"]),
            changed=True,
            n_removed=len(old["date"]) - n_common,
        )

    def _write(self, ticker: str, table: pa.Table) -> None:
        write_parquet(self.storage, self.key(ticker), table, schema=PRICE_SCHEMA)


def _parse_price_file(data: bytes, key: str, where: str) -> pd.DataFrame:
    """A stored price file's bytes as a price frame, or CorruptPriceFileError naming the key."""
    try:
        # One file, not a dataset: ParquetFile reads it without read_table's dataset set-up.
        table = pq.ParquetFile(pa.BufferReader(data)).read()
        frame = table_to_frame(table)
    except (pa.ArrowException, OSError, KeyError, ValueError, TypeError) as exc:
        raise CorruptPriceFileError(key, where, f"{type(exc).__name__}: {exc}") from exc
    if not _strictly_increasing(frame["date"].to_numpy()):
        raise CorruptPriceFileError(key, where, "dates are not sorted and unique")
    return frame
