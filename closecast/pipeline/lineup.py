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
from dataclasses import dataclass
from datetime import date

import pandas as pd

from closecast.calendars import next_trading_day
from closecast.pipeline import live
from closecast.pipeline.evaluation import evaluate
from closecast.records import ModelScoreRow, ServedRow
from closecast.storage import Storage
from closecast.watchlist import WatchItem
from lstm_model.config import ModelConfig
from lstm_model.registry import fit_model
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
) -> list[ModelScoreRow]:
    """Score every baseline beside the LSTM (backtest on the same days, live records), serve
    each baseline's next forecast into its ledger (unless a backfill), and return the rows.

    A baseline that cannot be fit or scored is left out of the line-up; it never fails the
    ticker (the LSTM's forecast is what is served).
    """
    rows: list[ModelScoreRow] = []
    if lstm_backtest is not None and len(lstm_backtest):
        rows.append(score_row(item.symbol, Record(LSTM, "backtest", lstm_backtest), serving=True))
    rows += [
        score_row(item.symbol, record, serving=True)
        for record in live_records(LSTM, lstm_ledger, prices.index)
    ]
    days = list(lstm_backtest["date"]) if lstm_backtest is not None else []
    for kind in BASELINE_KINDS:
        try:
            ledger, _ = live.score_served(
                live.read_ledger(storage, item.symbol, kind), prices, as_of
            )
            if record_live:
                served = serve_baseline(kind, item, prices, config, as_of)
                ledger = live.record_served(ledger, served)
                live.write_ledger(storage, item.symbol, ledger, kind)
            records = live_records(kind, ledger, prices.index)
            if days:
                records.insert(0, baseline_backtest(kind, prices, days, config))
        except ValueError:  # InsufficientDataError: too short a history for this baseline
            continue
        rows += [score_row(item.symbol, record, serving=False) for record in records]
    return rows
