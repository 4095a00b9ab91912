"""The line-up: the LSTM beside the baselines (naive, drift, seasonal naive), each behind
the same forecaster interface, evaluated by the same code on the same days.

* **Backtest**: every baseline is fit on the prices before the serving lineage's hold-out
  days and scored on exactly those days, as the LSTM's backtest was.
* **Live**: every baseline serves its own forecast each run into its own ledger
  (``served/ticker=T/<model>.parquet``), scored like the LSTM's once the prices are known.
  Baselines are refit on the whole history every run (they are a mean at most).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from closecast.calendars import next_trading_days
from closecast.pipeline import live
from closecast.pipeline.evaluation import evaluate, significance
from closecast.pipeline.uncertainty import (
    BAND_COLUMNS,
    backtest_with_bands,
    frame_coverage,
    served_bands,
)
from closecast.records import ModelScoreRow, ServedRow
from closecast.storage import Storage
from closecast.watchlist import WatchItem
from lstm_model import metrics
from lstm_model.config import ModelConfig
from lstm_model.horizons import forecast_path, path_backtest
from lstm_model.registry import MODELS, fit_model
from lstm_model.selection import Selection, select_model

LSTM = "lstm"
BASELINE_KINDS: tuple[str, ...] = tuple(kind for kind in MODELS if kind != LSTM)
"""Every registered model but the LSTM (:data:`lstm_model.registry.MODELS`): a new model is
in the line-up as soon as it is registered."""


@dataclass(frozen=True)
class Record:
    """One model's scored forecasts on one record (date, actual, predicted, naive), at one
    step ahead."""

    model: str
    record: str
    frame: pd.DataFrame
    step: int = 1


def score_row(ticker: str, record: Record, *, serving: bool) -> ModelScoreRow:
    """A line of the line-up: RMSE, naive RMSE, U2, direction and Diebold-Mariano (for a
    ``step``-ahead record, against the naive forecast of that step: the last known price)."""
    frame = record.frame
    n = len(frame)
    values: dict[str, float | None] = dict.fromkeys(
        ("rmse", "naive_rmse", "u2", "directional_accuracy", "dm_stat", "dm_p")
    )
    if n:
        scores = metrics.summarize(frame["actual"], frame["predicted"], frame["naive"])
        values.update(
            rmse=scores.rmse,
            naive_rmse=scores.naive_rmse,
            u2=scores.u2,
            directional_accuracy=scores.directional_accuracy,
        )
        result = significance(
            frame["actual"], frame["predicted"], frame["naive"], horizon=record.step
        )
        if result is not None:
            values.update(dm_stat=result.statistic, dm_p=result.p_value)
    coverage_80, coverage_95 = frame_coverage(frame)
    return ModelScoreRow(
        ticker=ticker,
        model=record.model,
        record=record.record,
        coverage_80=coverage_80,
        coverage_95=coverage_95,
        first_date=frame["date"].iloc[0] if n else None,
        last_date=frame["date"].iloc[-1] if n else None,
        n=n,
        serving=serving,
        step=record.step,
        **values,
    )


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def live_records(
    model: str, ledger: live.Ledger, price_dates: pd.DatetimeIndex, horizon: int = 1
) -> list[Record]:
    """A model's live record over the trailing 20 and 60 trading days, per step ahead."""
    records = []
    for step in range(1, horizon + 1):
        for window in live.TRAILING_WINDOWS:
            rows = live.window_rows(ledger, price_dates, window, step)
            frame = pd.DataFrame(
                {
                    "date": [r.target_date for r in rows],
                    "actual": [r.actual for r in rows],
                    "predicted": [r.forecast for r in rows],
                    "naive": [r.naive for r in rows],
                    **{column: [_nan(getattr(r, column)) for r in rows] for column in BAND_COLUMNS},
                }
            )
            records.append(Record(model, f"live_{window}d", frame, step))
    return records


def path_records(model: str, path: pd.DataFrame, days: Sequence[date], horizon: int):
    """Records of a multi-step backtest (long form) for steps 2..horizon, on ``days``."""
    dates = pd.to_datetime(path["date"]).dt.date
    records = []
    for step in range(2, horizon + 1):
        rows = path[(path["step"] == step) & dates.isin(set(days))]
        frame = pd.DataFrame(
            {
                "date": pd.to_datetime(rows["date"]).dt.date.to_numpy(),
                "actual": rows["actual"].to_numpy(dtype="float64"),
                "predicted": rows["predicted"].to_numpy(dtype="float64"),
                "naive": rows["naive"].to_numpy(dtype="float64"),
            }
        )
        records.append(Record(model, "backtest", frame, step))
    return records


def baseline_backtest(
    kind: str, prices: pd.Series, days: Sequence[date], config: ModelConfig, horizon: int = 1
) -> tuple[Record, pd.DataFrame | None]:
    """A baseline fit before the first of ``days`` and scored on exactly ``days`` (and, for
    ``horizon`` > 1, its multi-step backtest in long form)."""
    start, end = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    model = fit_model(kind, prices[prices.index < start], config)
    known = prices[prices.index <= end]
    frame = evaluate(model, known, start).predictions
    frame = frame[frame["date"].isin(set(days))].reset_index(drop=True)
    one_step = Record(kind, "backtest", backtest_with_bands(model, known, frame))
    path = path_backtest(model, known, start, horizon) if horizon > 1 else None
    return one_step, path


def serve_baseline(
    kind: str, item: WatchItem, prices: pd.Series, config: ModelConfig, as_of: date, horizon: int
) -> list[ServedRow]:
    """A baseline's forecasts for the next ``horizon`` trading days, fit on every price."""
    model = fit_model(kind, prices, config)
    data_end = prices.index[-1].date()
    targets = next_trading_days(item.asset_class, data_end, horizon)
    path = forecast_path(model, prices, horizon)
    return [
        ServedRow(
            ticker=item.symbol,
            target_date=target,
            data_end=data_end,
            forecast=float(forecast),
            naive=float(prices.iloc[-1]),
            model_version=kind,
            lineage=kind,
            trained_through=data_end,
            served_on=as_of,
            model=kind,
            step=step,
        )
        for step, (target, forecast) in enumerate(zip(targets, path, strict=True), start=1)
    ]


@dataclass(frozen=True)
class Lineup:
    """Every model's scores for one ticker, its one-step backtest frames and today's served
    forecasts, one per step (the LSTM's are served by the pipeline; the baselines' here)."""

    rows: list[ModelScoreRow]
    backtests: dict[str, pd.DataFrame]
    served: dict[str, list[ServedRow]]


def run_lineup(
    storage: Storage,
    item: WatchItem,
    prices: pd.Series,
    config: ModelConfig,
    as_of: date,
    *,
    lstm_backtest: pd.DataFrame | None,
    lstm_ledger: live.Ledger,
    record_live: bool,
    lstm_backtest_path: pd.DataFrame | None = None,
    horizon: int = 1,
) -> Lineup:
    """Score every baseline beside the LSTM (backtest on the same days, live records, every
    step up to ``horizon``), serve each baseline's forecasts (with their intervals) into its
    ledger unless this is a backfill, and return the line-up.

    A baseline that cannot be fit or scored is left out of the line-up; it never fails the
    ticker.
    """
    rows: list[ModelScoreRow] = []
    backtests: dict[str, pd.DataFrame] = {}
    served: dict[str, list[ServedRow]] = {}
    days = list(lstm_backtest["date"]) if lstm_backtest is not None else []
    lstm_records = []
    if days:
        backtests[LSTM] = lstm_backtest
        lstm_records.append(Record(LSTM, "backtest", lstm_backtest))
        if lstm_backtest_path is not None:
            lstm_records += path_records(LSTM, lstm_backtest_path, days, horizon)
    lstm_records += live_records(LSTM, lstm_ledger, prices.index, horizon)
    rows += [score_row(item.symbol, record, serving=False) for record in lstm_records]
    for kind in BASELINE_KINDS:
        try:
            ledger = live.read_ledger(storage, item.symbol, kind)
            ledger, _ = live.score_served(ledger, prices, as_of)
            records: list[Record] = []
            path = None
            if days:
                backtest, path = baseline_backtest(kind, prices, days, config, horizon)
                backtests[kind] = backtest.frame
                records.append(backtest)
                if path is not None:
                    records += path_records(kind, path, days, horizon)
            records += live_records(kind, ledger, prices.index, horizon)
            scored = ledger.scored(step=None)
            served[kind] = [
                replace(
                    row,
                    **served_bands(
                        prices,
                        row.forecast,
                        backtests.get(kind),
                        scored,
                        step=row.step,
                        backtest_path=path,
                    ),
                )
                for row in serve_baseline(kind, item, prices, config, as_of, horizon)
            ]
            if record_live:
                for row in served[kind]:
                    ledger = live.record_served(ledger, row)
                live.write_ledger(storage, item.symbol, ledger, kind)
        except ValueError:  # InsufficientDataError: too short a history for this baseline
            continue
        rows += [score_row(item.symbol, record, serving=False) for record in records]
    return Lineup(rows, backtests, served)


def choose_served(lineup: Lineup, choice: str) -> Selection:
    """The model whose forecast is served: ``lstm`` (default), a baseline by name, or
    ``auto`` (:func:`lstm_model.selection.select_model` on the same backtest days)."""
    if choice == LSTM:
        return Selection(LSTM, "")
    if choice != "auto":
        if choice in lineup.served:
            return Selection(choice, f"serving {choice} as configured")
        return Selection(LSTM, f"{choice} could not be fit; serving lstm")
    tests = {
        kind: significance(frame["actual"], frame["predicted"], frame["naive"])
        for kind, frame in lineup.backtests.items()
    }
    candidates = {kind: result for kind, result in tests.items() if result is not None}
    if not candidates:
        return Selection(LSTM, "auto: no backtest to compare models on; serving lstm")
    selection = select_model(candidates)
    if selection.kind != LSTM and selection.kind not in lineup.served:
        return Selection(LSTM, f"{selection.reason}; {selection.kind} unavailable, serving lstm")
    return selection


def mark_serving(rows: list[ModelScoreRow], kind: str) -> list[ModelScoreRow]:
    return [replace(row, serving=row.model == kind) for row in rows]
