"""fetch_and_store on a real Parquet store: incremental fetches, Yahoo re-basing (a recorded
split and dividend of AAPL), rejected rows, and unreadable price files rebuilt."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.inputs.price_store import PriceStore
from closecast.inputs.validation import validate_prices
from closecast.inputs.watchlist import WatchItem
from closecast.pipeline.fetch import detect_rebase, fetch_and_store
from closecast.sources import SampleSource, YahooSource
from closecast.storage import Storage, open_storage

AAPL = WatchItem("AAPL", "stock")
SPLIT_DAY = pd.Timestamp("2020-08-31")  # AAPL's 4:1 split
EX_DIVIDEND_DAY = pd.Timestamp("2020-11-06")  # AAPL's $0.205 dividend
DIVIDEND = 0.205


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    return open_storage(str(tmp_path / "store"))


def yahoo() -> YahooSource:
    # Long after every date used here, so no bar counts as unfinished.
    return YahooSource(clock=lambda: datetime(2021, 1, 4, tzinfo=UTC))


def aapl_until(end: str) -> pd.DataFrame:
    """AAPL as Yahoo serves it today (after the split and the dividend), up to ``end``."""
    return SampleSource().fetch("AAPL", start=None, end=date.fromisoformat(end))


def as_served_before_the_split(history: pd.DataFrame) -> pd.DataFrame:
    """What Yahoo served before 2020-08-31: every earlier price 4x, volume / 4."""
    before = history.copy()
    earlier = before["date"] < SPLIT_DAY
    before.loc[earlier, ["open", "high", "low", "close", "adj_close"]] *= 4
    before.loc[earlier, "volume"] /= 4
    return before


def as_served_before_the_dividend(history: pd.DataFrame) -> pd.DataFrame:
    """What Yahoo served before 2020-11-06: adj_close of earlier days not yet discounted."""
    before = history.copy()
    last_close = before.loc[before["date"] < EX_DIVIDEND_DAY, "close"].iloc[-1]
    earlier = before["date"] < EX_DIVIDEND_DAY
    before.loc[earlier, "adj_close"] /= 1 - DIVIDEND / last_close
    return before


def stored_adj_close(storage: Storage) -> pd.Series:
    return PriceStore(storage).read("AAPL").set_index("date")["adj_close"]


def test_first_fetch_stores_the_full_history_then_reruns_fetch_nothing(storage: Storage):
    as_of = date(2020, 12, 11)

    first = fetch_and_store(AAPL, as_of, storage, SampleSource())
    again = fetch_and_store(AAPL, as_of, storage, SampleSource())

    assert (first.n_new, first.n_total, first.changed, first.full_history) == (
        10086,
        10086,
        True,
        True,
    )
    assert first.report is not None and first.report.null_rows_dropped == 1
    assert (again.n_new, again.changed, again.report) == (0, False, None)


def test_incremental_fetch_reads_only_the_tail(storage, fake_yfinance, history_from):
    fake_yfinance.outcomes["AAPL"] = history_from(aapl_until("2020-12-04"))
    fetch_and_store(AAPL, date(2020, 12, 4), storage, yahoo())
    fake_yfinance.outcomes["AAPL"] = history_from(aapl_until("2020-12-11"))

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert fake_yfinance.calls[1][1]["start"] == "2020-11-29"
    assert (summary.n_new, summary.n_revised, summary.rebased) == (5, 0, False)
    assert len(fake_yfinance.calls) == 2


def test_a_split_refetches_and_replaces_the_history(storage, fake_yfinance, history_from):
    # 2020-08-28: the store is filled as Yahoo served AAPL before its 4:1 split.
    fake_yfinance.outcomes["AAPL"] = history_from(
        as_served_before_the_split(aapl_until("2020-08-28"))
    )
    fetch_and_store(AAPL, date(2020, 8, 28), storage, yahoo())
    assert stored_adj_close(storage)["2020-08-28"] == pytest.approx(4 * 124.592552)
    # A week later Yahoo serves the whole history re-based.
    fake_yfinance.outcomes["AAPL"] = history_from(aapl_until("2020-09-04"))

    summary = fetch_and_store(AAPL, date(2020, 9, 4), storage, yahoo())

    asked = [kwargs.get("start", kwargs.get("period")) for _, kwargs in fake_yfinance.calls]
    assert asked == ["max", "2020-08-23", "max"]
    assert summary.rebased and summary.full_history
    assert summary.rebase is not None
    assert summary.rebase.kind == "split"
    assert summary.rebase.factor == pytest.approx(0.25)
    assert any("re-based" in w and "split" in w for w in summary.warnings)
    adj = stored_adj_close(storage)
    assert adj["2020-08-28"] == pytest.approx(124.592552)
    assert adj[adj.index.year == 2020].pct_change().min() > -0.2  # no 75% drop on the split
    expected = validate_prices(
        aapl_until("2020-09-04"), ticker="AAPL", asset_class="stock", as_of=date(2020, 9, 4)
    )
    pd.testing.assert_frame_equal(PriceStore(storage).read("AAPL"), expected.frame)


def test_without_rebase_detection_the_split_would_drop_75_percent(storage, history_from):
    # The failure the detection prevents: the plain merge of the same two fetches.
    store = PriceStore(storage)
    store.merge("AAPL", as_served_before_the_split(aapl_until("2020-08-28")))
    store.merge("AAPL", aapl_until("2020-09-04").iloc[-10:])

    adj = stored_adj_close(storage)
    assert adj[adj.index.year == 2020].pct_change().min() < -0.7


def test_a_dividend_rebase_of_adj_close_refetches(storage, fake_yfinance, history_from):
    fake_yfinance.outcomes["AAPL"] = history_from(
        as_served_before_the_dividend(aapl_until("2020-11-05"))
    )
    fetch_and_store(AAPL, date(2020, 11, 5), storage, yahoo())
    fake_yfinance.outcomes["AAPL"] = history_from(aapl_until("2020-11-13"))

    summary = fetch_and_store(AAPL, date(2020, 11, 13), storage, yahoo())

    assert summary.rebase is not None
    assert summary.rebase.kind == "dividend"
    assert summary.rebase.factor == pytest.approx(1 - DIVIDEND / 119.029999, rel=1e-6)
    assert summary.n_revised > 9000  # every earlier adj_close moved
    assert stored_adj_close(storage)["2020-11-05"] == pytest.approx(118.824997, rel=1e-6)


def test_a_revised_last_bar_is_a_revision_not_a_rebase(storage, fake_yfinance, history_from):
    fake_yfinance.outcomes["AAPL"] = history_from(aapl_until("2020-12-04"))
    fetch_and_store(AAPL, date(2020, 12, 4), storage, yahoo())
    revised = aapl_until("2020-12-11")
    revised.loc[revised["date"] == "2020-12-04", ["close", "adj_close"]] *= 1.01
    fake_yfinance.outcomes["AAPL"] = history_from(revised)

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert not summary.rebased
    assert (summary.n_new, summary.n_revised) == (5, 1)
    assert len(fake_yfinance.calls) == 2


def test_a_stored_spike_is_removed_once_the_next_day_exposes_it(
    storage, fake_yfinance, history_from
):
    # A 10x bad tick on the last day is below the edge bar, so it is stored at first ...
    spiky = aapl_until("2020-12-11")
    spiky.loc[spiky["date"] == "2020-12-04", ["close", "adj_close"]] *= 10
    fake_yfinance.outcomes["AAPL"] = history_from(spiky.loc[spiky["date"] <= "2020-12-04"])
    first = fetch_and_store(AAPL, date(2020, 12, 4), storage, yahoo())
    assert first.report is not None and first.report.outliers_rejected == 0
    # ... and the next fetch re-reads it with the day after: a spike, removed from the store.
    fake_yfinance.outcomes["AAPL"] = history_from(spiky)

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert summary.report is not None and summary.report.outliers_rejected == 1
    assert summary.n_removed == 1
    assert pd.Timestamp("2020-12-04") not in stored_adj_close(storage).index


def test_a_1000x_spike_never_reaches_the_store(storage, fake_yfinance, history_from):
    spiky = aapl_until("2020-12-11")
    spiky.loc[spiky["date"] == "2020-03-16", ["close", "adj_close"]] *= 1000
    fake_yfinance.outcomes["AAPL"] = history_from(spiky)

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert summary.report is not None and summary.report.outliers_rejected == 1
    assert pd.Timestamp("2020-03-16") not in stored_adj_close(storage).index
    assert pd.Timestamp("2020-03-13") in stored_adj_close(storage).index


def test_a_conflicting_duplicate_date_never_reaches_the_store(storage, fake_yfinance, history_from):
    # The README promises such dates are kept out; the later row's price used to be stored.
    history = aapl_until("2020-12-11")
    clash = history.loc[history["date"] == "2020-12-09"].copy()
    clash[["close", "adj_close"]] *= 1.5
    fake_yfinance.outcomes["AAPL"] = history_from(pd.concat([history, clash]))

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert summary.report is not None and summary.report.conflicting_duplicates == 1
    stored = stored_adj_close(storage)
    assert pd.Timestamp("2020-12-09") not in stored.index
    assert pd.Timestamp("2020-12-08") in stored.index
    assert pd.Timestamp("2020-12-10") in stored.index


def test_years_of_open_zero_are_stored_with_repaired_cells(storage, fake_yfinance, history_from):
    junk = aapl_until("2020-12-11")
    early = junk["date"] < "1990-01-01"
    junk.loc[early, "open"] = 0.0
    fake_yfinance.outcomes["AAPL"] = history_from(junk)

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, yahoo())

    assert summary.n_total == 10086
    assert summary.report is not None
    assert summary.report.repaired_cells == int((early & junk["close"].notna()).sum())
    stored = PriceStore(storage).read("AAPL")
    assert stored.loc[stored["date"] < "1990-01-01", "open"].isna().all()


@pytest.mark.parametrize("garbage", [b"\x00\x01garbage" * 50, b"PAR1"])
def test_an_unreadable_price_file_is_rebuilt_from_the_source(
    storage: Storage, tmp_path: Path, garbage: bytes
):
    fetch_and_store(AAPL, date(2020, 12, 4), storage, SampleSource())
    key = "prices/ticker=AAPL/prices.parquet"
    (tmp_path / "store" / key).write_bytes(garbage)

    summary = fetch_and_store(AAPL, date(2020, 12, 11), storage, SampleSource())

    assert summary.rebuilt and summary.full_history
    assert summary.n_total == 10086
    assert any(key in w and "rebuilt" in w for w in summary.warnings)
    assert PriceStore(storage).last_date("AAPL") == date(2020, 12, 11)


def test_detect_rebase_needs_a_shared_factor():
    history = aapl_until("2020-12-11").dropna()
    stored = history.iloc[:-3].reset_index(drop=True)
    tail = history.iloc[-8:].reset_index(drop=True)

    def scaled(factor: float, rows: Callable[[pd.Series], pd.Series] | None = None):
        out = tail.copy()
        mask = np.ones(len(out), dtype=bool) if rows is None else rows(out["date"])
        out.loc[mask, "adj_close"] *= factor
        return out

    assert detect_rebase(stored, tail) is None
    assert detect_rebase(stored, scaled(1.00001)) is None  # within Yahoo's rounding
    one_row = scaled(0.99, lambda d: d == stored["date"].iloc[-1])
    assert detect_rebase(stored, one_row) is None  # a revised bar
    found = detect_rebase(stored, scaled(0.99))
    assert found is not None
    assert (found.kind, found.rows) == ("dividend", 5)
    assert found.factor == pytest.approx(0.99)
    assert detect_rebase(stored.iloc[:0], tail) is None  # nothing to compare with
