"""Parquet, JSON and figure helpers on both backends."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from closecast.inputs.schema import PRICE_COLUMNS, PRICE_SCHEMA
from closecast.storage import CorruptObjectError, ObjectNotFoundError, Storage, StorageError
from closecast.storage.io import (
    read_json,
    read_parquet,
    to_parquet_bytes,
    write_figure,
    write_json,
    write_parquet,
)

matplotlib.use("Agg")


def _prices() -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "date": pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04"]),
            "open": [1.0, 2.0, 3.0],
            "high": [1.5, 2.5, 3.5],
            "low": [0.5, 1.5, 2.5],
            "close": [1.2, 2.2, 3.2],
            "adj_close": [1.1, 2.1, 3.1],
            "volume": [100.0, np.nan, 300.0],
        }
    )
    return frame.assign(extra="dropped")[[*PRICE_COLUMNS, "extra"]]


def test_parquet_round_trip_with_schema(storage: Storage) -> None:
    write_parquet(storage, "prices/ticker=AAPL/prices.parquet", _prices(), schema=PRICE_SCHEMA)
    table = read_parquet(storage, "prices/ticker=AAPL/prices.parquet")
    assert table.schema.equals(PRICE_SCHEMA)
    assert table.column("date").to_pylist()[0] == dt.date(2024, 1, 2)
    # A missing volume is stored as null and comes back to pandas as NaN.
    assert table.to_pandas()["volume"].isna().tolist() == [False, True, False]


def test_parquet_round_trip_of_a_table_without_schema(storage: Storage) -> None:
    table = pa.table({"a": [1, 2], "b": ["x", "y"]})
    write_parquet(storage, "t.parquet", table)
    assert read_parquet(storage, "t.parquet").equals(table)


def test_parquet_is_read_as_pyarrow_reads_the_file_schema_and_metadata_too(
    storage: Storage,
) -> None:
    frame = _prices().drop(columns="extra").assign(ticker="AAPL", n=[1, 2, 3])
    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(
        {b"digest": b"abc", **pa.Table.from_pandas(frame).schema.metadata}
    )
    write_parquet(storage, "t.parquet", table)
    read = read_parquet(storage, "t.parquet")
    expected = pq.read_table(pa.BufferReader(storage.read_bytes("t.parquet")))
    assert read.equals(expected) and read.schema.equals(expected.schema, check_metadata=True)
    assert read.schema.metadata[b"digest"] == b"abc"
    pd.testing.assert_frame_equal(read.to_pandas(), frame, check_exact=True)


def test_parquet_schema_mismatch_raises_and_writes_nothing(storage: Storage) -> None:
    with pytest.raises((KeyError, pa.ArrowInvalid)):
        write_parquet(storage, "bad.parquet", pd.DataFrame({"date": [1]}), schema=PRICE_SCHEMA)
    assert storage.list_keys() == []


def test_json_round_trip_with_dates_and_numpy(storage: Storage) -> None:
    obj = {
        "ticker": "AAPL",
        "as_of": dt.date(2024, 1, 2),
        "run_at": dt.datetime(2024, 1, 2, 21, 30, tzinfo=dt.UTC),
        "stamp": pd.Timestamp("2024-01-03"),
        "rmse": np.float64(1.25),
        "n": np.int64(3),
        "values": np.array([1.0, 2.0]),
        "path": Path("a/b"),
    }
    write_json(storage, "reports/AAPL.json", obj)
    text = storage.read_bytes("reports/AAPL.json").decode()
    assert text.endswith("}\n")
    assert text.index('"as_of"') < text.index('"n"') < text.index('"ticker"')  # sorted keys
    assert '\n  "as_of": "2024-01-02",' in text  # indent 2
    assert read_json(storage, "reports/AAPL.json") == {
        "ticker": "AAPL",
        "as_of": "2024-01-02",
        "run_at": "2024-01-02T21:30:00+00:00",
        "stamp": "2024-01-03T00:00:00",
        "rmse": 1.25,
        "n": 3,
        "values": [1.0, 2.0],
        "path": "a/b",
    }


def test_json_rejects_unknown_types(storage: Storage) -> None:
    with pytest.raises(TypeError, match="object"):
        write_json(storage, "x.json", {"x": object()})
    assert storage.list_keys() == []


def test_read_missing_json_raises_object_not_found(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError):
        read_json(storage, "nope.json")


def test_write_figure_stores_a_png_and_leaves_the_figure_open(storage: Storage) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1))
    fig.add_subplot().plot([1, 2, 3])
    write_figure(storage, "plots/AAPL.png", fig, dpi=50)
    data = storage.read_bytes("plots/AAPL.png")
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    write_figure(storage, "plots/AAPL-again.png", fig)  # still usable afterwards
    assert storage.exists("plots/AAPL-again.png")


# -- corrupt objects name the key and the root ---------------------------------------------


@pytest.mark.parametrize(
    ("key", "content", "reader", "detail"),
    [
        ("models/AAPL/champion.json", b'{"version": "v0001",', read_json, "not valid JSON"),
        ("models/AAPL/champion.json", b"\xff\xfe\x00{}", read_json, "not UTF-8"),
        ("models/AAPL/champion.json", b"[" * 100_000, read_json, "not valid JSON"),
        ("prices/ticker=AAPL/prices.parquet", b"PAR1 not really", read_parquet, "not a Parquet"),
        ("prices/ticker=AAPL/prices.parquet", b"", read_parquet, "not a Parquet"),
    ],
)
def test_corrupt_objects_raise_an_error_naming_key_and_root(
    storage: Storage, key: str, content: bytes, reader, detail: str
) -> None:
    storage.write_bytes(key, content)
    with pytest.raises(CorruptObjectError, match=detail) as caught:
        reader(storage, key)
    assert caught.value.key == key
    assert key in str(caught.value)
    assert storage.describe() in str(caught.value)
    assert isinstance(caught.value, StorageError)
    assert isinstance(caught.value, ValueError)
    assert pickle.loads(pickle.dumps(caught.value)).key == key  # crosses process runners


def test_a_truncated_parquet_file_is_corrupt(storage: Storage) -> None:
    data = to_parquet_bytes(_prices(), schema=PRICE_SCHEMA)
    storage.write_bytes("p.parquet", data[: len(data) // 2])
    with pytest.raises(CorruptObjectError, match=r"'p\.parquet'"):
        read_parquet(storage, "p.parquet")
