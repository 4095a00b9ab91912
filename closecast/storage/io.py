"""Typed helpers to store Parquet tables, JSON documents and figures in a Storage."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import io
import json
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from closecast.storage.errors import CorruptObjectError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from closecast.storage.base import Storage

PARQUET_CONTENT_TYPE = "application/vnd.apache.parquet"


def write_parquet(
    storage: Storage,
    key: str,
    table: pa.Table | pd.DataFrame,
    schema: pa.Schema | None = None,
) -> None:
    """Write ``table`` as Parquet (zstd) to ``key``, atomically.

    Args:
        storage: Where to write.
        key: The object key, e.g. ``prices/ticker=AAPL/prices.parquet``.
        table: An Arrow table or a DataFrame (its index is not stored).
        schema: If given, the table is converted to exactly this schema (columns
            selected and cast in schema order); a mismatch raises.
    """
    storage.write_bytes(key, to_parquet_bytes(table, schema), content_type=PARQUET_CONTENT_TYPE)


def to_parquet_bytes(table: pa.Table | pd.DataFrame, schema: pa.Schema | None = None) -> bytes:
    """Serialise ``table`` (conformed to ``schema`` if given) to Parquet bytes."""
    arrow = _to_arrow(table, schema)
    buffer = io.BytesIO()
    pq.write_table(arrow, buffer, compression="zstd")
    return buffer.getvalue()


def _to_arrow(table: pa.Table | pd.DataFrame, schema: pa.Schema | None) -> pa.Table:
    if isinstance(table, pd.DataFrame):
        if schema is None:
            return pa.Table.from_pandas(table, preserve_index=False)
        table = pa.Table.from_pandas(table[schema.names], preserve_index=False)
    if schema is None:
        return table
    return table.select(schema.names).cast(schema)


def read_parquet(storage: Storage, key: str) -> pa.Table:
    """Read the Parquet object at ``key`` into an Arrow table.

    Raises:
        ObjectNotFoundError: If there is no such object.
        CorruptObjectError: If the object is not a readable Parquet file (names the key).
    """
    data = storage.read_bytes(key)
    try:
        # One file: read as such, not through the dataset API pq.read_table goes through
        # (same table, schema and metadata, for about half the CPU: a run reads a few of
        # these per ticker).
        return pq.ParquetFile(pa.BufferReader(data)).read()
    except (pa.ArrowException, OSError, ValueError) as exc:
        # ArrowInvalid is also a ValueError, a truncated file an OSError.
        raise CorruptObjectError(key, storage.describe(), f"not a Parquet file ({exc})") from exc


def write_json(storage: Storage, key: str, obj: Any) -> None:
    """Write ``obj`` as UTF-8 JSON (sorted keys, indent 2, trailing newline), atomically.

    Dates and datetimes become ISO-8601 strings; NumPy scalars and arrays, pandas
    timestamps, paths, enums, sets and dataclasses are converted too.
    """
    storage.write_bytes(key, dumps_json(obj).encode("utf-8"), content_type="application/json")


def dumps_json(obj: Any) -> str:
    """Return ``obj`` as the JSON text :func:`write_json` stores."""
    return json.dumps(obj, sort_keys=True, indent=2, default=_json_default) + "\n"


def _json_default(value: Any) -> Any:
    """Convert values the json module does not know; raise TypeError otherwise."""
    if isinstance(value, dt.date | dt.time):  # datetime and pd.Timestamp are dates
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, PurePath):
        return value.as_posix()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot store {type(value).__name__} as JSON")


def read_json(storage: Storage, key: str) -> Any:
    """Read and parse the JSON object at ``key``.

    Raises:
        ObjectNotFoundError: If there is no such object.
        CorruptObjectError: If the object is not UTF-8 JSON (names the key).
    """
    data = storage.read_bytes(key)
    try:
        return json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise CorruptObjectError(key, storage.describe(), f"not UTF-8 text ({exc})") from exc
    except (json.JSONDecodeError, RecursionError) as exc:  # RecursionError: absurd nesting
        raise CorruptObjectError(key, storage.describe(), f"not valid JSON ({exc})") from exc


def write_figure(storage: Storage, key: str, fig: Figure, dpi: int = 100) -> None:
    """Render ``fig`` to PNG in memory and write it to ``key``, atomically.

    The figure is not closed and pyplot's global state is not touched.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    storage.write_bytes(key, buffer.getvalue(), content_type="image/png")
