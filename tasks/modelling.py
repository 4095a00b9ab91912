"""The per-ticker modelling task: train or fine-tune, evaluate, forecast, publish."""

from __future__ import annotations

import threading
from dataclasses import asdict
from datetime import date
from typing import Any

from prefect import get_run_logger, task

from closecast.pipeline import ticker
from closecast.pipeline.options import RunOptions
from closecast.watchlist import WatchItem

# Keras seeds and graph state are process-global: two trainings interleaved in threads
# would draw from each other's random streams and break reproducibility. TensorFlow
# already spreads one training over every core, so tickers train one at a time per
# process; the process and Dask runners give real parallelism across processes.
_TENSORFLOW_LOCK = threading.Lock()


def _training_lock() -> threading.Lock:
    """This process's training lock. Tasks reach it through a function because process and
    Dask runners pickle the task, and a function pickles by reference while a lock cannot."""
    return _TENSORFLOW_LOCK


@task(name="forecast-ticker", task_run_name="forecast-{item.symbol}-{as_of}")
def forecast_ticker(
    item: WatchItem,
    as_of: date,
    options: RunOptions,
    fetch_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train or fine-tune one ticker's model, evaluate it, forecast and publish its outputs.

    Returns:
        The ticker's outcome: its metrics row, forecast row and the keys it wrote.
    """
    # Imported here, not at module level, so that reading the flow (prefect deploy, a worker
    # loading the entrypoint) never loads TensorFlow; importing it before the ticker's work
    # also applies lstm_model.quiet before any Keras import.
    from lstm_model.model import release_tensorflow_state

    logger = get_run_logger()
    with _training_lock():
        try:
            outcome = ticker.forecast_ticker(item, as_of, options, fetch_report)
        finally:
            release_tensorflow_state()
    row = outcome.metrics
    logger.info(
        "%s: %s (%s) RMSE %.4g, naive %.4g, U2 %.3f, model %s",
        item.symbol,
        row["mode"],
        row["mode_reason"],
        row["rmse"],
        row["naive_rmse"],
        row["u2"],
        row["model_version"],
    )
    return asdict(outcome)
