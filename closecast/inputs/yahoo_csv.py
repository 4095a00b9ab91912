"""Read Yahoo Finance CSV exports, with or without their header row."""

from __future__ import annotations

import io
import os
import re
import stat
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from closecast.inputs.schema import PRICE_COLUMNS, YAHOO_HEADER


class PriceFileError(ValueError):
    """A price file that cannot be read as a Yahoo CSV export."""


MAX_PRICE_FILE_BYTES = 64 * 1024 * 1024
"""Largest price file read. A century of daily rows is about 2 MiB; anything far bigger is not
a daily history (or is a device that never ends, like ``/dev/zero``) and is refused unread."""

_FILE_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")


def read_price_file_bytes(path: str | Path, *, max_bytes: int = MAX_PRICE_FILE_BYTES) -> bytes:
    """The bytes of a price file, refusing anything but a regular file of at most ``max_bytes``.

    The file is opened without blocking and checked on the opened descriptor (symlinks
    resolved), so a FIFO never hangs the read, ``/dev/zero`` never fills memory, and a file
    swapped after a check is still judged by what is actually read.

    Raises:
        PriceFileError: Missing, unreadable, not a regular file (naming what it is), or too big.
    """
    path = Path(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait forever.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise PriceFileError(f"{path}: no such price file") from None
    except OSError as exc:
        raise PriceFileError(f"{path}: cannot open the price file ({exc.strerror})") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = f"not a regular file but {_kind(info.st_mode)}; a price file must be a CSV file"
    elif info.st_size > max_bytes:
        problem = (
            f"{info.st_size:,} bytes, larger than the {max_bytes:,} a daily price history can "
            "need; not read"
        )
    if problem is not None:
        os.close(fd)
        raise PriceFileError(f"{path}: {problem}")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read(max_bytes + 1)
        except OSError as exc:
            raise PriceFileError(f"{path}: cannot read the price file ({exc.strerror})") from None
    if len(data) > max_bytes:  # grew after the check
        raise PriceFileError(f"{path}: larger than {max_bytes:,} bytes; not read")
    return data


def _text(data: bytes, path: Path) -> str:
    # utf-8-sig: a file saved by a spreadsheet may start with a byte-order mark.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PriceFileError(
            f"{path}: not a text CSV file (undecodable byte at offset {exc.start}); binary?"
        ) from None
    if not text.strip():
        raise PriceFileError(f"{path}: the file is empty")
    return text


_HEADER_NAMES: dict[str, str] = {
    "date": "date",
    "datetime": "date",
    "open": "open",
    "high": "high",
    "low": "low",
    "close": "close",
    "adjclose": "adj_close",
    "volume": "volume",
}
"""Header cells (lower case, letters only) naming a price column. Other columns (yfinance's
``Dividends``, ``Stock Splits``, ``Capital Gains``, a saved index) are ignored."""

_DAY = r"(\d{4}-\d{2}-\d{2})"

_DATE = re.compile(_DAY + r"(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?")
"""A day, optionally with the time and UTC offset yfinance's ``history().to_csv()`` writes
(``2020-01-02 00:00:00-05:00``): the trading day is the date as written, in the exchange's
own time zone."""


_LEADING_DATE = re.compile(r'\n[ \t]*"?' + _DAY + r"(?![\d-])")
"""A data line's date, at the start of the line (a header line never starts with one), in
the text with a newline put before it. The leading literal newline lets the regex engine skip
ahead to line starts: three times cheaper than ``^`` with ``re.MULTILINE``."""


def _cell_name(cell: object) -> str:
    return re.sub(r"[^a-z]", "", str(cell).lower())


def _delimiter(text: str) -> str:
    """The export's column separator: a comma, or the semicolon or tab that spreadsheets save
    with where the decimal mark is a comma (their numbers may then read ``1,5``). Decided by
    the first line, which a comma-separated export never fills with either."""
    first = text.lstrip().split("\n", 1)[0]
    return next((mark for mark in (";", "\t") if mark in first), ",")


def _first_cells(text: str, lines: int) -> list[list[str]]:
    mark = _delimiter(text)
    head = text.lstrip()
    # Split only the first lines, not the whole history (a cut after the n-th newline
    # holds at least the first n lines whatever else splitlines breaks at).
    end = -1
    for _ in range(lines):
        end = head.find("\n", end + 1)
        if end < 0:
            break
    if end >= 0:
        head = head[: end + 1]
    return [line.split(mark) for line in head.splitlines()[:lines]]


def _has_header(text: str) -> bool:
    first = _first_cells(text, 1)[0]
    if _cell_name(first[0]) in {"date", "datetime", "price"}:
        return True
    # pandas writes a frame or series whose index has no name so: ",Adj Close".
    return not first[0].strip() and any(_cell_name(cell) in _HEADER_NAMES for cell in first[1:])


_DECIMAL_COMMA = re.compile(r"^\s*[+-]?[\d.]*\d,\d+\s*$")
"""A number written with a decimal comma (``1,5``, ``1.234,5``), as a spreadsheet that
separates columns by semicolons or tabs may write it."""


def _decimal_points(cells: pd.Series) -> pd.Series:
    """``cells`` with decimal-comma numbers rewritten with a decimal point (thousands dots
    dropped); every other cell as it was."""
    commas = cells.str.match(_DECIMAL_COMMA, na=False)
    if not commas.any():
        return cells
    fixed = cells[commas].str.replace(".", "", regex=False).str.replace(",", ".", regex=False)
    return cells.mask(commas, fixed)


_THOUSANDS = re.compile(r"^\s*[+-]?\d{1,3}(?:,\d{3})+(?:\.\d+)?\s*$")
"""A number with thousands commas (``1,204.40``), quoted in a comma-separated file, as a
spreadsheet saves formatted numbers."""


def _thousands_dropped(cells: pd.Series) -> pd.Series:
    """``cells`` with the thousands commas of such numbers removed; every other cell as it
    was."""
    grouped = cells.str.match(_THOUSANDS, na=False)
    if not grouped.any():
        return cells
    return cells.mask(grouped, cells[grouped].str.replace(",", "", regex=False))


def _yfinance_download_rows(text: str, path: Path) -> int:
    """Rows to skip under the header of a ``yf.download(...).to_csv()`` file, whose header has
    three rows (``Price,Close,...``, then ``Ticker,AAPL,...``, then ``Date,,,...``); 0 for
    any other file.

    Raises:
        PriceFileError: The file holds more than one ticker.
    """
    rows = _first_cells(text, 3)
    if _cell_name(rows[0][0]) != "price" or len(rows) < 2 or _cell_name(rows[1][0]) != "ticker":
        return 0
    tickers = sorted({cell.strip() for cell in rows[1][1:] if cell.strip()})
    if len(tickers) > 1:
        raise PriceFileError(
            f"{path}: holds {len(tickers)} tickers ({', '.join(tickers)}); "
            "a price file holds one ticker"
        )
    blank_date_row = len(rows) == 3 and _cell_name(rows[2][0]) in {"date", "datetime"}
    return 2 if blank_date_row else 1


def _named_columns(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The price columns of a headed file, found by name in any order (the others left
    out; :func:`_price_frame` fills the missing ones)."""
    names = [_HEADER_NAMES.get(_cell_name(cell)) for cell in frame.columns]
    names[0] = names[0] or "date"  # yfinance download's first header cell is "Price"
    given = [name for name in names if name]
    if repeated := sorted({name for name in given if given.count(name) > 1}):
        raise PriceFileError(f"{path}: more than one column for {', '.join(repeated)}")
    if "close" not in given and "adj_close" not in given:
        raise PriceFileError(
            f"{path}: no Close or Adj Close column (found {', '.join(map(str, frame.columns))})"
        )
    named = frame.loc[:, [name is not None for name in names]]
    named.columns = given
    return named


def _parse_dates(dates: pd.Series, path: Path) -> pd.Series:
    """The trading days of a date column; a blank cell stays missing (NaT) for the validator
    to name its row."""
    text = dates.astype("string").str.strip()
    bad = text.notna() & ~text.str.fullmatch(_DATE.pattern).fillna(False).astype(bool)
    if bad.any():
        raise PriceFileError(
            f"{path}: dates are not YYYY-MM-DD ({int(bad.sum())} value(s), first "
            f"{text[bad].iloc[0]!r} in data row {int(bad.idxmax()) + 1})"
        )
    # datetime64[ns] as the schema says; pandas 3 would infer microseconds from strings.
    return pd.to_datetime(text.str.slice(0, 10), format="%Y-%m-%d").astype("datetime64[ns]")


MISSING_CELLS: tuple[str, ...] = (
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
    "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null",
)  # fmt: skip
"""Cells read as missing, by both readers: Yahoo's ``null`` and the words ``read_csv``
documents as its default missing values (tests/data/test_price_sources.py checks pandas still
reads each of them so)."""


def _price_frame(columns: Mapping[str, Any]) -> pd.DataFrame:
    """A raw price frame from the price columns a file gave (``date`` parsed), rows ordered
    by date, stably (rows of one date keep their file order).

    With no adjusted close the close is taken as adjusted (yfinance's default,
    ``auto_adjust=True``, writes adjusted prices as ``Close``), and with only an adjusted
    close it is taken as the close too (the two columns then agree, as in a file with only a
    close); any other column the file lacks is missing (NaN) throughout.
    """
    filled = dict(columns)
    if "adj_close" not in filled:
        filled["adj_close"] = filled["close"]
    if "close" not in filled:
        filled["close"] = filled["adj_close"]
    rows = len(filled["date"])
    frame = pd.DataFrame(
        {name: filled[name] if name in filled else np.full(rows, np.nan) for name in PRICE_COLUMNS}
    )
    # Sorted before anything is decided: a shuffled export's last line is not its last day.
    if frame["date"].is_monotonic_increasing:
        return frame
    return frame.sort_values("date", kind="mergesort").reset_index(drop=True)


_PLAIN_DAY = r"^\d{4}-\d{2}-\d{2}$"


def _plain_columns(first_line: str) -> list[str] | None:
    """The price columns a plain export's header names, in file order, or None when the
    header is anything else (unknown or repeated columns, no close, a first column that is
    not the date): the general reader then decides, with its messages."""
    names = [_HEADER_NAMES.get(_cell_name(cell)) for cell in first_line.split(",")]
    if names[0] != "date" or None in names or len(set(names)) != len(names):
        return None
    if "close" not in names and "adj_close" not in names:
        return None
    return names  # type: ignore[return-value]


def _read_plain_export(text: str) -> pd.DataFrame | None:
    """The fast path of :func:`read_yahoo_csv`: a plain export read by Arrow's CSV reader.

    Plain means what Yahoo's own export and the tutorial's files are: no quotes, a header of
    known price columns starting with the date (or no header and the seven columns), every
    date ``YYYY-MM-DD``, and every price cell a finite number or a missing-value string. Any
    file that is not exactly that gives None, and the general reader (pandas, strings first)
    reads it, so every message and count about a malformed file is the general reader's.
    On a plain export both readers give the same frame, bit for bit (tests/data:
    ``test_the_plain_reader_equals_the_general_one``); Arrow's is about 20 times cheaper.
    """
    if '"' in text or not text[:1].isalnum() or _delimiter(text) != ",":
        return None  # quoting rules, leading blank lines, semicolons: the general reader's
    first_line = text[: text.find("\n")].rstrip("\r") if "\n" in text else text
    headed = _has_header(text)
    columns = _plain_columns(first_line) if headed else list(PRICE_COLUMNS)
    if columns is None:
        return None
    types = {name: (pa.string() if name == "date" else pa.float64()) for name in columns}
    try:
        table = pa_csv.read_csv(
            pa.BufferReader(text.encode()),
            read_options=pa_csv.ReadOptions(
                column_names=columns, skip_rows=1 if headed else 0, use_threads=False
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types=types,
                null_values=list(MISSING_CELLS),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid:  # a ragged row, a cell that is not a number, ...
        return None
    days = table.column("date")
    if days.null_count or not pc.all(pc.match_substring_regex(days, _PLAIN_DAY)).as_py():
        return None
    try:
        dates = pc.cast(days, pa.date32())
    except pa.ArrowInvalid:  # 2020-02-30
        return None
    frame: dict[str, np.ndarray] = {
        "date": dates.to_numpy().astype("datetime64[D]").astype("datetime64[ns]")
    }
    for name in columns[1:]:
        column = table.column(name)
        values = column.to_numpy().astype("float64")  # missing cells: NaN
        given = column.is_valid().to_numpy(zero_copy_only=False)
        # Text such as " nan", "inf" or "-0" parses here but not the same way in pandas
        # (unparsable, or +0): leave such a file to the general reader.
        if not np.isfinite(values[given]).all() or np.signbit(values[values == 0]).any():
            return None
        frame[name] = values
    return _price_frame(frame)


def read_yahoo_csv(path: str | Path, *, coerce: bool = True) -> pd.DataFrame:
    """Read a Yahoo CSV export into a raw price frame, rows ordered by date.

    Reads the files users have of a ticker's history:

    - Yahoo's "Download historical data" export (``Date,Open,High,Low,Close,Adj Close,Volume``);
    - the same seven columns with no header row (as the tutorial's ``DIS.csv``), by position;
    - yfinance's ``Ticker.history().to_csv()`` (dates with a time and UTC offset, extra
      ``Dividends``/``Stock Splits`` columns) and ``download().to_csv()`` (a three-row
      header naming one ticker);
    - any headed file whose columns are named as above, in any order, case and spacing,
      its first header cell blank too (pandas' ``to_csv`` of an index without a name);
    - numbers quoted with thousands commas (``"1,204.40"``: a spreadsheet's formatted save);
    - any of these separated by semicolons or tabs instead of commas (a spreadsheet's save
      where the decimal mark is a comma), numbers written ``1,5`` or ``1.5``.

    With no adjusted-close column, the close is taken as adjusted (yfinance adjusts ``Close``
    by default). Yahoo writes ``null`` for a missing value; those become NaN here and are
    left for the validator to drop and count. Only a regular file of at most
    :data:`MAX_PRICE_FILE_BYTES` is read (:func:`read_price_file_bytes`).

    Args:
        path: The CSV file.
        coerce: Turn cells that are not numbers into NaN. With False, a column holding such
            text is returned as read (object dtype), so that the validator can count the
            unparsable cells instead of losing them silently.

    Returns:
        A frame with the columns of :data:`closecast.inputs.schema.PRICE_COLUMNS`, ``date`` parsed,
        rows sorted by date (stably: rows of one date keep their file order), not yet
        deduplicated or validated.

    Raises:
        PriceFileError: The file is missing, not a regular file, too big, empty, holds more
            than one ticker, lacks a close column, or its dates are not ``YYYY-MM-DD``.
    """
    path = Path(path)
    text = _text(read_price_file_bytes(path), path)
    plain = _read_plain_export(text)
    return plain if plain is not None else _read_any_export(text, path, coerce=coerce)


def _read_any_export(text: str, path: Path, *, coerce: bool) -> pd.DataFrame:
    """The general reader of :func:`read_yahoo_csv`: every cell read as text by pandas, then
    parsed, so that each malformed file gets its own message and text cells are kept."""
    headed, mark = _has_header(text), _delimiter(text)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=mark,
            header=0 if headed else None,
            skiprows=range(1, 1 + _yfinance_download_rows(text, path)) if headed else None,
            na_values=list(MISSING_CELLS),
            keep_default_na=False,
            skip_blank_lines=True,
            dtype=str,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PriceFileError(f"{path}: not a Yahoo CSV export ({exc})") from exc
    if headed:
        frame = _named_columns(frame, path)
    elif frame.shape[1] != len(YAHOO_HEADER):
        raise PriceFileError(
            f"{path}: expected {len(YAHOO_HEADER)} columns ({', '.join(YAHOO_HEADER)}) "
            f"in a file with no header row, found {frame.shape[1]}"
        )
    else:
        frame.columns = list(PRICE_COLUMNS)
    columns: dict[str, pd.Series] = {"date": _parse_dates(frame["date"], path)}
    for name in frame.columns.drop("date"):
        frame[name] = (_decimal_points if mark != "," else _thousands_dropped)(frame[name])
        parsed = pd.to_numeric(frame[name], errors="coerce").astype("float64")
        keep_text = not coerce and parsed.notna().sum() != frame[name].notna().sum()
        columns[name] = frame[name] if keep_text else parsed
    return _price_frame(columns)


def last_csv_date(path: str | Path) -> date | None:
    """The latest date of a Yahoo CSV export (not its last line's: rows may be out of order).

    Args:
        path: The CSV file.

    Returns:
        The latest row's date, or None if the file has no data row.

    Only the lines' leading dates are scanned, not the prices: the run date is found from
    every requested file before any is fetched, and at hundreds of tickers parsing each
    whole file twice was most of that step. A file whose prices are bad still yields its
    date here and fails its own ticker when fetched.

    Raises:
        PriceFileError: The file is missing, not a regular file, too big, empty or binary.
    """
    path = Path(path)
    text = _text(read_price_file_bytes(path), path)
    # YYYY-MM-DD sorts as its day does: the latest is the greatest text that is a day.
    for day in sorted(set(_LEADING_DATE.findall("\n" + text)), reverse=True):
        try:
            return date.fromisoformat(day)
        except ValueError:  # 2020-13-45: not a day; the fetch names it
            continue
    return None
