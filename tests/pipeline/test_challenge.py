"""Through real daily runs of one ticker (issue 17): ``mode_reason`` says why on a first run,
a backfill and a preset change (these said "no champion: promoted" where a champion existed),
and a lost challenge is recorded in the champion pointer and waits its interval (an age
retrain that loses the comparison was retried every day). One ticker on a real store with
real (tiny) TensorFlow training.

Each day is the per-ticker pipeline a daily flow run's modelling task runs (fetch, then
``forecast_tickers``), called in-process: the decisions and the champion pointer are made
there, and a Prefect flow run around them costs about 2 CPU-s more per day (its API server,
task engine, publishing and summary plot) for nothing these checks read.
test_daily_forecast checks the modes of real flow runs day after day.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import date

import pandas as pd
import pytest

from closecast.inputs.watchlist import WatchItem
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import ServedRow
from closecast.pipeline import live
from closecast.pipeline.decisions import RetrainPolicy
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers, read_history
from closecast.pipeline.versions import read_champion
from closecast.sources import SampleSource

ITEM = WatchItem("QQQ", "etf")
# The per-ticker line-up: the global models are fit by a flow run's pooled step, and these
# decisions are the LSTM's.
MODELS = "lstm,naive,drift,seasonal_naive"
BACKFILL = date(2020, 9, 30)  # the day before the first run
D0 = date(2020, 10, 1)
D1 = date(2020, 11, 2)  # 32 days later: past a 20-day age
WAITING = date(2020, 11, 5)  # 3 days after the lost challenge
RETRY = date(2020, 11, 9)  # 7 days after it
PRESET_CHANGE = date(2020, 11, 10)


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


def _run(options: RunSettings, day: date, **changes) -> pd.Series:
    """One day of the ticker, as a daily flow run's fetch and modelling tasks do it; its
    metrics row."""
    settings = options.model_copy(update={"as_of": day, **changes})
    fetched = fetch_and_store(ITEM, day, open_run_storage(settings), SampleSource())
    (outcome,) = forecast_tickers(
        [ITEM], RunScope(day, "adhoc"), settings, {ITEM.symbol: fetched}, draw_plots=False
    )
    assert outcome.metrics.status == "ok", outcome.metrics.error
    return pd.Series(asdict(outcome.metrics))


@pytest.mark.slow  # six days of one ticker
def test_mode_reasons_and_a_lost_challenge_hold_day_after_day(tmp_path) -> None:
    options = RunSettings(
        tickers=[ITEM.symbol],
        source="sample",
        storage=str(tmp_path / "store"),
        preset="fast",
        policy=RetrainPolicy(max_model_age_days=20),
        models=MODELS,
    )
    storage = open_run_storage(options)
    first = _run(options, D0)
    assert first["mode"] == "retrain"
    assert first["mode_reason"].startswith("no champion model yet; no champion: promoted")
    # A backfill has a champion: it says so, and neither promotes nor claims there is none.
    backfill = _run(options, BACKFILL)
    assert backfill["mode"] == "retrain" and not backfill["promoted"]
    assert backfill["mode_reason"].startswith(
        "backfill: as-of 2020-09-30 precedes champion v0001's promotion on 2020-10-01"
    )
    assert "not compared with champion v0001: not promoted" in backfill["mode_reason"]
    assert "no champion" not in backfill["mode_reason"]
    assert (read_champion(storage, ITEM.symbol).version, backfill["model_version"]) == (
        "v0001", "v0002",
    )  # fmt: skip

    # The lineage served nearly perfect forecasts since: an age retrain cannot beat it.
    _near_perfect_record(options, "v0001")
    lost = _run(options, D1)
    assert "retrained 32 days ago (max 20)" in lost["mode_reason"]
    assert "champion kept" in lost["mode_reason"] and lost["mode"] == "finetune"
    champion = read_champion(storage, ITEM.symbol)
    assert (champion.lineage, champion.challenged_on) == ("v0001", D1)

    waiting = _run(options, WAITING)
    assert waiting["mode"] == "finetune"
    assert "lost to it on 2020-11-02; retrain retried from 2020-11-09" in waiting["mode_reason"]
    # The fine-tune keeps the record of the challenge.
    assert read_champion(storage, ITEM.symbol).challenged_on == D1

    retried = _run(options, RETRY)
    assert retried["mode_reason"].startswith("lineage v0001 retrained 39 days ago (max 20)")
    assert "candidate backtest U2" in retried["mode_reason"]

    # A preset change replaces the champion by request, and says so.
    changed = _run(options, PRESET_CHANGE, preset="default", epochs=1)
    assert changed["mode"] == "retrain" and changed["promoted"]
    assert changed["mode_reason"].startswith("preset changed from fast to default")
    assert "replaces champion" in changed["mode_reason"]
    assert "(fast) by request, without comparison: promoted" in changed["mode_reason"]
    assert "no champion" not in changed["mode_reason"]
