"""One ticker's steps on a real local store with real (tiny) TensorFlow training: every
promote-or-keep path gives a different, checkable outcome."""

from __future__ import annotations

import json
from datetime import date

import pytest

from closecast import catalog
from closecast.catalog import RunScope
from closecast.pipeline import live
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.registry import read_champion
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_ticker, read_history
from closecast.records import ServedRow
from closecast.sources import SampleSource
from closecast.watchlist import WatchItem

ITEM = WatchItem("QQQ", "etf")
D0 = date(2020, 10, 1)
D1 = date(2020, 11, 2)
BACKFILL = date(2020, 10, 15)


def _versions(storage) -> list[str]:
    keys = storage.list_keys(catalog.models_prefix(ITEM.symbol))
    return sorted({k.split("/")[2] for k in keys if catalog.version_number(k.split("/")[2])})


def _constructed_record(storage, options, *, lineage: str, miss: float) -> None:
    """A live record for ``lineage`` over D0..D1: each day served the day before, off the
    actual price by ``miss`` (0: perfect), as if the lineage had run daily."""
    fetch_and_store(ITEM, D1, storage, SampleSource())
    prices, _ = read_history(storage, ITEM, D1, options.training_config())
    window = prices[(prices.index > str(D0)) & (prices.index <= str(D1))]
    previous = prices.shift(1)
    rows = [
        ServedRow(
            ticker=ITEM.symbol,
            target_date=ts.date(),
            data_end=prices.index[prices.index.get_loc(ts) - 1].date(),
            forecast=float(value) * (1 + miss),
            naive=float(previous[ts]),
            model_version=lineage,
            lineage=lineage,
            trained_through=prices.index[prices.index.get_loc(ts) - 1].date(),
            served_on=prices.index[prices.index.get_loc(ts) - 1].date(),
            actual=float(value),
            scored_on=ts.date(),
        )
        for ts, value in window.items()
    ]
    live.write_ledger(storage, ITEM.symbol, live.Ledger(rows=tuple(rows)))


@pytest.fixture
def options(tmp_path) -> RunSettings:
    return RunSettings(storage=str(tmp_path / "store"), preset="fast")


def _run(options: RunSettings, day: date, **changes):
    storage = open_run_storage(options)
    fetch_and_store(ITEM, day, storage, SampleSource())
    return forecast_ticker(ITEM, RunScope(day, "steps"), options.model_copy(update=changes))


def test_promote_or_keep_paths(options) -> None:
    storage = open_run_storage(options)

    # No champion: the retrain is promoted, and starts lineage v0001.
    first = _run(options, D0).metrics
    assert (first.mode, first.model_version, first.lineage, first.promoted) == (
        "retrain",
        "v0001",
        "v0001",
        True,
    )
    assert "no champion" in first.mode_reason
    assert read_champion(storage, ITEM.symbol).retrained_on == D0

    # The champion lineage served nearly perfect forecasts on the candidate's hold-out days:
    # the retrained candidate loses, the champion is kept and fine-tuned through D1.
    _constructed_record(storage, options, lineage="v0001", miss=0.0001)
    kept = _run(options, D1, mode="retrain").metrics
    assert "champion kept" in kept.mode_reason
    assert (kept.mode, kept.model_version, kept.lineage, kept.promoted) == (
        "finetune",
        "v0002",
        "v0001",
        True,
    )
    assert kept.trained_through == kept.data_end
    champion = read_champion(storage, ITEM.symbol)
    assert (champion.version, champion.lineage, champion.retrained_on) == ("v0002", "v0001", D0)
    assert _versions(storage) == ["v0001", "v0002"]  # the losing candidate is not stored

    # The lineage's record was poor on the same days: the candidate wins and is refit.
    _constructed_record(storage, options, lineage="v0001", miss=0.05)
    won = _run(options, D1, mode="retrain").metrics
    assert "promoted" in won.mode_reason and "candidate backtest U2" in won.mode_reason
    assert (won.mode, won.model_version, won.lineage) == ("retrain", "v0003", "v0003")
    champion = read_champion(storage, ITEM.symbol)
    assert (champion.version, champion.retrained_on, champion.trained_through) == (
        "v0003",
        D1,
        won.data_end,
    )
    meta = json.loads(storage.read_bytes("models/QQQ/v0003/meta.json"))
    assert meta["refit_of"]["train_end"] < str(won.backtest_start)
    assert meta["refit_of"]["backtest_start"] == str(won.backtest_start)
    assert meta["trained_through"] == str(won.data_end)

    # Nothing unseen since the champion's last day: it serves as is, no new version.
    same_day = _run(options, D1).metrics
    assert (same_day.mode, same_day.model_version, same_day.promoted) == ("keep", "v0003", False)
    assert "no unseen days" in same_day.mode_reason
    assert _versions(storage) == ["v0001", "v0002", "v0003"]

    # A run dated before the champion's promotion is a backfill: trained, never promoted,
    # and the live record is left as it was.
    ledger_before = storage.read_bytes(catalog.served_key(ITEM.symbol))
    backfill = _run(options, BACKFILL).metrics
    assert backfill.mode == "retrain" and not backfill.promoted
    assert "backfill" in backfill.mode_reason
    assert backfill.model_version == "v0004" and backfill.trained_through <= BACKFILL
    assert read_champion(storage, ITEM.symbol).version == "v0003"
    assert storage.read_bytes(catalog.served_key(ITEM.symbol)) == ledger_before


def test_an_unreadable_champion_is_replaced_by_a_retrain(options) -> None:
    storage = open_run_storage(options)
    _run(options, D0)
    storage.write_bytes(catalog.champion_key(ITEM.symbol), b"{not json")
    outcome = _run(options, D1, mode="finetune").metrics
    assert outcome.mode == "retrain" and outcome.promoted
    assert "champion unreadable" in outcome.mode_reason
    assert catalog.champion_key(ITEM.symbol) in outcome.mode_reason
    assert read_champion(storage, ITEM.symbol).version == outcome.model_version == "v0002"
