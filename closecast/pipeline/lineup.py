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

from closecast.calendars import next_trading_day
from closecast.pipeline import live
from closecast.pipeline.evaluation import evaluate
from closecast.pipeline.uncertainty import served_bands
from closecast.records import ModelScoreRow, ServedRow
from closecast.storage import Storage
from closecast.watchlist import WatchItem
from lstm_model.config import ModelConfig
from lstm_model.registry import fit_model
from lstm_model.selection import Selection, select_model
from lstm_model.significance import diebold_mariano

BASELINE_KINDS: tuple[str, ...] = ("naive", "drift", "seasonal_naive")
LSTM = "lstm"


@dataclass(frozen=True)
class Record:
    """One model's scored forecasts on one record (date, actual, predicted, naive)."""

    model: str
    record: str
    frame: pd.DataFrame


def score_row(ticker: str, record: Record, *, serving: bool) -> ModelScoreRow:
    """A line of the line-up: RMSE, naive RMSE, U2, direction and Diebold-Mariano."""
    frame = record.frame
    n = len(frame)
    empty = dict.fromkeys(("rmse", "naive_rmse", "u2", "directional_accuracy", "dm_stat", "dm_p"))
    values: dict[str, float | None] = empty
    if n:
        from lstm_model import metrics

        scores = metrics.summarize(frame["actual"], frame["predicted"], frame["naive"])
        values = {
            "rmse": scores["rmse"],
            "naive_rmse": scores["naive_rmse"],
            "u2": scores["u2"],
            "directional_accuracy": scores["directional_accuracy"],
            "dm_stat": None,
            "dm_p": None,
        }
        if n >= 3:
            result = diebold_mariano(frame["actual"], frame["predicted"], frame["naive"])
            values.update(dm_stat=result.statistic, dm_p=result.p_value)
    return ModelScoreRow(
        ticker=ticker,
        model=record.model,
        record=record.record,
        first_date=frame["date"].iloc[0] if n else None,
        last_date=frame["date"].iloc[-1] if n else None,
        n=n,
        serving=serving,
        **values,
    )


def live_records(model: str, ledger: live.Ledger, price_dates: pd.DatetimeIndex) -> list[Record]:
    """A model's live record over the trailing 20 and 60 trading days."""
    records = []
    for window in live.TRAILING_WINDOWS:
        rows = live.window_rows(ledger, price_dates, window)
        frame = pd.DataFrame(
            {
                "date": [r.target_date for r in rows],
                "actual": [r.actual for r in rows],
                "predicted": [r.forecast for r in rows],
                "naive": [r.naive for r in rows],
            }
        )
        records.append(Record(model, f"live_{window}d", frame))
    return records


def baseline_backtest(kind: str, prices: pd.Series, days: Sequence[date], config: ModelConfig):
    """A baseline fit before the first of ``days`` and scored on exactly ``days``."""
    start, end = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    model = fit_model(kind, prices[prices.index < start], config)
    scored = evaluate(model, prices[prices.index <= end], start)
    frame = scored.predictions
    return Record(kind, "backtest", frame[frame["date"].isin(set(days))].reset_index(drop=True))


def serve_baseline(
    kind: str, item: WatchItem, prices: pd.Series, config: ModelConfig, as_of: date
) -> ServedRow:
    """A baseline's forecast for the next trading day, fit on every price through the last."""
    model = fit_model(kind, prices, config)
    data_end = prices.index[-1].date()
    return ServedRow(
        ticker=item.symbol,
        target_date=next_trading_day(item.asset_class, data_end),
        data_end=data_end,
        forecast=float(model.forecast_next(prices)),
        naive=float(prices.iloc[-1]),
        model_version=kind,
        lineage=kind,
        trained_through=data_end,
        served_on=as_of,
        model=kind,
    )


@dataclass(frozen=True)
class Lineup:
    """Every model's scores for one ticker, its backtest frames and today's served forecasts
    (the LSTM's is served by the pipeline; the baselines' here)."""

    rows: list[ModelScoreRow]
    backtests: dict[str, pd.DataFrame]
    served: dict[str, ServedRow]


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
) -> Lineup:
    """Score every baseline beside the LSTM (backtest on the same days, live records), serve
    each baseline's next forecast (with its intervals) into its ledger unless this is a
    backfill, and return the line-up.

    A baseline that cannot be fit or scored is left out of the line-up; it never fails the
    ticker.
    """
    rows: list[ModelScoreRow] = []
    backtests: dict[str, pd.DataFrame] = {}
    served: dict[str, ServedRow] = {}
    if lstm_backtest is not None and len(lstm_backtest):
        backtests[LSTM] = lstm_backtest
        rows.append(score_row(item.symbol, Record(LSTM, "backtest", lstm_backtest), serving=False))
    rows += [
        score_row(item.symbol, record, serving=False)
        for record in live_records(LSTM, lstm_ledger, prices.index)
    ]
    days = list(lstm_backtest["date"]) if lstm_backtest is not None else []
    for kind in BASELINE_KINDS:
        try:
            ledger = live.read_ledger(storage, item.symbol, kind)
            ledger, _ = live.score_served(ledger, prices, as_of)
            records = live_records(kind, ledger, prices.index)
            if days:
                backtest = baseline_backtest(kind, prices, days, config)
                backtests[kind] = backtest.frame
                records.insert(0, backtest)
            forecast = serve_baseline(kind, item, prices, config, as_of)
            bands = served_bands(prices, forecast.forecast, backtests.get(kind), ledger.scored())
            served[kind] = replace(forecast, **bands)
            if record_live:
                ledger = live.record_served(ledger, served[kind])
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
    candidates = {
        kind: diebold_mariano(frame["actual"], frame["predicted"], frame["naive"])
        for kind, frame in lineup.backtests.items()
        if len(frame) >= 3
    }
    if not candidates:
        return Selection(LSTM, "auto: no backtest to compare models on; serving lstm")
    selection = select_model(candidates)
    if selection.kind != LSTM and selection.kind not in lineup.served:
        return Selection(LSTM, f"{selection.reason}; {selection.kind} unavailable, serving lstm")
    return selection


def mark_serving(rows: list[ModelScoreRow], kind: str) -> list[ModelScoreRow]:
    return [replace(row, serving=row.model == kind) for row in rows]
