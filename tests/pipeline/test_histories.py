"""A ticker's validated history is parsed and validated once per process for the same
stored bytes (the pooled step's read serves the chunks), and never answered from memory
once the stored object changed; the bytes a run's fetch stored are taken from memory by its
later readers, which the run's lease on the ticker keeps current."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

import closecast.pipeline.histories as histories
from closecast.inputs.price_store import PriceStore
from closecast.inputs.validation import PriceValidationError, usable_series
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.histories import forget_validated, read_validated
from closecast.sources import SampleSource
from closecast.storage import open_storage
from closecast.storage.recording import ObjectEntry, RecordingStorage

DAY = date(2020, 12, 11)
ITEM = WatchItem("QQQ", "etf")


@pytest.fixture
def storage(tmp_path):
    forget_validated()
    storage = open_storage(str(tmp_path))
    fetch_and_store(ITEM, DAY, storage, SampleSource())
    yield storage
    forget_validated()


@pytest.fixture
def validations(monkeypatch) -> list[str]:
    """The tickers the real validation ran for."""
    ran: list[str] = []

    def counted(frame, **kwargs):
        ran.append(kwargs["ticker"])
        return usable_series(frame, **kwargs)

    monkeypatch.setattr(histories, "usable_series", counted)
    return ran


def read(storage, as_of=DAY, min_rows=30, why=None):
    return read_validated(
        storage, ITEM, as_of, price_column="adj_close", min_rows=min_rows, need_explanation=why
    )


def test_the_same_bytes_are_validated_once_and_give_what_validation_gives(
    storage, validations
) -> None:
    expected, expected_report = usable_series(
        PriceStore(storage).read("QQQ", as_of=DAY), ticker="QQQ", asset_class="etf",
        as_of=DAY, min_rows=30, price_column="adj_close",
    )  # fmt: skip
    first, report = read(storage)
    again, again_report = read(storage)
    assert validations == ["QQQ"]
    for series in (first, again):
        pd.testing.assert_series_equal(series, expected, check_exact=True)
    assert report == again_report == expected_report

    first.iloc[-1] = -1.0  # the caller's copy: what is kept does not change
    pd.testing.assert_series_equal(read(storage)[0], expected, check_exact=True)
    # Another run date or minimum is another result.
    earlier, _ = read(storage, as_of=date(2020, 12, 1))
    assert earlier.index[-1] < expected.index[-1] and validations == ["QQQ", "QQQ"]


def test_a_changed_object_is_read_and_validated_again(storage, validations) -> None:
    before, _ = read(storage)
    stored = PriceStore(storage).read("QQQ")
    revised = stored.assign(adj_close=stored["adj_close"] * 2.0)
    PriceStore(storage).replace("QQQ", revised)
    after, _ = read(storage)
    assert validations == ["QQQ", "QQQ"]
    pd.testing.assert_series_equal(after, before * 2.0, check_exact=True)

    storage.delete(catalog.prices_key("QQQ"))
    with pytest.raises(PriceValidationError, match="no price rows"):
        read(storage)


def test_a_failed_validation_is_not_kept_and_names_each_callers_reason(storage) -> None:
    for why in ("the pooled step's", "the LSTM's"):
        with pytest.raises(PriceValidationError, match=why):
            read(storage, min_rows=100_000, why=why)


class ReadsCounted(RecordingStorage):
    """A recording storage that counts its reads."""

    def __init__(self, inner) -> None:
        super().__init__(inner)
        self.reads: list[str] = []

    def read_bytes(self, key: str) -> bytes:
        self.reads.append(key)
        return super().read_bytes(key)


def test_the_bytes_a_fetch_stored_are_read_from_memory_and_recorded(tmp_path) -> None:
    """The fetch's summary names the object it left (size, sha256); a reader given it takes
    those bytes without a request and records them (the manifest lists the digest), and
    validates exactly what a read would give. Bytes this process does not have, or an entry
    of other bytes, are read."""
    forget_validated()
    storage = open_storage(str(tmp_path))
    summary = fetch_and_store(ITEM, DAY, storage, SampleSource())
    key = catalog.prices_key("QQQ")
    assert summary.stored == ObjectEntry.of(key, storage.read_bytes(key))
    counted = ReadsCounted(storage)
    prices, report = read_validated(
        counted, ITEM, DAY, price_column="adj_close", min_rows=30, stored=summary.stored
    )
    assert counted.reads == [] and counted.seen(key) == summary.stored
    forget_validated()  # a reader in another process: no bytes kept, so it reads
    read_again, report_again = read_validated(
        counted, ITEM, DAY, price_column="adj_close", min_rows=30, stored=summary.stored
    )
    assert counted.reads == [key] and report_again == report
    pd.testing.assert_series_equal(prices, read_again, check_exact=True)

    # An entry naming other bytes than those kept (a deliberate mismatch) is never used.
    fetch_and_store(ITEM, DAY, storage, SampleSource())  # keeps the bytes again
    other = ObjectEntry(key, summary.stored.size, "0" * 64)
    read_validated(counted, ITEM, DAY, price_column="adj_close", min_rows=30, stored=other)
    assert counted.reads == [key, key]
    forget_validated()
