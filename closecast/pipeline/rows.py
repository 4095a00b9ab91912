"""The rows and run objects a ticker contributes to a run: the lineage's backtest
predictions and the ticker's plot under the run scope, the forecasts table's rows, the
metrics row's validation and Diebold-Mariano columns, and the outcome that carries them to
publishing (or a failed row naming the step and the error)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from traceback import format_exception
from typing import Any

import pandas as pd
import pyarrow as pa

from closecast.inputs.validation import HISTORY_COUNTERS, REPORT_COUNTERS, ValidationReport
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.plots import PREDICTION_COLUMNS, plot_ticker
from closecast.outputs.records import (
    FinetuneScoreRow,
    ForecastRow,
    LiveScoreRow,
    MetricsRow,
    ModelScoreRow,
    PredictionRow,
    ServedRow,
    arrow_schema,
)
from closecast.pipeline import live
from closecast.pipeline.evaluation import significance
from closecast.pipeline.fetch import FetchSummary
from closecast.storage import Storage
from closecast.storage.io import write_figure, write_parquet
from closecast.storage.recording import ObjectEntry


@dataclass
class TickerOutcome:
    """What one ticker contributed to the run: its rows and the objects it wrote.

    ``keys`` are immutable objects (run outputs under the scope, new model versions);
    ``state_keys`` the per-ticker state it changed (prices, ledger, champion pointer);
    ``known`` what its storage recorded of them as it wrote or read them (the entry, or
    None for no object), so publishing lists them without reading them back.
    """

    metrics: MetricsRow
    forecasts: list[ForecastRow] = field(default_factory=list)  # one per step ahead
    live_scores: list[LiveScoreRow] = field(default_factory=list)
    model_scores: list[ModelScoreRow] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    state_keys: list[str] = field(default_factory=list)
    finetune_scores: list[FinetuneScoreRow] = field(default_factory=list)
    traceback: str = ""
    """Where a failed ticker's exception was raised, for the run's debug log (the metrics
    row's ``error`` names it in one line)."""
    known: dict[str, ObjectEntry | None] = field(default_factory=dict)


def describe_error(error: BaseException) -> str:
    """An error in one line, as a failed ticker's row and log name it."""
    return f"{type(error).__name__}: {error}"


def failed_outcome(item: WatchItem, error: BaseException | str, *, stage: str) -> TickerOutcome:
    """A failed ticker's outcome: its metrics row names the step and the error in one line;
    an exception's traceback rides along for the debug log."""
    described = error if isinstance(error, str) else describe_error(error)
    return TickerOutcome(
        metrics=MetricsRow(
            ticker=item.symbol,
            asset_class=item.asset_class,
            status="failed",
            error=f"{stage}: {described}",
        ),
        traceback="" if isinstance(error, str) else "".join(format_exception(error)),
    )


def prediction_table(predictions: pd.DataFrame) -> pa.Table:
    """A lineage's backtest predictions as the published table: the table
    ``rows_to_table`` makes of its rows as :class:`PredictionRow` (NaN as missing, a band
    column the frame lacks all missing; other columns ignored), built by column rather
    than row by row (every ticker publishes its backtest every run)."""
    schema = arrow_schema(PredictionRow)
    defaults = {f.name for f in fields(PredictionRow) if f.default is None}
    columns = []
    for column in schema:
        if column.name not in predictions.columns and column.name in defaults:
            columns.append(pa.nulls(len(predictions), column.type))
        elif pa.types.is_floating(column.type):
            values = predictions[column.name].to_numpy(dtype="float64")
            columns.append(pa.array(values, column.type, from_pandas=True))  # NaN: missing
        else:
            columns.append(pa.array(predictions[column.name].tolist(), column.type))
    return pa.table(columns, schema=schema)


def publish_ticker_objects(
    storage: Storage,
    item: WatchItem,
    scope: RunScope,
    backtest_predictions: pd.DataFrame | None,
    ledger: live.Ledger,
    prices: pd.Series,
    title: str,
    *,
    draw_plot: bool = True,
) -> list[str]:
    """The lineage's backtest predictions and (``draw_plot``) the ticker's plot, under the
    run scope."""
    keys = []
    if backtest_predictions is not None:
        key = catalog.PREDICTIONS.key(scope, item.symbol)
        write_parquet(storage, key, prediction_table(backtest_predictions))
        keys.append(key)
    if not draw_plot:
        return keys
    figure = ticker_figure(backtest_predictions, ledger, prices, title)
    plot_key = catalog.TICKER_PLOTS.key(scope, item.symbol)
    write_figure(storage, plot_key, figure)
    keys.append(plot_key)
    return keys


def ticker_figure(
    backtest: pd.DataFrame | None, ledger: live.Ledger, prices: pd.Series, title: str
):
    """The per-ticker figure: the lineage's backtest above, the served forecasts against what
    happened (naive drawn too) below."""
    frame = backtest if backtest is not None else pd.DataFrame(columns=list(PREDICTION_COLUMNS))
    # Before the tested days; with none (a listing too young to test), the whole history.
    before = prices.index < pd.Timestamp(frame["date"].iloc[0]) if len(frame) else slice(None)
    history = prices[before].iloc[-max(len(frame), 60) :]
    return plot_ticker(frame, live.served_frame(ledger), title=title, history=history)


def significance_columns(
    backtest: pd.DataFrame | None, ledger: live.Ledger, lineage: str
) -> dict[str, float | None]:
    """The metrics row's Diebold-Mariano columns for the backtest and the lineage's record."""
    served = ledger.scored(lineage)
    results = {
        ("backtest_", ""): None
        if backtest is None
        else significance(backtest["actual"], backtest["predicted"], backtest["naive"]),
        ("live_", "_lineage"): significance(
            [r.actual for r in served], [r.forecast for r in served], [r.naive for r in served]
        ),
    }
    columns: dict[str, float | None] = {}
    for (prefix, suffix), result in results.items():
        low, high = result.u2_interval(0.95) if result is not None else (None, None)
        columns[f"{prefix}dm_stat{suffix}"] = result.statistic if result is not None else None
        columns[f"{prefix}dm_p{suffix}"] = result.p_value if result is not None else None
        columns[f"{prefix}u2_low{suffix}"] = low
        columns[f"{prefix}u2_high{suffix}"] = high
    return columns


_METRICS_FIELDS = frozenset(f.name for f in fields(MetricsRow))


def validation_columns(fetched: FetchSummary | None, history: ValidationReport) -> dict[str, Any]:
    """What validation found, for the metrics row: counts from this run's fetch (the raw
    data) and from the model's stretch of history, re-basing, staleness and warnings."""
    raw = fetched.report if fetched is not None else None
    fetched_warnings = fetched.warnings if fetched is not None else ()
    warnings = list(dict.fromkeys([*fetched_warnings, *history.warnings]))
    counts = {
        name: (getattr(raw, name) if raw else 0)
        + (getattr(history, name) if name in HISTORY_COUNTERS else 0)
        for name in REPORT_COUNTERS
        if name in _METRICS_FIELDS
    }
    return {
        **counts,
        "rebased": bool(fetched and fetched.rebased),
        "rebase_factor": fetched.rebase.factor if fetched and fetched.rebase else None,
        "store_rebuilt": bool(fetched and fetched.rebuilt),
        "stale": bool(history.stale),
        "warnings": "; ".join(warnings) or None,
    }


# Which fields of the lineage's backtest score and of its live record the metrics row carries.
BACKTEST_COLUMNS: tuple[str, ...] = (
    *("start", "end", "n", "rmse", "naive_rmse", "u2", "mae", "mape"),
    *("directional_accuracy", "coverage_80", "coverage_95"),
)
LINEAGE_COLUMNS: tuple[str, ...] = (
    *("n_scored", "rmse", "naive_rmse", "u2", "directional_accuracy"),
    *("coverage_80", "coverage_95"),
)


def _copied(source: object | None, pattern: str, names: Sequence[str]) -> dict[str, Any]:
    """``source``'s fields as metrics columns named by ``pattern`` (None when no source);
    ``n_scored`` becomes ``n`` in the column name (``live_n_20d``)."""
    return {
        pattern.format(name.replace("n_scored", "n")): getattr(source, name, None) for name in names
    }


def forecast_row(served: ServedRow) -> ForecastRow:
    """The forecasts table's row for the forecast that was served (any model's)."""
    return ForecastRow(
        ticker=served.ticker,
        data_end=served.data_end,
        target_date=served.target_date,
        forecast=served.forecast,
        naive=served.naive,
        model_version=served.model_version,
        lineage=served.lineage,
        trained_through=served.trained_through,
        lower_80=served.lower_80,
        upper_80=served.upper_80,
        lower_95=served.lower_95,
        upper_95=served.upper_95,
        model=served.model,
        step=served.step,
    )
