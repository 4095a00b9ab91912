"""One ticker's steps on a real local store with real (tiny) TensorFlow training: every
promote-or-keep path gives a different, checkable outcome."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from closecast.inputs.calendars import next_trading_days
from closecast.inputs.validation import ValidationReport
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow, ServedRow
from closecast.pipeline import live
from closecast.pipeline.fetch import FetchSummary, Rebase, fetch_and_store
from closecast.pipeline.lineup import BASELINE_KINDS
from closecast.pipeline.rows import validation_columns
from closecast.pipeline.services import RunServices, open_run_storage
from closecast.pipeline.serving import Lineage, serve
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import (
    ChampionView,
    Produced,
    TrainingFailed,
    forecast_tickers,
    load_champion,
    plan_ticker,
    read_history,
    register,
    train_plans,
)
from closecast.pipeline.versions import (
    VERSION_FILE,
    read_champion,
    read_version_meta,
    write_champion,
)
from closecast.sources import SampleSource
from closecast.storage import open_storage
from lstm_model.baselines import DriftForecaster
from lstm_model.config import get_preset
from lstm_model.registry import fit_model

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
    # No ticker plot (about 0.5 CPU-s each): these tests check decisions, versions and ledgers;
    # the plot is test_daily_forecast's.
    (outcome,) = forecast_tickers(
        [ITEM], RunScope(day, "steps"), options.model_copy(update=changes), draw_plots=False
    )
    return outcome


@pytest.fixture(scope="module")
def first_run(tmp_path_factory) -> tuple[Path, MetricsRow]:
    """QQQ's first run on D0 (no champion: a retrain) in a store of its own, and its metrics
    row: the tests that start there copy the store instead of training it again."""
    root = tmp_path_factory.mktemp("steps") / "store"
    return root, _run(RunSettings(storage=str(root), preset="fast"), D0).metrics


@pytest.fixture
def after_first_run(first_run, options) -> MetricsRow:
    """``options``' store as the first run left it; that run's metrics row."""
    shutil.copytree(first_run[0], options.storage)
    return first_run[1]


def test_promote_or_keep_paths(options, after_first_run) -> None:
    storage = open_run_storage(options)

    # No champion: the retrain is promoted, and starts lineage v0001.
    first = after_first_run
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
    meta = read_version_meta(storage, "QQQ", "v0003", {VERSION_FILE})
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
    baseline_keys = [catalog.served_key(ITEM.symbol, kind) for kind in BASELINE_KINDS]
    baselines_before = {key: storage.read_bytes(key) for key in baseline_keys}  # all exist
    backfill = _run(options, BACKFILL).metrics
    assert backfill.mode == "retrain" and not backfill.promoted
    assert "backfill" in backfill.mode_reason
    assert backfill.model_version == "v0004" and backfill.trained_through <= BACKFILL
    assert read_champion(storage, ITEM.symbol).version == "v0003"
    assert storage.read_bytes(catalog.served_key(ITEM.symbol)) == ledger_before
    # ...and so are the baselines' ledgers: a backfill serves nobody's forecast.
    assert {key: storage.read_bytes(key) for key in baseline_keys} == baselines_before


def test_an_unreadable_champion_is_replaced_by_a_retrain(options, after_first_run) -> None:
    storage = open_run_storage(options)
    storage.write_bytes(catalog.champion_key(ITEM.symbol), b"{not json")
    outcome = _run(options, D1, mode="finetune").metrics
    assert outcome.mode == "retrain" and outcome.promoted
    assert "champion unreadable" in outcome.mode_reason
    assert catalog.champion_key(ITEM.symbol) in outcome.mode_reason
    assert read_champion(storage, ITEM.symbol).version == outcome.model_version == "v0002"


# --- each step on its own ----------------------------------------------------------------------


def _history(storage, day: date):
    fetch_and_store(ITEM, day, storage, SampleSource())
    return read_history(storage, ITEM, day, get_preset("fast"))[0]


def test_plan_scores_the_live_record_before_any_training_and_writes_nothing(options) -> None:
    services = RunServices.open(options)
    prices = _history(services.storage, D1)
    target = prices.index[-1].date()
    served = ServedRow(
        ticker=ITEM.symbol, target_date=target, data_end=prices.index[-2].date(),
        forecast=1.0, naive=float(prices.iloc[-2]), model_version="v0001", lineage="v0001",
        trained_through=prices.index[-2].date(), served_on=prices.index[-2].date(),
    )  # fmt: skip
    live.write_ledger(services.storage, ITEM.symbol, live.Ledger(rows=(served,)))
    plan = plan_ticker(ITEM, RunScope(D1, "steps"), options, services, None)
    assert plan.decision.mode == "retrain" and "no champion" in plan.decision.reason
    assert plan.scored_now == 1
    assert [(r.actual, r.scored_on) for r in plan.ledger.rows] == [(float(prices.iloc[-1]), D1)]
    # Written with the ticker's other state when it finishes (a failed ticker leaves it).
    stored = live.read_ledger(services.storage, ITEM.symbol).rows
    assert [(r.actual, r.scored_on) for r in stored] == [(None, None)]


def test_any_registered_model_is_versioned_and_loads_as_the_champion(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    prices = _history(storage, D0)
    model = fit_model("drift", prices, get_preset("fast"))
    produced = Produced(
        model=model, mode="retrain", reason="by hand", lineage=None, backtest=None,
        backtest_predictions=None, new_version=True, promoted=True,
    )  # fmt: skip
    registered = register(storage, ITEM.symbol, D0, produced, ChampionView(), "fast")
    assert (registered.version, registered.keys) == ("v0001", ["models/QQQ/v0001/version.zip"])
    write_champion(storage, ITEM.symbol, registered.champion)  # the ticker's commit
    view = load_champion(storage, ITEM.symbol)
    assert isinstance(view.model, DriftForecaster) and view.unreadable is None
    assert (view.champion.files, view.champion.latest) == ((VERSION_FILE,), "v0001")
    assert view.model.forecast_next(prices) == model.forecast_next(prices)

    # A killed run left half of the next version: only that slot is listed, and cleared.
    storage.write_bytes("models/QQQ/v0002/stale.bin", b"half")
    listed = []
    real_list = storage.list_keys
    storage.list_keys = lambda prefix="": listed.append(prefix) or real_list(prefix)
    again = register(storage, ITEM.symbol, D1, replace(produced, lineage="v0001"), view, "fast")
    write_champion(storage, ITEM.symbol, again.champion)
    assert again.version == "v0002" and set(listed) == {"models/QQQ/v0002/"}
    assert real_list("models/QQQ/v0002/") == ["models/QQQ/v0002/version.zip"]
    assert read_champion(storage, ITEM.symbol).latest == "v0002"


def test_serve_forecasts_each_step_and_records_them_only_when_asked(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    prices = _history(storage, D0)
    model = fit_model("drift", prices, get_preset("fast"))
    lineage = Lineage("drift", "drift")
    kept = serve("drift", model, live.Ledger(rows=()), item=ITEM, prices=prices, as_of=D0,
                 lineage=lineage, horizon=3, storage=None)  # fmt: skip
    assert [r.step for r in kept.rows] == [1, 2, 3] and kept.ledger.rows == ()
    assert not storage.exists(catalog.served_key(ITEM.symbol, "drift"))
    assert [r.target_date for r in kept.rows] == next_trading_days(
        "etf", prices.index[-1].date(), 3
    )
    assert [r.forecast for r in kept.rows] == list(model.forecast_path(prices, 3))
    assert all(r.lower_80 is None for r in kept.rows)  # no calibration residuals yet
    recorded = serve("drift", model, live.Ledger(rows=()), item=ITEM, prices=prices, as_of=D0,
                     lineage=lineage, horizon=3, storage=storage)  # fmt: skip
    assert live.read_ledger(storage, ITEM.symbol, "drift").rows == recorded.rows


def _report(warnings: tuple[str, ...], **counts: int) -> ValidationReport:
    return ValidationReport(
        ticker="QQQ", asset_class="etf", as_of=D0, rows_in=10, rows_out=10, first_date=D0,
        last_date=D0, expected_last_date=D0, lag_trading_days=0, stale=False,
        warnings=warnings, **counts,
    )  # fmt: skip


def test_rows_sum_what_validation_found_in_the_fetch_and_the_history() -> None:
    fetched = FetchSummary(
        ticker="QQQ", key=catalog.prices_key("QQQ"), n_new=1, n_revised=0, n_removed=0,
        n_total=10, changed=True, full_history=True,
        rebase=Rebase(kind="split", factor=0.25, rows=5, first=D0, last=D0), rebuilt=False,
        report=_report(("a",), invalid_rows_dropped=2, null_rows_dropped=1), warnings=("a",),
    )  # fmt: skip
    history = _report(("a", "b"), invalid_rows_dropped=3, old_rows_dropped=4)
    columns = validation_columns(fetched, history)
    assert (columns["invalid_rows_dropped"], columns["old_rows_dropped"]) == (5, 4)
    assert (columns["null_rows_dropped"], columns["rebased"], columns["warnings"]) == (
        1,
        True,
        "a; b",
    )
    assert columns["rebase_factor"] == 0.25


def test_produce_returns_each_plans_model_or_why_it_failed(options) -> None:
    settings = options.model_copy(update={"epochs": 2})
    services = RunServices.open(settings)
    fetch_and_store(ITEM, D0, services.storage, SampleSource())
    plan = plan_ticker(ITEM, RunScope(D0, "steps"), settings, services, None)
    short = replace(plan, prices=plan.prices.iloc[-40:])  # too short to hold a tail back
    produced, failed = train_plans([plan, short], services.config, settings)
    assert isinstance(failed, TrainingFailed) and "InsufficientDataError" in failed.error
    assert isinstance(produced, Produced)
    assert (produced.mode, produced.new_version, produced.promoted, produced.lineage) == (
        "retrain", True, True, None,
    )  # fmt: skip
    assert len(produced.backtest_predictions) == services.config.test_size == produced.backtest.n
    assert produced.model.meta["trained_through"] == str(plan.prices.index[-1].date())


def _corrupt_champion_read() -> None:
    raise KeyError("lineage")  # an unexpected error deep inside a step


def test_a_failed_ticker_names_its_error_in_one_line_and_keeps_where_it_was_raised():
    from closecast.pipeline.rows import failed_outcome

    try:
        _corrupt_champion_read()
    except KeyError as exc:
        outcome = failed_outcome(WatchItem("AAPL", "stock"), exc, stage="serve")
    said = failed_outcome(WatchItem("QQQ", "etf"), "TrainingFailed: NaN loss", stage="train")

    assert outcome.metrics.status == "failed"
    assert outcome.metrics.error == "serve: KeyError: 'lineage'"
    assert "in _corrupt_champion_read" in outcome.traceback
    assert outcome.traceback.rstrip().endswith("KeyError: 'lineage'")
    assert (said.metrics.error, said.traceback) == ("train: TrainingFailed: NaN loss", "")
