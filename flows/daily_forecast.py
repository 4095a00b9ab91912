"""The daily forecast flow: per ticker, fetch; score what was served; retrain or fine-tune;
serve the next forecast; then publish the watchlist's run outputs."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State

from closecast import catalog
from closecast.catalog import RunScope
from closecast.interrupts import training_stops_with_the_run
from closecast.pipeline.decisions import RetrainPolicy
from closecast.pipeline.options import RunOptions, epoch_overrides
from closecast.pipeline.selection import Selection, name_from_path
from closecast.pipeline.ticker import TickerOutcome, failed_outcome
from closecast.watchlist import WatchItem
from flows.runners import RunnerKind, make_task_runner
from lstm_model.interrupt import stop_requested
from tasks.modelling import forecast_chunk
from tasks.prices import (
    check_run_date,
    fetch_prices,
    markets_closed,
    name_flow_run,
    resolve_as_of,
    select_tickers,
)
from tasks.publishing import (
    publish_artifacts,
    publish_run_outputs,
    start_progress,
    update_progress,
    withdraw_run_manifest,
)

DEFAULT_STORAGE = "./closecast-data"


def _run_name() -> str:
    params = flow_run.parameters
    watchlist = params.get("watchlist_name") or (
        "adhoc" if params.get("tickers") and not params.get("watchlist") else
        name_from_path(params.get("watchlist"))
    )  # fmt: skip
    as_of = params.get("as_of") or "latest"
    return f"daily-forecast-{as_of}-{watchlist}-{params.get('source', 'sample')}"


def _settle(future: PrefectFuture[Any]) -> tuple[Any, str | None]:
    """A finished future's result, or the error that failed it."""
    result = future.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        return None, f"{type(result).__name__}: {result}"
    return result, None


def chunks(items: list[Any], size: int, workers: int) -> list[list[Any]]:
    """Split tickers into chunks trained together: at most ``size`` each, and at least one
    per worker when there are enough tickers."""
    if not items:
        return []
    per_chunk = max(1, min(size, -(-len(items) // max(workers, 1))))
    return [items[i : i + per_chunk] for i in range(0, len(items), per_chunk)]


@flow(name="forecast-watchlist", flow_run_name="forecast-{scope.watchlist}-{scope.run_date}")
def forecast_watchlist(
    selection: Selection, scope: RunScope, options: RunOptions, chunk_size: int, workers: int
) -> list[TickerOutcome]:
    """Fetch every ticker (in parallel, retried on network errors), then model the fetched
    tickers in chunks on this flow's task runner. A failed ticker never stops the others."""
    progress = start_progress(scope, len(selection.items))
    fetches = {fetch_prices.submit(item, scope.run_date, options): item for item in selection.items}
    outcomes: dict[str, TickerOutcome] = {}
    fetched: list[WatchItem] = []
    reports: dict[str, dict[str, Any]] = {}
    for future in as_completed(list(fetches)):
        item = fetches[future]
        result, error = _settle(future)
        if error is None:
            fetched.append(item)
            reports[item.symbol] = result["validation"]
        else:
            outcomes[item.symbol] = failed_outcome(item, error, stage="fetch")
    order = {item.symbol: i for i, item in enumerate(selection.items)}
    fetched.sort(key=lambda item: order[item.symbol])
    modelling = {
        forecast_chunk.submit(
            chunk, scope, options, {i.symbol: reports[i.symbol] for i in chunk}
        ): chunk
        for chunk in chunks(fetched, chunk_size, workers)
    }
    # Cancellation (SIGTERM) lands here, in the main thread: trainings in the worker threads
    # are asked to stop at their next batch instead of running to the end.
    with training_stops_with_the_run():
        for future in as_completed(list(modelling)):
            chunk = modelling[future]
            result, error = _settle(future)
            for i, item in enumerate(chunk):
                outcomes[item.symbol] = (
                    result[i] if error is None else failed_outcome(item, error, stage="model")
                )
            update_progress(progress, scope, list(outcomes.values()), len(selection.items))
    return [outcomes[item.symbol] for item in selection.items]


@flow(name="daily-forecast", flow_run_name=_run_name)
def daily_forecast(
    watchlist: str | None = None,
    tickers: list[str] | None = None,
    watchlist_name: str | None = None,
    source: str = "sample",
    storage: str = DEFAULT_STORAGE,
    mode: Literal["auto", "retrain", "finetune"] = "auto",
    as_of: date | None = None,
    preset: str = "default",
    epochs: int | None = None,
    max_model_age_days: int = 30,
    max_u2_degradation: float = 0.0,
    min_live_days: int = 20,
    min_compare_days: int = 10,
    range_tolerance: float = 0.05,
    finetune_epochs: int = 5,
    finetune_learning_rate: float = 1e-4,
    task_runner: RunnerKind = "threads",
    workers: int = 2,
    chunk_size: int = 100,
    serve: str = "lstm",
    horizon: int = 1,
    dask_address: str | None = None,
    create_bucket: bool = False,
    credentials_block: str | None = None,
    lease_wait_seconds: float = 900.0,
    lease_ttl_seconds: float = 300.0,
) -> State:
    """Forecast every ticker of a watchlist and publish the run to storage.

    Args:
        watchlist: A watchlist YAML file; the packaged default when None.
        tickers: With ``watchlist``, the subset of it to rerun (the others' outputs for the
            date are kept); alone, symbols for an ad-hoc run filed under ``adhoc``.
        watchlist_name: The name outputs are filed under (default: the file's stem,
            ``default`` for the packaged watchlist, ``adhoc`` for bare tickers).
        source: ``sample`` (shipped data), ``yahoo``, or ``csv:DIR``.
        storage: The storage root: a local directory or ``s3://bucket/prefix``.
        mode: ``auto`` (choose per ticker), ``retrain`` or ``finetune``.
        as_of: The run date; the source's current date when None. Never after it.
        preset: Model preset (``default``, ``fast``, ``tutorial``).
        epochs: Override the preset's training epochs.
        max_model_age_days: ``auto`` retrains lineages retrained longer ago than this.
        max_u2_degradation: ``auto`` retrains when the 95% interval of the lineage's live
            U2 lies above its backtest U2 plus this (or the live record is worse than naive
            with Diebold-Mariano evidence)...
        min_live_days: ...over at least this many scored served forecasts.
        min_compare_days: Days a retrained candidate's backtest must share with the champion
            lineage's live record to be compared with it (else it is promoted).
        range_tolerance: ``auto`` retrains global-scaler models whose range is left by more.
        finetune_epochs: Epochs of a fine-tune.
        finetune_learning_rate: Learning rate of a fine-tune.
        task_runner: ``threads``, ``processes`` or ``dask`` for the per-ticker work.
        workers: Parallel workers of that runner.
        serve: Which model's forecast is served: ``lstm``, a baseline, or ``auto`` (the model
            that beats naive with evidence on the backtest days, else naive); a watchlist
            entry's ``serve`` overrides it for that ticker.
        horizon: Trading days ahead to forecast (1..10): one forecast per day of the ticker's
            own calendar, each scored against the naive forecast for that horizon (the last
            known price).
        chunk_size: Most tickers trained together in one task (one traced graph per
            configuration and process serves them all; see docs/scaling.md).
        dask_address: An existing Dask scheduler for ``dask``; a local cluster when None.
        create_bucket: Create the S3 bucket when it does not exist.
        credentials_block: A Prefect ``aws-credentials/NAME`` or ``minio-credentials/NAME``
            block for S3; the standard AWS credential chain when None.
        lease_wait_seconds: How long to wait for another run of the same date and
            watchlist, or of the same ticker, before failing with a message naming it.
        lease_ttl_seconds: How long a run's lease outlives the run if it is killed (it is
            renewed every third of this while the run lives).

    Returns:
        Completed when every ticker succeeded, or at once when no ticker's market traded on
        the run date (except for ``retrain`` runs, which may be scheduled on weekends);
        Failed naming the failed tickers otherwise.
    """
    logger = get_run_logger()
    options = RunOptions(
        storage_root=storage,
        source=source,
        preset=preset,
        overrides=epoch_overrides(epochs),
        mode=mode,
        policy=RetrainPolicy(
            max_model_age_days=max_model_age_days,
            max_u2_degradation=max_u2_degradation,
            min_live_days=min_live_days,
            min_compare_days=min_compare_days,
            range_tolerance=range_tolerance,
        ),
        finetune_epochs=finetune_epochs,
        finetune_learning_rate=finetune_learning_rate,
        create_bucket=create_bucket,
        credentials_block=credentials_block,
        lease_wait_seconds=lease_wait_seconds,
        lease_ttl_seconds=lease_ttl_seconds,
        serve=serve,
        horizon=horizon,
    )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    runner = make_task_runner(task_runner, workers, dask_address)
    selection = select_tickers(watchlist, tickers, watchlist_name)
    run_date = check_run_date(as_of, source) if as_of else resolve_as_of(source)
    scope = RunScope(run_date, selection.name)
    if as_of is None:
        name_flow_run(scope, source)
    if mode != "retrain" and markets_closed(selection, run_date):
        message = f"markets closed on {run_date} for every ticker of {selection.name}: no run"
        logger.info(message)
        return Completed(message=message)

    # One run of a date and watchlist at a time: the manifest is withdrawn and rewritten,
    # and the run tables merged, by the lease holder only.
    with options.lease(catalog.scope_lease_key(scope), f"watchlist {scope.label}"):
        previous = withdraw_run_manifest(scope, options)
        outcomes = forecast_watchlist.with_options(task_runner=runner)(
            selection, scope, options, chunk_size, workers
        )
        if stop_requested():
            return Cancelled(message=f"stopped on request; nothing published for {scope.label}")
        manifest_key = publish_run_outputs(
            scope,
            outcomes,
            selection,
            options,
            previous=previous,
            parameters={
                "source": source,
                "storage": storage,
                "mode": mode,
                "preset": preset,
                "epochs": epochs,
                "watchlist": watchlist,
                "tickers": selection.symbols,
            },
        )
    metric_rows = [o.metrics for o in outcomes]
    publish_artifacts(scope, metric_rows, options)
    failed = [row.ticker for row in metric_rows if row.status != "ok"]
    summary = (
        f"{len(metric_rows) - len(failed)} of {len(metric_rows)} tickers of {selection.name} "
        f"forecast for {run_date}"
    )
    logger.info("%s; manifest %s", summary, manifest_key)
    if failed:
        return Failed(message=f"{summary}; failed: {', '.join(failed)}")
    return Completed(message=summary)


if __name__ == "__main__":
    daily_forecast()
