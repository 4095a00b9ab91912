"""Tickers whose history is too short for the LSTM (a recent listing, a new ETF): from one
clean price up to the LSTM's :func:`~lstm_model.data.minimum_history`, the best baseline
serves.

The baselines are fit on the first half of the history and scored on the second (the
hold-out); the best by the honest comparison serves (``auto``, unless the ticker's ``serve``
names a baseline), with conformal intervals from its own hold-out and live residuals once
there are enough of them (``closecast.pipeline.uncertainty.MIN_CALIBRATION``: a history of
about 40 days has them on its first day). When no model can be compared honestly (a listing
a few days old), naive serves: tomorrow's forecast is today's price, untested, without
intervals until its live record has the residuals. No LSTM is trained: it could not be
honestly tested. Once the history reaches the minimum, the next run retrains the LSTM as for
a new ticker (there is no champion yet).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import date
from functools import partial

import pandas as pd

from closecast.inputs.validation import ValidationReport
from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow
from closecast.pipeline import live
from closecast.pipeline.commit import commit_state
from closecast.pipeline.fetch import FetchSummary
from closecast.pipeline.lineup import LSTM, Lineup, choose_served, mark_serving, run_lineup
from closecast.pipeline.pooled import LoadedGlobal
from closecast.pipeline.rows import (
    BACKTEST_COLUMNS,
    LINEAGE_COLUMNS,
    TickerOutcome,
    _copied,
    forecast_row,
    publish_ticker_objects,
    significance_columns,
    validation_columns,
)
from closecast.pipeline.services import RunServices
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.uncertainty import frame_coverage
from closecast.pipeline.versions import BacktestScore
from lstm_model import metrics
from lstm_model.selection import NAIVE_KIND, Selection


class ShortHistory(Exception):
    """A history too short for the LSTM (at least one clean price)."""

    def __init__(self, prices: pd.Series, report: ValidationReport, need: str) -> None:
        days = "1 day" if len(prices) == 1 else f"{len(prices)} days"
        super().__init__(f"history {days}: {need}")
        self.prices = prices
        self.report = report


def _score(backtest: pd.DataFrame | None) -> BacktestScore | None:
    if backtest is None or not len(backtest):
        return None
    dates = backtest["date"]
    return BacktestScore.from_scores(
        dates.iloc[0],
        dates.iloc[-1],
        metrics.summarize(backtest["actual"], backtest["predicted"], backtest["naive"]),
        frame_coverage(backtest),
    )


def holdout_days(prices: pd.Series) -> list[date]:
    """The days a short history's baselines are scored on: its second half, each with an
    earlier price to forecast from (none for a history of one day: naive serves untested)."""
    return list(prices.index[max(1, len(prices) // 2) :].date)


def _choose(lineup: Lineup, configured: str) -> Selection:
    """The configured model when it could be fit, else ``auto`` among the tested ones, else
    naive (the forecast that needs no test: today's price)."""
    if configured in lineup.served:
        return choose_served(lineup, configured)
    if not lineup.backtests:
        return Selection(NAIVE_KIND, "too short a history to test any model")
    return choose_served(lineup, "auto", fallback=NAIVE_KIND)


def serve_short_history(
    short: ShortHistory,
    item: WatchItem,
    scope: RunScope,
    options: RunSettings,
    services: RunServices,
    fetch: FetchSummary | None,
    *,
    draw_plots: bool = True,
    global_models: Sequence[LoadedGlobal] = (),
) -> TickerOutcome:
    """Serve a short-history ticker by its best baseline or the run's global models (see the
    module) and build its rows; its ledgers are written last, together
    (:mod:`closecast.pipeline.commit`)."""
    prices, as_of, horizon, storage = (
        short.prices,
        scope.run_date,
        options.horizon,
        services.storage,
    )
    began = time.perf_counter()
    lineup = run_lineup(
        storage, item, prices, services.config, as_of, lineage="", lstm_backtest=None,
        lstm_ledger=live.Ledger(rows=()), record_live=True, horizon=horizon,
        rebase_factor=fetch.rebase_factor if fetch else None,
        holdout_days=holdout_days(prices), global_models=global_models,
        models=options.models,
    )  # fmt: skip
    selection = _choose(lineup, item.serve or options.serve)
    kind = selection.kind
    if kind not in lineup.served:
        raise RuntimeError(f"{short}; no baseline could be fit to serve")
    backtest, ledger = lineup.backtests.get(kind), lineup.ledgers[kind]
    score = _score(backtest)
    scores = live.live_score_rows(
        ledger, ticker=item.symbol, price_dates=prices.index, lineage=kind,
        backtest_u2=None if score is None else score.u2, horizon=horizon,
    )  # fmt: skip
    keys = publish_ticker_objects(
        storage, item, scope, backtest, ledger, prices, f"{item.symbol} as of {as_of} ({kind})",
        draw_plot=draw_plots,
    )  # fmt: skip
    by_window = {row.window: row for row in scores if row.step == 1}
    row = MetricsRow(
        ticker=item.symbol,
        asset_class=item.asset_class,
        status="ok",
        mode="baseline",
        mode_reason=f"{short}; serving {kind} ({selection.reason or 'as configured'})",
        model_version=kind,
        lineage=kind,
        promoted=False,
        trained_through=prices.index[-1].date(),
        data_end=prices.index[-1].date(),
        served_model=kind,
        **_copied(score, "backtest_{}", BACKTEST_COLUMNS),
        **_copied(by_window.get("20d"), "live_{}_20d", ("n_scored", "u2")),
        **_copied(by_window.get("60d"), "live_{}_60d", ("n_scored", "u2")),
        **_copied(by_window.get("lineage"), "live_{}_lineage", LINEAGE_COLUMNS),
        **significance_columns(backtest, ledger, kind),
        model_seconds=round(time.perf_counter() - began, 3),
        **validation_columns(fetch, short.report),
    )
    key = catalog.lineup_ledgers_key(item.symbol)
    commit_state(storage, [(key, partial(live.write_lineup_ledgers, storage, item.symbol,
                                         lineup.ledgers))])  # fmt: skip
    return TickerOutcome(
        row,
        [forecast_row(r) for r in lineup.served[kind]],
        scores,
        mark_serving([r for r in lineup.rows if r.model != LSTM], kind),
        keys + list(lineup.keys),
        [catalog.prices_key(item.symbol), key],
    )
