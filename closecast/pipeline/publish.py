"""The run's shared outputs: metrics and forecasts tables, the summary plot, the manifest."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Any

import pandas as pd
import pyarrow as pa

from closecast.pipeline import layout
from closecast.plots import plot_summary
from closecast.storage import Storage
from closecast.storage.io import write_figure, write_json, write_parquet

METRICS_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("asset_class", pa.string()),
        ("status", pa.string()),
        ("mode", pa.string()),
        ("mode_reason", pa.string()),
        ("rmse", pa.float64()),
        ("naive_rmse", pa.float64()),
        ("u2", pa.float64()),
        ("mae", pa.float64()),
        ("mape", pa.float64()),
        ("directional_accuracy", pa.float64()),
        ("n_train", pa.int64()),
        ("n_test", pa.int64()),
        ("epochs", pa.int64()),
        ("train_seconds", pa.float64()),
        ("model_version", pa.string()),
        ("promoted", pa.bool_()),
        ("data_end", pa.date32()),
        ("error", pa.string()),
        ("null_rows_dropped", pa.int64()),
        ("duplicates_resolved", pa.int64()),
        ("stale", pa.bool_()),
        ("warnings", pa.string()),
    ]
)

FORECASTS_SCHEMA = pa.schema(
    [
        ("ticker", pa.string()),
        ("data_end", pa.date32()),
        ("target_date", pa.date32()),
        ("forecast", pa.float64()),
        ("model_version", pa.string()),
    ]
)


def _table(rows: list[dict[str, Any]], schema: pa.Schema) -> pa.Table:
    columns = {name: [row.get(name) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def metrics_table(rows: list[dict[str, Any]]) -> pa.Table:
    """One row per ticker, in the order given, with the published schema."""
    return _table(rows, METRICS_SCHEMA)


def forecasts_table(rows: list[dict[str, Any]]) -> pa.Table:
    return _table(rows, FORECASTS_SCHEMA)


def describe_object(storage: Storage, key: str) -> dict[str, Any]:
    """Size and sha256 of an object as stored (read back, not as we meant to write it)."""
    data = storage.read_bytes(key)
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def publish_run(
    storage: Storage,
    run_date: date,
    metric_rows: list[dict[str, Any]],
    forecast_rows: list[dict[str, Any]],
    ticker_keys: Iterable[str],
    *,
    parameters: dict[str, Any],
) -> dict[str, Any]:
    """Write the run's tables, summary plot and, last, its manifest.

    Objects left in this run date's partitions by an earlier run of the same date, and not
    written again now, are removed only after everything new is stored, so a failure midway
    never leaves the date with fewer outputs than before.

    Returns:
        The manifest.
    """
    keys = list(dict.fromkeys(ticker_keys))
    metrics_key = layout.metrics_key(run_date)
    write_parquet(storage, metrics_key, metrics_table(metric_rows))
    forecasts_key = layout.forecasts_key(run_date)
    write_parquet(storage, forecasts_key, forecasts_table(forecast_rows))
    keys += [metrics_key, forecasts_key]

    ok_rows = [row for row in metric_rows if row.get("status") == "ok"]
    summary = pd.DataFrame(ok_rows, columns=["ticker", "rmse", "naive_rmse"])
    summary_key = layout.summary_plot_key(run_date)
    write_figure(storage, summary_key, plot_summary(summary))
    keys.append(summary_key)

    manifest_key = layout.manifest_key(run_date)
    _remove_stale_outputs(storage, run_date, keep=set(keys) | {manifest_key})
    manifest = {
        "run_date": run_date.isoformat(),
        "parameters": parameters,
        "tickers": {
            row["ticker"]: {"status": row["status"], "error": row.get("error")}
            for row in metric_rows
        },
        "objects": [describe_object(storage, key) for key in keys],
    }
    write_json(storage, manifest_key, manifest)
    return manifest


def _remove_stale_outputs(storage: Storage, run_date: date, keep: set[str]) -> None:
    for prefix in layout.run_partitions(run_date):
        for key in storage.list_keys(prefix):
            if key not in keep:
                storage.delete(key)
