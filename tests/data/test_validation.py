"""Every rule of validate_prices."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from closecast.inputs.schema import PRICE_COLUMNS
from closecast.inputs.validation import (
    HISTORY_COUNTERS,
    REPORT_COUNTERS,
    PriceValidationError,
    spike_positions,
    usable_series,
    validate_prices,
)
from closecast.sources import CsvDirSource, SampleSource

AS_OF = date(2020, 12, 11)


def prices(dates: list[str], closes: list[float] | None = None) -> pd.DataFrame:
    closes = closes if closes is not None else [100.0 + i for i in range(len(dates))]
    return pd.DataFrame(
        {
            "date": dates,
            "open": closes,
            "high": [c + 1 for c in closes],
            "low": [c - 1 for c in closes],
            "close": closes,
            "adj_close": closes,
            "volume": [1000.0] * len(dates),
        }
    )


WEEK = ["2020-12-07", "2020-12-08", "2020-12-09", "2020-12-10", "2020-12-11"]


def check(frame: pd.DataFrame, **overrides):
    kwargs = {"ticker": "AAPL", "asset_class": "stock", "as_of": AS_OF, "min_rows": 1}
    kwargs.update(overrides)
    return validate_prices(frame, **kwargs)


def test_clean_frame_passes_with_the_contract_shape():
    raw = prices(WEEK)
    raw["extra"] = 1

    result = check(raw)

    assert list(result.frame.columns) == list(PRICE_COLUMNS)
    assert result.frame["date"].dtype == "datetime64[ns]"
    assert result.report.rows_in == 5
    assert result.report.rows_out == 5
    assert result.report.first_date == date(2020, 12, 7)
    assert result.report.last_date == AS_OF
    assert result.report.lag_trading_days == 0
    assert not result.report.stale
    assert result.report.warnings == ()


def test_dates_are_parsed_and_sorted():
    result = check(prices(list(reversed(WEEK))))

    assert result.frame["date"].is_monotonic_increasing
    assert result.frame["close"].iloc[0] == 104.0  # the row given for 2020-12-07


def test_duplicate_dates_last_wins_and_are_counted():
    raw = prices([*WEEK, "2020-12-09"], [11.0, 12.0, 13.0, 14.0, 15.0, 13.0])
    raw.loc[5, "volume"] = 2000.0  # the same prices, a revised volume: not a conflict

    result = check(raw)

    assert result.report.duplicates_resolved == 1
    assert result.report.conflicting_duplicates == 0
    assert len(result.frame) == 5
    assert result.frame.loc[result.frame["date"] == "2020-12-09", "volume"].item() == 2000.0


def test_rows_without_close_or_adj_close_are_dropped_and_counted():
    raw = prices(WEEK)
    raw.loc[1, "close"] = np.nan
    raw.loc[3, "adj_close"] = np.nan
    raw.loc[4, "open"] = np.nan  # tolerated: close and adj_close are there

    result = check(raw)

    assert result.report.null_rows_dropped == 2
    assert result.frame["date"].dt.day.tolist() == [7, 9, 11]


def test_yahoo_null_row_in_the_sample_is_dropped():
    raw = SampleSource().fetch("AAPL", start=None, end=date(1981, 8, 31))

    result = check(raw, as_of=date(1981, 8, 31))

    assert result.report.null_rows_dropped == 1
    assert date(1981, 8, 10) not in result.frame["date"].dt.date.tolist()


@pytest.mark.parametrize("bad", [0.0, -1.5, np.inf, -np.inf])
def test_bad_cells_outside_close_are_set_to_missing_with_the_dates(bad: float):
    # Yahoo's decades-old rows have Open = 0: the close is still good, so the row stays.
    raw = prices(WEEK)
    raw.loc[2, "low"] = bad

    result = check(raw)

    assert len(result.frame) == 5
    assert np.isnan(result.frame.loc[2, "low"])
    assert result.frame.loc[2, "close"] == 102.0
    assert result.report.repaired_cells == 1
    assert result.report.invalid_rows_dropped == 0
    assert result.rejected_dates == ()
    (warning,) = result.report.warnings
    assert warning.startswith("AAPL: 1 non-positive or non-finite low cell(s) set to missing")
    assert "2020-12-09" in warning


@pytest.mark.parametrize("column", ["close", "adj_close"])
@pytest.mark.parametrize("bad", [0.0, -1.5, np.inf])
def test_bad_close_or_adj_close_drops_the_row_with_the_dates(column: str, bad: float):
    raw = prices(WEEK)
    raw.loc[2, column] = bad

    result = check(raw)

    assert date(2020, 12, 9) not in result.frame["date"].dt.date.tolist()
    assert result.report.invalid_rows_dropped == 1
    assert result.rejected_dates == (date(2020, 12, 9),)
    assert "2020-12-09" in result.report.warnings[0]


def test_many_bad_dates_are_summarised():
    raw = prices([f"2020-11-{day:02d}" for day in range(2, 28)] + WEEK)
    raw.loc[:25, "close"] = -1.0

    result = check(raw)

    assert result.report.invalid_rows_dropped == 26
    assert result.report.rows_out == 5
    assert re.search(
        r"26 row\(s\) with .* dropped: 2020-11-02, .* and 21 more", result.report.warnings[0]
    )


def test_only_bad_prices_is_an_error_counting_them():
    raw = prices(WEEK)
    raw["adj_close"] = 0.0

    with pytest.raises(PriceValidationError, match=r"^AAPL: no usable rows .*5 non-positive"):
        check(raw)


def test_negative_volume_is_set_to_missing():
    raw = prices(WEEK)
    raw.loc[0, "volume"] = -5

    result = check(raw)

    assert np.isnan(result.frame.loc[0, "volume"])
    assert result.report.repaired_cells == 1
    assert re.search(r"negative or infinite volume.*2020-12-07", result.report.warnings[0])


def test_rows_after_as_of_are_dropped_and_counted():
    result = check(prices(WEEK), as_of=date(2020, 12, 9))

    assert result.report.future_rows_dropped == 2
    assert result.report.last_date == date(2020, 12, 9)


def test_too_short_history_names_the_lengths():
    with pytest.raises(
        PriceValidationError,
        match=r"^AAPL: 5 rows after cleaning, need at least 290 \(look-back 240 \+ test 50\)$",
    ):
        check(prices(WEEK), min_rows=290, need_explanation="look-back 240 + test 50")


def test_too_short_history_without_explanation():
    with pytest.raises(PriceValidationError, match=r"5 rows after cleaning, need at least 6$"):
        check(prices(WEEK), min_rows=6)


def test_empty_input_names_the_ticker():
    with pytest.raises(PriceValidationError, match=r"^QQQ: no price rows") as caught:
        check(prices([]), ticker="QQQ")

    assert caught.value.ticker == "QQQ"


def test_only_null_rows_is_an_error():
    raw = prices(WEEK)
    raw["close"] = np.nan

    with pytest.raises(PriceValidationError, match="no usable rows"):
        check(raw)


def test_missing_columns_are_an_error():
    with pytest.raises(PriceValidationError, match="adj_close"):
        check(prices(WEEK).drop(columns=["adj_close"]))


def test_unparseable_dates_are_an_error():
    with pytest.raises(PriceValidationError, match="unparseable dates"):
        check(prices(["2020-12-07", "not a date"]))


def test_missing_dates_are_an_error():
    raw = prices(WEEK)
    raw["date"] = pd.to_datetime(raw["date"])
    raw.loc[1, "date"] = pd.NaT

    with pytest.raises(PriceValidationError, match=r"missing dates in row\(s\) \[1\]"):
        check(raw)


def test_stale_data_is_a_warning_not_an_error():
    # Last bar 2020-12-04; on 2020-12-11 five sessions (7th-11th) are missing.
    raw = prices(["2020-12-02", "2020-12-03", "2020-12-04"])

    result = check(raw, stale_after_days=3)

    assert result.report.stale
    assert result.report.lag_trading_days == 5
    assert result.report.expected_last_date == AS_OF
    assert "stale" in result.report.warnings[0]
    assert "2020-12-04" in result.report.warnings[0]


def test_lag_within_tolerance_is_not_stale():
    # Thanksgiving: on Friday 2020-11-27 a history ending 2020-11-25 lags by one session.
    result = check(prices(["2020-11-24", "2020-11-25"]), as_of=date(2020, 11, 27))

    assert result.report.lag_trading_days == 1
    assert not result.report.stale


def test_weekend_as_of_is_not_stale_for_stocks_but_is_for_crypto():
    raw = prices(WEEK)

    stock = check(raw, as_of=date(2020, 12, 13), stale_after_days=0)
    crypto = check(raw, asset_class="crypto", as_of=date(2020, 12, 13), stale_after_days=1)

    assert not stock.report.stale
    assert crypto.report.lag_trading_days == 2
    assert crypto.report.stale


def test_report_to_dict_is_json_ready():
    raw = prices([*WEEK, "2020-12-14"])

    report = check(raw).report.to_dict()

    assert json.loads(json.dumps(report)) == report
    assert report["as_of"] == "2020-12-11"
    assert report["future_rows_dropped"] == 1
    assert report["warnings"] == []


def test_tz_aware_dates_keep_their_local_day():
    raw = prices(WEEK)
    raw["date"] = pd.to_datetime(raw["date"]).dt.tz_localize("America/New_York")

    result = check(raw)

    assert result.frame["date"].dt.day.tolist() == [7, 8, 9, 10, 11]


def test_bad_arguments():
    with pytest.raises(ValueError, match="min_rows"):
        check(prices(WEEK), min_rows=0)
    with pytest.raises(ValueError, match="asset class"):
        check(prices(WEEK), asset_class="bond")


# --- real Yahoo histories: decades-old junk, the model's recent stretch -----------------------


def sample_aapl() -> pd.DataFrame:
    return SampleSource().fetch("AAPL", start=None, end=AS_OF)


def with_yahoo_junk(frame: pd.DataFrame, until: str) -> pd.DataFrame:
    """Early rows the way Yahoo serves many long histories: Open = 0, High = Low = 0, no volume."""
    junk = frame.copy()
    early = junk["date"] <= pd.Timestamp(until)
    junk.loc[early, ["open", "high", "low"]] = 0.0
    junk.loc[early, "volume"] = 0.0
    return junk


def test_decades_of_open_zero_are_repaired_not_fatal():
    raw = with_yahoo_junk(sample_aapl(), until="1990-12-31")
    n_early = int(((raw["date"] <= "1990-12-31") & raw["close"].notna()).sum())

    result = check(raw, min_rows=290)

    assert result.report.rows_out == len(raw) - 1  # only Yahoo's null row of 1981-08-10
    assert result.report.repaired_cells == 3 * n_early
    assert result.frame.loc[result.frame["date"] <= "1990-12-31", "open"].isna().all()
    assert result.frame["adj_close"].notna().all()
    assert any("open cell(s) set to missing: 1980-12-12" in w for w in result.report.warnings)


def test_model_series_of_a_long_history_with_junk_uses_the_whole_adj_close():
    stored = check(with_yahoo_junk(sample_aapl(), until="1990-12-31")).frame

    series, report = usable_series(
        stored, ticker="AAPL", asset_class="stock", as_of=AS_OF, min_rows=290
    )

    assert len(series) == len(stored)
    assert series.index[-1] == pd.Timestamp(AS_OF)
    assert series.name == "AAPL"
    assert series.iloc[-1] == pytest.approx(stored["adj_close"].iloc[-1])
    assert report.old_rows_dropped == 0
    assert report.price_column == "adj_close"


def test_model_series_leaves_out_an_old_stretch_without_usable_prices():
    # A model on Open: the junk decade has none, so the series starts after it.
    stored = check(with_yahoo_junk(sample_aapl(), until="1990-12-31")).frame

    series, report = usable_series(
        stored, ticker="AAPL", asset_class="stock", as_of=AS_OF, min_rows=290, price_column="open"
    )

    assert series.index[0] == pd.Timestamp("1991-01-02")
    assert report.old_rows_dropped == 0  # the junk rows have no open at all: they are dropped
    assert report.null_rows_dropped == int((stored["date"] <= "1990-12-31").sum())


@pytest.mark.parametrize(("gap_days", "kept"), [(10, 4), (11, 2)])
def test_a_gap_counts_from_more_than_max_gap_days(gap_days: int, kept: int):
    first = date(2020, 11, 23)
    days = [first, first + timedelta(days=1), *(first + timedelta(days=1 + gap_days + i)
                                                for i in range(2))]  # fmt: skip
    frame = prices([d.isoformat() for d in days])

    series, report = usable_series(frame, ticker="A", asset_class="stock", as_of=AS_OF,
                                   min_rows=1, max_gap_days=10)  # fmt: skip

    assert len(series) == kept
    assert report.old_rows_dropped == 4 - kept
    if kept == 2:
        assert any(f"{gap_days} days without a usable price" in w for w in report.warnings)


def test_old_rows_before_a_long_gap_are_counted_and_left_out():
    raw = sample_aapl()
    raw.loc[(raw["date"] >= "1995-01-01") & (raw["date"] <= "1995-06-30"), "adj_close"] = 0.0
    stored = check(raw).frame  # the zero rows are dropped: a six-month gap

    series, report = usable_series(
        stored, ticker="AAPL", asset_class="stock", as_of=AS_OF, min_rows=290
    )

    assert series.index[0] == pd.Timestamp("1995-07-03")
    n_old = int((stored["date"] < "1995-01-01").sum())
    assert report.old_rows_dropped == n_old
    assert report.first_date == date(1995, 7, 3)
    assert any(
        f"{n_old} older row(s) 1980-12-12..1994-12-30 left out" in w for w in report.warnings
    )


def test_short_clean_recent_stretch_is_an_error_naming_the_ticker():
    raw = sample_aapl()
    raw.loc[(raw["date"] >= "2020-01-01") & (raw["date"] <= "2020-06-30"), "adj_close"] = np.nan
    stored = check(raw).frame

    with pytest.raises(
        PriceValidationError,
        match=r"^AAPL: 115 usable adj_close rows since 2020-07-01 \(\d+ older rows before a gap "
        r"left out\), need at least 290 \(look-back 240 \+ test 50\)$",
    ) as caught:
        usable_series(
            stored,
            ticker="AAPL",
            asset_class="stock",
            as_of=AS_OF,
            min_rows=290,
            need_explanation="look-back 240 + test 50",
        )

    assert caught.value.ticker == "AAPL"


def test_model_series_drops_later_rows_and_reports_staleness():
    series, report = usable_series(
        prices(WEEK), ticker="QQQ", asset_class="etf", as_of=date(2020, 12, 9), min_rows=3
    )

    assert series.index[-1] == pd.Timestamp("2020-12-09")
    assert report.future_rows_dropped == 2
    assert not report.stale


def test_model_series_rejects_bad_arguments():
    with pytest.raises(ValueError, match="price_column"):
        usable_series(
            prices(WEEK),
            ticker="A",
            asset_class="stock",
            as_of=AS_OF,
            min_rows=1,
            price_column="volume",
        )
    with pytest.raises(ValueError, match="max_gap_days"):
        usable_series(
            prices(WEEK), ticker="A", asset_class="stock", as_of=AS_OF, min_rows=1, max_gap_days=0
        )


# --- suspicious prices: spikes, conflicting duplicates, text -----------------------------------


def test_a_1000x_spike_is_rejected_and_counted():
    raw = SampleSource().fetch("QQQ", start=date(2020, 1, 1), end=AS_OF)
    spike_day = raw["date"] == "2020-06-15"
    raw.loc[spike_day, ["close", "adj_close"]] *= 1000

    result = check(raw)

    assert result.report.outliers_rejected == 1
    assert result.rejected_dates == (date(2020, 6, 15),)
    assert date(2020, 6, 15) not in result.frame["date"].dt.date.tolist()
    assert any("spike(s) rejected: 2020-06-15" in w for w in result.report.warnings)


@pytest.mark.parametrize(("factor", "named"), [(0.25, "4-for-1 split"), (10.0, "1-for-10 reverse")])
def test_an_unadjusted_split_is_kept_and_warned_about(factor: float, named: str):
    raw = SampleSource().fetch("QQQ", start=date(2019, 1, 1), end=AS_OF)
    after = raw["date"] >= "2020-06-15"
    raw.loc[after, ["open", "high", "low", "close", "adj_close"]] *= factor

    result = check(raw)

    assert len(result.frame) == len(raw) and result.rejected_dates == ()
    [warning] = [w for w in result.report.warnings if "split" in w]
    assert "on 2020-06-15" in warning and named in warning and "adj_close" in warning
    # a coin does not split; the real history (AAPL's -52% day in 2000 is older than the
    # window) has no such day
    assert not [w for w in check(raw, asset_class="crypto").report.warnings if "split" in w]
    real = check(SampleSource().fetch("AAPL", start=None, end=AS_OF), ticker="AAPL")
    assert not [w for w in real.report.warnings if "split" in w]


def test_a_spike_on_the_last_day_is_rejected():
    raw = SampleSource().fetch("QQQ", start=date(2020, 1, 1), end=AS_OF)
    raw.loc[raw.index[-1], "adj_close"] *= 1000

    result = check(raw)

    assert result.rejected_dates == (AS_OF,)


def test_real_crashes_are_not_spikes():
    # March 2020, 2000-2001 (AAPL -52% in a day) and the bitcoin crash of 2020-03-12.
    for ticker, asset_class in (("AAPL", "stock"), ("QQQ", "etf"), ("BTC-USD", "crypto")):
        raw = SampleSource().fetch(ticker, start=None, end=AS_OF)

        result = check(raw, ticker=ticker, asset_class=asset_class)

        assert result.report.outliers_rejected == 0, ticker


def test_a_spike_at_the_start_of_a_fetch_is_judged_against_stored_context():
    history = SampleSource().fetch("QQQ", start=date(2020, 1, 1), end=AS_OF)
    stored = history.loc[history["date"] < "2020-12-07"]
    fetched = history.loc[history["date"] >= "2020-12-07"].copy()
    fetched.loc[fetched.index[0], ["close", "adj_close"]] /= 20  # a misplaced digit

    alone = check(fetched)
    in_context = check(fetched, context=stored)

    assert alone.report.outliers_rejected == 0  # nothing before it: below the edge bar
    assert in_context.rejected_dates == (date(2020, 12, 7),)


def test_spike_positions():
    flat = np.full(30, 100.0)
    spiky = flat.copy()
    spiky[10] = 100_000.0
    dip = flat.copy()
    dip[20] = 0.1

    assert spike_positions(flat).tolist() == []
    assert spike_positions(spiky).tolist() == [10]
    assert spike_positions(dip).tolist() == [20]
    first, last = flat.copy(), flat.copy()
    first[0], last[-1] = 0.05, 150_000.0
    assert spike_positions(first).tolist() == [0]
    assert spike_positions(last).tolist() == [29]
    last[-1] = 1_000.0  # 10x on the last day: no next day confirms it, below the edge bar
    assert spike_positions(last).tolist() == []
    # A lasting jump (an unadjusted split) is not a spike; a 2x move and back is too small.
    assert spike_positions(np.r_[np.full(15, 100.0), np.full(15, 25.0)]).tolist() == []
    doubled = flat.copy()
    doubled[5] = 200.0
    assert spike_positions(doubled).tolist() == []


def test_conflicting_duplicates_are_counted_and_kept_out():
    # README: dates given twice with different prices are kept out of the store (the later
    # row's price used to be stored).
    raw = prices([*WEEK, "2020-12-09"], [11.0, 12.0, 13.0, 14.0, 15.0, 33.0])

    result = check(raw)

    assert result.report.conflicting_duplicates == 1
    assert result.report.duplicates_resolved == 1
    assert "2020-12-09" not in result.frame["date"].dt.strftime("%Y-%m-%d").tolist()
    assert result.frame["close"].tolist() == [11.0, 12.0, 14.0, 15.0]
    assert result.rejected_dates == (date(2020, 12, 9),)  # a stored copy is removed too
    assert (
        "1 date(s) given twice with different prices, left out of the store "
        "(which one is right is unknown): 2020-12-09" in result.report.warnings[0]
    )


def test_identical_duplicates_do_not_conflict():
    raw = prices(WEEK)
    raw = pd.concat([raw, raw.iloc[[2]]], ignore_index=True)

    result = check(raw)

    assert result.report.duplicates_resolved == 1
    assert result.report.conflicting_duplicates == 0
    assert result.report.warnings == ()


def test_a_null_duplicate_never_hides_a_usable_row():
    raw = prices([*WEEK, "2020-12-09"], [11.0, 12.0, 13.0, 14.0, 15.0, np.nan])

    result = check(raw)

    assert result.frame.loc[result.frame["date"] == "2020-12-09", "close"].item() == 13.0
    assert result.report.conflicting_duplicates == 0
    assert result.report.null_rows_dropped == 0


def test_text_in_a_price_column_is_counted(tmp_path):
    (tmp_path / "ABC.csv").write_text(
        "Date,Open,High,Low,Close,Adj Close,Volume\n"
        "2020-12-09,10.0,11.0,9.0,10.5,10.4,1000\n"
        "2020-12-10,10.2,11.0,9.0,10.7 USD,10.6,1000\n"
        "2020-12-11,10.5,11.5,10.0,11.0,11.0,lots\n"
    )
    raw = CsvDirSource(tmp_path).fetch("ABC", start=None, end=AS_OF)

    result = check(raw, ticker="ABC")

    assert result.report.unparsable_cells == 2
    assert result.report.null_rows_dropped == 1  # no close on 2020-12-10
    assert np.isnan(result.frame["volume"].iloc[-1])
    assert any(
        "unparsable close cell(s) read as missing, e.g. '10.7 USD' on 2020-12-10" in w
        for w in result.report.warnings
    )


def test_report_carries_every_counter():
    report = check(prices(WEEK)).report.to_dict()

    assert {"conflicting_duplicates", "unparsable_cells", "outliers_rejected"} <= set(
        REPORT_COUNTERS
    )
    for counter in REPORT_COUNTERS:
        assert report[counter] == 0


def test_metrics_rows_take_their_counter_columns_from_the_one_declaration():
    from dataclasses import fields

    from closecast.outputs.records import MetricsRow

    columns = {f.name for f in fields(MetricsRow)}
    # Rows after the run date are dropped by design on every backfill, so they are not a
    # finding worth a column; every other counter is one.
    assert set(REPORT_COUNTERS) - columns == {"future_rows_dropped"}
    assert HISTORY_COUNTERS and set(HISTORY_COUNTERS) <= set(REPORT_COUNTERS)


@pytest.mark.parametrize(
    "raw",
    [
        prices(WEEK),
        prices(list(reversed(WEEK))),
        prices([*WEEK, "2020-12-09"], [11.0, 12.0, 13.0, 14.0, 15.0, 13.0]),
        prices([*WEEK, "2020-12-09"], [11.0, 12.0, 13.0, 14.0, 15.0, 99.0]),
        prices([*WEEK, "2020-12-14"]),
        prices(WEEK, [100.0, np.nan, 102.0, -1.0, 104.0]),
    ],
    ids=["clean", "reversed", "duplicate", "conflict", "future", "unusable"],
)
def test_a_frame_already_in_the_price_contract_is_validated_alike(raw) -> None:
    """A stored history (dtypes of the contract already) skips re-parsing and, when its
    dates are in order and unique, duplicate resolution: the result must not change."""
    from closecast.sources.base import to_price_frame

    contract = to_price_frame(raw)
    for validate in (check, lambda f: usable_series(f, **_series_kwargs())):
        expected, got = validate(raw), validate(contract)
        if isinstance(expected, tuple):  # usable_series: (series, report)
            pd.testing.assert_series_equal(got[0], expected[0], check_exact=True)
            assert got[1] == expected[1]
        else:
            pd.testing.assert_frame_equal(got.frame, expected.frame, check_exact=True)
            assert got.report == expected.report and got.rejected_dates == expected.rejected_dates


def _series_kwargs() -> dict:
    return {"ticker": "AAPL", "asset_class": "stock", "as_of": AS_OF, "min_rows": 1}
