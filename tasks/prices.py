"""Tasks at the network edge: the watchlist and the price fetch (the only retried work)."""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from prefect import get_run_logger, task
from prefect.client.schemas.objects import TaskRun
from prefect.states import State
from prefect.tasks import Task, exponential_backoff

from closecast import catalog
from closecast.calendars import is_trading_day
from closecast.catalog import RunScope
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.selection import Selection, select
from closecast.pipeline.services import RunServices
from closecast.pipeline.settings import RunSettings
from closecast.sources import SourceUnavailableError, get_source
from closecast.sources import check_run_date as check_source_date
from closecast.storage import StorageUnreachableError
from closecast.watchlist import WatchItem

RETRYABLE = (SourceUnavailableError, StorageUnreachableError)


def retry_on_network_errors(task: Task[..., Any], task_run: TaskRun, state: State) -> bool:
    """Retry only what the network may fix; an unknown ticker or bad data fails at once."""
    try:
        state.result()
    except RETRYABLE:
        return True
    except Exception:
        return False
    return False


@task(name="select-tickers")
def select_tickers(watchlist: str | None, tickers: list[str] | None, name: str | None) -> Selection:
    """The run's tickers and the watchlist name its outputs are filed under."""
    selection = select(watchlist, tickers, name)
    get_run_logger().info("Watchlist %s: %s", selection.name, ", ".join(selection.symbols))
    return selection


@task(name="resolve-as-of")
def resolve_as_of(source: str, symbols: list[str]) -> date:
    """The market's current date for the run's tickers: the last shipped day for ``sample``,
    the latest date of the requested tickers' files for ``csv:DIR``."""
    return get_source(source).today(symbols)


@task(name="check-run-date")
def check_run_date(as_of: date, source: str, symbols: list[str]) -> date:
    """Refuse a run dated after the source's current date for the run's tickers.

    Raises:
        FutureRunDateError: ``as_of`` is after it (the message says where that date is from).
    """
    return check_source_date(get_source(source), as_of, symbols)


@task(name="markets-closed")
def markets_closed(selection: Selection, run_date: date) -> bool:
    """Whether no ticker of the selection has a trading session on the run date."""
    return not any(is_trading_day(item.asset_class, run_date) for item in selection.items)


@task(name="name-flow-run")
def name_flow_run(scope: RunScope, source: str) -> None:
    """Name the flow run after its resolved date, so scheduled runs read well in the UI."""
    from prefect.client.orchestration import get_client
    from prefect.runtime import flow_run

    if flow_run.id is None:
        return
    with get_client(sync_client=True) as client:
        client.update_flow_run(UUID(flow_run.id), name=f"daily-forecast-{scope.label}-{source}")


@task(
    name="fetch-prices",
    task_run_name="fetch-{item.symbol}-{as_of}",
    retries=4,
    retry_delay_seconds=exponential_backoff(backoff_factor=5),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_on_network_errors,
)
def fetch_prices(item: WatchItem, as_of: date, settings: RunSettings) -> dict[str, Any]:
    """Fetch, validate and merge one ticker's prices into the price store.

    Returns:
        ``FetchSummary.to_dict()``: new/revised/removed/total rows, the price key, whether
        the history was re-based or rebuilt, and the validation report under ``validation``.
    """
    services = RunServices.open(settings)
    with services.lease(catalog.ticker_lease_key(item.symbol), f"ticker {item.symbol}"):
        summary = fetch_and_store(
            item,
            as_of,
            services.storage,
            get_source(settings.source),
            price_column=services.config.price_column,
        )
    logger = get_run_logger()
    logger.info(
        "%s: %d new, %d revised, %d removed, %d stored rows (%s)%s",
        item.symbol,
        summary.n_new,
        summary.n_revised,
        summary.n_removed,
        summary.n_total,
        summary.key,
        "; full history refetched" if summary.full_history else "",
    )
    for warning in summary.warnings:
        logger.warning("%s", warning)
    return summary.to_dict()
