"""A chunk of tickers' work in a run, as named steps over a storage root:

1. plan (:func:`plan_ticker`): read the validated history through the run date, score the
   forecasts earlier runs served for days now known and write that live record (before any
   training), load the champion and decide: retrain or fine-tune (``decisions``);
2. produce (:func:`train_plans`, the whole chunk at once): a backtest fit and, if the
   candidate wins, a refit on the whole history; or a fine-tune of the champion on the days
   it has not seen (``training``, ``lstm_model.batch``);
3. register (:func:`register`): store the new version, then move the champion pointer;
4. serve (:func:`closecast.pipeline.serving.serve`): forecast the next trading days with
   their intervals and record them in the ledger; the line-up (``lineup``) serves and
   scores every baseline the same way;
5. rows (:mod:`closecast.pipeline.rows`): the ticker's run objects (backtest predictions,
   plot) and its rows for the run tables.

The Prefect task ``forecast-tickers`` (:func:`tasks.modelling.forecast_chunk`) wraps
:func:`forecast_tickers`; fetching is :mod:`closecast.pipeline.fetch`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from functools import partial
from typing import Any

import pandas as pd

from closecast.inputs.validation import ValidationReport
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import (
    FinetuneScoreRow,
    LiveScoreRow,
    MetricsRow,
)
from closecast.pipeline import live, training
from closecast.pipeline.commit import StateWrite, commit_state, is_state_key
from closecast.pipeline.decisions import (
    ChampionState,
    ModeDecision,
    Verdict,
    decide_mode,
    judge_candidate,
    uncompared_reason,
)
from closecast.pipeline.evaluation import Evaluation, backtest_frames, significance
from closecast.pipeline.fetch import FetchSummary
from closecast.pipeline.finetuning import (
    FinetuneComparison,
    compare_finetune,
    fine_tuned_rows,
    finetune_score_row,
)
from closecast.pipeline.histories import read_validated, stored_bytes
from closecast.pipeline.lineup import (
    LSTM,
    Lineup,
    choose_served,
    mark_serving,
    run_lineup,
)
from closecast.pipeline.pooled import LoadedGlobal, written_keys
from closecast.pipeline.rows import (
    BACKTEST_COLUMNS,
    LINEAGE_COLUMNS,
    TickerOutcome,
    _copied,
    describe_error,
    failed_outcome,
    forecast_row,
    publish_ticker_objects,
    significance_columns,
    validation_columns,
)
from closecast.pipeline.services import RunServices
from closecast.pipeline.serving import Lineage, Served, serve
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.short_history import ShortHistory, serve_short_history
from closecast.pipeline.uncertainty import frame_coverage
from closecast.pipeline.versions import (
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
from closecast.storage import Storage, StorageError
from closecast.storage.recording import ObjectEntry, RecordingStorage
from lstm_model.base import ForecastModel
from lstm_model.config import ModelConfig
from lstm_model.data import minimum_history
from lstm_model.intervals import ewma_volatility
from lstm_model.metrics import format_u2


def required_rows(config: ModelConfig) -> tuple[int, str]:
    """How many clean rows a ticker needs for this configuration, and why."""
    return minimum_history(config.look_back, config.test_size)


def read_history(
    storage: Storage,
    item: WatchItem,
    as_of: date,
    config: ModelConfig,
    stored: ObjectEntry | None = None,
) -> tuple[pd.Series, ValidationReport]:
    """The model's price column through ``as_of``: its clean recent stretch, date-indexed.

    Raises:
        PriceValidationError: No clean row.
        ShortHistory: Fewer rows than the LSTM needs (a baseline serves:
            :mod:`closecast.pipeline.short_history`).
    """
    need, why = required_rows(config)
    prices, report = read_validated(
        storage, item, as_of, price_column=config.price_column, min_rows=1,
        stored=stored,  # the bytes this run's fetch stored, when this process has them
    )  # fmt: skip
    if len(prices) < need:
        raise ShortHistory(prices, report, f"LSTM needs {need} ({why})")
    return prices, report


# --- 2. the champion as it stands --------------------------------------------------------------


@dataclass(frozen=True)
class ChampionView:
    """The champion and its model as loaded, or why they could not be."""

    champion: Champion | None = None
    model: ForecastModel | None = None
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


def load_refit(
    storage: Storage, ticker: str, view: ChampionView, ledger: live.Ledger
) -> ForecastModel | None:
    """The champion lineage's un-fine-tuned refit (its root version, kept by retention),
    when its fine-tuned forecasts have a scored record to compare with; else None. It is
    the champion itself when that is the refit (no request), and it is not read while no
    fine-tuned forecast of the lineage is scored."""
    champion = view.champion
    if champion is None or view.model is None:
        return None
    if champion.version == champion.lineage:
        return view.model
    if not fine_tuned_rows(ledger, champion.lineage):
        return None
    try:
        # The root's own layout: it may predate the archive while the champion does not.
        return load_model(storage, ticker, champion.lineage)
    except (StorageError, OSError, ValueError, KeyError):
        return None  # no comparison today; the lineage goes on as before


def champion_state(
    view: ChampionView,
    ledger: live.Ledger,
    prices: pd.Series,
    finetune: FinetuneComparison | None = None,
) -> ChampionState:
    """What the decision looks at: the lineage's live record, its fine-tuned record beside
    its refit's and, for a global scaler, how far unseen prices leave its fitted range."""
    assert view.champion is not None and view.model is not None
    unseen = training.unseen_days(view.model, prices)
    scored = ledger.scored(view.champion.lineage)
    return ChampionState(
        champion=view.champion,
        live=live.live_stats(scored),
        live_test=significance(
            [r.actual for r in scored], [r.forecast for r in scored], [r.naive for r in scored]
        ),
        fitted_range=view.model.fitted_range(),
        unseen_low=float(unseen.min()) if len(unseen) else None,
        unseen_high=float(unseen.max()) if len(unseen) else None,
        finetune=finetune,
    )


# --- 2. producing the serving model (the whole chunk at once) ---------------------------------


@dataclass(frozen=True)
class Produced:
    """The model that serves after this run, and how it came about."""

    model: ForecastModel
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
    challenged: bool = False  # a retrained candidate lost to the champion this run
    stop_finetune: bool = False  # this run stopped fine-tuning the lineage: its refit serves


@dataclass(frozen=True)
class TrainingFailed:
    """A ticker whose training failed (the others go on)."""

    exception: BaseException

    @property
    def error(self) -> str:
        return describe_error(self.exception)


def _score(evaluation: Evaluation, banded: pd.DataFrame) -> BacktestScore:
    dates = evaluation.predictions["date"]
    return BacktestScore.from_scores(
        dates.iloc[0], dates.iloc[-1], evaluation.scores, frame_coverage(banded)
    )


@dataclass(frozen=True)
class Plan:
    """One ticker, planned: what producing and finishing it need."""

    item: WatchItem
    prices: pd.Series
    report: ValidationReport
    ledger: live.Ledger
    scored_now: int
    view: ChampionView
    decision: ModeDecision
    fetch: FetchSummary | None  # this run's fetch of the ticker (None: not fetched by it)
    plan_seconds: float  # loading the champion and deciding (this ticker's own time)
    refit: ForecastModel | None = None  # the champion lineage's refit, when compared
    finetune: FinetuneComparison | None = None  # its fine-tuned record beside the refit's

    @property
    def finetune_stopped(self) -> bool:
        """The lineage is not fine-tuned this run: stopped now or before (an explicit
        ``--mode finetune`` still fine-tunes it)."""
        champion = self.view.champion
        stopped_before = champion is not None and champion.finetune_stopped_on is not None
        return self.decision.mode == "keep" or (stopped_before and self.decision.mode == "retrain")


def _judge(plan: Plan, backtest: training.Backtest, options: RunSettings) -> Verdict:
    """Whether the plan's retrained candidate replaces the champion (see judge_candidate)."""
    view, decision = plan.view, plan.decision
    uncompared = uncompared_reason(
        decision, view.champion, preset=options.preset, unreadable=view.unreadable
    )
    champion = view.champion if uncompared is None else None
    return judge_candidate(
        backtest.evaluation.predictions,
        plan.ledger.scored(champion.lineage) if champion else [],
        champion=champion,
        policy=options.policy,
        uncompared=uncompared,
    )


def train_plans(
    plans: Sequence[Plan], config: ModelConfig, options: RunSettings
) -> list[Produced | TrainingFailed]:
    """Produce every plan's serving model, training tickers of one configuration together
    (:mod:`lstm_model.batch`, each exactly as if alone):

    1. retrains: backtest fits, scored on their hold-out tails, judged against the champion
       lineage's live record;
    2. winners refit on the whole history; losers (and fine-tune decisions) continue the
       champion on its unseen days; with none, the champion serves as is.

    Returns:
        Per plan, in order, what serves after this run or why its training failed (one
        ticker's failure never stops the others).
    """
    results: dict[int, Produced | TrainingFailed] = {}
    retrains = [i for i, plan in enumerate(plans) if plan.decision.mode == "retrain"]
    backtests = training.backtest_many([plans[i].prices for i in retrains], config)
    winners: dict[int, tuple[training.Backtest, str]] = {}
    continuing = {i: (p.decision.reason, 0.0) for i, p in enumerate(plans) if i not in retrains}
    challenged: set[int] = set()
    for i, backtest in zip(retrains, backtests, strict=True):
        if isinstance(backtest, Exception):
            results[i] = TrainingFailed(backtest)
            continue
        verdict = _judge(plans[i], backtest, options)
        reason = f"{plans[i].decision.reason}; {verdict.reason}"
        view = plans[i].view
        if verdict.promote or view.model is None or view.champion is None:
            winners[i] = (backtest, reason)
        else:
            continuing[i] = (reason, backtest.seconds)
            challenged.add(i)
    results.update(_refit(plans, winners, options.horizon))
    results.update(_continue_champions(plans, continuing, options))
    for i in challenged:  # the champion won: its pointer records the challenge
        result = results[i]
        if isinstance(result, Produced):
            results[i] = replace(result, challenged=True)
    return [results[i] for i in range(len(plans))]


def _refit(
    plans: Sequence[Plan], winners: dict[int, tuple[training.Backtest, str]], horizon: int
) -> dict[int, Produced | TrainingFailed]:
    """Each winning candidate's procedure trained again on the whole history."""
    began = time.perf_counter()
    models = training.refit_many(
        [plans[i].prices for i in winners], [b for b, _ in winners.values()]
    )
    share = (time.perf_counter() - began) / max(len(winners), 1)
    results: dict[int, Produced | TrainingFailed] = {}
    for (i, (backtest, reason)), model in zip(winners.items(), models, strict=True):
        if isinstance(model, Exception):
            results[i] = TrainingFailed(model)
            continue
        banding = time.perf_counter()
        prices = plans[i].prices
        frames = backtest_frames(backtest.model, prices, backtest.evaluation.predictions, horizon)
        results[i] = Produced(
            model=model,
            mode="retrain",
            reason=reason,
            lineage=None,
            backtest=_score(backtest.evaluation, frames.predictions),
            backtest_predictions=frames.predictions,
            backtest_path=frames.path,
            new_version=True,
            promoted=not plans[i].decision.backfill,
            seconds=backtest.seconds + share + time.perf_counter() - banding,
            epochs=int(model.meta.get("epochs_run", 0)),
            n_train=int(model.meta.get("n_train", len(prices))),
        )
    return results


def _kept(plan: Plan, reason: str) -> Produced:
    """The champion serving as is; or, when this run stops fine-tuning its lineage, the
    lineage's refit."""
    champion = plan.view.champion
    assert champion is not None and plan.view.model is not None
    if plan.decision.stop_finetune and plan.refit is not None:
        return Produced(
            model=plan.refit,
            mode="keep",
            reason=reason,
            lineage=champion.lineage,
            backtest=champion.backtest,
            backtest_predictions=None,
            new_version=False,
            promoted=True,
            stop_finetune=True,
        )
    if plan.finetune_stopped:
        why = (
            ""
            if plan.decision.mode == "keep"
            else f"; fine-tuning of lineage {champion.lineage} stopped on "
            f"{champion.finetune_stopped_on}: {champion.version} serves as is"
        )
    else:
        why = (
            f"; no unseen days since {champion.trained_through}: champion "
            f"{champion.version} serves as is"
        )
    return Produced(
        model=plan.view.model,
        mode="keep",
        reason=f"{reason}{why}",
        lineage=champion.lineage,
        backtest=champion.backtest,
        backtest_predictions=None,
        new_version=False,
        promoted=False,
    )


def _continue_champions(
    plans: Sequence[Plan], continuing: dict[int, tuple[str, float]], options: RunSettings
) -> dict[int, Produced | TrainingFailed]:
    """Fine-tune each champion on its unseen days (keep it when there are none)."""
    results: dict[int, Produced | TrainingFailed] = {}
    tuning = []
    for i, (reason, _) in continuing.items():
        results[i] = _kept(plans[i], reason)
        if plans[i].finetune_stopped:
            continue
        if not training.unseen_days(plans[i].view.model, plans[i].prices).empty:
            tuning.append(i)
    began = time.perf_counter()
    models = training.finetune_many(
        [plans[i].view.model for i in tuning],  # type: ignore[misc]
        [plans[i].prices for i in tuning],
        epochs=options.finetune_epochs,
        learning_rate=options.finetune_learning_rate,
    )
    share = (time.perf_counter() - began) / max(len(tuning), 1)
    for i, tuned in zip(tuning, models, strict=True):
        if isinstance(tuned, Exception):
            results[i] = TrainingFailed(tuned)
            continue
        reason, backtest_seconds = continuing[i]
        champion = plans[i].view.champion
        unseen = training.unseen_days(plans[i].view.model, plans[i].prices)  # type: ignore[arg-type]
        results[i] = replace(
            results[i],
            model=tuned,
            mode="finetune",
            reason=f"{reason}; champion {champion.version} fine-tuned on "  # type: ignore[union-attr]
            f"{len(unseen)} unseen day(s) {unseen.index[0].date()}..{unseen.index[-1].date()}",
            new_version=True,
            promoted=True,
            seconds=share + backtest_seconds,
            epochs=options.finetune_epochs,
            n_train=len(unseen),
        )
    return results


# --- 5. registration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    version: str
    lineage: str
    keys: list[str]
    champion_written: bool = False
    champion: Champion | None = None  # the pointer, written when the ticker commits


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
    """Store a new version (with its backtest when it starts a lineage) and return the
    champion pointer to it when promoted (or, for a backfill, the pointer recording it as the
    latest version), which the ticker writes last, with its ledgers
    (:func:`commit_ticker`)."""
    if not produced.new_version:
        assert view.champion is not None
        # A kept champion's pointer changes only to record a lost challenge, or a stop of
        # the lineage's fine-tuning (then it names the lineage's refit, which serves).
        pointer = replace(view.champion, challenged_on=as_of) if produced.challenged else None
        if produced.stop_finetune:
            pointer = replace(
                pointer or view.champion,
                version=view.champion.lineage,
                trained_through=training.trained_through_date(produced.model),
                promoted_on=as_of,
                finetune_stopped_on=as_of,
            )
        version = pointer.version if pointer is not None else view.champion.version
        return Registered(version, view.champion.lineage, [], pointer is not None, pointer)
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
            challenged_on=_challenged_on(as_of, produced, view),
            finetune_stopped_on=None
            if produced.lineage is None or view.champion is None
            else view.champion.finetune_stopped_on,
        )
    elif view.champion is not None:  # a backfill: the champion stays, its record of versions grows
        champion = replace(view.champion, latest=version)
    else:
        champion = None
    return Registered(version, lineage, keys, champion is not None, champion)


def _challenged_on(as_of: date, produced: Produced, view: ChampionView) -> date | None:
    """The pointer's ``challenged_on``: this run's date when its candidate lost; the
    lineage's earlier one when it continues; none for a new lineage."""
    if produced.challenged:
        return as_of
    if produced.lineage is None or view.champion is None:
        return None
    return view.champion.challenged_on


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
    """Steps 1-3: the history, the live record put on its basis and scored (before any
    training; written with the ticker's other state when it finishes), the champion, the
    decision."""
    as_of = scope.run_date
    storage, config = services.storage, services.config
    prices, report = read_history(storage, item, as_of, config, fetch and fetch.stored)
    ledger = live.read_ledger(storage, item.symbol)
    ledger = live.align_basis(ledger, prices, fetch.rebase_factor if fetch else None)
    ledger, scored_now = live.score_served(ledger, prices, as_of)
    began = time.perf_counter()
    view = load_champion(storage, item.symbol)
    refit = load_refit(storage, item.symbol, view, ledger)
    finetune = None
    if refit is not None and view.champion is not None:
        finetune = compare_finetune(refit, ledger, view.champion.lineage, prices)
    state = champion_state(view, ledger, prices, finetune) if view.model is not None else None
    decision = decide_mode(
        options.mode,
        state,
        as_of=as_of,
        preset=options.preset,
        policy=options.policy,
        unreadable=view.unreadable,
    )
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
        refit,
        finetune,
    )


def finish_ticker(
    plan: Plan,
    produced: Produced,
    scope: RunScope,
    options: RunSettings,
    services: RunServices,
    *,
    draw_plots: bool = True,
    global_models: Sequence[LoadedGlobal] = (),
) -> TickerOutcome:
    """Steps 3-5 for one ticker: register the produced model, serve its forecasts into the
    ledger, then the line-up (with the run's ``global_models``) and the ticker's objects and
    rows."""
    storage, as_of = services.storage, scope.run_date
    began = time.perf_counter()
    registered = register(storage, plan.item.symbol, as_of, produced, plan.view, options.preset)
    lineage = lineage_record(
        storage, plan.item.symbol, produced, registered, options.horizon, plan.prices
    )
    if lineage.basis_factor is not None and produced.backtest is not None:
        produced = replace(produced, backtest=produced.backtest.rebased(lineage.basis_factor))
    # Every model of the line-up is served from these prices: their volatility, once.
    volatility = ewma_volatility(plan.prices)
    served = serve(
        LSTM, produced.model, plan.ledger, item=plan.item, prices=plan.prices, as_of=as_of,
        lineage=lineage, horizon=options.horizon, storage=None, volatility=volatility,
    )  # fmt: skip
    if not plan.decision.backfill:  # recorded now, written last (commit_ticker)
        served = replace(served, ledger=live.record_all(served.ledger, served.rows))
    # This ticker's own model work: deciding, its share of the chunk's training, storing the
    # version and serving (its chunk-mates' work is not counted).
    model_seconds = plan.plan_seconds + produced.seconds + time.perf_counter() - began
    return ticker_rows(
        plan, produced, registered, lineage, served, scope, options, services,
        model_seconds=model_seconds, draw_plots=draw_plots, global_models=global_models,
        volatility=volatility,
    )  # fmt: skip


def lineage_record(
    storage: Storage,
    ticker: str,
    produced: Produced,
    registered: Registered,
    horizon: int,
    prices: pd.Series,
) -> Lineage:
    """The serving lineage's backtests: this run's when it started the lineage, else stored
    beside the lineage (the multi-step path only when serving beyond one step), read on the
    history's current basis (after a split since: :func:`live.align_backtest`)."""
    if produced.backtest_predictions is not None:
        return Lineage(
            registered.version,
            registered.lineage,
            produced.backtest_predictions,
            produced.backtest_path,
        )
    predictions = read_backtest(storage, ticker, registered.lineage)
    path = read_backtest_path(storage, ticker, registered.lineage) if horizon > 1 else None
    factor = live.backtest_basis_factor(predictions, prices)
    return Lineage(
        registered.version,
        registered.lineage,
        live.align_backtest(predictions, factor),
        live.align_backtest(path, factor),
        factor,
    )


def ticker_rows(
    plan: Plan, produced: Produced, registered: Registered, lineage: Lineage, served: Served,
    scope: RunScope, options: RunSettings, services: RunServices, *, model_seconds: float,
    draw_plots: bool, global_models: Sequence[LoadedGlobal] = (),
    volatility: pd.Series | None = None,
) -> TickerOutcome:  # fmt: skip
    """The rows step: the live scores, the ticker's run objects, the line-up and the choice
    of whose forecasts are served, the metrics row (``volatility``: the EWMA volatility of
    the plan's prices, when the caller has it)."""
    item, ledger, storage = plan.item, served.ledger, services.storage
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
        storage, item, scope, lineage.backtest, ledger, plan.prices, title, draw_plot=draw_plots
    )
    lineup = run_lineup(
        storage, item, plan.prices, services.config, scope.run_date, lineage=registered.lineage,
        lstm_backtest=lineage.backtest, lstm_backtest_path=lineage.backtest_path,
        lstm_ledger=ledger, record_live=not plan.decision.backfill, horizon=options.horizon,
        rebase_factor=plan.fetch.rebase_factor if plan.fetch else None,
        global_models=global_models, models=options.models, volatility=volatility,
    )  # fmt: skip
    selection = choose_served(lineup, item.serve or options.serve)
    chosen = served.rows if selection.kind == LSTM else lineup.served[selection.kind]
    validation = validation_columns(plan.fetch, plan.report)
    rebased = lineage.basis_factor and (
        f"lineage {registered.lineage}'s backtest re-based x{lineage.basis_factor:.6g} to the "
        "history's current basis"
    )
    notes = [validation["warnings"], ledger.warning, rebased]
    validation["warnings"] = "; ".join(filter(None, notes)) or validation["warnings"]
    metrics = metrics_row(
        item, plan.prices, produced, registered, scores, plan.scored_now, model_seconds, validation
    )
    metrics = replace(
        metrics,
        served_model=selection.kind,
        mode_reason="; ".join(filter(None, [metrics.mode_reason, selection.reason])),
        **significance_columns(lineage.backtest, ledger, registered.lineage),
    )
    commit_ticker(storage, item.symbol, plan, ledger, lineup, registered)
    return TickerOutcome(
        metrics,
        [forecast_row(row) for row in chosen],
        scores,
        mark_serving(lineup.rows, selection.kind),
        keys + list(lineup.keys),
        _state_keys(item, plan, registered, options.models),
        _finetune_rows(plan, scope.run_date),
    )


def _finetune_rows(plan: Plan, as_of: date) -> list[FinetuneScoreRow]:
    """The published comparison of the champion lineage's fine-tunes with its refit (none
    while no fine-tuned forecast of it is scored)."""
    comparison, champion = plan.finetune, plan.view.champion
    if comparison is None or champion is None or not comparison.n:
        return []
    stopped = as_of if plan.decision.stop_finetune else champion.finetune_stopped_on
    return [finetune_score_row(plan.item.symbol, comparison, stopped)]


def commit_ticker(
    storage: Storage,
    ticker: str,
    plan: Plan,
    ledger: live.Ledger,
    lineup: Lineup,
    registered: Registered,
) -> None:
    """The ticker's state, last and all or nothing (:mod:`closecast.pipeline.commit`):
    the line-up's ledgers (one object) and the LSTM's (unless a backfill), then the champion
    pointer."""
    writes: list[StateWrite] = []
    if not plan.decision.backfill:
        if lineup.ledgers:
            write = partial(live.write_lineup_ledgers, storage, ticker, lineup.ledgers)
            writes.append((catalog.lineup_ledgers_key(ticker), write))
        write = partial(live.write_ledger, storage, ticker, ledger)
        writes.append((catalog.served_key(ticker), write))
    if registered.champion is not None:
        write = partial(write_champion, storage, ticker, registered.champion)
        writes.append((catalog.champion_key(ticker), write))
    commit_state(storage, writes)


def _state_keys(
    item: WatchItem, plan: Plan, registered: Registered, models: Sequence[str]
) -> list[str]:
    """The per-ticker state this run read or changed, for the manifest (publishing lists
    those that exist: no request here): the ledgers of the run's line-up (``models``)."""
    keys = [catalog.prices_key(item.symbol)]
    if registered.champion_written:
        keys.append(catalog.champion_key(item.symbol))
    if not plan.decision.backfill:
        # The LSTM's ledger, and the one object of every line-up model's.
        keys += list(dict.fromkeys(catalog.served_key(item.symbol, kind) for kind in models))
    return keys


def forecast_tickers(
    items: list[WatchItem],
    scope: RunScope,
    options: RunSettings,
    fetches: dict[str, FetchSummary] | None = None,
    *,
    services: RunServices | None = None,
    draw_plots: bool = True,
    global_models: Sequence[LoadedGlobal] = (),
    known: Sequence[ObjectEntry] = (),
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
        global_models: The run's global models (:mod:`closecast.pipeline.pooled`), loaded
            once for the chunk (``pooled.load_globals``), scored and served in every
            ticker's line-up.
        known: Objects an earlier task of this run read (the pooled step's line-up
            ledgers, ``GlobalModels.ledgers``): under the ticker leases the flow holds since,
            they are read from the bytes this process kept, when it has them.

    Returns:
        One outcome per ticker, in order: its metrics row (describing the model that serves
        after this run), forecast, live scores and the keys it wrote; or a failed row naming
        the error. One ticker's failure never stops the others.
    """
    services = services or RunServices.open(options)
    # What the tickers write and read is recorded as it goes: the manifest lists it without
    # reading it back, and a failed commit restores the state without reading it again.
    recording = RecordingStorage(services.storage, keep_bytes=is_state_key)
    for entry in known:
        data = stored_bytes(entry)
        if data is not None:
            recording.known_current(entry.key, data)
    services = replace(services, storage=recording)
    remove_orphaned_temp_dirs()
    reports = fetches or {}
    outcomes: dict[str, TickerOutcome] = {}
    plans = []
    for item in items:
        try:
            plans.append(plan_ticker(item, scope, options, services, reports.get(item.symbol)))
        except ShortHistory as short:
            try:
                outcomes[item.symbol] = serve_short_history(
                    short, item, scope, options, services, reports.get(item.symbol),
                    draw_plots=draw_plots, global_models=global_models,
                )  # fmt: skip
            except Exception as exc:
                outcomes[item.symbol] = failed_outcome(item, exc, stage="serve")
        except Exception as exc:
            outcomes[item.symbol] = failed_outcome(item, exc, stage="model")
    for plan, produced in zip(plans, train_plans(plans, services.config, options), strict=True):
        if isinstance(produced, TrainingFailed):
            failed = failed_outcome(plan.item, produced.exception, stage="train")
            outcomes[plan.item.symbol] = failed
            continue
        try:
            outcomes[plan.item.symbol] = finish_ticker(
                plan, produced, scope, options, services, draw_plots=draw_plots,
                global_models=global_models,
            )  # fmt: skip
        except Exception as exc:
            outcomes[plan.item.symbol] = failed_outcome(plan.item, exc, stage="serve")
    # The global versions this run stored serve every ticker: each ticker's objects list
    # them, so the manifest does whichever tickers a (partial) rerun keeps.
    shared = [key for loaded in global_models for key in written_keys(loaded.ref)]
    return [_recorded(_with_keys(outcomes[item.symbol], shared), recording) for item in items]


def _with_keys(outcome: TickerOutcome, keys: list[str]) -> TickerOutcome:
    if not keys or outcome.metrics.status != "ok":
        return outcome
    return replace(outcome, keys=[*outcome.keys, *keys])


def _recorded(outcome: TickerOutcome, storage: RecordingStorage) -> TickerOutcome:
    """The outcome with what its storage recorded of its objects and state."""
    keys = [*outcome.keys, *outcome.state_keys]
    return replace(outcome, known={key: storage.seen(key) for key in keys if storage.knows(key)})


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


def _title(item: WatchItem, scope: RunScope, produced: Produced, scores: list[LiveScoreRow]):
    backtest = produced.backtest
    parts = [f"{item.symbol} as of {scope.run_date}"]
    if backtest is not None:
        parts.append(f"backtest U2 {format_u2(backtest.u2)} ({backtest.n} days)")
    lineage = next((s for s in scores if s.window == "lineage"), None)
    if lineage is not None and lineage.n_scored:
        parts.append(f"live U2 {format_u2(lineage.u2)} ({lineage.n_scored} served)")
    return ", ".join(parts)
