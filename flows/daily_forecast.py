"""The daily forecast flow: per ticker, fetch; score what was served; retrain or fine-tune;
serve the next forecast; then publish the watchlist's run outputs."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Cancelled, Completed, Failed, State
from prefect.task_runners import TaskRunner
from prefect.utilities.annotations import quote

from closecast.control.interrupts import training_stops_with_the_run
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import FetchOutcome
from closecast.pipeline.pooled import GlobalModels
from closecast.pipeline.run_tickers import RunTickers, name_from_path
from closecast.pipeline.services import RunServices
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import TickerOutcome, failed_outcome
from closecast.storage.recording import ObjectEntry
from flows.runners import entered, make_task_runner
from lstm_model.interrupt import stop_requested
from tasks.modelling import fit_global_models, forecast_chunk
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


def _run_name() -> str:
    given = flow_run.parameters.get("settings")
    settings = given if isinstance(given, RunSettings) else RunSettings.model_validate(given or {})
    watchlist = settings.watchlist_name or (
        "adhoc" if settings.tickers and not settings.watchlist else
        name_from_path(settings.watchlist)
    )  # fmt: skip
    as_of = settings.as_of or "latest"
    return f"daily-forecast-{as_of}-{watchlist}-{settings.source}"


def _settle(future: PrefectFuture[Any]) -> tuple[Any, str | None]:
    """A finished future's result, or the error that failed it."""
    result = future.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        return None, f"{type(result).__name__}: {result}"
    return result, None


def chunks(items: list[Any], size: int, workers: int) -> list[list[Any]]:
    """Split tickers into chunks fetched and trained together: at most ``size`` each, and at
    least one per worker (process) when there are enough tickers."""
    if not items:
        return []
    per_chunk = max(1, min(size, -(-len(items) // max(workers, 1))))
    return [items[i : i + per_chunk] for i in range(0, len(items), per_chunk)]


def forecast_watchlist(
    selection: RunTickers,
    scope: RunScope,
    settings: RunSettings,
    runner: TaskRunner,
    services: RunServices,
) -> list[TickerOutcome]:
    """Per chunk of tickers, one task fetches them (a few at once, each retried on network
    errors); once every chunk is fetched, one task fits the run's global models on every
    fetched ticker (the pooled step), then one task per chunk models the fetched ones, on
    ``runner`` (threads, processes or Dask, as ``settings`` say). A failed ticker never
    stops the others.

    Every ticker's lease is taken here, once, before its fetch, and held through its
    chunk's modelling (released as each chunk finishes): what the fetch stored is what the
    pooled step and the modelling read, and a ticker costs one lease, not one per task.

    The runner is entered here, not given to a sub-flow: creating a sub-flow's run raced
    the server's own writes to its database (a 503, then a 2 s client back-off, every run).
    """
    progress = start_progress(scope, len(selection.items)) if settings.ui_artifacts else None
    # Threads of one process train one chunk at a time (tasks.modelling's training lock):
    # there, more chunks than one would only add training dispatches and TensorFlow releases.
    parallel = 1 if settings.task_runner == "threads" else settings.workers
    outcomes: dict[str, TickerOutcome] = {}
    modelling: dict[PrefectFuture[Any], list[WatchItem]] = {}
    draw_plots = len(selection.items) <= settings.ticker_plots  # the summary always renders
    with (
        services.ticker_leases(selection.symbols) as leases,
        entered(runner, get_run_logger()),
    ):
        fetches = {
            runner.submit(
                fetch_prices, {"items": chunk, "as_of": scope.run_date, "settings": settings}
            ): chunk
            for chunk in chunks(list(selection.items), settings.chunk_size, parallel)
        }
        fetched_chunks = [_fetched(fetches[f], f, outcomes) for f in as_completed(list(fetches))]
        fetched_items = [f.item for chunk in fetched_chunks for f in chunk]
        unfetched = set(selection.symbols) - {item.symbol for item in fetched_items}
        leases.release([catalog.ticker_lease_key(symbol) for symbol in unfetched])
        partial = selection.members is not None and len(selection.items) < len(selection.members)
        stored = {
            f.item.symbol: f.summary.stored
            for chunk in fetched_chunks
            for f in chunk
            if f.summary is not None and f.summary.stored is not None
        }
        pooled = _pooled_step(fetched_items, scope, settings, partial, stored)
        for fetched in filter(None, fetched_chunks):
            items = [f.item for f in fetched]
            summaries = {f.item.symbol: f.summary for f in fetched if f.summary is not None}
            parameters = {
                "items": items, "scope": scope, "settings": settings, "fetches": summaries,
                "draw_plots": draw_plots, "pooled": pooled,
            }  # fmt: skip
            modelling[runner.submit(forecast_chunk, parameters)] = items
        # Cancellation (SIGTERM) lands here, in the main thread: trainings in the worker
        # threads are asked to stop at their next batch instead of running to the end.
        with training_stops_with_the_run():
            for future in as_completed(list(modelling)):
                chunk = modelling[future]
                leases.release([catalog.ticker_lease_key(item.symbol) for item in chunk])
                result, error = _settle(future)
                for i, item in enumerate(chunk):
                    outcomes[item.symbol] = (
                        result[i] if error is None else failed_outcome(item, error, stage="model")
                    )
                if progress is not None:
                    update_progress(progress, scope, list(outcomes.values()), len(selection.items))
    return [outcomes[item.symbol] for item in selection.items]


def _pooled_step(
    items: list[WatchItem],
    scope: RunScope,
    settings: RunSettings,
    partial: bool,
    stored: dict[str, ObjectEntry],
) -> GlobalModels | None:
    """The run's global models, or None when none could be fit (the tickers go on without
    them: the pooled step never sinks the run) or the line-up has none (no pooled step)."""
    if not items or not settings.global_models():
        return None
    state = fit_global_models(items, scope, settings, partial, stored, return_state=True)
    if not state.is_completed():
        get_run_logger().warning("global models not fit: %s", state.message)
        return None
    return state.result()


def _fetched(
    chunk: list[WatchItem], future: PrefectFuture[Any], outcomes: dict[str, TickerOutcome]
) -> list[FetchOutcome]:
    """A chunk's fetched tickers; each failed one gets its failed outcome."""
    result, error = _settle(future)
    fetched = []
    for i, item in enumerate(chunk):
        failure = error if error is not None else result[i].error
        if failure is None:
            fetched.append(result[i])
        else:
            outcomes[item.symbol] = failed_outcome(item, failure, stage="fetch")
    return fetched


@flow(name="daily-forecast", flow_run_name=_run_name)
def daily_forecast(settings: RunSettings = RunSettings()) -> State:  # noqa: B008 (frozen)
    """Forecast every ticker of a watchlist and publish the run to storage.

    Args:
        settings: How the run is made (:class:`closecast.pipeline.settings.RunSettings`:
            the watchlist, source, storage, run date, preset, retrain policy, horizon,
            runner...). The manifest records it whole.

    Returns:
        Completed when every ticker succeeded, or at once when no ticker's market traded on
        the run date (except for ``retrain`` runs, which may be scheduled on weekends);
        Failed naming the failed tickers otherwise.
    """
    logger = get_run_logger()
    runner = make_task_runner(settings.task_runner, settings.workers, settings.dask_address)
    tickers = list(settings.tickers) if settings.tickers is not None else None
    selection = select_tickers(settings.watchlist, tickers, settings.watchlist_name)
    source = settings.source
    as_of = settings.as_of
    run_date = (
        check_run_date(as_of, source, selection.symbols)
        if as_of
        else resolve_as_of(source, selection.symbols)
    )
    scope = RunScope(run_date, selection.name)
    if as_of is None:
        name_flow_run(scope, source)
    if settings.mode != "retrain" and markets_closed(selection, run_date):
        message = f"markets closed on {run_date} for every ticker of {selection.name}: no run"
        logger.info(message)
        return Completed(message=message)

    # One run of a date and watchlist at a time: the manifest is withdrawn and rewritten,
    # and the run tables merged, by the lease holder only.
    services = RunServices.open(settings)
    with services.lease(catalog.scope_lease_key(scope), f"watchlist {scope.label}"):
        previous = withdraw_run_manifest(scope, settings)
        outcomes = forecast_watchlist(selection, scope, settings, runner, services)
        if stop_requested():
            return Cancelled(message=f"stopped on request; nothing published for {scope.label}")
        # Quoted: Prefect would otherwise walk every field of every row, looking for futures.
        manifest_key = publish_run_outputs(scope, quote(outcomes), selection, settings, previous)
    metric_rows = [o.metrics for o in outcomes]
    if settings.ui_artifacts:
        publish_artifacts(scope, metric_rows, settings)
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
