"""Typed rows passed between layers and published as Parquet tables.

Each published table has one row type here; its Parquet schema is derived from the
dataclass fields (``str`` -> string, ``float`` -> float64, ``int`` -> int64, ``bool`` ->
bool, ``date`` -> date32; ``X | None`` is nullable), so a column cannot be added to a row
without reaching the table, nor the other way round.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import Any, Literal, TypeVar

import pandas as pd
import pyarrow as pa

Row = TypeVar("Row")

_ARROW_TYPES: dict[type, pa.DataType] = {
    str: pa.string(),
    float: pa.float64(),
    int: pa.int64(),
    bool: pa.bool_(),
    date: pa.date32(),
}

TickerStatus = Literal["ok", "failed"]


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """The Arrow type of a field annotation and whether it is nullable."""
    nullable = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(args) < len(typing.get_args(annotation))
        (annotation,) = args
        origin = typing.get_origin(annotation)
    if origin is Literal:
        annotation = type(typing.get_args(annotation)[0])
    try:
        return _ARROW_TYPES[annotation], nullable
    except KeyError:
        raise TypeError(f"no Parquet column type for {annotation!r}") from None


def arrow_schema(row_type: type) -> pa.Schema:
    """The Parquet schema of a row dataclass, fields in declaration order."""
    hints = typing.get_type_hints(row_type)
    columns = []
    for field in fields(row_type):
        arrow_type, nullable = _arrow_type(hints[field.name])
        columns.append(pa.field(field.name, arrow_type, nullable=nullable))
    return pa.schema(columns)


def _cell(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def rows_to_table(rows: Iterable[Any], row_type: type) -> pa.Table:
    """Rows (instances of ``row_type``) as an Arrow table with the derived schema."""
    rows = list(rows)
    schema = arrow_schema(row_type)
    for row in rows:
        if not isinstance(row, row_type):
            raise TypeError(f"expected {row_type.__name__} rows, got {type(row).__name__}")
    columns = {name: [_cell(getattr(row, name)) for row in rows] for name in schema.names}
    return pa.table(columns, schema=schema)


def table_to_rows(table: pa.Table, row_type: type[Row]) -> list[Row]:
    """Rows of ``row_type`` from a table; columns the type does not know are ignored and
    fields missing from an older table take their default (so readers survive schema growth).
    """
    names = {f.name for f in fields(row_type)}
    present = [n for n in table.column_names if n in names]
    return [row_type(**record) for record in table.select(present).to_pylist()]


def rows_to_frame(rows: Sequence[Any], row_type: type) -> pd.DataFrame:
    """Rows as a DataFrame with one column per field (dates stay ``datetime.date``)."""
    names = [f.name for f in fields(row_type)]
    return pd.DataFrame([dataclasses.astuple(row) for row in rows], columns=names)


@dataclass(frozen=True)
class ForecastRow:
    """One served forecast: what the model that serves after the run predicts next."""

    ticker: str
    data_end: date  # last price the forecast is based on
    target_date: date  # the next trading day of the ticker's calendar
    forecast: float
    naive: float  # the price on data_end: what "tomorrow = today" predicts
    model_version: str
    lineage: str  # version of the retrain this model descends from
    trained_through: date  # last price the serving model trained on
    lower_80: float | None = None  # conformal prediction intervals, in price units
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None
    model: str = "lstm"  # which model's forecast this is (the serve setting, or auto)
    step: int = 1  # trading days ahead: 1 is the next trading day, up to the run's horizon


@dataclass(frozen=True)
class ServedRow:
    """A ticker's ledger of served forecasts, scored once the target date's price is known."""

    ticker: str
    target_date: date
    data_end: date
    forecast: float
    naive: float
    model_version: str
    lineage: str
    trained_through: date
    served_on: date  # the run date that served it
    model: str = "lstm"  # the model kind that made it (baselines keep their own ledgers)
    step: int = 1  # trading days ahead of data_end (naive: the price on data_end)
    actual: float | None = None
    scored_on: date | None = None
    lower_80: float | None = None
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None
    # Every price of the row was multiplied by this to put it on the history's current
    # basis after re-basings (a 4:1 split: 0.25); forecast / basis_factor is what was served.
    basis_factor: float = 1.0


@dataclass(frozen=True)
class LiveScoreRow:
    """How the served forecasts did over one trailing window, beside the backtest."""

    ticker: str
    window: str  # "20d", "60d" (trading days ending at the run's data end) or "lineage"
    lineage: str
    first_target: date | None
    last_target: date | None
    n_scored: int
    rmse: float | None
    naive_rmse: float | None
    u2: float | None
    mae: float | None
    directional_accuracy: float | None
    backtest_u2: float | None  # the serving lineage's backtest U2, for comparison
    coverage_80: float | None = None  # share of scored days inside the served 80% interval
    coverage_95: float | None = None
    step: int = 1  # forecasts made this many trading days before their target


@dataclass(frozen=True)
class ModelScoreRow:
    """One model's score on one record of a ticker: the LSTM and every baseline, evaluated
    by the same code on the same days (the line-up)."""

    ticker: str
    model: str  # lstm, naive, drift, seasonal_naive
    record: str  # "backtest" (the lineage's hold-out days), "live_20d", "live_60d"
    first_date: date | None
    last_date: date | None
    n: int
    rmse: float | None
    naive_rmse: float | None
    u2: float | None
    directional_accuracy: float | None
    dm_stat: float | None  # Diebold-Mariano (HLN) against the naive forecast
    dm_p: float | None  # one-sided: the model beats naive
    serving: bool = False  # the model whose forecast this run served
    step: int = 1  # forecast horizon in trading days (naive: the last known price)
    coverage_80: float | None = None  # share of days inside the model's 80% interval
    coverage_95: float | None = None


@dataclass(frozen=True)
class FinetuneScoreRow:
    """Does fine-tuning help? A ticker's serving lineage: its fine-tuned forecasts beside
    what the lineage's un-fine-tuned refit would have served on the same days."""

    ticker: str
    lineage: str  # also the refit's version
    n: int  # scored days a fine-tuned version served
    first_date: date | None
    last_date: date | None
    served_rmse: float | None  # the fine-tuned forecasts as served
    refit_rmse: float | None  # the refit's forecasts for the same target dates
    naive_rmse: float | None
    served_u2: float | None  # against naive
    refit_u2: float | None
    u2_vs_refit: float | None  # served RMSE / refit RMSE
    dm_stat: float | None  # Diebold-Mariano (HLN), served against refit
    dm_p: float | None  # one-sided: fine-tuning helps
    verdict: str  # helps, hurts, unclear (95% evidence), untested (under 3 days)
    finetune_stopped_on: date | None = None  # the run that stopped fine-tuning the lineage


@dataclass(frozen=True)
class PredictionRow:
    """One backtest day: the hold-out prediction of the lineage's backtest model."""

    date: date
    actual: float
    predicted: float
    naive: float
    lower_80: float | None = None
    upper_80: float | None = None
    lower_95: float | None = None
    upper_95: float | None = None


ONE_STEP_COLUMNS: tuple[str, ...] = tuple(field.name for field in fields(PredictionRow))
"""The columns of a one-step record (a lineage's backtest predictions, as published, and the
line-up's kept backtests): :class:`PredictionRow`'s fields, scored day and bands."""


@dataclass(frozen=True)
class MetricsRow:
    """One ticker's line in a run: status, decision, backtest and live scores, timing."""

    ticker: str
    asset_class: str
    status: TickerStatus
    error: str | None = None
    # What produced the serving model: retrain, finetune or keep; baseline when the history
    # is too short for the LSTM (a baseline serves; mode_reason says why).
    mode: str | None = None
    mode_reason: str | None = None
    model_version: str | None = None
    lineage: str | None = None
    promoted: bool | None = None
    served_model: str | None = None  # whose forecast was served: lstm, or a baseline
    trained_through: date | None = None
    data_end: date | None = None
    # Backtest: the lineage's retrain procedure fit before its hold-out tail, scored on it.
    backtest_start: date | None = None
    backtest_end: date | None = None
    backtest_n: int | None = None
    backtest_rmse: float | None = None
    backtest_naive_rmse: float | None = None
    backtest_u2: float | None = None
    backtest_mae: float | None = None
    backtest_mape: float | None = None
    backtest_directional_accuracy: float | None = None
    # Is it better than naive, or luck? Diebold-Mariano (HLN) on squared errors, one-sided p
    # for "model better than naive", and the 95% interval for U2 it implies.
    backtest_dm_stat: float | None = None
    backtest_dm_p: float | None = None
    backtest_u2_low: float | None = None
    backtest_u2_high: float | None = None
    backtest_coverage_80: float | None = None  # share of backtest days inside the 80% band
    backtest_coverage_95: float | None = None
    # Live: forecasts served by earlier runs, scored against the prices that followed.
    live_scored_now: int | None = None
    live_n_20d: int | None = None
    live_u2_20d: float | None = None
    live_n_60d: int | None = None
    live_u2_60d: float | None = None
    live_n_lineage: int | None = None
    live_rmse_lineage: float | None = None
    live_naive_rmse_lineage: float | None = None
    live_u2_lineage: float | None = None
    live_directional_accuracy_lineage: float | None = None
    live_dm_stat_lineage: float | None = None
    live_dm_p_lineage: float | None = None
    live_u2_low_lineage: float | None = None
    live_u2_high_lineage: float | None = None
    live_coverage_80_lineage: float | None = None
    live_coverage_95_lineage: float | None = None
    # Work done.
    n_train: int | None = None
    epochs: int | None = None
    train_seconds: float | None = None
    model_seconds: float | None = None
    # What validation found (this run's fetch, and the model's stretch of history).
    null_rows_dropped: int | None = None
    invalid_rows_dropped: int | None = None
    duplicates_resolved: int | None = None
    conflicting_duplicates: int | None = None
    unparsable_cells: int | None = None
    repaired_cells: int | None = None
    outliers_rejected: int | None = None
    old_rows_dropped: int | None = None
    rebased: bool | None = None  # Yahoo re-based the history (split, dividend): refetched
    rebase_factor: float | None = None
    store_rebuilt: bool | None = None  # an unreadable price file was rebuilt from the source
    stale: bool | None = None
    warnings: str | None = None
