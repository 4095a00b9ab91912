"""The Yahoo source against faked yfinance 1.x responses (no network)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
import requests
import yfinance
from curl_cffi.requests import exceptions as curl_errors
from yfinance import exceptions as yf_errors

from closecast.inputs.schema import PRICE_COLUMNS
from closecast.inputs.validation import validate_prices
from closecast.sources import (
    PriceSourceError,
    SourceUnavailableError,
    UnknownTickerError,
    YahooSource,
    incremental_start,
)
from closecast.sources.yahoo import frame_from_yfinance

NEW_YORK = ZoneInfo("America/New_York")
WEEK = ["2020-12-07", "2020-12-08", "2020-12-09", "2020-12-10", "2020-12-11"]


def at(text: str, tz: ZoneInfo | type[UTC] = UTC) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def source_at(moment: datetime) -> YahooSource:
    return YahooSource(clock=lambda: moment)


AFTER_WEEK = at("2020-12-12T12:00:00")


def test_full_history_asks_for_max_unadjusted_and_returns_naive_dates(
    fake_yfinance, make_history, make_rows
):
    fake_yfinance.outcomes["AAPL"] = make_history(make_rows(WEEK))

    frame = source_at(AFTER_WEEK).fetch("aapl", start=None, end=date(2020, 12, 11))

    (symbol, kwargs), *_ = fake_yfinance.calls
    assert symbol == "AAPL"
    assert kwargs["period"] == "max"
    assert "start" not in kwargs
    assert kwargs["end"] == "2020-12-12"  # yfinance's end is exclusive
    assert kwargs["auto_adjust"] is False
    assert kwargs["actions"] is False
    assert kwargs["interval"] == "1d"
    assert list(frame.columns) == list(PRICE_COLUMNS)
    assert frame["date"].dtype == "datetime64[ns]"
    assert frame["date"].dt.date.tolist() == [date.fromisoformat(d) for d in WEEK]
    assert frame["volume"].dtype == "float64"
    assert frame.loc[0, "close"] == 100.0
    assert frame.loc[0, "adj_close"] == pytest.approx(98.0)


def test_incremental_fetch_passes_start_and_clips_to_range(fake_yfinance, make_history, make_rows):
    # Yahoo sometimes appends rows outside the range; the source clips them.
    fake_yfinance.outcomes["AAPL"] = make_history(make_rows(WEEK))

    frame = source_at(AFTER_WEEK).fetch("AAPL", start=date(2020, 12, 8), end=date(2020, 12, 10))

    _, kwargs = fake_yfinance.calls[0]
    assert kwargs["start"] == "2020-12-08"
    assert kwargs["end"] == "2020-12-11"
    assert "period" not in kwargs
    assert frame["date"].dt.date.tolist() == [
        date(2020, 12, 8),
        date(2020, 12, 9),
        date(2020, 12, 10),
    ]


def test_fetch_turns_off_yfinance_exception_hiding(fake_yfinance, make_history, make_rows):
    fake_yfinance.outcomes["AAPL"] = make_history(make_rows(WEEK))
    assert yfinance.config.debug.hide_exceptions is True

    source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert yfinance.config.debug.hide_exceptions is False


def test_empty_frame_means_unknown_ticker(fake_yfinance):
    fake_yfinance.outcomes["NOPE"] = yfinance.utils.empty_df()

    with pytest.raises(UnknownTickerError, match="NOPE") as caught:
        source_at(AFTER_WEEK).fetch("NOPE", start=None, end=date(2020, 12, 11))

    assert caught.value.ticker == "NOPE"
    assert caught.value.source == "yahoo"


@pytest.mark.parametrize(
    "error",
    [
        yf_errors.YFTzMissingError("DELISTED"),
        yf_errors.YFPricesMissingError("DELISTED", " (1d 2020-12-01 -> 2020-12-12)"),
    ],
    ids=["tz-missing", "prices-missing"],
)
def test_yfinance_missing_errors_mean_unknown_ticker(fake_yfinance, error):
    fake_yfinance.outcomes["DELISTED"] = error

    with pytest.raises(UnknownTickerError, match="DELISTED"):
        source_at(AFTER_WEEK).fetch("DELISTED", start=None, end=date(2020, 12, 11))


def test_rate_limit_is_retryable(fake_yfinance):
    fake_yfinance.outcomes["AAPL"] = yf_errors.YFRateLimitError()

    with pytest.raises(SourceUnavailableError, match="rate limit") as caught:
        source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert caught.value.ticker == "AAPL"
    assert isinstance(caught.value.__cause__, yf_errors.YFRateLimitError)


@pytest.mark.parametrize(
    "error",
    [
        curl_errors.ConnectionError("Failed to connect to query2.finance.yahoo.com"),
        curl_errors.Timeout("Operation timed out after 30000 milliseconds"),
        requests.exceptions.ConnectionError("Max retries exceeded"),
        yf_errors.YFDataException("*** YAHOO! FINANCE IS CURRENTLY DOWN! ***"),
        json.JSONDecodeError("Expecting value", "<html>Will be right back</html>", 0),
    ],
    ids=["curl-connection", "curl-timeout", "requests-connection", "yahoo-down", "html-page"],
)
def test_network_failures_are_retryable(fake_yfinance, error):
    fake_yfinance.outcomes["AAPL"] = error

    with pytest.raises(SourceUnavailableError, match="AAPL"):
        source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))


def test_unexpected_errors_are_not_disguised(fake_yfinance):
    fake_yfinance.outcomes["AAPL"] = KeyError("chart")

    with pytest.raises(KeyError):
        source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))


CRYPTO_DAYS = ["2020-12-09", "2020-12-10", "2020-12-11"]


def test_crypto_partial_bar_of_current_utc_day_is_dropped(fake_yfinance, make_history, make_rows):
    fake_yfinance.outcomes["BTC-USD"] = make_history(make_rows(CRYPTO_DAYS, 18000.0), tz="UTC")

    frame = source_at(at("2020-12-11T15:00:00")).fetch(
        "BTC-USD", start=None, end=date(2020, 12, 11)
    )

    assert frame["date"].dt.date.tolist() == [date(2020, 12, 9), date(2020, 12, 10)]


def test_crypto_bar_is_kept_once_its_utc_day_is_over(fake_yfinance, make_history, make_rows):
    fake_yfinance.outcomes["BTC-USD"] = make_history(make_rows(CRYPTO_DAYS, 18000.0), tz="UTC")

    frame = source_at(at("2020-12-12T00:05:00")).fetch(
        "BTC-USD", start=None, end=date(2020, 12, 11)
    )

    assert frame["date"].dt.date.tolist()[-1] == date(2020, 12, 11)


def test_crypto_weekend_days_are_kept(fake_yfinance, make_history, make_rows):
    days = ["2020-12-11", "2020-12-12", "2020-12-13", "2020-12-14"]
    fake_yfinance.outcomes["BTC-USD"] = make_history(make_rows(days, 18000.0), tz="UTC")

    frame = source_at(at("2020-12-15T01:00:00")).fetch(
        "BTC-USD", start=None, end=date(2020, 12, 14)
    )

    assert len(frame) == 4


@pytest.mark.parametrize(
    ("now_new_york", "expected_last"),
    [
        ("2020-12-11T11:00:00", date(2020, 12, 10)),  # session running: live bar dropped
        ("2020-12-11T16:10:00", date(2020, 12, 10)),  # closed, not yet settled
        ("2020-12-11T17:00:00", date(2020, 12, 11)),  # settled
    ],
)
def test_stock_live_bar_is_dropped_until_the_close_settles(
    fake_yfinance, make_history, make_rows, now_new_york, expected_last
):
    fake_yfinance.outcomes["AAPL"] = make_history(make_rows(WEEK))

    frame = source_at(at(now_new_york, NEW_YORK)).fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert frame["date"].dt.date.tolist()[-1] == expected_last


def test_stock_bar_on_early_close_day_is_final_after_1pm(fake_yfinance, make_history, make_rows):
    days = ["2020-11-25", "2020-11-27"]  # the day after Thanksgiving closes at 13:00
    fake_yfinance.outcomes["AAPL"] = make_history(make_rows(days))

    frame = source_at(at("2020-11-27T14:00:00", NEW_YORK)).fetch(
        "AAPL", start=None, end=date(2020, 11, 27)
    )

    assert frame["date"].dt.date.tolist()[-1] == date(2020, 11, 27)


def test_duplicated_and_nan_rows_pass_through_to_the_validator(
    fake_yfinance, make_history, make_rows
):
    rows = make_rows(WEEK)
    rows.insert(2, rows[1])  # 2020-12-08 twice
    raw = make_history(rows)
    raw.iloc[4, raw.columns.get_loc("Close")] = np.nan  # 2020-12-10 (row 4 after the dup)
    raw.iloc[4, raw.columns.get_loc("Adj Close")] = np.nan
    fake_yfinance.outcomes["AAPL"] = raw

    frame = source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))
    checked = validate_prices(
        frame, ticker="AAPL", asset_class="stock", as_of=date(2020, 12, 11), min_rows=3
    )

    assert len(frame) == 6
    assert checked.report.duplicates_resolved == 1
    assert checked.report.null_rows_dropped == 1
    assert checked.frame["date"].dt.date.tolist() == [
        date(2020, 12, 7),
        date(2020, 12, 8),
        date(2020, 12, 9),
        date(2020, 12, 11),
    ]


def test_start_after_end_is_rejected(fake_yfinance):
    with pytest.raises(ValueError, match="after end"):
        source_at(AFTER_WEEK).fetch("AAPL", start=date(2020, 12, 12), end=date(2020, 12, 11))


def test_today_is_the_new_york_date():
    # 03:00 UTC on the 12th is still the evening of the 11th in New York.
    assert source_at(at("2020-12-12T03:00:00")).today() == date(2020, 12, 11)
    assert source_at(at("2020-12-12T06:00:00")).today() == date(2020, 12, 12)


def test_incremental_start():
    assert incremental_start(None) is None
    assert incremental_start(date(2020, 12, 11)) == date(2020, 12, 6)
    assert incremental_start(date(2020, 12, 11), overlap_days=0) == date(2020, 12, 11)
    with pytest.raises(ValueError, match="overlap_days"):
        incremental_start(date(2020, 12, 11), overlap_days=-1)


# --- yf.download shapes, accepted by the normaliser ---------------------------------------


def test_download_multiindex_naive_frame_matches_history_frame(
    make_history, make_download, make_rows
):
    history = make_history(make_rows(WEEK))
    download = make_download({"AAPL": history})
    assert download.columns.names == ["Price", "Ticker"]
    assert list(download.columns.get_level_values(0)) == [
        "Adj Close",
        "Close",
        "High",
        "Low",
        "Open",
        "Volume",
    ]
    assert download.index.tz is None

    from_history, tz_history = frame_from_yfinance(history, "AAPL")
    from_download, tz_download = frame_from_yfinance(download, "AAPL")

    assert tz_history == "America/New_York"
    assert tz_download is None
    pd.testing.assert_frame_equal(from_history, from_download)


def test_download_multiindex_tz_aware_crypto_frame(make_history, make_download, make_rows):
    history = make_history(make_rows(CRYPTO_DAYS, 18000.0), tz="UTC")
    download = make_download({"BTC-USD": history}, ignore_tz=False)

    frame, tz_name = frame_from_yfinance(download, "BTC-USD")

    assert tz_name == "UTC"
    assert frame["date"].dt.date.tolist() == [date.fromisoformat(d) for d in CRYPTO_DAYS]


def test_download_multi_ticker_frame_selects_the_requested_ticker(
    make_history, make_download, make_rows
):
    download = make_download(
        {
            "AAPL": make_history(make_rows(WEEK, 100.0)),
            "QQQ": make_history(make_rows(WEEK, 300.0)),
        }
    )

    frame, _ = frame_from_yfinance(download, "QQQ")

    assert frame["close"].iloc[0] == 300.0
    with pytest.raises(PriceSourceError, match="SPY"):
        frame_from_yfinance(download, "SPY")


def test_download_empty_frame_for_unknown_ticker_is_empty(make_download):
    download = make_download({"NOPE": yfinance.utils.empty_df()})

    frame, _ = frame_from_yfinance(download, "NOPE")

    assert frame.empty
    assert list(frame.columns) == list(PRICE_COLUMNS)


def test_adjusted_frame_without_adj_close_is_rejected(make_history, make_rows):
    adjusted = make_history(make_rows(WEEK)).drop(columns=["Adj Close"])

    with pytest.raises(PriceSourceError, match="Adj Close"):
        frame_from_yfinance(adjusted, "AAPL")


def test_fetch_accepts_a_multiindex_frame_from_yfinance(
    fake_yfinance, make_history, make_download, make_rows
):
    fake_yfinance.outcomes["AAPL"] = make_download({"AAPL": make_history(make_rows(WEEK))})

    frame = source_at(AFTER_WEEK).fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert len(frame) == 5
