"""Run-level publication: tables, summary plot, manifest, and the Prefect artifacts."""

from __future__ import annotations

from uuid import UUID

from prefect import get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE

from closecast.outputs import catalog
from closecast.outputs.artifacts import (
    plot_link,
    public_endpoint_from_env,
    select_summary,
    summary_markdown,
    table_artifact_rows,
    ui_plots,
)
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow
from closecast.pipeline.publish import Manifest, RunRows, publish_run, withdraw_manifest
from closecast.pipeline.run_tickers import RunTickers
from closecast.pipeline.services import open_run_storage
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import TickerOutcome

METRICS_ARTIFACT_KEY = "closecast-metrics"
PROGRESS_ARTIFACT_KEY = "closecast-progress"
SUMMARY_ARTIFACT_KEY = "closecast-summary"


def artifact_key(base: str, scope: RunScope) -> str:
    """Artifact keys name the watchlist (Prefect keys: lowercase letters, digits, dashes)."""
    return f"{base}-{scope.watchlist.replace('_', '-')}"


def start_progress(scope: RunScope, total: int) -> UUID:
    """A progress artifact for the run, updated as chunks of tickers finish."""
    return create_progress_artifact(
        0.0,
        key=artifact_key(PROGRESS_ARTIFACT_KEY, scope),
        description=f"0 of {total} tickers of {scope.watchlist} done for {scope.run_date}",
    )


def update_progress(
    artifact_id: UUID, scope: RunScope, outcomes: list[TickerOutcome], total: int
) -> None:
    """Progress so far, naming the tickers that failed."""
    failed = sorted(o.metrics.ticker for o in outcomes if o.metrics.status != "ok")
    text = f"{len(outcomes)} of {total} tickers of {scope.watchlist} done for {scope.run_date}"
    if failed:
        shown = ", ".join(failed[:50]) + (
            f" and {len(failed) - 50} more" if len(failed) > 50 else ""
        )
        text += f"; failed: {shown}"
    update_progress_artifact(artifact_id, 100.0 * len(outcomes) / max(total, 1), text)


@task(
    name="withdraw-manifest",
    task_run_name="withdraw-manifest-{scope.watchlist}",
    cache_policy=NO_CACHE,
)
def withdraw_run_manifest(scope: RunScope, settings: RunSettings) -> Manifest | None:
    """Withdraw the scope's manifest before any of its objects is rewritten."""
    return withdraw_manifest(open_run_storage(settings), scope)


@task(
    name="publish-run",
    task_run_name="publish-run-{scope.watchlist}-{scope.run_date}",
    cache_policy=NO_CACHE,
)
def publish_run_outputs(
    scope: RunScope,
    outcomes: list[TickerOutcome],
    selection: RunTickers,
    settings: RunSettings,
    previous: Manifest | None,
) -> str:
    """Write the scope's tables, summary plot and manifest (recording ``settings`` whole);
    returns the manifest key."""
    storage = open_run_storage(settings)
    rows = RunRows(
        {
            catalog.METRICS.name: [o.metrics for o in outcomes],
            catalog.FORECASTS.name: [f for o in outcomes for f in o.forecasts],
            catalog.LIVE_SCORES.name: [s for o in outcomes for s in o.live_scores],
            catalog.MODEL_SCORES.name: [s for o in outcomes for s in o.model_scores],
            catalog.FINETUNE_SCORES.name: [s for o in outcomes for s in o.finetune_scores],
        }
    )
    manifest = publish_run(
        storage,
        scope,
        rows,
        [key for o in outcomes for key in o.keys],
        [key for o in outcomes for key in o.state_keys],
        run_tickers=selection.symbols,
        members=set(selection.members) if selection.members is not None else None,
        previous=previous,
        parameters=settings.recorded(),
        known={key: entry for o in outcomes for key, entry in o.known.items()},
    )
    key = catalog.MANIFEST.key(scope)
    get_run_logger().info(
        "Published %d objects under %s (manifest %s)",
        len(manifest.objects),
        storage.describe(),
        key,
    )
    return key


@task(
    name="publish-artifacts",
    task_run_name="publish-artifacts-{scope.watchlist}",
    cache_policy=NO_CACHE,
)
def publish_artifacts(
    scope: RunScope, metric_rows: list[MetricsRow], settings: RunSettings
) -> None:
    """The metrics table and a markdown summary showing the plots, at stable keys; both
    bounded at any watchlist size (the best and worst tickers, the failed ones, and a link
    to the full table: ``closecast.outputs.artifacts.select_summary``)."""
    storage = open_run_storage(settings)
    public = public_endpoint_from_env()
    selection = select_summary(metric_rows)
    plot_keys = {
        row.ticker: catalog.TICKER_PLOTS.key(scope, row.ticker)
        for row in selection.rows
        if row.status == "ok"
    }
    plot_keys["summary"] = catalog.SUMMARY_PLOT.key(scope)
    plots = ui_plots(storage, plot_keys, public_endpoint=public)
    table_key = catalog.METRICS.key(scope)
    full_table = plot_link(storage, table_key, public_endpoint=public) or table_key
    shown = "" if selection.complete else f" (best, worst and failed of {len(metric_rows)})"
    create_table_artifact(
        table_artifact_rows(metric_rows),
        key=artifact_key(METRICS_ARTIFACT_KEY, scope),
        description=f"Per-ticker metrics for {scope.run_date}, watchlist {scope.watchlist}"
        f"{shown}; every ticker: {table_key}",
    )
    create_markdown_artifact(
        summary_markdown(scope, metric_rows, plots, full_table=full_table),
        key=artifact_key(SUMMARY_ARTIFACT_KEY, scope),
        description=f"Forecast summary for {scope.run_date}, watchlist {scope.watchlist}",
    )
