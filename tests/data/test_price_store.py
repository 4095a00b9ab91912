"""The Parquet price store on local storage."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from closecast.inputs.price_store import CorruptPriceFileError, PriceStore, prices_key
from closecast.inputs.schema import PRICE_COLUMNS, PRICE_SCHEMA
from closecast.inputs.validation import validate_prices
from closecast.sources import SampleSource
from closecast.storage import open_storage


def prices(dates: list[str], closes: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "date": pd.to_datetime(dates).astype("datetime64[ns]"),
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "adj_close": closes,
            "volume": [1000.0] * len(dates),
        }
    )


@pytest.fixture
def store(tmp_path: Path) -> PriceStore:
    return PriceStore(open_storage(str(tmp_path)))


def file_of(tmp_path: Path, ticker: str) -> Path:
    return tmp_path / "prices" / f"ticker={ticker}" / "prices.parquet"


def test_key_is_hive_style():
    assert prices_key("aapl") == "prices/ticker=AAPL/prices.parquet"
    assert prices_key("BTC-USD") == "prices/ticker=BTC-USD/prices.parquet"


def test_nothing_stored_reads_empty_with_columns(store: PriceStore):
    frame = store.read("AAPL")

    assert frame.empty
    assert list(frame.columns) == list(PRICE_COLUMNS)
    assert frame["date"].dtype == "datetime64[ns]"
    assert store.last_date("AAPL") is None


def test_first_merge_writes_the_schema(store: PriceStore, tmp_path: Path):
    result = store.merge("AAPL", prices(["2020-12-09", "2020-12-10"], [1.0, 2.0]))

    assert (result.n_new, result.n_revised, result.n_total, result.changed) == (2, 0, 2, True)
    table = pq.read_table(file_of(tmp_path, "AAPL"))
    assert table.schema.equals(PRICE_SCHEMA)
    assert store.last_date("AAPL") == date(2020, 12, 10)


def test_round_trip_keeps_values_and_dtypes(store: PriceStore):
    original = prices(["2020-12-09", "2020-12-10"], [1.25, 2.5])
    original.loc[0, "open"] = np.nan

    store.merge("AAPL", original)

    pd.testing.assert_frame_equal(store.read("AAPL"), original)


def test_same_fetch_twice_changes_nothing_and_does_not_rewrite(store: PriceStore, tmp_path: Path):
    fetch = prices(["2020-12-09", "2020-12-10"], [1.0, 2.0])
    store.merge("AAPL", fetch)
    path = file_of(tmp_path, "AAPL")
    before = path.stat().st_mtime_ns, path.stat().st_ino

    result = store.merge("AAPL", fetch.iloc[::-1])  # order does not matter

    assert (result.n_new, result.n_revised, result.n_total, result.changed) == (0, 0, 2, False)
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before


def test_overlap_revisions_replace_old_values_and_new_rows_are_added(store: PriceStore):
    store.merge("AAPL", prices(["2020-12-08", "2020-12-09", "2020-12-10"], [1.0, 2.0, 3.0]))

    result = store.merge(
        "AAPL", prices(["2020-12-09", "2020-12-10", "2020-12-11"], [2.0, 3.5, 4.0])
    )

    assert (result.n_new, result.n_revised, result.n_total, result.changed) == (1, 1, 4, True)
    frame = store.read("AAPL")
    assert frame["close"].tolist() == [1.0, 2.0, 3.5, 4.0]
    assert frame["date"].is_monotonic_increasing


def test_revision_to_nan_counts(store: PriceStore):
    store.merge("AAPL", prices(["2020-12-10"], [3.0]))
    revised = prices(["2020-12-10"], [3.0])
    revised.loc[0, "volume"] = np.nan

    assert store.merge("AAPL", revised).n_revised == 1


def test_read_as_of(store: PriceStore):
    store.merge("AAPL", prices(["2020-12-09", "2020-12-10", "2020-12-11"], [1.0, 2.0, 3.0]))

    frame = store.read("AAPL", as_of=date(2020, 12, 10))

    assert frame["date"].dt.date.tolist() == [date(2020, 12, 9), date(2020, 12, 10)]
    assert store.read("AAPL", as_of=date(2020, 1, 1)).empty


def test_empty_merge_is_a_no_op(store: PriceStore):
    result = store.merge("AAPL", prices([], []))

    assert result.changed is False
    assert result.n_total == 0


def test_tickers_are_separate_files(store: PriceStore, tmp_path: Path):
    store.merge("AAPL", prices(["2020-12-10"], [1.0]))
    store.merge("btc-usd", prices(["2020-12-12"], [2.0]))

    assert file_of(tmp_path, "AAPL").is_file()
    assert file_of(tmp_path, "BTC-USD").is_file()
    assert store.last_date("BTC-USD") == date(2020, 12, 12)


def test_sample_history_validated_then_stored(store: PriceStore):
    raw = SampleSource().fetch("GOOG", start=None, end=date(2020, 12, 11))
    checked = validate_prices(
        raw, ticker="GOOG", asset_class="stock", as_of=date(2020, 12, 11), min_rows=290
    )

    first = store.merge("GOOG", checked.frame)
    again = store.merge("GOOG", checked.frame)

    assert first.n_new == 4109
    assert again.changed is False
    pd.testing.assert_frame_equal(store.read("GOOG"), checked.frame)


# --- unreadable files, removals, replacement ---------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"\x00garbage\xff" * 10,
        b"",
        b"PAR1 truncated",
    ],
)
def test_unreadable_file_raises_an_error_naming_the_key(
    store: PriceStore, tmp_path: Path, content: bytes
):
    store.merge("AAPL", prices(["2020-12-10"], [1.0]))
    file_of(tmp_path, "AAPL").write_bytes(content)

    with pytest.raises(
        CorruptPriceFileError, match=r"prices/ticker=AAPL/prices\.parquet"
    ) as caught:
        store.read("AAPL")

    assert caught.value.key == "prices/ticker=AAPL/prices.parquet"
    with pytest.raises(CorruptPriceFileError):
        store.last_date("AAPL")
    with pytest.raises(CorruptPriceFileError):
        store.merge("AAPL", prices(["2020-12-11"], [2.0]))


def test_a_parquet_file_of_another_table_is_unreadable_as_prices(store: PriceStore, tmp_path: Path):
    path = file_of(tmp_path, "AAPL")
    path.parent.mkdir(parents=True)
    pq.write_table(pa.table({"date": ["2020-12-10"], "price": [1.0]}), path)

    with pytest.raises(
        CorruptPriceFileError, match=r"prices/ticker=AAPL/prices\.parquet.*\"open\" does not exist"
    ):
        store.read("AAPL")


@pytest.mark.parametrize(
    "days",
    [
        ["2020-12-09", "2020-12-10", "2020-12-10"],  # a date twice
        ["2020-12-10", "2020-12-09", "2020-12-11"],  # out of order
        [None, "2020-12-09", "2020-12-10"],  # a missing date (a foreign writer's null)
        ["2020-12-09", "2020-12-10", None],
    ],
)
def test_a_file_whose_dates_are_not_sorted_and_unique_is_unreadable(
    store: PriceStore, tmp_path: Path, days: list[str | None]
):
    path = file_of(tmp_path, "AAPL")
    path.parent.mkdir(parents=True)
    dates = pa.array([None if d is None else date.fromisoformat(d) for d in days], pa.date32())
    columns = {"date": dates, **{name: [1.0, 2.0, 3.0] for name in PRICE_COLUMNS[1:]}}
    pq.write_table(pa.table(columns), path)

    with pytest.raises(CorruptPriceFileError, match="dates are not sorted and unique"):
        store.read("AAPL")


def test_merge_removes_rejected_dates(store: PriceStore):
    store.merge("AAPL", prices(["2020-12-08", "2020-12-09", "2020-12-10"], [1.0, 900.0, 3.0]))

    result = store.merge(
        "AAPL", prices(["2020-12-10", "2020-12-11"], [3.0, 4.0]), remove=[date(2020, 12, 9)]
    )

    assert (result.n_new, result.n_revised, result.n_removed, result.n_total) == (1, 0, 1, 3)
    assert store.read("AAPL")["close"].tolist() == [1.0, 3.0, 4.0]
    again = store.merge("AAPL", prices(["2020-12-11"], [4.0]), remove=[date(2020, 12, 9)])
    assert again.changed is False


def test_replace_swaps_the_whole_history_and_counts_against_it(store: PriceStore):
    store.merge("AAPL", prices(["2020-12-07", "2020-12-08", "2020-12-09"], [4.0, 8.0, 12.0]))

    result = store.replace(
        "AAPL", prices(["2020-12-08", "2020-12-09", "2020-12-10"], [2.0, 12.0, 3.0])
    )

    assert (result.n_new, result.n_revised, result.n_removed, result.n_total) == (1, 1, 1, 3)
    assert store.read("AAPL")["close"].tolist() == [2.0, 12.0, 3.0]


def test_replace_rebuilds_an_unreadable_file(store: PriceStore, tmp_path: Path):
    path = file_of(tmp_path, "AAPL")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not parquet")

    result = store.replace("AAPL", prices(["2020-12-10"], [3.0]))

    assert (result.n_new, result.n_total, result.changed) == (1, 1, True)
    assert store.read("AAPL")["close"].tolist() == [3.0]
