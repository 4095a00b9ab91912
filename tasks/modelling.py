"""The modelling task: for a chunk of tickers, score what was served, train (together),
serve the next forecasts and publish each ticker's run objects."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline import pooled as pooled_step
from closecast.pipeline import ticker
from closecast.pipeline.fetch import FetchSummary
from closecast.pipeline.pooled import GlobalModels
from closecast.pipeline.services import RunServices
from closecast.pipeline.settings import RunSettings
from closecast.storage.recording import ObjectEntry
from lstm_model.metrics import format_u2

# Keras seeds and graph state are process-global: two trainings interleaved in threads
# would draw from each other's random streams and break reproducibility. TensorFlow
# already spreads one training over every core, so chunks train one at a time per process;
# the process and Dask runners give real parallelism across processes.
_TENSORFLOW_LOCK = threading.Lock()


def _training_lock() -> threading.Lock:
    """This process's training lock. Tasks reach it through a function because process and
    Dask runners pickle the task, and a function pickles by reference while a lock cannot."""
    return _TENSORFLOW_LOCK


class _ToRunLogger(logging.Handler):
    """Forwards the ML core's progress records, from this task's thread only, to the task's
    Prefect run logger (so they reach the UI and the terminal under the right task run)."""

    def __init__(self, run_logger: Any) -> None:
        super().__init__(logging.INFO)
        self.run_logger = run_logger
        self.thread = threading.get_ident()

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread == self.thread:
            self.run_logger.log(record.levelno, record.getMessage())


@contextmanager
def training_progress_to(run_logger: Any) -> Iterator[None]:
    """Forward ``lstm_model.progress`` (epochs, loss, elapsed) to ``run_logger`` meanwhile."""
    source = logging.getLogger("lstm_model.progress")
    handler = _ToRunLogger(run_logger)
    previous = source.level, source.propagate
    source.setLevel(logging.INFO)
    source.propagate = False  # the run logger prints it already
    source.addHandler(handler)
    try:
        yield
    finally:
        source.removeHandler(handler)
        source.setLevel(previous[0])
        source.propagate = previous[1]


def _fmt(value: float | None) -> str:
    return format_u2(value)  # "undefined (...)" rather than "nan" on flat prices


def _chunk_name(parameters: dict[str, Any]) -> str:
    items = parameters["items"]
    first, last = items[0].symbol, items[-1].symbol
    span = first if len(items) == 1 else f"{first}..{last}-{len(items)}"
    return f"forecast-{span}-{parameters['scope'].run_date}"


@task(
    name="fit-global-models",
    task_run_name="fit-global-models-{scope.watchlist}",
    cache_policy=NO_CACHE,
)
def fit_global_models(
    items: list[WatchItem],
    scope: RunScope,
    settings: RunSettings,
    partial: bool = False,
    stored: dict[str, ObjectEntry] | None = None,
) -> GlobalModels:
    """The run's pooled step: fit (retrain, fine-tune or keep) the watchlist's global models
    on every fetched ticker's stored history (``stored``: the price objects the fetch left,
    under the ticker leases the flow holds), under the watchlist's global lease
    (:mod:`closecast.pipeline.pooled`). Chunks load them by the keys returned.
    """
    logger = get_run_logger()
    services = RunServices.open(settings)
    key = catalog.global_lease_key(scope.watchlist)
    with (
        services.lease(key, f"global models of {scope.watchlist}"),
        training_progress_to(logger),  # the global LSTM's epochs, as the chunks' trainings
    ):
        pooled = pooled_step.fit_global_models(
            services.storage, items, scope, services.config, mode=settings.mode,
            policy=settings.policy, partial=partial, kinds=settings.global_models(),
            stored=stored,
        )  # fmt: skip
    for ref in pooled.refs:
        champion = ref.champion
        logger.info(
            "%s of %s: %s (%s); version %s of lineage %s, %d tickers, trained through %s",
            ref.kind, scope.watchlist, ref.mode, ref.reason, champion.version, champion.lineage,
            champion.n_tickers, champion.trained_through,
        )  # fmt: skip
    for kind, error in pooled.failures:
        logger.warning("%s of %s not fit: %s", kind, scope.watchlist, error)
    return pooled


def _release_tensorflow_state() -> None:
    """Free what training left in this process, if anything trained in it.

    TensorFlow loads only when a ticker trains (``lstm_model.model``), not when a worker
    imports the flow or serves a kept champion (NumPy inference): a chunk whose tickers all
    keep their champions must not import it just to clear it (5-6 CPU-s per process).
    """
    if "lstm_model.model" in sys.modules:
        from lstm_model.model import release_tensorflow_state

        release_tensorflow_state()


@task(name="forecast-tickers", task_run_name=_chunk_name, cache_policy=NO_CACHE)
def forecast_chunk(
    items: list[WatchItem],
    scope: RunScope,
    settings: RunSettings,
    fetches: dict[str, FetchSummary],
    draw_plots: bool = True,
    pooled: GlobalModels | None = None,
) -> list[ticker.TickerOutcome]:
    """Score served forecasts, retrain or fine-tune, serve and publish, for a chunk of
    tickers whose training runs together, under the ticker leases the flow holds from their
    fetch through this task (:meth:`RunServices.ticker_leases`). The run's
    global models (``pooled``) are loaded by key and join every ticker's line-up.

    Returns:
        One outcome per ticker (its rows and the keys it wrote, or a failed row).
    """
    logger = get_run_logger()
    services = RunServices.open(settings)
    global_models, unloaded = pooled_step.load_globals(services.storage, pooled)
    for warning in unloaded:  # the tickers go on without that global model
        logger.warning("%s", warning)
    with _training_lock(), training_progress_to(logger):
        try:
            outcomes = ticker.forecast_tickers(
                items, scope, settings, fetches, services=services, draw_plots=draw_plots,
                global_models=global_models, known=pooled.ledgers if pooled else (),
            )  # fmt: skip
        finally:
            _release_tensorflow_state()
    for outcome in outcomes:
        row = outcome.metrics
        if row.status != "ok":
            logger.error("%s failed: %s", row.ticker, row.error)
            if outcome.traceback:
                logger.debug("%s failed here:\n%s", row.ticker, outcome.traceback)
            continue
        logger.info(
            "%s: %s (%s); model %s, backtest U2 %s, live U2 %s over %s served; %.1fs",
            row.ticker,
            row.mode,
            row.mode_reason,
            row.model_version,
            _fmt(row.backtest_u2),
            _fmt(row.live_u2_lineage),
            row.live_n_lineage,
            row.model_seconds or 0.0,
        )
        for warning in _model_stage_warnings(row.warnings, fetches.get(row.ticker)):
            logger.warning("%s", warning)
    return outcomes


def _model_stage_warnings(warnings: str | None, fetch: FetchSummary | None) -> list[str]:
    """The row's warnings not already logged by its fetch: what the model's history check
    found, e.g. older rows left out before a gap (they used to be dropped without a log line)."""
    logged = set(fetch.warnings if fetch is not None else ())
    return [w for w in (warnings or "").split("; ") if w and w not in logged]
