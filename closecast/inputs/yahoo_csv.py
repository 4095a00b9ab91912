"""Read Yahoo Finance CSV exports, with or without their header row."""

from __future__ import annotations

import io
import os
import stat
from datetime import date
from pathlib import Path

import pandas as pd

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


def _has_header(text: str) -> bool:
    first = text.lstrip().split("\n", 1)[0]
    return first.split(",")[0].strip().lower() == "date"


def read_yahoo_csv(path: str | Path, *, coerce: bool = True) -> pd.DataFrame:
    """Read a Yahoo CSV export into a raw price frame, rows ordered by date.

    The file may start with Yahoo's header row (``Date,Open,High,Low,Close,Adj Close,Volume``)
    or have none (as the tutorial's ``DIS.csv``). Yahoo writes ``null`` for a missing value;
    those become NaN here and are left for the validator to drop and count. Only a regular
    file of at most :data:`MAX_PRICE_FILE_BYTES` is read (:func:`read_price_file_bytes`).

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
        PriceFileError: The file is missing, not a regular file, too big, empty, or not seven
            columns with parseable dates.
    """
    path = Path(path)
    text = _text(read_price_file_bytes(path), path)
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            header=0 if _has_header(text) else None,
            na_values=["null"],
            keep_default_na=True,
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise PriceFileError(f"{path}: not a Yahoo CSV export ({exc})") from exc
    if frame.shape[1] != len(YAHOO_HEADER):
        raise PriceFileError(
            f"{path}: expected {len(YAHOO_HEADER)} columns ({', '.join(YAHOO_HEADER)}), "
            f"found {frame.shape[1]}"
        )
    frame.columns = list(PRICE_COLUMNS)
    try:
        # datetime64[ns] as the schema says; pandas 3 would infer microseconds from strings.
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d").astype("datetime64[ns]")
    except (ValueError, TypeError) as exc:
        raise PriceFileError(f"{path}: dates are not YYYY-MM-DD ({exc})") from exc
    for column in PRICE_COLUMNS[1:]:
        parsed = pd.to_numeric(frame[column], errors="coerce").astype("float64")
        if coerce or parsed.notna().sum() == frame[column].notna().sum():
            frame[column] = parsed
    # Sorted before anything is decided: a shuffled export's last line is not its last day.
    return frame.sort_values("date", kind="mergesort").reset_index(drop=True)


def last_csv_date(path: str | Path) -> date | None:
    """The latest date of a Yahoo CSV export (not its last line's: rows may be out of order).

    Args:
        path: The CSV file.

    Returns:
        The latest row's date, or None if the file has no data row.

    Raises:
        PriceFileError: The file cannot be read as a Yahoo CSV export.
    """
    latest = read_yahoo_csv(path)["date"].max()  # NaT when there is no dated row
    return None if pd.isna(latest) else latest.date()
