"""One ticker's work in a run: fetch and store prices, then train or fine-tune, evaluate,
forecast and publish. Plain functions over a storage root; the Prefect tasks wrap them."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

import pandas as pd

from closecast.calendars import next_trading_day
from closecast.pipeline import layout
from closecast.pipeline.decisions import ChampionCheck, ModeDecision, decide_mode
from closecast.pipeline.evaluation import Evaluation, evaluate, trained_through
from closecast.pipeline.options import RunOptions
from closecast.pipeline.registry import (
    Champion,
    load_model,
    next_version,
    read_champion,
    save_model,
    write_champion,
)
from closecast.plots import plot_predictions
from closecast.price_store import MergeResult, PriceStore
from closecast.sources import get_source
from closecast.sources.yahoo import incremental_start
from closecast.storage import Storage, open_storage
from closecast.storage.io import write_figure, write_parquet
from closecast.validation import validate_prices
from closecast.watchlist import WatchItem
from lstm_model.config import ModelConfig
from lstm_model.data import split_by_date
from lstm_model.forecaster import Forecaster

# Beyond the look-back window and the test period, a model needs some windows to learn from.
MIN_TRAIN_WINDOWS = 20


def storage_for(options: RunOptions) -> Storage:
    return open_storage(
        options.storage_root,
        create_bucket=options.create_bucket,
        credentials_block=options.credentials_block,
    )


def fetch_prices(item: WatchItem, as_of: date, options: RunOptions) -> dict[str, Any]:
    """Fetch what the store lacks (plus a few days of overlap), validate it, merge it in.

    Returns:
        A small summary: rows new/revised/total, the price key, and the validation report.
    """
    storage = storage_for(options)
    store = PriceStore(storage)
    last_stored = store.last_date(item.symbol)
    if last_stored is not None and last_stored >= as_of:
        # A backfill or a rerun: the store already holds every day up to as_of.
        merged = MergeResult(0, 0, len(store.read(item.symbol)), changed=False)
        report: dict[str, Any] = {"warnings": []}
    else:
        start = incremental_start(last_stored)
        raw = get_source(options.source).fetch(item.symbol, start=start, end=as_of)
        validated = validate_prices(
            raw, ticker=item.symbol, asset_class=item.asset_class, as_of=as_of, min_rows=1
        )
        merged = store.merge(item.symbol, validated.frame)
        report = validated.report.to_dict()
    return {
        "ticker": item.symbol,
        "key": layout.prices_key(item.symbol),
        "n_new": merged.n_new,
        "n_revised": merged.n_revised,
        "n_total": merged.n_total,
        "changed": merged.changed,
        "validation": report,
    }


def required_rows(config: ModelConfig) -> tuple[int, str]:
    """How many clean rows a ticker needs for this configuration, and why."""
    train_rows = config.look_back + MIN_TRAIN_WINDOWS
    windows = f"look-back {config.look_back} + {MIN_TRAIN_WINDOWS} training windows"
    if isinstance(config.test_size, int):
        return train_rows + config.test_size, f"{windows} + test {config.test_size}"
    need = int(train_rows / (1 - config.test_size)) + 1
    return need, f"({windows}) / (1 - test fraction {config.test_size})"


@dataclass
class TickerOutcome:
    """What one ticker contributed to the run: its metrics row, forecast and objects."""

    metrics: dict[str, Any]
    forecast: dict[str, Any] | None = None
    keys: list[str] = field(default_factory=list)


def failed_outcome(item: WatchItem, error: str, *, stage: str) -> TickerOutcome:
    return TickerOutcome(
        metrics={
            "ticker": item.symbol,
            "asset_class": item.asset_class,
            "status": "failed",
            "error": f"{stage}: {error}",
        }
    )


def _price_series(storage: Storage, item: WatchItem, as_of: date, config: ModelConfig):
    history = PriceStore(storage).read(item.symbol, as_of=as_of)
    need, why = required_rows(config)
    validated = validate_prices(
        history,
        ticker=item.symbol,
        asset_class=item.asset_class,
        as_of=as_of,
        min_rows=need,
        need_explanation=why,
    )
    frame = validated.frame
    prices = pd.Series(
        frame[config.price_column].to_numpy(dtype="float64"),
        index=pd.DatetimeIndex(frame["date"]),
        name=item.symbol,
    )
    return prices, validated.report


def _check_champion(
    storage: Storage, item: WatchItem, champion: Champion, prices: pd.Series, start: pd.Timestamp
) -> tuple[Forecaster, Evaluation | None, ChampionCheck]:
    model = load_model(storage, item.symbol, champion.version)
    seen_until = trained_through(model)
    scored = evaluate(model, prices, start) if seen_until < start else None
    unseen = prices[prices.index > seen_until]
    check = ChampionCheck(
        champion=champion,
        u2_now=None if scored is None else scored.u2,
        fitted_range=model.fitted_range(),
        unseen_low=float(unseen.min()) if len(unseen) else None,
        unseen_high=float(unseen.max()) if len(unseen) else None,
    )
    return model, scored, check


@dataclass
class _Trained:
    model: Forecaster
    evaluation: Evaluation
    decision: ModeDecision
    promoted: bool
    new_version: bool
    seconds: float
    epochs: int
    n_train: int  # rows this run trained on (the preset may cap history; fine-tunes: new days)


def _retrain(train: pd.Series, prices: pd.Series, start, config, decision) -> _Trained:
    began = time.perf_counter()
    model = Forecaster.fit(train, config)
    seconds = time.perf_counter() - began
    return _Trained(
        model=model,
        evaluation=evaluate(model, prices, start),
        decision=decision,
        promoted=True,
        new_version=True,
        seconds=seconds,
        epochs=int(model.meta.get("epochs_run", 0)),
        n_train=int(model.meta.get("n_train", len(train))),
    )


def _finetune(
    champion_model: Forecaster,
    champion_eval: Evaluation,
    champion: Champion,
    train: pd.Series,
    prices: pd.Series,
    start: pd.Timestamp,
    decision: ModeDecision,
    options: RunOptions,
) -> _Trained:
    new_from = pd.Timestamp(champion.trained_through + timedelta(days=1))
    unseen = train[train.index >= new_from]
    if unseen.empty:
        reason = f"{decision.reason}; no unseen training days, champion {champion.version} kept"
        return _Trained(
            model=champion_model,
            evaluation=champion_eval,
            decision=ModeDecision("finetune", reason),
            promoted=False,
            new_version=False,
            seconds=0.0,
            epochs=0,
            n_train=0,
        )
    began = time.perf_counter()
    tuned = champion_model.fine_tune(
        train,
        new_from,
        epochs=options.finetune_epochs,
        learning_rate=options.finetune_learning_rate,
    )
    seconds = time.perf_counter() - began
    scored = evaluate(tuned, prices, start)
    promoted = scored.rmse <= champion_eval.rmse
    verdict = (
        f"fine-tuned on {len(unseen)} unseen days: RMSE {scored.rmse:.4g} vs champion "
        f"{champion.version} {champion_eval.rmse:.4g} on the same days; "
        + ("promoted" if promoted else "champion kept")
    )
    decision = ModeDecision("finetune", f"{decision.reason}; {verdict}")
    return _Trained(
        tuned, scored, decision, promoted, True, seconds, options.finetune_epochs, len(unseen)
    )


def forecast_ticker(
    item: WatchItem,
    as_of: date,
    options: RunOptions,
    fetch_report: dict[str, Any] | None = None,
) -> TickerOutcome:
    """Train or fine-tune one ticker's model, evaluate it honestly and publish its outputs.

    Args:
        item: The ticker.
        as_of: The run date; no price after it is used.
        options: The run's settings.
        fetch_report: The validation report of this run's fetch (``fetch_prices``), whose
            counts and warnings the metrics row carries.

    Returns:
        The metrics row (describing the model that serves forecasts after this run: the
        promoted candidate, or the champion that was kept), the forecast and the keys written.
    """
    storage = storage_for(options)
    config = options.model_config()
    prices, report = _price_series(storage, item, as_of, config)
    train, test = split_by_date(prices, config.test_size)
    start = test.index[0]

    champion = read_champion(storage, item.symbol)
    champion_model = champion_eval = check = None
    if champion is not None and options.mode != "retrain":
        champion_model, champion_eval, check = _check_champion(
            storage, item, champion, prices, start
        )
    decision = decide_mode(
        options.mode,
        check,
        as_of=as_of,
        preset=options.preset,
        evaluation_start=start.date(),
        policy=options.policy,
    )
    if decision.mode == "retrain":
        trained = _retrain(train, prices, start, config, decision)
        if champion is not None and as_of < champion.promoted_on:
            trained.promoted = False
            trained.decision = ModeDecision(
                "retrain",
                f"{decision.reason}; as-of {as_of} precedes champion {champion.version}'s "
                f"promotion on {champion.promoted_on}, not promoted",
            )
    else:
        assert champion is not None and champion_model is not None and champion_eval is not None
        trained = _finetune(
            champion_model, champion_eval, champion, train, prices, start, decision, options
        )

    keys: list[str] = []
    candidate_version = champion.version if champion is not None else None
    if trained.new_version:
        candidate_version = next_version(storage, item.symbol)
        trained.model.meta["run_date"] = as_of.isoformat()
        keys += save_model(storage, item.symbol, candidate_version, trained.model)
        if trained.promoted:
            keys.append(
                write_champion(
                    storage,
                    item.symbol,
                    Champion(
                        version=candidate_version,
                        trained_through=trained_through(trained.model).date(),
                        retrained_on=as_of
                        if trained.decision.mode == "retrain"
                        else champion.retrained_on,  # type: ignore[union-attr]
                        promoted_on=as_of,
                        preset=options.preset,
                        u2_at_promotion=trained.evaluation.u2,
                    ),
                )
            )
    # Forecasts come from the champion after this run: the promoted candidate, or the
    # champion that was kept (a backfill retrain with no loaded champion serves itself).
    if trained.promoted or champion_model is None:
        serving_model, serving_eval, version = trained.model, trained.evaluation, candidate_version
    else:
        serving_model, serving_eval = champion_model, champion_eval
        version = champion.version  # type: ignore[union-attr]
    assert serving_eval is not None and version is not None
    keys += _publish_ticker(storage, item, as_of, serving_eval, prices, start)
    data_end = prices.index[-1].date()
    forecast = {
        "ticker": item.symbol,
        "data_end": data_end,
        "target_date": next_trading_day(item.asset_class, data_end),
        "forecast": float(serving_model.forecast_next(prices)),
        "model_version": version,
    }
    metrics = {
        "ticker": item.symbol,
        "asset_class": item.asset_class,
        "status": "ok",
        "mode": trained.decision.mode,
        "mode_reason": trained.decision.reason,
        **serving_eval.scores,
        "n_train": trained.n_train,
        "n_test": len(test),
        "epochs": trained.epochs,
        "train_seconds": round(trained.seconds, 3),
        "model_version": version,
        "promoted": trained.promoted,
        "data_end": data_end,
        "error": None,
        **validation_columns(fetch_report or {}, report.to_dict()),
    }
    return TickerOutcome(metrics=metrics, forecast=forecast, keys=keys)


def validation_columns(fetched: dict[str, Any], history: dict[str, Any]) -> dict[str, Any]:
    """What validation found, for the metrics row: counts from this run's fetch (the raw
    data), staleness and warnings from both the fetch and the stored history."""
    warnings = list(dict.fromkeys([*fetched.get("warnings", []), *history.get("warnings", [])]))
    return {
        "null_rows_dropped": int(fetched.get("null_rows_dropped", 0)),
        "duplicates_resolved": int(fetched.get("duplicates_resolved", 0)),
        "stale": bool(history.get("stale", False)),
        "warnings": "; ".join(warnings) or None,
    }


def _publish_ticker(
    storage: Storage,
    item: WatchItem,
    as_of: date,
    scored: Evaluation,
    prices: pd.Series,
    start: pd.Timestamp,
) -> list[str]:
    predictions_key = layout.predictions_key(as_of, item.symbol)
    write_parquet(storage, predictions_key, scored.predictions)
    figure = plot_predictions(
        scored.predictions,
        title=f"{item.symbol}: one-step-ahead forecast as of {as_of} "
        f"(RMSE {scored.rmse:.4g}, naive {scored.scores['naive_rmse']:.4g}, U2 {scored.u2:.3f})",
        train_end=start - pd.Timedelta(days=1),
        history=prices[prices.index < start].iloc[-len(scored.predictions) :],
    )
    plot_key = layout.ticker_plot_key(as_of, item.symbol)
    write_figure(storage, plot_key, figure)
    return [predictions_key, plot_key]
