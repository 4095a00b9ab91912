"""Read Yahoo Finance CSV exports, with or without their header row."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pandas as pd

from closecast.schema import PRICE_COLUMNS, YAHOO_HEADER


class PriceFileError(ValueError):
    """A price file that cannot be read as a Yahoo CSV export."""


_TAIL_BYTES = 4096


def _has_header(path: Path) -> bool:
    # utf-8-sig: a file saved by a spreadsheet may start with a byte-order mark.
    try:
        with path.open(encoding="utf-8-sig") as handle:
            first = handle.readline().strip()
    except UnicodeDecodeError as exc:
        raise PriceFileError(
            f"{path}: not a text CSV file (undecodable byte at offset {exc.start}); binary?"
        ) from None
    if not first:
        raise PriceFileError(f"{path}: the file is empty")
    return first.split(",")[0].strip().lower() == "date"


def read_yahoo_csv(path: str | Path, *, coerce: bool = True) -> pd.DataFrame:
    """Read a Yahoo CSV export into a raw price frame.

    The file may start with Yahoo's header row (``Date,Open,High,Low,Close,Adj Close,Volume``)
    or have none (as the tutorial's ``DIS.csv``). Yahoo writes ``null`` for a missing value;
    those become NaN here and are left for the validator to drop and count.

    Args:
        path: The CSV file.
        coerce: Turn cells that are not numbers into NaN. With False, a column holding such
            text is returned as read (object dtype), so that the validator can count the
            unparsable cells instead of losing them silently.

    Returns:
        A frame with the columns of :data:`closecast.schema.PRICE_COLUMNS`, ``date`` parsed,
        rows in file order (not yet sorted, deduplicated or validated).

    Raises:
        PriceFileError: The file is missing, empty, or not seven columns with parseable dates.
    """
    path = Path(path)
    if not path.is_file():
        raise PriceFileError(f"{path}: no such price file")
    header = 0 if _has_header(path) else None
    try:
        frame = pd.read_csv(
            path,
            header=header,
            na_values=["null"],
            keep_default_na=True,
            encoding="utf-8-sig",
            skip_blank_lines=True,
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
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
    return frame


def last_csv_date(path: str | Path) -> date | None:
    """The date on the last data row of a Yahoo CSV export, read from the file's tail.

    Cheap (reads a few kilobytes) so that a source can tell its "today" without parsing
    whole histories.

    Args:
        path: The CSV file.

    Returns:
        The last row's date, or None if the file has no data row with a YYYY-MM-DD date.
    """
    path = Path(path)
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - _TAIL_BYTES))
        tail = handle.read().decode("utf-8", errors="replace")
    for line in reversed(tail.splitlines()):
        first = line.split(",", 1)[0].strip()
        if not first:
            continue
        try:
            return datetime.strptime(first, "%Y-%m-%d").date()
        except ValueError:
            return None
    return None
