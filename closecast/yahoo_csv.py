"""Read Yahoo Finance CSV exports, with or without their header row."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from closecast.schema import PRICE_COLUMNS, YAHOO_HEADER


class PriceFileError(ValueError):
    """A price file that cannot be read as a Yahoo CSV export."""


def _has_header(path: Path) -> bool:
    with path.open(encoding="utf-8") as handle:
        first = handle.readline().strip()
    if not first:
        raise PriceFileError(f"{path}: the file is empty")
    return first.split(",")[0].strip().lower() == "date"


def read_yahoo_csv(path: str | Path) -> pd.DataFrame:
    """Read a Yahoo CSV export into a raw price frame.

    The file may start with Yahoo's header row (``Date,Open,High,Low,Close,Adj Close,Volume``)
    or have none (as the tutorial's ``DIS.csv``). Yahoo writes ``null`` for a missing value;
    those become NaN here and are left for the validator to drop and count.

    Args:
        path: The CSV file.

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
        frame = pd.read_csv(path, header=header, na_values=["null"], keep_default_na=True)
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise PriceFileError(f"{path}: not a Yahoo CSV export ({exc})") from exc
    if frame.shape[1] != len(YAHOO_HEADER):
        raise PriceFileError(
            f"{path}: expected {len(YAHOO_HEADER)} columns ({', '.join(YAHOO_HEADER)}), "
            f"found {frame.shape[1]}"
        )
    frame.columns = list(PRICE_COLUMNS)
    try:
        frame["date"] = pd.to_datetime(frame["date"], format="%Y-%m-%d")
    except (ValueError, TypeError) as exc:
        raise PriceFileError(f"{path}: dates are not YYYY-MM-DD ({exc})") from exc
    for column in PRICE_COLUMNS[1:]:
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype("float64")
    return frame
