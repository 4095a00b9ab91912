"""Price sources: where raw daily histories come from.

``get_source(spec)`` turns a configuration string into a source:

* ``sample`` - histories shipped in the package, frozen on 2020-12-11 (offline, reproducible);
* ``yahoo`` - Yahoo Finance through yfinance;
* ``csv:DIR`` - Yahoo CSV exports ``DIR/<TICKER>.csv``.
"""

from __future__ import annotations

from closecast.sources.base import (
    FutureRunDateError,
    PriceSource,
    PriceSourceError,
    SourceUnavailableError,
    UnknownTickerError,
    check_run_date,
    incremental_start,
)
from closecast.sources.csv_dir import CsvDirSource
from closecast.sources.sample import SampleSource
from closecast.sources.yahoo import YahooSource

__all__ = [
    "SOURCE_SPECS",
    "CsvDirSource",
    "FutureRunDateError",
    "PriceSource",
    "PriceSourceError",
    "SampleSource",
    "SourceUnavailableError",
    "UnknownTickerError",
    "YahooSource",
    "check_run_date",
    "get_source",
    "incremental_start",
]

SOURCE_SPECS: tuple[str, ...] = ("sample", "yahoo", "csv:DIR")
"""The accepted forms of a source spec."""


def get_source(spec: str) -> PriceSource:
    """Build the price source a spec names.

    Args:
        spec: ``sample``, ``yahoo`` or ``csv:DIR`` (case-insensitive keyword; DIR as given).

    Raises:
        ValueError: Any other spec, or ``csv:`` without a directory; the message lists the
            valid forms.
    """
    text = spec.strip()
    keyword, _, argument = text.partition(":")
    keyword = keyword.lower()
    if keyword == "sample" and not argument:
        return SampleSource()
    if keyword == "yahoo" and not argument:
        return YahooSource()
    if keyword == "csv" and argument.strip():
        return CsvDirSource(argument.strip())
    raise ValueError(
        f"unknown price source {spec!r}; valid forms: {', '.join(SOURCE_SPECS)} "
        "(e.g. csv:data/prices)"
    )
