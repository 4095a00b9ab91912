"""Run-level publication: tables, summary plot, manifest, and the Prefect artifacts."""

from __future__ import annotations

from datetime import date
from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

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


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def summary_markdown(run_date: date, rows: list[dict[str, Any]], links: dict[str, str]) -> str:
    """The run summary shown on the flow run page."""
    lines = [
        f"# closecast daily forecast, {run_date}",
        "",
        "| ticker | status | RMSE | naive RMSE | U2 | mode | why | plot |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        why = (row.get("mode_reason") or row.get("error") or "").replace("|", "\\|")
        plot = f"[plot]({links[row['ticker']]})" if row["ticker"] in links else ""
        lines.append(
            f"| {row['ticker']} | {row['status']} | {_fmt(row.get('rmse'), '.4g')} "
            f"| {_fmt(row.get('naive_rmse'), '.4g')} | {_fmt(row.get('u2'), '.3f')} "
            f"| {row.get('mode') or ''} | {why} | {plot} |"
        )
    if "summary" in links:
        lines += ["", f"[RMSE vs naive RMSE, all tickers]({links['summary']})"]
    lines += ["", "U2 = RMSE / naive RMSE: below 1 beats 'tomorrow = today'."]
    return "\n".join(lines)


@task(name="publish-artifacts", task_run_name="publish-artifacts-{run_date}")
def publish_artifacts(
    run_date: date, metric_rows: list[dict[str, Any]], options: RunOptions
) -> None:
    """The metrics table and a markdown summary with links to the plots, at stable keys."""
    storage = storage_for(options)
    links = {
        row["ticker"]: storage.url(layout.ticker_plot_key(run_date, row["ticker"]))
        for row in metric_rows
        if row["status"] == "ok"
    }
    links["summary"] = storage.url(layout.summary_plot_key(run_date))
    table = [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in row.items()}
        for row in metric_rows
    ]
    create_table_artifact(
        table, key=METRICS_ARTIFACT_KEY, description=f"Per-ticker metrics for {run_date}"
    )
    create_markdown_artifact(
        summary_markdown(run_date, metric_rows, links),
        key=SUMMARY_ARTIFACT_KEY,
        description=f"Forecast summary for {run_date}",
    )
