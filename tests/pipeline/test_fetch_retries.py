"""The fetch task fetches a chunk's tickers together and retries, per ticker, what the network
may fix, and nothing else."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import date

import pytest

from closecast.inputs.watchlist import WatchItem
from closecast.pipeline.settings import RunSettings
from closecast.sources import SampleSource, SourceUnavailableError, UnknownTickerError
from tasks import prices
from tasks.prices import fetch_prices

AS_OF = date(2020, 12, 11)
QQQ, AAPL = WatchItem("QQQ", "etf"), WatchItem("AAPL", "stock")


class FlakySource:
    """The sample market behind a connection that fails some tickers' first calls."""

    name = "flaky"

    def __init__(self, failures: dict[str, int], error: Exception) -> None:
        self.failures, self.error = failures, error
        self.calls: Counter[str] = Counter()
        self.lock = threading.Lock()

    def today(self, tickers=()) -> date:
        return AS_OF

    def describe_today(self, tickers=()) -> str:
        return "the sample's day"

    def fetch(self, symbol, *, start, end):
        with self.lock:
            self.calls[symbol] += 1
            failing = self.calls[symbol] <= self.failures.get(symbol, 0)
        if failing:
            raise self.error
        return SampleSource().fetch(symbol, start=start, end=end)


def run_fetch(monkeypatch, tmp_path, source: FlakySource, delays=(0.0, 0.0, 0.0)):
    monkeypatch.setattr(prices, "get_source", lambda spec: source)
    settings = RunSettings(storage=str(tmp_path), preset="fast")
    return fetch_prices([QQQ, AAPL], AS_OF, settings, retry_delays=delays)


@pytest.mark.usefixtures("prefect_harness")
def test_network_errors_are_retried_for_the_failing_ticker_only(monkeypatch, tmp_path) -> None:
    error = SourceUnavailableError("rate limited", ticker="QQQ", source="x")
    source = FlakySource({"QQQ": 2}, error)
    qqq, aapl = run_fetch(monkeypatch, tmp_path, source)
    assert (qqq.item, aapl.item) == (QQQ, AAPL)
    assert qqq.ok and qqq.attempts == 3 and qqq.summary.n_new > 1000
    assert aapl.ok and aapl.attempts == 1
    assert source.calls == Counter({"QQQ": 3, "AAPL": 1})


@pytest.mark.usefixtures("prefect_harness")
def test_network_errors_beyond_the_retries_fail_the_ticker_alone(monkeypatch, tmp_path) -> None:
    error = SourceUnavailableError("rate limited", ticker="QQQ", source="x")
    source = FlakySource({"QQQ": 9}, error)
    qqq, aapl = run_fetch(monkeypatch, tmp_path, source, delays=(0.0,))
    assert not qqq.ok and qqq.attempts == 2
    assert qqq.error == "SourceUnavailableError: rate limited"
    assert aapl.ok
    assert source.calls["QQQ"] == 2


@pytest.mark.usefixtures("prefect_harness")
def test_unknown_ticker_is_not_retried(monkeypatch, tmp_path) -> None:
    source = FlakySource({"QQQ": 5}, UnknownTickerError("no such ticker", ticker="QQQ", source="x"))
    qqq, aapl = run_fetch(monkeypatch, tmp_path, source)
    assert not qqq.ok and qqq.attempts == 1 and qqq.error.startswith("UnknownTickerError")
    assert aapl.ok
    assert source.calls == Counter({"QQQ": 1, "AAPL": 1})
