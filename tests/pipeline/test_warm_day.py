"""A warm day does only the new day's work: the storage requests the per-ticker modelling
makes are counted and bounded, the line-up's backtests are kept per lineage rather than
recomputed, no ticker's versions are walked, and what is published equals a from-scratch
recomputation of the same day."""

from __future__ import annotations

import io
import shutil
import threading
from collections import Counter
from dataclasses import replace
from datetime import date

import pandas as pd
import pyarrow.parquet as pq
import pytest

import closecast.pipeline.services as run_services
from closecast.inputs.price_store import PriceStore
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.lineup import compute_baseline_backtests, lineage_baseline_backtests
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.versions import read_champion, write_champion
from closecast.sources import SampleSource
from closecast.storage import Storage, open_storage
from flows.daily_forecast import daily_forecast
from lstm_model.config import get_preset
from lstm_model.registry import GLOBAL_MODELS

COLD, WARM = date(2020, 12, 10), date(2020, 12, 11)
TICKERS = ["AAPL", "QQQ"]
MODELLING_TASK = "forecast-tickers"
WARM_REQUESTS_PER_TICKER = 13
"""The most storage requests the modelling of one ticker makes on a warm (fine-tune) day,
every request counted: the LSTM's ledger (1), the champion and its version archive (2), the
lineage's backtest and its kept line-up (3: the baselines' and the global models'
backtests, which cost more to recompute than to read), the new version's archive with one
listing of its own slot (2), the predictions and the plot (2), and last the state committed
all or nothing (3 writes: the line-up's ledgers, the LSTM's, the pointer; what they held,
to restore on a failure, is what the ticker read). The prices are the bytes the fetch
stored, and every line-up model's ledger (one object) the bytes the pooled step read (no
request: the run holds the ticker's lease from the fetch through the modelling). It was 16
with the prices and the line-up's ledgers read again and the ticker's lease taken again by
the modelling (created, then released), 18 with a read of each new lease's tag, 20 with a
version's three files stored and read one by one, and 34 before that with one ledger
object per model."""
OTHER_REQUESTS_PER_TICKER = 6
"""A ticker's requests outside its modelling on a warm day: its one lease of the run (2:
created before the fetch, released once its chunk is modelled), fetching its prices (2: the
stored history read once and written), the pooled step reading its line-up ledgers (1: its
prices are the bytes the fetch stored; it was 3, with the prices and one read per global
model), and the UI's embedded plot (1: read, with no existence check first). Publishing
reads nothing back: the manifest lists each object and state object with the digest of the
bytes the run wrote or read (it was 22: 4 to fetch, 13 read back for the manifest, 2 for
the plot)."""
WARM_REQUESTS = WARM_REQUESTS_PER_TICKER + OTHER_REQUESTS_PER_TICKER
"""Every request of a warm day per ticker: 19 (it was 24 with a lease per task, the prices
read by each task and the line-up's ledgers by the pooled step and the modelling)."""
TIMING_COLUMNS = {"train_seconds", "model_seconds"}


def global_model_files(root: str) -> int:
    """Requests a modelling chunk makes for the run's global models: one per file of each
    one's serving and backtest models (global_ar has one, global_lstm two), once per chunk,
    whatever its number of tickers."""
    from closecast.pipeline.pooled import read_global_champion

    storage = open_storage(root)
    champions = [read_global_champion(storage, "adhoc", kind) for kind in GLOBAL_MODELS]
    return sum(len(c.files) + len(c.backtest_files) for c in champions if c is not None)


NOT_REQUESTS = frozenset(("url", "describe"))
"""Storage methods that send nothing: a presigned URL is computed locally."""


class CountingStorage:
    """A real storage that records every request: (task name, method, key)."""

    METHODS = frozenset(
        name for name in vars(Storage) if not name.startswith("_") and name not in NOT_REQUESTS
    )
    """Every method of the storage protocol that sends a request (the leases' conditional
    ones too): a method added to the protocol is counted without being listed here."""

    def __init__(self, inner, calls: list[tuple[str, str, str]], lock: threading.Lock) -> None:
        self._inner, self._calls, self._lock = inner, calls, lock

    def __getattr__(self, name: str):
        attribute = getattr(self._inner, name)
        if name not in self.METHODS:
            return attribute

        def counted(*args, **kwargs):
            from prefect.context import TaskRunContext

            context = TaskRunContext.get()
            task = context.task.name if context is not None else "flow"
            key = str(args[0] if args else kwargs.get("key", kwargs.get("prefix", "")))
            with self._lock:
                self._calls.append((task, name, key))
            return attribute(*args, **kwargs)

        return counted


@pytest.fixture
def requests(monkeypatch) -> list[tuple[str, str, str]]:
    calls: list[tuple[str, str, str]] = []
    lock = threading.Lock()
    real = run_services.open_storage
    monkeypatch.setattr(
        run_services, "open_storage", lambda *a, **k: CountingStorage(real(*a, **k), calls, lock)
    )
    return calls


def run(root: str, day: date):
    settings = RunSettings(tickers=TICKERS, source="sample", storage=root, as_of=day, preset="fast")
    state = daily_forecast(settings, return_state=True)
    assert state.is_completed(), state.message
    return state


def ticker_of(key: str) -> str | None:
    """The ticker a request is for: its key's, or the ticker of a lease."""
    if key.startswith("leases/ticker="):
        return key.removeprefix("leases/ticker=").removesuffix(".json")
    return catalog.ticker_of_key(key)


def per_ticker(calls: list[tuple[str, str, str]], task: str) -> Counter[str | None]:
    return Counter(ticker_of(key) for name, _, key in calls if name == task)


def published_tables(root: str, scope: RunScope) -> dict[str, pd.DataFrame]:
    storage = open_storage(root)
    tables = {}
    for table in catalog.RUN_PARQUET_TABLES:
        frame = pq.read_table(io.BytesIO(storage.read_bytes(table.key(scope)))).to_pandas()
        tables[table.name] = frame.drop(columns=sorted(TIMING_COLUMNS & set(frame.columns)))
    for ticker in TICKERS:
        key = catalog.PREDICTIONS.key(scope, ticker)
        tables[key] = pq.read_table(io.BytesIO(storage.read_bytes(key))).to_pandas()
    return tables


@pytest.mark.usefixtures("prefect_harness")
def test_a_warm_day_makes_few_requests_and_publishes_what_from_scratch_would(
    tmp_path, requests
) -> None:
    warm_root, scratch_root = str(tmp_path / "warm"), str(tmp_path / "scratch")
    run(warm_root, COLD)
    cold = per_ticker(requests, MODELLING_TASK)
    shutil.copytree(warm_root, scratch_root)
    # From scratch: no kept line-up backtests and no record of the latest version, so the
    # scratch run recomputes the baselines' backtests and walks the versions, as before.
    scratch = open_storage(scratch_root)
    for ticker in TICKERS:
        for key in scratch.list_keys(catalog.models_prefix(ticker)):
            if key.endswith("/lineup.parquet") or "/lineup-global-" in key:
                scratch.delete(key)
        champion = read_champion(scratch, ticker)
        assert champion.latest == "v0001"
        write_champion(scratch, ticker, replace(champion, latest=None))

    requests.clear()
    run(warm_root, WARM)
    warm = per_ticker(requests, MODELLING_TASK)
    warm_calls = [(method, key) for task, method, key in requests if task == MODELLING_TASK]
    print(f"modelling requests per ticker: cold {dict(cold)}, warm {dict(warm)}")
    print("by task:", Counter((task, ticker_of(key)) for task, _, key in requests))
    # Every request names its ticker, but the chunk's loading of the global models.
    global_loads = warm.pop(catalog.GLOBAL_MODELS_DIR, 0)
    assert 0 < global_loads <= global_model_files(warm_root), warm_calls
    assert set(warm) == set(TICKERS), warm
    assert max(warm.values()) <= WARM_REQUESTS_PER_TICKER, warm_calls
    # Fetching and publishing send theirs from their own threads (outside a task's context).
    other = Counter(ticker_of(key) for task, _, key in requests if task != MODELLING_TASK)
    assert all(0 < other[t] <= OTHER_REQUESTS_PER_TICKER for t in TICKERS), other
    every = Counter(ticker_of(key) for _, _, key in requests)
    assert all(every[t] <= WARM_REQUESTS for t in TICKERS), every
    # One lease per ticker for the whole run, taken before the fetch, released after the
    # modelling: no task takes it again.
    for ticker in TICKERS:
        lease = catalog.ticker_lease_key(ticker)
        on_it = [(task, method) for task, method, key in requests if key == lease]
        assert on_it == [("flow", "create_exclusive"), ("flow", "delete_if")], on_it
        # The prices are read once, by the fetch; the pooled step and the modelling take
        # the bytes it stored.
        prices = [(task, method) for task, method, key in requests
                  if key == catalog.prices_key(ticker)]  # fmt: skip
        assert prices == [("flow", "read_bytes"), ("flow", "write_bytes")], prices
        # The line-up's ledgers are read once, by the pooled step, and written by the commit.
        lineup = [(task, method) for task, method, key in requests
                  if key == catalog.lineup_ledgers_key(ticker)]  # fmt: skip
        assert lineup == [("fit-global-models", "read_bytes"), (MODELLING_TASK, "write_bytes")]
    # No walk of a ticker's versions, no recomputed line-up: one listing of the new slot.
    listings = [key for method, key in warm_calls if method == "list_keys"]
    assert sorted(listings) == sorted(f"models/{t}/v0002/" for t in TICKERS)

    def kept_lineup(key: str) -> bool:
        return key.endswith("/lineup.parquet") or "/lineup-global-" in key

    # Read, never written: the baselines' and the global models' kept backtests.
    assert len([key for _, key in warm_calls if kept_lineup(key)]) == 2 * len(TICKERS)
    assert not [key for method, key in warm_calls if kept_lineup(key) and method != "read_bytes"]

    run(scratch_root, WARM)
    scope = RunScope(WARM, "adhoc")
    warm_tables, scratch_tables = (
        published_tables(warm_root, scope),
        published_tables(scratch_root, scope),
    )
    assert warm_tables.keys() == scratch_tables.keys()
    for name, frame in warm_tables.items():
        pd.testing.assert_frame_equal(frame, scratch_tables[name], check_exact=True, obj=name)
    metrics = warm_tables[catalog.METRICS.name]
    assert set(metrics["mode"]) == {"finetune"}  # a warm day indeed


def test_the_line_up_is_kept_per_lineage_and_recomputed_when_its_prices_change(tmp_path):
    storage = open_storage(str(tmp_path))
    item = WatchItem("QQQ", "etf")
    fetch_and_store(item, WARM, storage, SampleSource())
    prices = PriceStore(storage).read("QQQ", as_of=WARM).set_index("date")["adj_close"]
    config, days = get_preset("fast"), [ts.date() for ts in prices.index[-60:]]
    fresh = compute_baseline_backtests(prices, days, config, 3)

    _, keys = lineage_baseline_backtests(storage, "QQQ", "v0001", prices, days, config, 3)
    assert keys == [catalog.lineup_backtest_key("QQQ", "v0001")]
    kept, keys = lineage_baseline_backtests(storage, "QQQ", "v0001", prices, days, config, 3)
    assert keys == []  # read, not recomputed nor rewritten
    for kind, (record, path) in fresh.by_kind.items():
        pd.testing.assert_frame_equal(kept.by_kind[kind][0].frame, record.frame, check_exact=True)
        pd.testing.assert_frame_equal(kept.by_kind[kind][1], path, check_exact=True)
    assert kept.failed == fresh.failed and set(kept.by_kind) == set(fresh.by_kind)

    # A revised price inside the hold-out: the kept backtests no longer apply.
    revised = prices.copy()
    revised.iloc[-30] *= 1.01
    stored = storage.read_bytes(catalog.lineup_backtest_key("QQQ", "v0001"))
    again, keys = lineage_baseline_backtests(storage, "QQQ", "v0001", revised, days, config, 3)
    expected = compute_baseline_backtests(revised, days, config, 3)
    assert keys == [] and storage.read_bytes(catalog.lineup_backtest_key("QQQ", "v0001")) == stored
    for kind, (record, _) in expected.by_kind.items():
        pd.testing.assert_frame_equal(again.by_kind[kind][0].frame, record.frame, check_exact=True)
        assert not again.by_kind[kind][0].frame.equals(kept.by_kind[kind][0].frame)
