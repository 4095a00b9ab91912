"""A lost challenge is recorded in the champion pointer and waits its interval (issue 17: an
age retrain that loses the comparison was retried every day). Real runs of one ticker on a
real store with real (tiny) TensorFlow training."""

from __future__ import annotations

from datetime import date

from closecast.catalog import RunScope
from closecast.pipeline import live
from closecast.pipeline.decisions import RetrainPolicy
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_ticker, read_history
from closecast.pipeline.versions import read_champion
from closecast.records import ServedRow
from closecast.sources import SampleSource
from closecast.watchlist import WatchItem

ITEM = WatchItem("QQQ", "etf")
D0 = date(2020, 10, 1)
D1 = date(2020, 11, 2)  # 32 days later: past a 20-day age
WAITING = date(2020, 11, 5)  # 3 days after the lost challenge
RETRY = date(2020, 11, 9)  # 7 days after it


def _near_perfect_record(options: RunSettings, lineage: str) -> None:
    """The lineage's live record over D0..D1 as if it had served daily, 0.01% off."""
    storage = open_run_storage(options)
    fetch_and_store(ITEM, D1, storage, SampleSource())
    prices, _ = read_history(storage, ITEM, D1, options.training_config())
    rows = []
    for position in range(1, len(prices)):
        day, before = prices.index[position].date(), prices.index[position - 1].date()
        if D0 < day <= D1:
            actual = float(prices.iloc[position])
            rows.append(
                ServedRow(
                    ticker=ITEM.symbol, target_date=day, data_end=before,
                    forecast=actual * 1.0001, naive=float(prices.iloc[position - 1]),
                    model_version=lineage, lineage=lineage, trained_through=before,
                    served_on=before, actual=actual, scored_on=day,
                )
            )  # fmt: skip
    live.write_ledger(storage, ITEM.symbol, live.Ledger(rows=tuple(rows)))


def _run(options: RunSettings, day: date):
    fetch_and_store(ITEM, day, open_run_storage(options), SampleSource())
    return forecast_ticker(ITEM, RunScope(day, "challenge"), options).metrics


def test_an_age_retrain_that_loses_waits_a_week_before_it_is_tried_again(tmp_path) -> None:
    options = RunSettings(
        storage=str(tmp_path / "store"),
        preset="fast",
        policy=RetrainPolicy(max_model_age_days=20),
    )
    storage = open_run_storage(options)
    assert _run(options, D0).mode == "retrain"
    # The lineage served nearly perfect forecasts since: an age retrain cannot beat it.
    _near_perfect_record(options, "v0001")

    lost = _run(options, D1)
    assert "retrained 32 days ago (max 20)" in lost.mode_reason
    assert "champion kept" in lost.mode_reason and lost.mode == "finetune"
    champion = read_champion(storage, ITEM.symbol)
    assert (champion.lineage, champion.challenged_on) == ("v0001", D1)

    waiting = _run(options, WAITING)
    assert waiting.mode == "finetune"
    assert "lost to it on 2020-11-02; retrain retried from 2020-11-09" in waiting.mode_reason
    # The fine-tune keeps the record of the challenge.
    assert read_champion(storage, ITEM.symbol).challenged_on == D1

    retried = _run(options, RETRY)
    assert retried.mode_reason.startswith("lineage v0001 retrained 39 days ago (max 20)")
    assert "candidate backtest U2" in retried.mode_reason
