"""One ticker's work in a run, as small named steps over a storage root:

1. read the validated history through the run date;
2. score the forecasts earlier runs served for days now known (the live record);
3. decide: retrain or fine-tune (``decisions``);
4. train: a backtest fit and, if the candidate wins, a refit on the whole history; or a
   fine-tune of the champion on the days it has not seen;
5. register the new version and move the champion pointer;
6. serve: forecast the next trading day with the champion and record it in the ledger;
7. publish the ticker's run objects (backtest predictions, plot) and build its rows.

The Prefect task ``forecast-ticker`` wraps :func:`forecast_ticker`; fetching is
:mod:`closecast.pipeline.fetch`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date
from typing import Any

import pandas as pd

from closecast import catalog
from closecast.catalog import RunScope
from closecast.pipeline import live, training
from closecast.pipeline.decisions import (
    ChampionState,
    ModeDecision,
    Verdict,
    decide_mode,
    judge_candidate,
)
from closecast.pipeline.evaluation import Evaluation, backtest_frames, significance
from closecast.pipeline.fetch import FetchSummary
from closecast.pipeline.lineup import (
    BASELINE_KINDS,
    LSTM,
    choose_served,
    mark_serving,
    run_lineup,
)
from closecast.pipeline.registry import (
    BacktestScore,
    Champion,
    ChampionUnreadableError,
    clear_version,
    load_model,
    next_version,
    read_backtest,
    read_backtest_path,
    read_champion,
    remove_incomplete_versions,
    remove_orphaned_temp_dirs,
    save_backtest,
    save_backtest_path,
    save_model,
    write_champion,
)
from closecast.pipeline.services import RunServices
from closecast.pipeline.serving import Lineage, serve
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.uncertainty import frame_coverage
from closecast.plots import PREDICTION_COLUMNS, plot_ticker
from closecast.price_store import PriceStore
from closecast.records import (
    ForecastRow,
    LiveScoreRow,
    MetricsRow,
    ModelScoreRow,
    PredictionRow,
    ServedRow,
    rows_to_table,
)
from closecast.storage import Storage, StorageError
from closecast.storage.io import write_figure, write_parquet
from closecast.validation import (
    HISTORY_COUNTERS,
    REPORT_COUNTERS,
    ValidationReport,
    usable_series,
)
from closecast.watchlist import WatchItem
from lstm_model.config import ModelConfig
from lstm_model.data import minimum_history
from lstm_model.forecaster import Forecaster


def required_rows(config: ModelConfig) -> tuple[int, str]:
    """How many clean rows a ticker needs for this configuration, and why."""
    return minimum_history(config.look_back, config.test_size)


def read_history(
    storage: Storage, item: WatchItem, as_of: date, config: ModelConfig
) -> tuple[pd.Series, ValidationReport]:
    """The model's price column through ``as_of``: its clean recent stretch, date-indexed."""
    need, why = required_rows(config)
    return usable_series(
        PriceStore(storage).read(item.symbol, as_of=as_of),
        ticker=item.symbol,
        asset_class=item.asset_class,
        as_of=as_of,
        min_rows=need,
        price_column=config.price_column,
        need_explanation=why,
    )


# --- 2. the champion as it stands --------------------------------------------------------------


@dataclass(frozen=True)
class ChampionView:
    """The champion and its model as loaded, or why they could not be."""

    champion: Champion | None = None
    model: Forecaster | None = None
    unreadable: str | None = None


def load_champion(storage: Storage, ticker: str) -> ChampionView:
    """The champion pointer and its model; an unreadable one is reported, not raised, so a
    retrain can replace it."""
    try:
        champion = read_champion(storage, ticker)
    except ChampionUnreadableError as exc:
        return ChampionView(unreadable=str(exc))
    if champion is None:
        return ChampionView()
    try:
        model = load_model(storage, ticker, champion.version, champion.files)
    except (StorageError, OSError, ValueError, KeyError) as exc:
        where = catalog.model_prefix(ticker, champion.version)
        return ChampionView(champion, unreadable=f"{where}/: {type(exc).__name__}: {exc}")
    return ChampionView(champion, model)


def champion_state(view: ChampionView, ledger: live.Ledger, prices: pd.Series) -> ChampionState:
    """What the decision looks at: the lineage's live record and, for a global scaler, how
    far unseen prices leave its fitted range."""
    assert view.champion is not None and view.model is not None
    unseen = training.unseen_days(view.model, prices)
    return ChampionState(
        champion=view.champion,
        live=live.live_stats(ledger.scored(view.champion.lineage)),
        fitted_range=view.model.fitted_range(),
        unseen_low=float(unseen.min()) if len(unseen) else None,
        unseen_high=float(unseen.max()) if len(unseen) else None,
    )


# --- 4. training -------------------------------------------------------------------------------


@dataclass
class Produced:
    """The model that serves after this run, and how it came about."""

    model: Forecaster
    mode: str  # retrain, finetune or keep
    reason: str
    lineage: str | None  # None: a new lineage (its version is assigned at registration)
    backtest: BacktestScore | None
    backtest_predictions: pd.DataFrame | None  # set when this run made a new lineage
    new_version: bool
    promoted: bool
    seconds: float = 0.0
    epochs: int = 0
    n_train: int = 0
    backtest_path: pd.DataFrame | None = None  # multi-step hold-out forecasts (horizon > 1)


def _score(evaluation: Evaluation, banded: pd.DataFrame) -> BacktestScore:
    dates = evaluation.predictions["date"]
    return BacktestScore.from_scores(
        dates.iloc[0], dates.iloc[-1], evaluation.scores, frame_coverage(banded)
    )


@dataclass
class Plan:
    """One ticker between deciding and finishing: what it needs and what training made."""

    item: WatchItem
    prices: pd.Series
    report: ValidationReport
    ledger: live.Ledger
    scored_now: int
    view: ChampionView
    decision: ModeDecision
    fetch: FetchSummary | None  # this run's fetch of the ticker (None: not fetched by it)
    plan_seconds: float  # loading the champion and deciding (this ticker's own time)
    backtest: training.Backtest | None = None
    produced: Produced | None = None
    error: str | None = None


def _kept(plan: Plan) -> Produced:
    champion = plan.view.champion
    assert champion is not None and plan.view.model is not None
    return Produced(
        model=plan.view.model,
        mode="keep",
        reason=f"no unseen days since {champion.trained_through}: champion "
        f"{champion.version} serves as is",
        lineage=champion.lineage,
        backtest=champion.backtest,
        backtest_predictions=None,
        new_version=False,
        promoted=False,
    )


def _judge(plan: Plan, options: RunSettings) -> Verdict:
    """Whether the plan's retrained candidate replaces the champion (see judge_candidate)."""
    view, decision = plan.view, plan.decision
    champion = None if view.unreadable or decision.backfill else view.champion
    if champion is not None and champion.preset != options.preset:
        champion = None  # a new preset replaces the old one by request, not by comparison
    assert plan.backtest is not None
    return judge_candidate(
        plan.backtest.evaluation.predictions,
        plan.ledger.scored(champion.lineage) if champion else [],
        champion=champion,
        policy=options.policy,
    )


def train_plans(plans: list[Plan], config: ModelConfig, options: RunSettings) -> None:
    """Produce every plan's serving model, training tickers of one configuration together
    (:mod:`lstm_model.batch`, each exactly as if alone):

    1. retrains: backtest fits, scored on their hold-out tails, judged against the champion
       lineage's live record;
    2. winners refit on the whole history; losers (and fine-tune decisions) continue the
       champion on its unseen days; with none, the champion serves as is.

    A ticker that fails gets ``plan.error`` and never stops the others.
    """
    retrains = [p for p in plans if p.decision.mode == "retrain"]
    for plan, result in zip(
        retrains, training.backtest_many([p.prices for p in retrains], config), strict=True
    ):
        if isinstance(result, Exception):
            plan.error = f"{type(result).__name__}: {result}"
        else:
            plan.backtest = result
    winners, continuing = [], [p for p in plans if p.decision.mode == "finetune"]
    for plan in retrains:
        if plan.error:
            continue
        verdict = _judge(plan, options)
        reason = f"{plan.decision.reason}; {verdict.reason}"
        plan.decision = replace(plan.decision, reason=reason)
        has_champion = plan.view.model is not None and plan.view.champion is not None
        (winners if verdict.promote or not has_champion else continuing).append(plan)
    _refit(winners, options.horizon)
    _continue_champions(continuing, options)


def _refit(plans: list[Plan], horizon: int) -> None:
    began = time.perf_counter()
    models = training.refit_many([p.prices for p in plans], [p.backtest for p in plans])
    share = (time.perf_counter() - began) / max(len(plans), 1)
    for plan, model in zip(plans, models, strict=True):
        if isinstance(model, Exception):
            plan.error = f"{type(model).__name__}: {model}"
            continue
        assert plan.backtest is not None
        banding = time.perf_counter()
        frames = backtest_frames(
            plan.backtest.model, plan.prices, plan.backtest.evaluation.predictions, horizon
        )
        band_seconds = time.perf_counter() - banding
        plan.produced = Produced(
            model=model,
            mode="retrain",
            reason=plan.decision.reason,
            lineage=None,
            backtest=_score(plan.backtest.evaluation, frames.predictions),
            backtest_predictions=frames.predictions,
            backtest_path=frames.path,
            new_version=True,
            promoted=not plan.decision.backfill,
            seconds=plan.backtest.seconds + share + band_seconds,
            epochs=int(model.meta.get("epochs_run", 0)),
            n_train=int(model.meta.get("n_train", len(plan.prices))),
        )


def _continue_champions(plans: list[Plan], options: RunSettings) -> None:
    """Fine-tune each champion on its unseen days (keep it when there are none)."""
    tuning = []
    for plan in plans:
        kept = _kept(plan)
        kept.reason = f"{plan.decision.reason}; {kept.reason}"
        plan.produced = kept
        if not training.unseen_days(kept.model, plan.prices).empty:
            tuning.append(plan)
    began = time.perf_counter()
    models = training.finetune_many(
        [p.produced.model for p in tuning],  # type: ignore[union-attr]
        [p.prices for p in tuning],
        epochs=options.finetune_epochs,
        learning_rate=options.finetune_learning_rate,
    )
    share = (time.perf_counter() - began) / max(len(tuning), 1)
    for plan, tuned in zip(tuning, models, strict=True):
        if isinstance(tuned, Exception):
            plan.error = f"{type(tuned).__name__}: {tuned}"
            continue
        champion = plan.view.champion
        assert champion is not None and plan.produced is not None
        unseen = training.unseen_days(plan.produced.model, plan.prices)
        plan.produced = replace(
            plan.produced,
            model=tuned,
            mode="finetune",
            reason=f"{plan.decision.reason}; champion {champion.version} fine-tuned on "
            f"{len(unseen)} unseen day(s) {unseen.index[0].date()}..{unseen.index[-1].date()}",
            new_version=True,
            promoted=True,
            seconds=share + (plan.backtest.seconds if plan.backtest else 0.0),
            epochs=options.finetune_epochs,
            n_train=len(unseen),
        )


# --- 5. registration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    version: str
    lineage: str
    keys: list[str]
    champion_written: bool = False


def _version_slot(storage: Storage, ticker: str, champion: Champion | None) -> str:
    """The version a new model is stored as. The champion records the latest version, so
    nothing is listed; what a version past it holds is what a killed run left, and goes.
    Without that record (a first run, an unreadable or older pointer), the ticker's
    versions are walked once and incomplete ones removed."""
    if champion is not None and champion.latest is not None:
        version = next_version(storage, ticker, champion)
        clear_version(storage, ticker, version)
        return version
    remove_incomplete_versions(storage, ticker, keep=champion and champion.version)
    return next_version(storage, ticker)


def register(
    storage: Storage, ticker: str, as_of: date, produced: Produced, view: ChampionView, preset: str
) -> Registered:
    """Store a new version (with its backtest when it starts a lineage), then point the
    champion at it when promoted (or, for a backfill, record it as the latest version). The
    pointer moves last."""
    if not produced.new_version:
        assert view.champion is not None
        return Registered(view.champion.version, view.champion.lineage, [])
    version = _version_slot(storage, ticker, view.champion)
    lineage = produced.lineage or version
    produced.model.meta.update(run_date=as_of.isoformat(), lineage=lineage)
    prefix = catalog.model_prefix(ticker, version)
    files = save_model(storage, ticker, version, produced.model)
    keys = [f"{prefix}/{name}" for name in files]
    if produced.backtest_predictions is not None:
        keys.append(save_backtest(storage, ticker, version, produced.backtest_predictions))
    if produced.backtest_path is not None:
        keys.append(save_backtest_path(storage, ticker, version, produced.backtest_path))
    if produced.promoted:
        retrained_on = as_of if produced.lineage is None else view.champion.retrained_on  # type: ignore[union-attr]
        champion = Champion(
            version=version,
            lineage=lineage,
            trained_through=training.trained_through_date(produced.model),
            retrained_on=retrained_on,
            promoted_on=as_of,
            preset=preset,
            backtest=produced.backtest,
            files=files,
            latest=version,
        )
        write_champion(storage, ticker, champion)
    elif view.champion is not None:  # a backfill: the champion stays, its record of versions grows
        write_champion(storage, ticker, replace(view.champion, latest=version))
    written = produced.promoted or view.champion is not None
    return Registered(version, lineage, keys, champion_written=written)


# --- 7. the ticker's run objects and rows ------------------------------------------------------


@dataclass
class TickerOutcome:
    """What one ticker contributed to the run: its rows and the objects it wrote.

    ``keys`` are immutable objects (run outputs under the scope, new model versions);
    ``state_keys`` the per-ticker state it changed (prices, ledger, champion pointer).
    """

    metrics: MetricsRow
    forecasts: list[ForecastRow] = field(default_factory=list)  # one per step ahead
    live_scores: list[LiveScoreRow] = field(default_factory=list)
    model_scores: list[ModelScoreRow] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    state_keys: list[str] = field(default_factory=list)


def failed_outcome(item: WatchItem, error: str, *, stage: str) -> TickerOutcome:
    return TickerOutcome(
        metrics=MetricsRow(
            ticker=item.symbol,
            asset_class=item.asset_class,
            status="failed",
            error=f"{stage}: {error}",
        )
    )


def publish_ticker_objects(
    storage: Storage,
    item: WatchItem,
    scope: RunScope,
    backtest_predictions: pd.DataFrame | None,
    ledger: live.Ledger,
    prices: pd.Series,
    title: str,
    *,
    draw_plot: bool = True,
) -> list[str]:
    """The lineage's backtest predictions and (``draw_plot``) the ticker's plot, under the
    run scope."""
    keys = []
    if backtest_predictions is not None:
        key = catalog.PREDICTIONS.key(scope, item.symbol)
        names = PredictionRow.__dataclass_fields__
        rows = [
            PredictionRow(**{k: v for k, v in r.items() if k in names})
            for r in backtest_predictions.to_dict("records")
        ]
        write_parquet(storage, key, rows_to_table(rows, PredictionRow))
        keys.append(key)
    if not draw_plot:
        return keys
    figure = ticker_figure(backtest_predictions, ledger, prices, title)
    plot_key = catalog.TICKER_PLOTS.key(scope, item.symbol)
    write_figure(storage, plot_key, figure)
    keys.append(plot_key)
    return keys


def ticker_figure(
    backtest: pd.DataFrame | None, ledger: live.Ledger, prices: pd.Series, title: str
):
    """The per-ticker figure: the lineage's backtest above, the served forecasts against what
    happened (naive drawn too) below."""
    frame = backtest if backtest is not None else pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    start = pd.Timestamp(frame["date"].iloc[0]) if len(frame) else prices.index[-1]
    history = prices[prices.index < start].iloc[-max(len(frame), 60) :]
    return plot_ticker(frame, live.served_frame(ledger), title=title, history=history)


def significance_columns(
    backtest: pd.DataFrame | None, ledger: live.Ledger, lineage: str
) -> dict[str, float | None]:
    """The metrics row's Diebold-Mariano columns for the backtest and the lineage's record."""
    served = ledger.scored(lineage)
    results = {
        ("backtest_", ""): None
        if backtest is None
        else significance(backtest["actual"], backtest["predicted"], backtest["naive"]),
        ("live_", "_lineage"): significance(
            [r.actual for r in served], [r.forecast for r in served], [r.naive for r in served]
        ),
    }
    columns: dict[str, float | None] = {}
    for (prefix, suffix), result in results.items():
        low, high = result.u2_interval(0.95) if result is not None else (None, None)
        columns[f"{prefix}dm_stat{suffix}"] = result.statistic if result is not None else None
        columns[f"{prefix}dm_p{suffix}"] = result.p_value if result is not None else None
        columns[f"{prefix}u2_low{suffix}"] = low
        columns[f"{prefix}u2_high{suffix}"] = high
    return columns


_METRICS_FIELDS = frozenset(f.name for f in fields(MetricsRow))


def validation_columns(fetched: FetchSummary | None, history: ValidationReport) -> dict[str, Any]:
    """What validation found, for the metrics row: counts from this run's fetch (the raw
    data) and from the model's stretch of history, re-basing, staleness and warnings."""
    raw = fetched.report if fetched is not None else None
    fetched_warnings = fetched.warnings if fetched is not None else ()
    warnings = list(dict.fromkeys([*fetched_warnings, *history.warnings]))
    counts = {
        name: (getattr(raw, name) if raw else 0)
        + (getattr(history, name) if name in HISTORY_COUNTERS else 0)
        for name in REPORT_COUNTERS
        if name in _METRICS_FIELDS
    }
    return {
        **counts,
        "rebased": bool(fetched and fetched.rebased),
        "rebase_factor": fetched.rebase.factor if fetched and fetched.rebase else None,
        "store_rebuilt": bool(fetched and fetched.rebuilt),
        "stale": bool(history.stale),
        "warnings": "; ".join(warnings) or None,
    }


# Which fields of the lineage's backtest score and of its live record the metrics row carries.
BACKTEST_COLUMNS: tuple[str, ...] = (
    *("start", "end", "n", "rmse", "naive_rmse", "u2", "mae", "mape"),
    *("directional_accuracy", "coverage_80", "coverage_95"),
)
LINEAGE_COLUMNS: tuple[str, ...] = (
    *("n_scored", "rmse", "naive_rmse", "u2", "directional_accuracy"),
    *("coverage_80", "coverage_95"),
)


def _copied(source: object | None, pattern: str, names: Sequence[str]) -> dict[str, Any]:
    """``source``'s fields as metrics columns named by ``pattern`` (None when no source);
    ``n_scored`` becomes ``n`` in the column name (``live_n_20d``)."""
    return {
        pattern.format(name.replace("n_scored", "n")): getattr(source, name, None) for name in names
    }


def metrics_row(
    item: WatchItem,
    prices: pd.Series,
    produced: Produced,
    registered: Registered,
    scores: list[LiveScoreRow],
    scored_now: int,
    model_seconds: float,
    validation: dict[str, Any],
) -> MetricsRow:
    backtest = produced.backtest
    by_window = {row.window: row for row in scores if row.step == 1}
    return MetricsRow(
        ticker=item.symbol,
        asset_class=item.asset_class,
        status="ok",
        mode=produced.mode,
        mode_reason=produced.reason,
        model_version=registered.version,
        lineage=registered.lineage,
        promoted=produced.promoted,
        trained_through=training.trained_through_date(produced.model),
        data_end=prices.index[-1].date(),
        **_copied(backtest, "backtest_{}", BACKTEST_COLUMNS),
        live_scored_now=scored_now,
        **_copied(by_window.get("20d"), "live_{}_20d", ("n_scored", "u2")),
        **_copied(by_window.get("60d"), "live_{}_60d", ("n_scored", "u2")),
        **_copied(by_window.get("lineage"), "live_{}_lineage", LINEAGE_COLUMNS),
        n_train=produced.n_train,
        epochs=produced.epochs,
        train_seconds=round(produced.seconds, 3),
        model_seconds=round(model_seconds, 3),
        **validation,
    )


# --- the whole run of a chunk of tickers -----------------------------------------------------


def plan_ticker(
    item: WatchItem,
    scope: RunScope,
    options: RunSettings,
    services: RunServices,
    fetch: FetchSummary | None,
) -> Plan:
    """Steps 1-3: the history, the live record scored (and written, before any training),
    the champion, the decision."""
    as_of = scope.run_date
    storage, config = services.storage, services.config
    prices, report = read_history(storage, item, as_of, config)
    ledger = live.read_ledger(storage, item.symbol)
    ledger, scored_now = live.score_served(ledger, prices, as_of)
    began = time.perf_counter()
    view = load_champion(storage, item.symbol)
    state = champion_state(view, ledger, prices) if view.model is not None else None
    decision = decide_mode(
        options.mode,
        state,
        as_of=as_of,
        preset=options.preset,
        policy=options.policy,
        unreadable=view.unreadable,
    )
    if not decision.backfill:
        # The live record is written before training: scores never depend on what follows.
        live.write_ledger(storage, item.symbol, ledger)
    return Plan(
        item,
        prices,
        report,
        ledger,
        scored_now,
        view,
        decision,
        fetch,
        time.perf_counter() - began,
    )


def finish_ticker(
    plan: Plan,
    scope: RunScope,
    options: RunSettings,
    services: RunServices,
    *,
    draw_plots: bool = True,
) -> TickerOutcome:
    """Steps 5-8: register, serve and record the forecast, publish the ticker's objects,
    score the line-up and choose which model's forecast is served."""
    storage = services.storage
    item, produced, as_of = plan.item, plan.produced, scope.run_date
    assert produced is not None
    began = time.perf_counter()
    registered = register(storage, item.symbol, as_of, produced, plan.view, options.preset)
    backtest_predictions = produced.backtest_predictions
    if backtest_predictions is None:
        backtest_predictions = read_backtest(storage, item.symbol, registered.lineage)
    backtest_path = produced.backtest_path
    if backtest_path is None and options.horizon > 1:
        backtest_path = read_backtest_path(storage, item.symbol, registered.lineage)
    lineage = Lineage(registered.version, registered.lineage, backtest_predictions, backtest_path)
    result = serve(
        LSTM, produced.model, plan.ledger, item=item, prices=plan.prices, as_of=as_of,
        lineage=lineage, horizon=options.horizon,
        storage=None if plan.decision.backfill else storage,
    )  # fmt: skip
    served, ledger = list(result.rows), result.ledger
    # This ticker's own model work: deciding, its share of the chunk's training, storing the
    # version and serving (its chunk-mates' work is not counted).
    model_seconds = plan.plan_seconds + produced.seconds + time.perf_counter() - began
    scores = live.live_score_rows(
        ledger,
        ticker=item.symbol,
        price_dates=plan.prices.index,
        lineage=registered.lineage,
        backtest_u2=produced.backtest.u2 if produced.backtest else None,
        horizon=options.horizon,
    )
    title = _title(item, scope, produced, scores)
    keys = registered.keys + publish_ticker_objects(
        storage, item, scope, backtest_predictions, ledger, plan.prices, title, draw_plot=draw_plots
    )
    lineup = run_lineup(
        storage,
        item,
        plan.prices,
        services.config,
        as_of,
        lineage=registered.lineage,
        lstm_backtest=backtest_predictions,
        lstm_backtest_path=backtest_path,
        lstm_ledger=ledger,
        record_live=not plan.decision.backfill,
        horizon=options.horizon,
    )
    selection = choose_served(lineup, item.serve or options.serve)
    chosen = served if selection.kind == LSTM else lineup.served[selection.kind]
    validation = validation_columns(plan.fetch, plan.report)
    if ledger.warning:
        validation["warnings"] = "; ".join(filter(None, [validation["warnings"], ledger.warning]))
    metrics = metrics_row(
        item, plan.prices, produced, registered, scores, plan.scored_now, model_seconds, validation
    )
    metrics = replace(
        metrics,
        served_model=selection.kind,
        mode_reason="; ".join(filter(None, [metrics.mode_reason, selection.reason])),
        **significance_columns(backtest_predictions, ledger, registered.lineage),
    )
    return TickerOutcome(
        metrics,
        [forecast_row(row) for row in chosen],
        scores,
        mark_serving(lineup.rows, selection.kind),
        keys + list(lineup.keys),
        _state_keys(item, plan, registered),
    )


def forecast_row(served: ServedRow) -> ForecastRow:
    """The forecasts table's row for the forecast that was served (any model's)."""
    return ForecastRow(
        ticker=served.ticker,
        data_end=served.data_end,
        target_date=served.target_date,
        forecast=served.forecast,
        naive=served.naive,
        model_version=served.model_version,
        lineage=served.lineage,
        trained_through=served.trained_through,
        lower_80=served.lower_80,
        upper_80=served.upper_80,
        lower_95=served.lower_95,
        upper_95=served.upper_95,
        model=served.model,
        step=served.step,
    )


def _state_keys(item: WatchItem, plan: Plan, registered: Registered) -> list[str]:
    """The per-ticker state this run read or changed, for the manifest (publishing lists
    those that exist: no request here)."""
    keys = [catalog.prices_key(item.symbol)]
    if registered.champion_written:
        keys.append(catalog.champion_key(item.symbol))
    if not plan.decision.backfill:
        keys += [catalog.served_key(item.symbol, kind) for kind in (LSTM, *BASELINE_KINDS)]
    return keys


def forecast_tickers(
    items: list[WatchItem],
    scope: RunScope,
    options: RunSettings,
    fetches: dict[str, FetchSummary] | None = None,
    *,
    services: RunServices | None = None,
    draw_plots: bool = True,
) -> list[TickerOutcome]:
    """Score what was served, train or fine-tune, serve the next forecasts and publish, for
    a chunk of tickers; their training runs together (see :func:`train_plans`).

    Args:
        items: The tickers.
        scope: The run date (no price after it is used) and the watchlist.
        options: The run's settings.
        fetches: Per ticker, what this run's fetch stored and its validation report.
        services: The run's storage and model configuration (opened from ``options``
            when None).
        draw_plots: Draw each ticker's plot (large runs skip them: ``ticker_plots``).

    Returns:
        One outcome per ticker, in order: its metrics row (describing the model that serves
        after this run), forecast, live scores and the keys it wrote; or a failed row naming
        the error. One ticker's failure never stops the others.
    """
    services = services or RunServices.open(options)
    remove_orphaned_temp_dirs()
    reports = fetches or {}
    outcomes: dict[str, TickerOutcome] = {}
    plans = []
    for item in items:
        try:
            plans.append(plan_ticker(item, scope, options, services, reports.get(item.symbol)))
        except Exception as exc:
            outcomes[item.symbol] = failed_outcome(item, _describe(exc), stage="model")
    train_plans(plans, services.config, options)
    for plan in plans:
        if plan.error is not None:
            outcomes[plan.item.symbol] = failed_outcome(plan.item, plan.error, stage="train")
            continue
        try:
            outcomes[plan.item.symbol] = finish_ticker(
                plan, scope, options, services, draw_plots=draw_plots
            )
        except Exception as exc:
            outcomes[plan.item.symbol] = failed_outcome(plan.item, _describe(exc), stage="serve")
    return [outcomes[item.symbol] for item in items]


def forecast_ticker(
    item: WatchItem,
    scope: RunScope,
    options: RunSettings,
    fetch: FetchSummary | None = None,
    *,
    services: RunServices | None = None,
) -> TickerOutcome:
    """:func:`forecast_tickers` for one ticker."""
    reports = {item.symbol: fetch} if fetch else None
    return forecast_tickers([item], scope, options, reports, services=services)[0]


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _title(item: WatchItem, scope: RunScope, produced: Produced, scores: list[LiveScoreRow]):
    backtest = produced.backtest
    parts = [f"{item.symbol} as of {scope.run_date}"]
    if backtest is not None:
        parts.append(f"backtest U2 {backtest.u2:.3f} ({backtest.n} days)")
    lineage = next((s for s in scores if s.window == "lineage"), None)
    if lineage is not None and lineage.n_scored:
        parts.append(f"live U2 {lineage.u2:.3f} ({lineage.n_scored} served)")
    return ", ".join(parts)
