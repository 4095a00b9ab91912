"""The fetch task retries what the network may fix, and nothing else."""

from __future__ import annotations

from datetime import date

import pytest

from closecast.pipeline.settings import RunSettings
from closecast.sources import SampleSource, SourceUnavailableError, UnknownTickerError
from closecast.watchlist import WatchItem
from tasks import prices
from tasks.prices import fetch_prices

AS_OF = date(2020, 12, 11)


class FlakySource:
    """The sample market behind a connection that fails ``failures`` times first."""

    name = "flaky"

    def __init__(self, failures: int, error: Exception) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def today(self, tickers=()) -> date:
        return AS_OF

    def describe_today(self, tickers=()) -> str:
        return "the sample's day"

    def fetch(self, symbol, *, start, end):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return SampleSource().fetch(symbol, start=start, end=end)


def run_fetch(monkeypatch, tmp_path, source: FlakySource):
    monkeypatch.setattr(prices, "get_source", lambda spec: source)
    quick = fetch_prices.with_options(retries=3, retry_delay_seconds=0, retry_jitter_factor=None)
    options = RunSettings(storage=str(tmp_path), preset="fast")
    return quick(WatchItem("QQQ", "etf"), AS_OF, options, return_state=True)


@pytest.mark.usefixtures("prefect_harness")
def test_network_errors_are_retried_until_they_pass(monkeypatch, tmp_path) -> None:
    source = FlakySource(2, SourceUnavailableError("rate limited", ticker="QQQ", source="x"))
    state = run_fetch(monkeypatch, tmp_path, source)
    assert state.is_completed()
    assert source.calls == 3
    assert state.result()["n_new"] > 1000


@pytest.mark.usefixtures("prefect_harness")
def test_unknown_ticker_is_not_retried(monkeypatch, tmp_path) -> None:
    source = FlakySource(5, UnknownTickerError("no such ticker", ticker="QQQ", source="x"))
    state = run_fetch(monkeypatch, tmp_path, source)
    assert state.is_failed()
    assert source.calls == 1
