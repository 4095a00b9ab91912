"""Figures built with Matplotlib's object-oriented API (no pyplot state, nothing shown).

Save with ``figure.savefig(path)`` or ``closecast.storage.io.write_figure``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

PREDICTION_COLUMNS = ("date", "actual", "predicted", "naive")


def plot_predictions(
    frame: pd.DataFrame,
    *,
    title: str,
    train_end: pd.Timestamp | None,
    history: pd.Series | None = None,
) -> Figure:
    """Actual vs predicted prices over the test period.

    Args:
        frame: Columns ``date, actual, predicted, naive`` (one row per test day).
        title: Axes title.
        train_end: Last training date; marked with a vertical line when ``history`` is given.
        history: Optional earlier actual prices (date-indexed) drawn faintly for context.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"prediction frame lacks columns: {', '.join(missing)}")
    dates = pd.to_datetime(frame["date"])
    figure = Figure(figsize=(11, 5), layout="constrained")
    ax = figure.add_subplot()
    if history is not None and len(history):
        ax.plot(history.index, history.to_numpy(), color="0.6", linewidth=0.8, label="history")
        if train_end is not None:
            ax.axvline(
                pd.Timestamp(train_end),
                color="0.3",
                linestyle="--",
                linewidth=1,
                label="train / test",
            )
    ax.plot(dates, frame["actual"], color="tab:blue", linewidth=1.0, label="actual")
    ax.plot(dates, frame["predicted"], color="tab:orange", linewidth=1.0, label="predicted")
    ax.set_title(title)
    ax.set_xlabel("date")
    ax.set_ylabel("price")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best")
    return figure


def plot_summary(metrics: pd.DataFrame) -> Figure:
    """Grouped bars of model RMSE vs naive RMSE per ticker.

    Args:
        metrics: Columns ``ticker, rmse, naive_rmse`` (one row per ticker).
    """
    missing = [c for c in ("ticker", "rmse", "naive_rmse") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns: {', '.join(missing)}")
    tickers = metrics["ticker"].astype(str).tolist()
    x = np.arange(len(tickers))
    width = 0.38
    figure = Figure(figsize=(max(6, 1.2 * len(tickers) + 2), 4.5), layout="constrained")
    ax = figure.add_subplot()
    ax.bar(x - width / 2, metrics["rmse"], width, label="LSTM RMSE", color="tab:orange")
    ax.bar(x + width / 2, metrics["naive_rmse"], width, label="naive RMSE", color="tab:gray")
    ax.set_xticks(x, tickers)
    ax.set_ylabel("RMSE (price units)")
    ax.set_title("Test RMSE: LSTM vs naive (tomorrow = today)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="best")
    return figure
