"""Figures built with Matplotlib's object-oriented API (no pyplot state, nothing shown).

Save with ``figure.savefig(path)`` or ``closecast.storage.io.write_figure``.
"""

from __future__ import annotations

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


def plot_summary(metrics: pd.DataFrame, *, columns: int = 4) -> Figure:
    """Model RMSE vs naive RMSE, one small panel per ticker.

    Prices differ by orders of magnitude between tickers (AAPL vs BTC-USD), so each ticker
    gets its own y scale; the panel title carries U2 = RMSE / naive RMSE, comparable across
    tickers.

    Args:
        metrics: Columns ``ticker, rmse, naive_rmse`` (one row per ticker).
        columns: Panels per row.
    """
    missing = [c for c in ("ticker", "rmse", "naive_rmse") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics frame lacks columns: {', '.join(missing)}")
    n = max(len(metrics), 1)
    cols = min(columns, n)
    rows = -(-n // cols)
    figure = Figure(figsize=(2.6 * cols + 0.6, 2.6 * rows + 0.8), layout="constrained")
    figure.suptitle("Test RMSE: LSTM vs naive (tomorrow = today)")
    if metrics.empty:
        figure.add_subplot().text(0.5, 0.5, "no ticker succeeded", ha="center", va="center")
        return figure
    for i, row in enumerate(metrics.itertuples(index=False)):
        ax = figure.add_subplot(rows, cols, i + 1)
        ax.bar([0, 1], [row.rmse, row.naive_rmse], color=["tab:orange", "tab:gray"])
        ax.set_xticks([0, 1], ["LSTM", "naive"])
        ax.set_title(f"{row.ticker}  U2 {row.rmse / row.naive_rmse:.3f}", fontsize=10)
        ax.grid(True, axis="y", alpha=0.3)
        if i % cols == 0:
            ax.set_ylabel("RMSE (price units)")
    return figure
