"""Serving, one path for every registered model (the LSTM champion and the baselines alike):
forecast the next trading days, put 80%/95% intervals around them, record them in the
model's ledger and write it.

The intervals of a ``step``-ahead forecast are calibrated on the serving lineage's backtest
at that step and its own scored live record (:func:`closecast.pipeline.uncertainty.served_bands`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date

import pandas as pd

from closecast.inputs.calendars import next_trading_days
from closecast.inputs.watchlist import WatchItem
from closecast.outputs.records import ServedRow
from closecast.pipeline import live
from closecast.pipeline.uncertainty import served_bands
from closecast.storage import Storage
from lstm_model.base import ForecastModel
from lstm_model.horizons import forecast_path


@dataclass(frozen=True)
class Lineage:
    """Who a served forecast is attributed to, and what its intervals are calibrated on.

    Attributes:
        version: The serving version (a baseline's kind: baselines are refit every run).
        lineage: The lineage whose live record calibrates it (a baseline's kind).
        backtest: The lineage's one-step backtest (date, actual, predicted, naive).
        backtest_path: Its multi-step backtest (long form), for steps beyond 1.
        basis_factor: The factor its stored backtests were read with, when the history was
            re-based since they were made (:func:`closecast.pipeline.live.align_backtest`).
    """

    version: str
    lineage: str
    backtest: pd.DataFrame | None = None
    backtest_path: pd.DataFrame | None = None
    basis_factor: float | None = None


@dataclass(frozen=True)
class Served:
    """What serving produced: one row per step ahead, and the ledger with them recorded."""

    rows: tuple[ServedRow, ...]
    ledger: live.Ledger


def forecasts(
    kind: str, model: ForecastModel, item: WatchItem, prices: pd.Series, as_of: date, *,
    lineage: Lineage, horizon: int,
) -> list[ServedRow]:  # fmt: skip
    """``model``'s forecasts for each of the next ``horizon`` trading days after the last
    price (beyond the first, its own forecasts are fed back as prices), without intervals."""
    data_end = prices.index[-1].date()
    targets = next_trading_days(item.asset_class, data_end, horizon)
    path = forecast_path(model, prices, horizon)
    trained_through = pd.Timestamp(model.meta["trained_through"]).date()
    return [
        ServedRow(
            ticker=item.symbol,
            target_date=target,
            data_end=data_end,
            forecast=float(forecast),
            naive=float(prices.iloc[-1]),
            model_version=lineage.version,
            lineage=lineage.lineage,
            trained_through=trained_through,
            served_on=as_of,
            model=kind,
            step=step,
        )
        for step, (target, forecast) in enumerate(zip(targets, path, strict=True), start=1)
    ]


def serve(
    kind: str, model: ForecastModel, ledger: live.Ledger, *, item: WatchItem,
    prices: pd.Series, as_of: date, lineage: Lineage, horizon: int,
    storage: Storage | None, volatility: pd.Series | None = None,
) -> Served:  # fmt: skip
    """Serve ``model``'s forecasts with their intervals and record them in ``ledger``.

    Args:
        kind: The model kind (``lstm`` or a line-up model's); its ledger is in
            :func:`closecast.outputs.catalog.served_key`.
        model: The fitted model that serves.
        ledger: The model's ledger, already scored through the run date.
        item: The ticker.
        prices: Its validated history through the run date.
        as_of: The run date.
        lineage: Attribution and calibration (:class:`Lineage`).
        horizon: Trading days ahead.
        storage: Where to write the ledger; None leaves it untouched (a backfill).
        volatility: The EWMA volatility of ``prices``
            (:func:`~lstm_model.intervals.ewma_volatility`), when the caller serves several
            models from them; computed here otherwise.

    Raises:
        LeakageError: The model trained on a target date (for a global model: any ticker's
            price of that date), so its forecast could not be scored honestly.
    """
    scored = ledger.scored(lineage.lineage, step=None)
    rows = tuple(
        replace(
            row,
            **served_bands(
                prices,
                row.forecast,
                lineage.backtest,
                scored,
                step=row.step,
                backtest_path=lineage.backtest_path,
                volatility=volatility,
            ),
        )
        for row in forecasts(kind, model, item, prices, as_of, lineage=lineage, horizon=horizon)
    )
    # A model trained on a target date (a global model: any ticker's price of that date)
    # never serves a forecast for it.
    for row in rows:
        live.check_served_before_target(row)
    if storage is None:
        return Served(rows, ledger)
    for row in rows:
        ledger = live.record_served(ledger, row)
    live.write_ledger(storage, item.symbol, ledger, kind)
    return Served(rows, ledger)
