"""The sample and csv:DIR sources, get_source, and the Yahoo CSV reader."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from closecast.schema import PRICE_COLUMNS
from closecast.sources import (
    CsvDirSource,
    PriceSource,
    SampleSource,
    UnknownTickerError,
    YahooSource,
    get_source,
)
from closecast.sources.base import normalize_ticker
from closecast.sources.sample import available_tickers, sample_today
from closecast.yahoo_csv import PriceFileError, last_csv_date, read_yahoo_csv

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"
ROWS = (
    "2020-12-09,10.0,11.0,9.0,10.5,10.4,1000\n"
    "2020-12-10,null,null,null,null,null,null\n"
    "2020-12-11,10.5,11.5,10.0,11.0,11.0,1200\n"
)

# --- sample ---------------------------------------------------------------------------------


def test_sample_ships_four_tickers_and_today_is_their_common_last_date():
    assert available_tickers() == ("AAPL", "BTC-USD", "GOOG", "QQQ")
    assert sample_today() == date(2020, 12, 11)
    assert SampleSource().today() == date(2020, 12, 11)


def test_sample_full_history_keeps_yahoos_null_row():
    frame = SampleSource().fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert list(frame.columns) == list(PRICE_COLUMNS)
    assert frame["date"].dtype == "datetime64[ns]"
    assert len(frame) == 10087
    assert frame["date"].iloc[0].date() == date(1980, 12, 12)
    null_rows = frame.loc[frame["close"].isna(), "date"].dt.date.tolist()
    assert null_rows == [date(1981, 8, 10)]


def test_sample_as_of_an_earlier_date_returns_rows_up_to_it():
    frame = SampleSource().fetch("QQQ", start=date(2020, 6, 1), end=date(2020, 6, 30))

    assert frame["date"].iloc[0].date() == date(2020, 6, 1)
    assert frame["date"].iloc[-1].date() == date(2020, 6, 30)
    assert len(frame) == 22


def test_sample_never_returns_rows_after_its_today():
    frame = SampleSource().fetch("BTC-USD", start=None, end=date(2030, 1, 1))

    assert frame["date"].iloc[-1].date() == date(2020, 12, 11)
    # Crypto: one row per calendar day.
    assert (frame["date"].diff().dropna().dt.days == 1).all()


def test_sample_accepts_lower_case_tickers():
    assert len(SampleSource().fetch("goog", start=date(2020, 12, 7), end=date(2020, 12, 11))) == 5


def test_sample_unknown_ticker_lists_the_available_ones():
    with pytest.raises(UnknownTickerError, match=r"MSFT.*AAPL, BTC-USD, GOOG, QQQ") as caught:
        SampleSource().fetch("MSFT", start=None, end=date(2020, 12, 11))

    assert caught.value.ticker == "MSFT"
    assert caught.value.source == "sample"


def test_sample_fetch_returns_a_copy():
    source = SampleSource()
    first = source.fetch("AAPL", start=None, end=date(2020, 12, 11))
    first.loc[:, "close"] = -1.0

    again = source.fetch("AAPL", start=None, end=date(2020, 12, 11))

    assert again["close"].iloc[-1] == pytest.approx(122.410004)


# --- csv:DIR --------------------------------------------------------------------------------


def test_csv_dir_reads_files_with_header_and_null(tmp_path: Path):
    (tmp_path / "ABC.csv").write_text(HEADER + ROWS)
    source = CsvDirSource(tmp_path)

    frame = source.fetch("abc", start=None, end=date(2020, 12, 11))

    assert len(frame) == 3
    assert np.isnan(frame.loc[1, "close"])
    assert frame.loc[2, "adj_close"] == 11.0
    assert frame["date"].dtype == "datetime64[ns]"


def test_csv_dir_reads_files_without_header(tmp_path: Path):
    (tmp_path / "DIS.csv").write_text(ROWS)

    frame = CsvDirSource(tmp_path).fetch("DIS", start=date(2020, 12, 10), end=date(2020, 12, 11))

    assert frame["date"].dt.date.tolist() == [date(2020, 12, 10), date(2020, 12, 11)]


def test_csv_dir_missing_file_names_the_path(tmp_path: Path):
    source = CsvDirSource(tmp_path)

    with pytest.raises(UnknownTickerError, match=r"XYZ: no price file .*XYZ\.csv"):
        source.fetch("XYZ", start=None, end=date(2020, 12, 11))


def test_csv_dir_today_is_the_earliest_last_date(tmp_path: Path):
    (tmp_path / "A.csv").write_text(HEADER + ROWS)
    (tmp_path / "B.csv").write_text(ROWS.rsplit("2020-12-11", 1)[0])  # ends 2020-12-10

    assert CsvDirSource(tmp_path).today() == date(2020, 12, 10)


def test_csv_dir_today_falls_back_to_the_clock_when_empty(tmp_path: Path):
    source = CsvDirSource(tmp_path, clock_today=lambda: date(2021, 1, 4))

    assert source.today() == date(2021, 1, 4)


def test_ticker_cannot_escape_the_directory(tmp_path: Path):
    with pytest.raises(ValueError, match="invalid ticker"):
        CsvDirSource(tmp_path).fetch("../etc/passwd", start=None, end=date(2020, 12, 11))


# --- get_source -----------------------------------------------------------------------------


def test_get_source_builds_each_kind(tmp_path: Path):
    assert isinstance(get_source("sample"), SampleSource)
    assert isinstance(get_source(" Yahoo "), YahooSource)
    csv = get_source(f"csv:{tmp_path}")
    assert isinstance(csv, CsvDirSource)
    assert csv.directory == tmp_path
    assert csv.name == f"csv:{tmp_path}"
    for source in (get_source("sample"), get_source("yahoo"), csv):
        assert isinstance(source, PriceSource)


@pytest.mark.parametrize("spec", ["", "yahooo", "csv:", "csv:  ", "sample:x", "s3://b"])
def test_get_source_rejects_bad_specs_listing_the_valid_forms(spec: str):
    with pytest.raises(ValueError, match=r"sample, yahoo, csv:DIR"):
        get_source(spec)


@pytest.mark.parametrize(
    ("raw", "expected"), [("aapl", "AAPL"), (" btc-usd ", "BTC-USD"), ("^gspc", "^GSPC")]
)
def test_normalize_ticker(raw: str, expected: str):
    assert normalize_ticker(raw) == expected


@pytest.mark.parametrize("bad", ["", " ", "A/B", "..", "A B", "A\\B"])
def test_normalize_ticker_rejects(bad: str):
    with pytest.raises(ValueError, match="invalid ticker"):
        normalize_ticker(bad)


# --- yahoo_csv ------------------------------------------------------------------------------


def test_read_yahoo_csv_handles_a_byte_order_mark(tmp_path: Path):
    path = tmp_path / "BOM.csv"
    path.write_text("\ufeff" + HEADER + ROWS, encoding="utf-8")

    frame = read_yahoo_csv(path)

    assert len(frame) == 3
    assert frame["date"].dtype == "datetime64[ns]"


def test_read_yahoo_csv_rejects_wrong_column_count(tmp_path: Path):
    path = tmp_path / "BAD.csv"
    path.write_text("Date,Close\n2020-12-11,1.0\n")

    with pytest.raises(PriceFileError, match="expected 7 columns"):
        read_yahoo_csv(path)


def test_last_csv_date(tmp_path: Path):
    good = tmp_path / "GOOD.csv"
    good.write_text(HEADER + ROWS + "\n\n")
    header_only = tmp_path / "EMPTY.csv"
    header_only.write_text(HEADER)

    assert last_csv_date(good) == date(2020, 12, 11)
    assert last_csv_date(header_only) is None
