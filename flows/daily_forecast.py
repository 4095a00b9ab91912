"""The daily forecast flow: fetch, retrain or fine-tune, evaluate and publish, per ticker."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.futures import PrefectFuture, as_completed
from prefect.runtime import flow_run
from prefect.states import Completed, Failed, State

from closecast.pipeline.decisions import RetrainPolicy
from closecast.pipeline.options import RunOptions, epoch_overrides
from closecast.pipeline.ticker import failed_outcome
from closecast.watchlist import WatchItem
from flows.runners import RunnerKind, make_task_runner
from tasks.modelling import forecast_ticker
from tasks.prices import fetch_prices, load_watchlist_task, name_flow_run, resolve_as_of
from tasks.publishing import publish_artifacts, publish_run_outputs

DEFAULT_STORAGE = "./closecast-data"


def _run_name() -> str:
    params = flow_run.parameters
    return f"daily-forecast-{params.get('as_of') or 'latest'}-{params.get('source', 'sample')}"


def _settle(future: PrefectFuture[Any]) -> tuple[Any, str | None]:
    """A finished future's result, or the error that failed it."""
    result = future.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        return None, f"{type(result).__name__}: {result}"
    return result, None


@flow(name="forecast-watchlist", flow_run_name="forecast-watchlist-{as_of}")
def forecast_watchlist(
    items: list[WatchItem], as_of: date, options: RunOptions
) -> list[dict[str, Any]]:
    """Per ticker, in parallel on this flow's task runner: fetch and store prices, then
    train or fine-tune, evaluate and publish. A failed ticker never stops the others."""
    fetches = {fetch_prices.submit(item, as_of, options): item for item in items}
    outcomes: dict[str, dict[str, Any]] = {}
    modelling: dict[PrefectFuture[Any], WatchItem] = {}
    for future in as_completed(list(fetches)):
        item = fetches[future]
        fetched, error = _settle(future)
        if error is None:
            report = fetched["validation"]
            modelling[forecast_ticker.submit(item, as_of, options, report)] = item
        else:
            outcomes[item.symbol] = vars(failed_outcome(item, error, stage="fetch"))
    for future in as_completed(list(modelling)):
        item = modelling[future]
        result, error = _settle(future)
        outcomes[item.symbol] = result or vars(failed_outcome(item, error, stage="model"))
    return [outcomes[item.symbol] for item in items]


@flow(name="daily-forecast", flow_run_name=_run_name)
def daily_forecast(
    watchlist: str | None = None,
    tickers: list[str] | None = None,
    source: str = "sample",
    storage: str = DEFAULT_STORAGE,
    mode: Literal["auto", "retrain", "finetune"] = "auto",
    as_of: date | None = None,
    preset: str = "default",
    epochs: int | None = None,
    max_model_age_days: int = 30,
    max_u2_degradation: float = 0.10,
    range_tolerance: float = 0.05,
    finetune_epochs: int = 5,
    finetune_learning_rate: float = 1e-4,
    task_runner: RunnerKind = "threads",
    workers: int = 2,
    dask_address: str | None = None,
    create_bucket: bool = False,
    credentials_block: str | None = None,
) -> State:
    """Forecast every ticker of a watchlist and publish the run to storage.

    Args:
        watchlist: A watchlist YAML file; the packaged default when None.
        tickers: Ticker symbols to use instead of a watchlist file.
        source: ``sample`` (shipped data), ``yahoo``, or ``csv:DIR``.
        storage: The storage root: a local directory or ``s3://bucket/prefix``.
        mode: ``auto`` (choose per ticker), ``retrain`` or ``finetune``.
        as_of: The run date; the source's current date when None.
        preset: Model preset (``default``, ``fast``, ``tutorial``).
        epochs: Override the preset's training epochs.
        max_model_age_days: ``auto`` retrains models older than this.
        max_u2_degradation: ``auto`` retrains when U2 worsened by more than this.
        range_tolerance: ``auto`` retrains global-scaler models whose range is left by more.
        finetune_epochs: Epochs of a fine-tune.
        finetune_learning_rate: Learning rate of a fine-tune.
        task_runner: ``threads``, ``processes`` or ``dask`` for the per-ticker work.
        workers: Parallel workers of that runner.
        dask_address: An existing Dask scheduler for ``dask``; a local cluster when None.
        create_bucket: Create the S3 bucket when it does not exist.
        credentials_block: A Prefect ``aws-credentials/NAME`` or ``minio-credentials/NAME``
            block for S3; the standard AWS credential chain when None.

    Returns:
        Completed when every ticker succeeded; Failed naming the failed tickers otherwise.
    """
    logger = get_run_logger()
    options = RunOptions(
        storage_root=storage,
        source=source,
        preset=preset,
        overrides=epoch_overrides(epochs),
        mode=mode,
        policy=RetrainPolicy(max_model_age_days, max_u2_degradation, range_tolerance),
        finetune_epochs=finetune_epochs,
        finetune_learning_rate=finetune_learning_rate,
        create_bucket=create_bucket,
        credentials_block=credentials_block,
    )
    runner = make_task_runner(task_runner, workers, dask_address)
    items = load_watchlist_task(watchlist, tickers)
    run_date = as_of or resolve_as_of(source)
    if as_of is None:
        name_flow_run(run_date, source)
    outcomes = forecast_watchlist.with_options(task_runner=runner)(items, run_date, options)

    metric_rows = [o["metrics"] for o in outcomes]
    manifest_key = publish_run_outputs(
        run_date,
        metric_rows,
        [o["forecast"] for o in outcomes if o["forecast"]],
        [key for o in outcomes for key in o["keys"]],
        options,
        parameters={
            "source": source,
            "storage": storage,
            "mode": mode,
            "preset": preset,
            "epochs": epochs,
            "tickers": [i.symbol for i in items],
        },
    )
    publish_artifacts(run_date, metric_rows, options)
    failed = [row["ticker"] for row in metric_rows if row["status"] != "ok"]
    summary = f"{len(items) - len(failed)} of {len(items)} tickers forecast for {run_date}"
    logger.info("%s; manifest %s", summary, manifest_key)
    if failed:
        return Failed(message=f"{summary}; failed: {', '.join(failed)}")
    return Completed(message=summary)


if __name__ == "__main__":
    daily_forecast()
