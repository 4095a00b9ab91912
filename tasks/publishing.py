"""Run-level publication: tables, summary plot, manifest, and the Prefect artifacts."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from closecast.artifacts import public_endpoint_from_env, summary_markdown, ui_plots
from closecast.pipeline import layout
from closecast.pipeline.options import RunOptions
from closecast.pipeline.publish import publish_run
from closecast.pipeline.ticker import storage_for

METRICS_ARTIFACT_KEY = "closecast-metrics"
SUMMARY_ARTIFACT_KEY = "closecast-summary"


@task(name="publish-run", task_run_name="publish-run-{run_date}")
def publish_run_outputs(
    run_date: date,
    metric_rows: list[dict[str, Any]],
    forecast_rows: list[dict[str, Any]],
    ticker_keys: list[str],
    options: RunOptions,
    parameters: dict[str, Any],
) -> str:
    """Write metrics, forecasts, the summary plot and the manifest; returns the manifest key."""
    storage = storage_for(options)
    manifest = publish_run(
        storage, run_date, metric_rows, forecast_rows, ticker_keys, parameters=parameters
    )
    key = layout.manifest_key(run_date)
    get_run_logger().info(
        "Published %d objects under %s (manifest %s)",
        len(manifest["objects"]),
        storage.describe(),
        key,
    )
    return key


@task(name="publish-artifacts", task_run_name="publish-artifacts-{run_date}")
def publish_artifacts(
    run_date: date, metric_rows: list[dict[str, Any]], options: RunOptions
) -> None:
    """The metrics table and a markdown summary showing the plots, at stable keys."""
    storage = storage_for(options)
    plot_keys = {
        row["ticker"]: layout.ticker_plot_key(run_date, row["ticker"])
        for row in metric_rows
        if row["status"] == "ok"
    }
    plot_keys["summary"] = layout.summary_plot_key(run_date)
    plots = ui_plots(storage, plot_keys, public_endpoint=public_endpoint_from_env())
    table = [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
        for row in metric_rows
    ]
    create_table_artifact(
        table, key=METRICS_ARTIFACT_KEY, description=f"Per-ticker metrics for {run_date}"
    )
    create_markdown_artifact(
        summary_markdown(run_date, metric_rows, plots),
        key=SUMMARY_ARTIFACT_KEY,
        description=f"Forecast summary for {run_date}",
    )
