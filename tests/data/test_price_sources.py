"""The sample and csv:DIR sources, get_source, and the Yahoo CSV reader."""

from __future__ import annotations

import os
from datetime import date
from importlib.resources import files
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.inputs.schema import PRICE_COLUMNS
from closecast.inputs.yahoo_csv import (
    MAX_PRICE_FILE_BYTES,
    MISSING_CELLS,
    PriceFileError,
    last_csv_date,
    read_yahoo_csv,
)
from closecast.sources import (
    CsvDirSource,
    FutureRunDateError,
    PriceSource,
    SampleSource,
    UnknownTickerError,
    YahooSource,
    check_run_date,
    get_source,
)
from closecast.sources.base import normalize_ticker
from closecast.sources.sample import available_tickers, sample_today

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


def test_csv_dir_finds_a_file_saved_in_another_case(tmp_path: Path):
    (tmp_path / "brk.b.CSV").write_text(HEADER + ROWS)
    (tmp_path / "Q.csv").write_text(HEADER + ROWS)
    (tmp_path / "q.csv").write_text(HEADER + ROWS)  # Q.csv is exact: this one is not read
    (tmp_path / "x.csv").write_text(HEADER + ROWS)
    (tmp_path / "X.CSV").write_text(HEADER + ROWS)
    source = CsvDirSource(tmp_path)

    assert len(source.fetch("BRK.B", start=None, end=date(2020, 12, 11))) == 3
    assert source.today(["BRK.B"]) == date(2020, 12, 11)
    assert source.path_for("q").name == "Q.csv"
    with pytest.raises(PriceFileError, match=r"several files differ only in case \(X.CSV, x.csv\)"):
        source.fetch("X", start=None, end=date(2020, 12, 11))


def test_csv_dir_today_is_the_latest_date_of_the_requested_files(tmp_path: Path):
    (tmp_path / "A.csv").write_text(HEADER + ROWS)
    (tmp_path / "B.csv").write_text(ROWS.rsplit("2020-12-11", 1)[0])  # ends 2020-12-10
    source = CsvDirSource(tmp_path)

    assert source.today(["B"]) == date(2020, 12, 10)
    assert source.today(["A", "B"]) == date(2020, 12, 11)  # B is judged on its own (stale)
    assert source.describe_today(["b", "a"]).endswith(
        "A.csv ends 2020-12-11, B.csv ends 2020-12-10"
    )


def _copy_tail(ticker: str, directory: Path, rows: int = 300) -> None:
    """The shipped real history of ``ticker``, its last ``rows`` rows, as DIR/<ticker>.csv."""
    header, *body = (
        (Path(__file__).parents[2] / "closecast" / "sample_data" / f"{ticker}.csv")
        .read_text()
        .strip()
        .splitlines()
    )
    (directory / f"{ticker}.csv").write_text("\n".join([header, *body[-rows:]]) + "\n")


def test_one_stale_or_junk_file_does_not_hold_back_other_tickers(tmp_path: Path):
    # Exports downloaded on different days: BTC-USD ends 2024-04-20, AAPL 2020-12-11, and a
    # junk export ends 2020-01-02. The earliest over the directory used to be every run's limit.
    _copy_tail("BTC-USD", tmp_path)
    _copy_tail("AAPL", tmp_path)
    (tmp_path / "JUNK.csv").write_text(HEADER + "2020-01-02,1,1,1,1,1,1\n")
    source = CsvDirSource(tmp_path)

    assert check_run_date(source, date(2024, 4, 19), ["BTC-USD"]) == date(2024, 4, 19)
    assert source.today(["BTC-USD", "AAPL"]) == date(2024, 4, 20)
    assert source.today(["AAPL"]) == date(2020, 12, 11)
    with pytest.raises(FutureRunDateError) as refused:
        check_run_date(source, date(2020, 12, 14), ["AAPL", "JUNK"])
    message = str(refused.value)  # names the files the date comes from
    assert "2020-12-14 is after the csv:" in message
    assert "AAPL.csv ends 2020-12-11, JUNK.csv ends 2020-01-02" in message


def test_csv_dir_today_falls_back_to_the_clock_without_a_readable_requested_file(tmp_path: Path):
    (tmp_path / "A.csv").write_text(HEADER + ROWS)
    (tmp_path / "EMPTY.csv").write_text("")
    source = CsvDirSource(tmp_path, clock_today=lambda: date(2021, 1, 4))

    assert source.today() == date(2021, 1, 4)
    assert source.today(["EMPTY", "NOFILE"]) == date(2021, 1, 4)
    assert "the clock's date" in source.describe_today(["EMPTY"])


def test_shuffled_rows_are_ordered_by_date_before_anything_is_decided(tmp_path: Path):
    header, *body = (HEADER + ROWS).strip().splitlines()
    (tmp_path / "S.csv").write_text("\n".join([header, body[2], body[0], body[1]]) + "\n")
    # The last line is 2020-12-10: the file's date is still its latest, 2020-12-11.
    source = CsvDirSource(tmp_path)

    assert source.today(["S"]) == date(2020, 12, 11)
    frame = source.fetch("S", start=None, end=date(2020, 12, 11))
    assert frame["date"].is_monotonic_increasing


@pytest.mark.timeout(60)
def test_a_fifo_hangs_nothing(tmp_path: Path):
    (tmp_path / "AAPL.csv").write_text(HEADER + ROWS)
    os.mkfifo(tmp_path / "X.csv")  # no writer: reading it would block forever
    source = CsvDirSource(tmp_path)

    assert source.today(["AAPL"]) == date(2020, 12, 11)  # a run of another ticker
    assert source.today(["AAPL", "X"]) == date(2020, 12, 11)
    with pytest.raises(PriceFileError, match=r"X\.csv: not a regular file but a FIFO"):
        source.fetch("X", start=None, end=date(2020, 12, 11))


@pytest.mark.timeout(60)
def test_a_symlink_to_dev_zero_is_refused_unread(tmp_path: Path):
    (tmp_path / "AAPL.csv").write_text(HEADER + ROWS)
    (tmp_path / "Z.csv").symlink_to("/dev/zero")  # reading it would grow memory without end
    source = CsvDirSource(tmp_path)

    assert source.today(["AAPL", "Z"]) == date(2020, 12, 11)
    with pytest.raises(PriceFileError, match=r"Z\.csv: not a regular file but a character device"):
        source.fetch("Z", start=None, end=date(2020, 12, 11))


def test_a_directory_named_like_a_price_file_fails_its_ticker_only(tmp_path: Path):
    (tmp_path / "AAPL.csv").write_text(HEADER + ROWS)
    (tmp_path / "GOOG.csv").mkdir()
    source = CsvDirSource(tmp_path)

    assert source.today(["AAPL"]) == date(2020, 12, 11)
    assert len(source.fetch("AAPL", start=None, end=date(2020, 12, 11))) == 3
    with pytest.raises(PriceFileError, match=r"GOOG\.csv: not a regular file but a directory"):
        source.fetch("GOOG", start=None, end=date(2020, 12, 11))


def test_a_price_file_larger_than_the_bound_is_refused_unread(tmp_path: Path):
    big = tmp_path / "BIG.csv"
    with big.open("wb") as handle:  # sparse: no disk used
        handle.truncate(MAX_PRICE_FILE_BYTES + 1)

    with pytest.raises(PriceFileError, match=r"BIG\.csv: 67,108,865 bytes, larger than"):
        CsvDirSource(tmp_path).fetch("BIG", start=None, end=date(2020, 12, 11))


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


def test_semicolon_files_read_decimal_commas_thousands_dots_and_no_header(tmp_path: Path):
    expected = read_yahoo_csv(_write(tmp_path / "YAHOO.csv", HEADER + ROWS))
    headerless = ROWS.replace(",", ";").replace(".", ",")
    german = "Datum;Close\n2020-12-09;1.234,5\n2020-12-10;1.5\n2020-12-11;-0,25\n"

    pd.testing.assert_frame_equal(read_yahoo_csv(_write(tmp_path / "A.csv", headerless)), expected)
    closes = read_yahoo_csv(_write(tmp_path / "B.csv", german.replace("Datum", "Date")))["close"]
    assert closes.tolist() == [1234.5, 1.5, -0.25]  # the validator rejects the negative one


def test_quoted_numbers_with_thousands_commas_are_read(tmp_path: Path):
    # A spreadsheet's save of formatted numbers: quoted because of their commas.
    text = 'Date,Close,Volume\n2020-12-09,"1,204.40","1,234,567"\n2020-12-10,"1,5",7\n'
    frame = read_yahoo_csv(_write(tmp_path / "A.csv", text))
    assert frame["close"].iloc[0] == 1204.4 and frame["volume"].iloc[0] == 1234567
    assert np.isnan(frame["close"].iloc[1])  # not a thousands number: left for the validator


@pytest.mark.parametrize("header", ["Date,Adj Close", ",Adj Close"])
def test_a_file_of_adjusted_closes_only_is_its_own_close(tmp_path: Path, header: str):
    # yf.download(...)["Adj Close"].to_csv(): validation needs a close (re-basing compares
    # it with the adjusted close); the two then agree, as in a file with only a close.
    frame = read_yahoo_csv(_write(tmp_path / "A.csv", header + "\n" + _rows("{day},{adj}")))
    assert frame["adj_close"].tolist()[::2] == [10.4, 11.0]
    pd.testing.assert_series_equal(frame["close"], frame["adj_close"], check_names=False)


def test_read_yahoo_csv_rejects_wrong_column_count_without_a_header(tmp_path: Path):
    path = tmp_path / "BAD.csv"
    path.write_text("2020-12-11,1.0,1.0\n")

    with pytest.raises(PriceFileError, match=r"expected 7 columns .* no header row, found 3"):
        read_yahoo_csv(path)


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


def _rows(line: str) -> str:
    """Three data rows (the ROWS days and prices) laid out by ``line``."""
    out = []
    for row in ROWS.splitlines():
        day, open_, high, low, close, adj, volume = row.split(",")
        out.append(line.format(**locals()) + "\n")
    return "".join(out)


# What users save: yfinance's history() (time and UTC offset, extra columns, adjusted Close),
# download() (a three-row header, columns alphabetical), its auto-adjusted download (no Adj
# Close), CRLF line ends, and lower-case names in another order.
EXPORTS = {
    "history": "Date,Open,High,Low,Close,Volume,Dividends,Stock Splits\n"
    + _rows("{day} 00:00:00-05:00,{open_},{high},{low},{adj},{volume},0.0,0.0"),
    "download": "Price,Adj Close,Close,High,Low,Open,Volume\nTicker,X,X,X,X,X,X\nDate,,,,,,\n"
    + _rows("{day},{adj},{close},{high},{low},{open_},{volume}"),
    "download-adjusted": (
        "Price,Close,High,Low,Open,Volume\nTicker,X,X,X,X,X\nDate,,,,,\n"
        + _rows("{day},{adj},{high},{low},{open_},{volume}")
    ).replace("\n", "\r\n"),
    "renamed": "date,adj_close,VOLUME,close, high ,low,open\n"
    + _rows("{day},{adj},{volume},{close},{high},{low},{open_}"),
    # A spreadsheet's save where the decimal mark is a comma: semicolons or tabs between columns.
    "semicolons, decimal commas": (HEADER + ROWS).replace(",", ";").replace(".", ","),
    "tabs": (HEADER + ROWS).replace(",", "\t"),
    # pandas' to_csv of a frame whose date index has no name.
    "unnamed index": ",Open,High,Low,Close,Adj Close,Volume\n" + ROWS,
}


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_read_yahoo_csv_reads_the_files_users_save(tmp_path: Path, kind: str):
    expected = read_yahoo_csv(_write(tmp_path / "YAHOO.csv", HEADER + ROWS))
    path = _write(tmp_path / "X.csv", EXPORTS[kind])

    frame = read_yahoo_csv(path)

    if "Adj Close" not in EXPORTS[kind].split("\n")[0] and kind != "renamed":
        expected["close"] = expected["adj_close"]  # auto-adjusted: its one close is adjusted
    pd.testing.assert_frame_equal(frame, expected)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Price,Close,Close\nTicker,A,B\nDate,,\n2020-12-11,1,2\n", "holds 2 tickers \\(A, B\\)"),
        ("Date,Open,Volume\n2020-12-11,1,2\n", "no Close or Adj Close column"),
        ("Date,Close,close\n2020-12-11,1,2\n", "more than one column for close"),
        (HEADER + ROWS + "2020-12-12 noon,1,1,1,1,1,1\n", "first '2020-12-12 noon' in data row 4"),
    ],
)
def test_read_yahoo_csv_names_what_it_cannot_read(tmp_path: Path, text: str, message: str):
    with pytest.raises(PriceFileError, match=message):
        read_yahoo_csv(_write(tmp_path / "BAD.csv", text))


def _bits(frame: pd.DataFrame) -> dict[str, object]:
    """A frame's exact content: column order, dtypes, index, and every value's bits."""
    return {
        "columns": list(frame.columns),
        "dtypes": [str(dtype) for dtype in frame.dtypes],
        "index": list(frame.index),
        **{name: frame[name].to_numpy().view("int64").tolist() for name in frame.columns},
    }


_SHIPPED = files("closecast.sample_data").joinpath("AAPL.csv").read_text().splitlines()
# Plain exports, which Arrow's reader reads: Yahoo's own (the last 300 shipped AAPL rows, a
# null row among them), shuffled, with repeated dates, renamed and reordered columns, no
# header, no Adj Close, only a close, blank lines, CRLF with a byte-order mark, empty cells,
# pandas' other missing-value words, integers and exponents.
PLAIN = {
    "yahoo": "\n".join(_SHIPPED[:1] + _SHIPPED[-300:]) + "\n",
    "shuffled": HEADER + "".join(reversed(ROWS.splitlines(keepends=True))),
    "repeated dates": HEADER + ROWS + ROWS.splitlines(keepends=True)[0],
    "renamed": EXPORTS["renamed"],
    "headerless": ROWS,
    "no adj close": "Date,Open,High,Low,Close,Volume\n"
    + _rows("{day},{open_},{high},{low},{close},{volume}"),
    "close only": "Date,Close\n" + _rows("{day},{close}"),
    "blank lines": HEADER + ROWS + "\n\n",
    "crlf, bom": "\ufeff" + (HEADER + ROWS).replace("\n", "\r\n"),
    "missing words": HEADER + "2020-12-09,,NaN,N/A,10.5,10.4,NULL\n2020-12-10,1e1,+10,.5,7,7.,12\n",
}
# Not plain: the general reader reads them (text cells counted by the validator, text that
# Arrow would read otherwise than pandas, quotes, times, a bad day, ragged rows, yfinance).
GENERAL = {
    "text cell": HEADER + ROWS.replace("10.5,11.5", "10.5,oops"),
    "nan word pandas does not read": HEADER + ROWS.replace("10.5,11.5", "10.5, nan"),
    "infinity": HEADER + ROWS.replace("10.5,11.5", "10.5,inf"),
    "negative zero": HEADER + ROWS.replace("1200", "-0"),
    "quoted": HEADER + ROWS.replace("2020-12-09", '"2020-12-09"'),
    "impossible day": HEADER + ROWS.replace("2020-12-09", "2020-02-30"),
    "short row": HEADER + ROWS + "2020-12-14,1,1\n",
    **{kind: EXPORTS[kind] for kind in ("history", "download", "download-adjusted")},
    **{kind: EXPORTS[kind] for kind in ("semicolons, decimal commas", "tabs")},
    "unnamed index": EXPORTS["unnamed index"],
}


@pytest.mark.parametrize("kind", sorted(PLAIN))
def test_the_plain_reader_equals_the_general_one(tmp_path: Path, kind: str):
    from closecast.inputs import yahoo_csv

    path = _write(tmp_path / "X.csv", PLAIN[kind])
    text = yahoo_csv._text(path.read_bytes(), path)

    plain = yahoo_csv._read_plain_export(text)

    assert plain is not None  # the fast path was taken ...
    for coerce in (False, True):  # ... and reads what the general reader reads, bit for bit
        general = yahoo_csv._read_any_export(text, path, coerce=coerce)
        assert _bits(plain) == _bits(general)
    assert _bits(read_yahoo_csv(path, coerce=False)) == _bits(plain)


@pytest.mark.parametrize("kind", sorted(GENERAL))
def test_files_that_are_not_plain_go_to_the_general_reader(tmp_path: Path, kind: str):
    from closecast.inputs import yahoo_csv

    path = _write(tmp_path / "X.csv", GENERAL[kind])

    assert yahoo_csv._read_plain_export(yahoo_csv._text(path.read_bytes(), path)) is None


def test_the_missing_words_are_pandas_defaults_and_missing_in_both_readers(tmp_path: Path):
    from closecast.inputs import yahoo_csv

    days = pd.bdate_range("2020-01-01", periods=len(MISSING_CELLS) + 1).strftime("%Y-%m-%d")
    cells = [*MISSING_CELLS, "missing"]  # the last is no missing word: kept as text
    text = "Date,Close\n" + "".join(f"{d},{c}\n" for d, c in zip(days, cells, strict=True))
    path = _write(tmp_path / "X.csv", text)

    # One definition for both readers, and still what read_csv documents as its defaults.
    by_pandas = pd.read_csv(path, dtype=str, keep_default_na=True)["Close"]
    assert by_pandas.isna().tolist() == [True] * len(MISSING_CELLS) + [False]
    general = yahoo_csv._read_any_export(yahoo_csv._text(path.read_bytes(), path), path,
                                         coerce=False)  # fmt: skip
    assert general["close"].isna().tolist() == [True] * len(MISSING_CELLS) + [False]
    path = _write(tmp_path / "X.csv", text.replace(",missing\n", ",1.5\n"))
    plain = yahoo_csv._read_plain_export(yahoo_csv._text(path.read_bytes(), path))
    assert plain is not None
    assert plain["close"].isna().tolist() == [True] * len(MISSING_CELLS) + [False]


def test_a_text_cell_is_kept_for_the_validator_to_count(tmp_path: Path):
    frame = read_yahoo_csv(_write(tmp_path / "X.csv", GENERAL["text cell"]), coerce=False)

    assert frame["high"].tolist()[2] == "oops"  # not silently NaN: counted as unparsable


def test_last_csv_date(tmp_path: Path):
    good = tmp_path / "GOOD.csv"
    good.write_text(HEADER + ROWS + "\n\n")
    header_only = tmp_path / "EMPTY.csv"
    header_only.write_text(HEADER)
    shuffled = tmp_path / "SHUFFLED.csv"
    shuffled.write_text(HEADER + "".join(reversed(ROWS.splitlines(keepends=True))))

    assert last_csv_date(good) == date(2020, 12, 11)
    assert last_csv_date(header_only) is None
    assert last_csv_date(shuffled) == date(2020, 12, 11)  # its last line is 2020-12-09


@pytest.mark.parametrize("kind", sorted(EXPORTS))
def test_last_csv_date_of_the_files_users_save(tmp_path: Path, kind: str):
    assert last_csv_date(_write(tmp_path / "X.csv", EXPORTS[kind])) == date(2020, 12, 11)


def test_last_csv_date_agrees_with_the_whole_read_on_a_real_history(tmp_path: Path):
    path = tmp_path / "BTC-USD.csv"
    path.write_bytes(files("closecast.sample_data").joinpath("BTC-USD.csv").read_bytes())

    assert last_csv_date(path) == read_yahoo_csv(path)["date"].max().date()


def test_to_price_frame_gives_the_contract_whatever_it_is_given() -> None:
    from closecast.sources.base import to_price_frame

    raw = pd.DataFrame(
        {
            "date": ["2020-01-02 00:00:00-05:00", "2020-01-03 16:00:00-05:00", None],
            **{column: ["1.5", 2, "x"] for column in PRICE_COLUMNS[1:]},
            "extra": [1, 2, 3],
        }
    )
    converted = to_price_frame(raw)
    assert list(converted.columns) == list(PRICE_COLUMNS)
    assert converted["date"].dtype == np.dtype("datetime64[ns]")
    assert list(converted["date"][:2]) == [pd.Timestamp("2020-01-02"), pd.Timestamp("2020-01-03")]
    assert pd.isna(converted["date"][2]) and np.isnan(converted.iloc[2, 1])
    # A frame already in the contract (a stored one read back) comes out equal, as a copy.
    again = to_price_frame(converted)
    pd.testing.assert_frame_equal(again, converted, check_exact=True)
    clean = converted.iloc[:2].reset_index(drop=True)
    same = to_price_frame(clean)
    pd.testing.assert_frame_equal(same, clean, check_exact=True)
    assert not np.shares_memory(same["close"].to_numpy(), clean["close"].to_numpy())
    # Dates in the right dtype but not at midnight still get normalised.
    shifted = clean.assign(date=clean["date"] + pd.Timedelta(hours=16))
    pd.testing.assert_frame_equal(to_price_frame(shifted), clean, check_exact=True)
