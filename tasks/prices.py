"""Tasks at the network edge: the watchlist and the price fetch (the only retried work)."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from closecast.inputs.calendars import is_trading_day
from closecast.inputs.watchlist import WatchItem
from closecast.outputs.catalog import RunScope
from closecast.pipeline.fetch import FetchOutcome, FetchSummary, fetch_and_store
from closecast.pipeline.rows import describe_error
from closecast.pipeline.run_tickers import RunTickers, select
from closecast.pipeline.services import RunServices
from closecast.pipeline.settings import RunSettings
from closecast.sources import SourceUnavailableError, get_source
from closecast.sources import check_run_date as check_source_date
from closecast.storage import StorageUnreachableError

RETRYABLE = (SourceUnavailableError, StorageUnreachableError)


@task(name="select-tickers", cache_policy=NO_CACHE)
def select_tickers(
    watchlist: str | None, tickers: list[str] | None, name: str | None
) -> RunTickers:
    """The run's tickers and the watchlist name its outputs are filed under."""
    selection = select(watchlist, tickers, name)
    get_run_logger().info("Watchlist %s: %s", selection.name, ", ".join(selection.symbols))
    return selection


@task(name="resolve-as-of", cache_policy=NO_CACHE)
def resolve_as_of(source: str, symbols: list[str]) -> date:
    """The market's current date for the run's tickers: the last shipped day for ``sample``,
    the latest date of the requested tickers' files for ``csv:DIR``."""
    return get_source(source).today(symbols)


@task(name="check-run-date", cache_policy=NO_CACHE)
def check_run_date(as_of: date, source: str, symbols: list[str]) -> date:
    """Refuse a run dated after the source's current date for the run's tickers.

    Raises:
        FutureRunDateError: ``as_of`` is after it (the message says where that date is from).
    """
    return check_source_date(get_source(source), as_of, symbols)


@task(name="markets-closed", cache_policy=NO_CACHE)
def markets_closed(selection: RunTickers, run_date: date) -> bool:
    """Whether no ticker of the selection has a trading session on the run date."""
    return not any(is_trading_day(item.asset_class, run_date) for item in selection.items)


@task(name="name-flow-run", cache_policy=NO_CACHE)
def name_flow_run(scope: RunScope, source: str) -> None:
    """Name the flow run after its resolved date, so scheduled runs read well in the UI."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(flow_run.id), name=f"daily-forecast-{scope.label}-{source}")


FETCH_CONCURRENCY = 4
"""Tickers of a chunk fetched at once: independent requests and price files, few enough
not to provoke a source's rate limit."""

RETRY_DELAYS: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0)
"""Pauses before each retry of the tickers whose fetch failed with a network error."""


def _fetch_name(parameters: dict[str, Any]) -> str:
    items = parameters["items"]
    span = items[0].symbol if len(items) == 1 else f"{items[0].symbol}..{items[-1].symbol}"
    count = "" if len(items) == 1 else f"-{len(items)}"
    return f"fetch-{span}{count}-{parameters['as_of']}"


@task(name="fetch-prices", task_run_name=_fetch_name, cache_policy=NO_CACHE)
def fetch_prices(
    items: list[WatchItem],
    as_of: date,
    settings: RunSettings,
    retry_delays: tuple[float, ...] = RETRY_DELAYS,
) -> list[FetchOutcome]:
    """Fetch, validate and merge a chunk's prices into the price store, a few tickers at
    once, under the ticker leases the flow holds from the fetch through the modelling
    (:meth:`closecast.pipeline.services.RunServices.ticker_leases`). A ticker whose fetch
    failed with a network error is tried again after each pause of ``retry_delays`` (with
    jitter); the others' outcomes stand, and one ticker's failure never fails the chunk.

    Returns:
        One outcome per ticker, in order: its :class:`FetchSummary`, or the error.
    """
    services = RunServices.open(settings)
    source = get_source(settings.source)
    logger = get_run_logger()

    def fetch_one(item: WatchItem) -> FetchSummary:
        return fetch_and_store(
            item, as_of, services.storage, source, price_column=services.config.price_column
        )

    outcomes: dict[str, FetchOutcome] = {}
    pending = list(items)
    with ThreadPoolExecutor(max_workers=min(FETCH_CONCURRENCY, len(items) or 1)) as pool:
        for attempt in range(1, len(retry_delays) + 2):
            futures = {item: pool.submit(fetch_one, item) for item in pending}
            retry = []
            for item, future in futures.items():
                try:
                    summary = future.result()
                except RETRYABLE as exc:
                    if attempt > len(retry_delays):
                        outcomes[item.symbol] = _failed(logger, item, exc, attempt)
                    else:
                        logger.warning("%s: %s; retrying", item.symbol, exc)
                        retry.append(item)
                except Exception as exc:
                    outcomes[item.symbol] = _failed(logger, item, exc, attempt)
                else:
                    _log_summary(logger, summary)
                    outcomes[item.symbol] = FetchOutcome(item, summary, attempts=attempt)
            if not retry:
                break
            time.sleep(retry_delays[attempt - 1] * random.uniform(1.0, 1.5))
            pending = retry
    return [outcomes[item.symbol] for item in items]


def _failed(logger: Any, item: WatchItem, error: BaseException, attempts: int) -> FetchOutcome:
    """A ticker's failed fetch, said on one line (no traceback: the error names the input)."""
    logger.error("%s failed: fetch: %s", item.symbol, describe_error(error))
    return FetchOutcome(item, error=describe_error(error), attempts=attempts)


def _log_summary(logger: Any, summary: FetchSummary) -> None:
    logger.info(
        "%s: %d new, %d revised, %d removed, %d stored rows (%s)%s",
        summary.ticker,
        summary.n_new,
        summary.n_revised,
        summary.n_removed,
        summary.n_total,
        summary.key,
        "; full history refetched" if summary.full_history else "",
    )
    for warning in summary.warnings:
        logger.warning("%s", warning)
