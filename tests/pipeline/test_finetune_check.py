"""Does fine-tuning help? (issue 17.) A lineage's fine-tuned forecasts are paired with what
its un-fine-tuned refit would have served on the same days; when fine-tuning hurts with
Diebold-Mariano evidence, ``auto`` stops fine-tuning the lineage (its refit serves, recorded
in the champion pointer) while the retrain triggers still apply.

The lineage's days run the per-ticker pipeline a daily flow run's modelling task runs
(fetch, then ``forecast_tickers``) in-process, and the day fine-tuning stops is a real flow
run, whose published metrics and fine-tune tables are read: a flow run costs about 2 CPU-s
more per day (its API server, task engine, publishing and summary plot), for nothing the
other days' checks read."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.inputs.price_store import PriceStore
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import ServedRow
from closecast.pipeline import live
from closecast.pipeline.decisions import ChampionState, RetrainPolicy, decide_mode
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.finetuning import FinetuneComparison, finetune_hurts, finetune_score_row
from closecast.pipeline.live import LiveStats
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.pipeline.versions import BacktestScore, Champion, load_model, read_champion
from closecast.sources import SampleSource
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast

AS_OF = date(2020, 12, 11)
POLICY = RetrainPolicy(min_live_days=10)


def comparison(served_scale: float, n: int = 12, lineage: str = "v0002") -> FinetuneComparison:
    """``n`` fine-tuned forecasts whose errors are ``served_scale`` times the refit's."""
    rng = np.random.default_rng(7)
    rows, refit = [], []
    for i in range(n):
        day = date(2020, 11, 20) + timedelta(days=i)
        actual = 100.0 + i
        refit_error = float(rng.uniform(0.5, 1.5)) * (-1) ** i
        rows.append(
            ServedRow(
                ticker="QQQ", target_date=day, data_end=day - timedelta(days=1),
                forecast=actual + served_scale * refit_error, naive=actual - 1.0,
                model_version=f"v{3 + i:04d}", lineage=lineage,
                trained_through=day - timedelta(days=1), served_on=day - timedelta(days=1),
                actual=actual, scored_on=day,
            )
        )  # fmt: skip
        refit.append(actual + refit_error)
    return FinetuneComparison(lineage, tuple(rows), tuple(refit))


def champion(**changes) -> Champion:
    score = BacktestScore(date(2020, 9, 1), date(2020, 11, 1), 40, 1.0, 1.0, 1.0, 0.5, 1.0, 0.5)
    fields = {
        "version": "v0014", "lineage": "v0002", "trained_through": date(2020, 12, 10),
        "retrained_on": date(2020, 11, 19), "promoted_on": date(2020, 12, 10),
        "preset": "fast", "backtest": score,
    }  # fmt: skip
    return Champion(**{**fields, **changes})


def decide(finetune: FinetuneComparison | None, requested: str = "auto", **changes):
    state = ChampionState(champion(**changes), LiveStats(n=0), finetune=finetune)
    return decide_mode(requested, state, as_of=AS_OF, preset="fast", policy=POLICY)


def test_fine_tuning_that_hurts_with_evidence_is_stopped_and_says_why() -> None:
    hurt = comparison(served_scale=1.5)
    assert hurt.verdict == "hurts" and hurt.test.p_value > 0.975
    decision = decide(hurt)
    assert (decision.mode, decision.stop_finetune) == ("keep", True)
    assert "fine-tuning hurts lineage v0002: its fine-tuned forecasts' RMSE is 1.500x" in (
        decision.reason
    )
    assert "over 12 days 2020-11-20..2020-12-01" in decision.reason
    assert decision.reason.endswith("fine-tuning stopped, its refit v0002 serves")


def test_fine_tuning_that_helps_or_is_unproven_goes_on() -> None:
    helps = comparison(served_scale=0.5)
    assert helps.verdict == "helps"
    assert (decide(helps).mode, decide(helps).stop_finetune) == ("finetune", False)
    # Evidence needs min_live_days paired days: 9 clearly worse days are not enough yet.
    few = comparison(served_scale=1.5, n=9)
    assert few.verdict == "hurts" and finetune_hurts(few, POLICY) is None
    assert decide(few).mode == "finetune"
    assert decide(None).mode == "finetune"  # nothing to compare yet


def test_a_stopped_lineage_is_kept_but_still_retrained_by_the_usual_rules() -> None:
    stopped = {"version": "v0002", "finetune_stopped_on": date(2020, 12, 3)}
    kept = decide(None, **stopped)
    assert (kept.mode, kept.stop_finetune) == ("keep", False)
    assert "fine-tuning of lineage v0002 stopped on 2020-12-03: v0002 serves as is" in (kept.reason)
    aged = decide(None, retrained_on=AS_OF - timedelta(days=31), **stopped)
    assert aged.mode == "retrain" and "retrained 31 days ago (max 30)" in aged.reason
    # An explicit fine-tune request is obeyed.
    assert decide(None, requested="finetune", **stopped).mode == "finetune"


def test_the_stop_is_kept_in_the_champion_pointer() -> None:
    pointer = champion(version="v0002", finetune_stopped_on=date(2020, 12, 3))
    assert Champion.from_json(pointer.to_json()) == pointer
    legacy = {k: v for k, v in pointer.to_json().items() if k != "finetune_stopped_on"}
    assert Champion.from_json(legacy).finetune_stopped_on is None


def test_the_published_row_pairs_both_records_on_the_same_days() -> None:
    hurt = comparison(served_scale=1.5)
    row = finetune_score_row("QQQ", hurt, date(2020, 12, 11))
    assert (row.n, row.first_date, row.last_date) == (12, date(2020, 11, 20), date(2020, 12, 1))
    assert (
        row.served_rmse == np.float64(1.5) * row.refit_rmse
        or abs(row.served_rmse / row.refit_rmse - 1.5) < 1e-9
    )
    assert abs(row.u2_vs_refit - 1.5) < 1e-9 and row.verdict == "hurts"
    assert abs(row.served_u2 / row.refit_u2 - 1.5) < 1e-9 and row.naive_rmse == 1.0
    assert row.dm_p > 0.975 and row.finetune_stopped_on == date(2020, 12, 11)


# --- through real daily flow runs ---------------------------------------------------------------

ITEM = WatchItem("QQQ", "etf")
# The per-ticker line-up: the global models are fit by a flow run's pooled step, and these
# decisions are the LSTM lineage's.
MODELS = "lstm,naive,drift,seasonal_naive"
D0 = date(2020, 7, 1)  # the retrain: lineage v0001
D0B = date(2020, 7, 2)  # its first fine-tune: v0002
GOOD_DAYS, FINE_TUNED_DAYS = 55, 30
FLOW_POLICY = RetrainPolicy(
    max_model_age_days=200, min_live_days=10, max_u2_degradation=1.0, range_tolerance=10.0
)


def trading_days_after(day: date, n: int) -> list[date]:
    raw = SampleSource().fetch(ITEM.symbol, start=day, end=date(2020, 12, 11))
    days = sorted({ts.date() for ts in pd.to_datetime(raw["date"]) if ts.date() > day})
    return days[:n]


def run_day(root: str, day: date, *, flow: bool = False) -> tuple[pd.Series, pd.DataFrame]:
    """One day of the ticker: its metrics row and the day's fine-tune table. In-process (a
    flow run's fetch and modelling of the ticker), or a real flow run (``flow``), whose
    published tables are read."""
    settings = RunSettings(
        tickers=[ITEM.symbol], source="sample", storage=root, as_of=day, preset="fast",
        policy=FLOW_POLICY, models=MODELS,
        ticker_plots=0,  # the decisions are the point; the plot is test_daily_forecast's
    )  # fmt: skip
    scope = RunScope(day, "adhoc")
    if flow:
        state = daily_forecast(settings, return_state=True)
        assert state.is_completed(), state.message
        metrics = pd.read_parquet(Path(root) / catalog.METRICS.key(scope))
        finetune = pd.read_parquet(Path(root) / catalog.FINETUNE_SCORES.key(scope))
        return metrics.set_index("ticker").loc[ITEM.symbol], finetune
    fetched = fetch_and_store(ITEM, day, open_storage(root), SampleSource())
    (outcome,) = forecast_tickers([ITEM], scope, settings, {ITEM.symbol: fetched}, draw_plots=False)
    assert outcome.metrics.status == "ok", outcome.metrics.error
    rows = [asdict(row) for row in outcome.finetune_scores]
    return pd.Series(asdict(outcome.metrics)), pd.DataFrame(rows, columns=["ticker", "n"])


def plant_fine_tuned_record(root: str, refit, targets: list[date]) -> None:
    """The lineage's record since D0B: the refit's own days nearly perfect, then its
    fine-tunes' forecasts with 1.5x the errors of what the refit forecast for those days (so
    the lineage as a whole is not worse than naive, and no retrain trigger fires)."""
    storage = open_storage(root)
    fetch_and_store(ITEM, targets[-1], storage, SampleSource())
    prices = PriceStore(storage).read(ITEM.symbol, as_of=targets[-1]).set_index("date")
    prices = prices["adj_close"]
    predicted = refit.predict_one_step(prices, pd.Timestamp(targets[0]))
    rows = []
    for i, target in enumerate(targets):
        position = prices.index.get_loc(pd.Timestamp(target))
        actual, before = float(prices.iloc[position]), prices.index[position - 1].date()
        fine_tuned = i >= GOOD_DAYS
        refit_forecast = float(predicted[pd.Timestamp(target)])
        forecast = refit_forecast + 0.5 * (refit_forecast - actual) if fine_tuned else actual
        rows.append(
            ServedRow(
                ticker=ITEM.symbol, target_date=target, data_end=before,
                forecast=forecast * (1.0 if fine_tuned else 1.0001),
                naive=float(prices.iloc[position - 1]),
                model_version="v0002" if fine_tuned else "v0001", lineage="v0001",
                trained_through=before, served_on=before, actual=actual, scored_on=target,
            )
        )  # fmt: skip
    live.write_ledger(storage, ITEM.symbol, live.Ledger(rows=tuple(rows)))


@pytest.mark.usefixtures("prefect_harness")
def test_a_lineage_whose_fine_tunes_hurt_stops_fine_tuning_and_its_refit_serves(tmp_path):
    root = str(tmp_path / "store")
    storage = open_storage(root)
    assert run_day(root, D0)[0]["mode"] == "retrain"
    assert run_day(root, D0B)[0]["mode"] == "finetune"
    assert read_champion(storage, ITEM.symbol).version == "v0002"
    refit = load_model(storage, ITEM.symbol, "v0001")
    # What the refit would have served is what it did serve on the day it served.
    first = live.read_ledger(storage, ITEM.symbol).scored("v0001")[0]
    assert (first.target_date, first.model_version) == (D0B, "v0001")
    again = refit.predict_one_step(PriceStore(storage).read("QQQ").set_index("date")["adj_close"],
                                   pd.Timestamp(D0B))  # fmt: skip
    assert float(again[pd.Timestamp(D0B)]) == pytest.approx(first.forecast, rel=1e-6)

    targets = trading_days_after(D0B, GOOD_DAYS + FINE_TUNED_DAYS + 2)
    d1, d2 = targets[-2:]
    plant_fine_tuned_record(root, refit, targets[:-2])

    stopped, table = run_day(root, d1, flow=True)
    assert (stopped["mode"], stopped["model_version"], stopped["lineage"]) == (
        "keep", "v0001", "v0001",
    )  # fmt: skip
    assert (
        "fine-tuning hurts lineage v0001: its fine-tuned forecasts' RMSE is 1.500x its "
        in (stopped["mode_reason"])
    )
    assert "fine-tuning stopped, its refit v0001 serves" in stopped["mode_reason"]
    champion = read_champion(storage, ITEM.symbol)
    assert (champion.version, champion.lineage, champion.finetune_stopped_on) == (
        "v0001", "v0001", d1,
    )  # fmt: skip
    assert champion.latest == "v0002" and champion.trained_through < D0B  # no new version
    served = [r for r in live.read_ledger(storage, ITEM.symbol).rows if r.served_on == d1]
    assert [(r.model_version, r.trained_through) for r in served] == [
        ("v0001", champion.trained_through)
    ]
    row = table.set_index("ticker").loc[ITEM.symbol]
    assert (row["lineage"], row["n"], row["verdict"]) == ("v0001", FINE_TUNED_DAYS, "hurts")
    assert row["u2_vs_refit"] == pytest.approx(1.5) and row["dm_p"] > 0.975
    assert row["served_rmse"] == pytest.approx(1.5 * row["refit_rmse"])
    assert pd.Timestamp(row["finetune_stopped_on"]).date() == d1

    kept, table = run_day(root, d2)
    assert (kept["mode"], kept["model_version"]) == ("keep", "v0001")
    assert (
        f"fine-tuning of lineage v0001 stopped on {d1}: v0001 serves as is" in (kept["mode_reason"])
    )
    assert read_champion(storage, ITEM.symbol).latest == "v0002"  # still not fine-tuned
    assert table.set_index("ticker").loc[ITEM.symbol, "n"] == FINE_TUNED_DAYS
