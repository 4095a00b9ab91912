"""The per-ticker modelling task: score what was served, train, serve, publish."""

from __future__ import annotations

import threading
from typing import Any

from prefect import get_run_logger, task

from closecast import catalog
from closecast.catalog import RunScope
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


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


@task(name="forecast-ticker", task_run_name="forecast-{item.symbol}-{scope.run_date}")
def forecast_ticker(
    item: WatchItem,
    scope: RunScope,
    options: RunOptions,
    fetch_report: dict[str, Any] | None = None,
) -> ticker.TickerOutcome:
    """Score served forecasts, retrain or fine-tune, serve the next forecast and publish the
    ticker's run objects.

    Returns:
        The ticker's outcome: its rows and the keys it wrote.
    """
    # TensorFlow loads only when a ticker trains, not when a worker imports the flow.
    from lstm_model.model import release_tensorflow_state

    logger = get_run_logger()
    lease = catalog.ticker_lease_key(item.symbol)
    with options.lease(lease, f"ticker {item.symbol}"), _training_lock():
        try:
            outcome = ticker.forecast_ticker(item, scope, options, fetch_report)
        finally:
            release_tensorflow_state()
    row = outcome.metrics
    logger.info(
        "%s: %s (%s); model %s, backtest U2 %s, live U2 %s over %s served; %.1fs",
        item.symbol,
        row.mode,
        row.mode_reason,
        row.model_version,
        _fmt(row.backtest_u2),
        _fmt(row.live_u2_lineage),
        row.live_n_lineage,
        row.model_seconds or 0.0,
    )
    return outcome
