"""Figures built with Matplotlib's object-oriented API (no pyplot state, nothing shown).

Save with ``figure.savefig(path)`` or ``closecast.storage.io.write_figure``.

* :func:`plot_ticker`: one ticker's backtest and live record, with prediction-interval bands.
* :func:`plot_scoreboard`: every ticker's U2 with its Diebold-Mariano interval, backtest and
  live side by side, and the coverage of the intervals.

:func:`plot_predictions` and :func:`plot_summary` are superseded by those two and kept only
until the pipeline switches.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lstm_model.intervals import LEVELS, level_label

if TYPE_CHECKING:
    from lstm_model.significance import DieboldMarianoResult

PREDICTION_COLUMNS = ("date", "actual", "predicted", "naive")
"""Required columns of a backtest frame (one row per scored day)."""

LIVE_COLUMNS = ("target_date", "actual", "forecast", "naive")
"""Required columns of a live-record frame (one row per served forecast; ``actual`` is NaN
while the target day has not closed)."""

BAND_LEVELS = tuple((level_label(level), level) for level in LEVELS)
"""Optional band columns ``lower_<label>, upper_<label>`` of both frames."""

BETTER, WORSE, UNCLEAR = "tab:green", "tab:red", "0.45"

TICKER_MARGINS = {"left": 0.09, "right": 0.985, "bottom": 0.07, "top": 0.93, "hspace": 0.22}
"""The per-ticker figure's margins (fractions of the figure), room for its labels."""


def plot_predictions(
    frame: pd.DataFrame,
    *,
    title: str,
    train_end: pd.Timestamp | None,
    history: pd.Series | None = None,
) -> Figure:
    """Actual vs predicted prices over the test period (superseded by :func:`plot_ticker`).

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
    """Model RMSE vs naive RMSE, one panel per ticker (superseded by :func:`plot_scoreboard`).

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


def _require_columns(frame: pd.DataFrame, columns: Sequence[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} frame lacks columns: {', '.join(missing)}")


def _bands(frame: pd.DataFrame) -> list[tuple[str, float]]:
    return [
        (label, level)
        for label, level in BAND_LEVELS
        if {f"lower_{label}", f"upper_{label}"} <= set(frame.columns)
    ]


def _share_inside(actual: pd.Series, lower: pd.Series, upper: pd.Series) -> float | None:
    known = actual.notna() & lower.notna() & upper.notna()
    if not known.any():
        return None
    inside = (actual[known] >= lower[known]) & (actual[known] <= upper[known])
    return float(inside.mean())


def _draw_backtest(ax, frame: pd.DataFrame, history: pd.Series | None) -> None:
    dates = pd.to_datetime(frame["date"])
    if history is not None and len(history):
        ax.plot(history.index, history.to_numpy(), color="0.65", linewidth=0.8, label="history")
    if not len(frame):  # a listing too young to test a model on
        message = "no backtest: too short a history to test a model"
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.3")
        ax.set_title("backtest: one step ahead on held-out days", fontsize=10, loc="left")
        return
    if history is not None and len(history):
        ax.axvline(dates.iloc[0], color="0.3", linestyle="--", linewidth=1, label="test starts")
    for label, level in reversed(_bands(frame)):
        lower, upper = frame[f"lower_{label}"], frame[f"upper_{label}"]
        share = _share_inside(frame["actual"], lower, upper)
        covered = f", holds {100 * share:.0f}% of days" if share is not None else ""
        ax.fill_between(
            dates,
            lower.to_numpy(dtype="float64"),
            upper.to_numpy(dtype="float64"),
            color="tab:orange",
            alpha=0.18 if level > 0.9 else 0.32,
            linewidth=0,
            label=f"{label}% interval{covered}",
        )
    ax.plot(dates, frame["naive"], color="0.35", linewidth=0.8, linestyle=":", label="naive")
    ax.plot(dates, frame["predicted"], color="tab:orange", linewidth=1.0, label="predicted")
    ax.plot(dates, frame["actual"], color="tab:blue", linewidth=1.1, label="actual")
    ax.set_title("backtest: one step ahead on held-out days", fontsize=10, loc="left")


def _draw_live(ax, frame: pd.DataFrame) -> None:
    scored = frame["actual"].notna() if len(frame) else pd.Series(dtype=bool)
    pending = len(frame) - int(scored.sum())
    ax.set_title(
        f"live record: served forecasts vs what happened ({int(scored.sum())} scored, "
        f"{pending} pending)",
        fontsize=10,
        loc="left",
    )
    if not len(frame) or not scored.any():
        message = "no served forecast scored yet"
        if len(frame):
            message += f" ({len(frame)} pending)"
        ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.3")
    if not len(frame):
        ax.set_xticks([])
        ax.set_yticks([])
        return
    frame = frame.sort_values("target_date")
    dates = pd.to_datetime(frame["target_date"])
    forecast = frame["forecast"].to_numpy(dtype="float64")
    for label, level in reversed(_bands(frame)):
        lower = frame[f"lower_{label}"].to_numpy(dtype="float64")
        upper = frame[f"upper_{label}"].to_numpy(dtype="float64")
        share = _share_inside(frame["actual"], frame[f"lower_{label}"], frame[f"upper_{label}"])
        covered = f", holds {100 * share:.0f}% of scored" if share is not None else ""
        ax.errorbar(
            dates,
            forecast,
            yerr=np.vstack([forecast - lower, upper - forecast]),
            fmt="none",
            ecolor="tab:orange",
            alpha=0.35 if level > 0.9 else 0.55,
            elinewidth=6 if level < 0.9 else 1.5,
            label=f"{label}% interval{covered}",
        )
    ax.plot(
        dates,
        frame["naive"],
        color="0.35",
        linestyle="none",
        marker="_",
        markersize=10,
        label="naive",
    )
    ax.plot(
        dates,
        forecast,
        linestyle="none",
        marker="o",
        markersize=5,
        markerfacecolor="tab:orange",
        markeredgecolor="saddlebrown",
        label="forecast",
    )
    ax.plot(
        dates[scored.to_numpy()],
        frame.loc[scored, "actual"],
        color="tab:blue",
        marker="o",
        markersize=4,
        linewidth=1.0,
        label="actual",
    )


def plot_ticker(
    backtest: pd.DataFrame,
    live: pd.DataFrame | None,
    *,
    title: str,
    history: pd.Series | None = None,
) -> Figure:
    """One ticker at a glance: the backtest (top) and the live record (bottom).

    Bands are drawn when the frames carry ``lower_80, upper_80`` and/or ``lower_95,
    upper_95``; each band's legend entry says which share of the days it held.

    Args:
        backtest: Columns :data:`PREDICTION_COLUMNS` (``date, actual, predicted, naive``), one
            row per held-out day, plus optional band columns. A long-form frame with a
            ``step`` column is drawn at step 1.
        live: Columns :data:`LIVE_COLUMNS` (``target_date, actual, forecast, naive``) plus
            optional band columns, one row per served forecast; ``actual`` NaN while pending.
            ``None`` or empty: the panel says no served forecast was scored yet. With a
            ``step`` column only next-day forecasts (step 1) are drawn.
        title: Figure title.
        history: Optional earlier prices (date-indexed) drawn faintly before the backtest.

    Raises:
        ValueError: A frame lacks a required column (the message names the frame and columns).
    """
    _require_columns(backtest, PREDICTION_COLUMNS, "backtest")
    if "step" in backtest.columns:
        backtest = backtest[backtest["step"] == 1]
    live = live if live is not None else pd.DataFrame(columns=list(LIVE_COLUMNS))
    _require_columns(live, LIVE_COLUMNS, "live")
    if "step" in live.columns:
        live = live[live["step"] == 1]
    # Fixed margins, not a layout engine: this figure is drawn for every ticker every run,
    # and a layout engine costs a second (dry-run) draw plus its solver, about half of the
    # rendering. Its labels have a bounded size (prices, dates, a short title), so fixed
    # margins hold them (tests/model/test_plots.py checks every text is inside the canvas).
    figure = Figure(figsize=(11, 7.5))
    figure.subplots_adjust(**TICKER_MARGINS)
    figure.suptitle(title)
    top, bottom = figure.subplots(2, 1, height_ratios=[3, 2])
    _draw_backtest(top, backtest, history)
    _draw_live(bottom, live)
    for ax in (top, bottom):
        ax.set_ylabel("price")
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, ncols=2)
    bottom.set_xlabel("date")
    return figure


@dataclass(frozen=True)
class ScoreboardRow:
    """One ticker's line on the scoreboard.

    U2 = RMSE / naive RMSE (below 1 beats "tomorrow = today"); the ``low``/``high`` ends are
    the 95% interval from the Diebold-Mariano test
    (:meth:`~lstm_model.significance.DieboldMarianoResult.u2_interval`), which excludes 1
    exactly when the two-sided test rejects at 5%. Coverages are shares in [0, 1].
    """

    ticker: str
    backtest_u2: float
    backtest_u2_low: float
    backtest_u2_high: float
    backtest_p: float | None = None
    backtest_n: int = 0
    live_u2: float | None = None
    live_u2_low: float | None = None
    live_u2_high: float | None = None
    live_p: float | None = None
    live_n: int = 0
    coverage_80: float | None = None
    coverage_95: float | None = None
    live_coverage_80: float | None = None
    live_coverage_95: float | None = None
    model: str = "lstm"

    @classmethod
    def from_tests(
        cls,
        ticker: str,
        backtest: DieboldMarianoResult,
        live: DieboldMarianoResult | None = None,
        *,
        coverage_80: float | None = None,
        coverage_95: float | None = None,
        live_coverage_80: float | None = None,
        live_coverage_95: float | None = None,
        model: str = "lstm",
    ) -> ScoreboardRow:
        """Build a row from the backtest's (and the live record's) Diebold-Mariano results."""
        low, high = backtest.u2_interval(0.95)
        live_fields = {}
        if live is not None:
            live_low, live_high = live.u2_interval(0.95)
            live_fields = {
                "live_u2": live.u2,
                "live_u2_low": live_low,
                "live_u2_high": live_high,
                "live_p": live.p_value,
                "live_n": live.n,
            }
        return cls(
            ticker=ticker,
            backtest_u2=backtest.u2,
            backtest_u2_low=low,
            backtest_u2_high=high,
            backtest_p=backtest.p_value,
            backtest_n=backtest.n,
            coverage_80=coverage_80,
            coverage_95=coverage_95,
            live_coverage_80=live_coverage_80,
            live_coverage_95=live_coverage_95,
            model=model,
            **live_fields,
        )

    @property
    def has_live(self) -> bool:
        return self.live_u2 is not None and self.live_n > 0


def verdict(low: float, high: float) -> str:
    """``"better"`` (interval below 1), ``"worse"`` (above 1) or ``"unclear"``."""
    if high < 1.0:
        return "better"
    if low > 1.0:
        return "worse"
    return "unclear"


_VERDICT_COLOURS = {"better": BETTER, "worse": WORSE, "unclear": UNCLEAR}


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def _u2_limits(rows: Sequence[ScoreboardRow]) -> tuple[float, float, bool]:
    backtest = [v for r in rows for v in (r.backtest_u2, r.backtest_u2_low, r.backtest_u2_high)]
    live = [v for r in rows if r.has_live for v in (r.live_u2, r.live_u2_low, r.live_u2_high)]
    values = [*_finite([*backtest, *live]), 1.0]
    low, high = min(values), max(values)
    log_scale = low > 0 and high / low > 2.5
    if log_scale:
        return low / 1.15, high * 1.15, True
    pad = max((high - low) * 0.08, 0.002)
    return max(low - pad, 0.0), high + pad, False


def _stripes(ax, rows: Sequence[int]) -> None:
    """A light band behind each of ``rows`` across the whole axes (one artist for all)."""
    spans = [[(0, y - 0.5), (1, y - 0.5), (1, y + 0.5), (0, y + 0.5)] for y in rows]
    bands = PolyCollection(
        spans, facecolors="0.94", linewidths=0, zorder=0, transform=ax.get_yaxis_transform()
    )
    ax.add_collection(bands, autolim=False)


def _draw_u2(ax, marks: Sequence[tuple[float, float, float, float]], *, live: bool, limits) -> None:
    """Each ``(y, u2, low, high)``: the interval as a bar, coloured by its verdict, and U2
    as a dot (filled: backtest) or a hollow diamond (live). Drawn as one artist per verdict
    and kind, not per ticker: the summary's render time was in the artists' count."""
    by_verdict: dict[str, list[tuple[float, float, float, float]]] = {}
    for mark in marks:
        by_verdict.setdefault(verdict(mark[2], mark[3]), []).append(mark)
    for name, group in by_verdict.items():
        colour = _VERDICT_COLOURS[name]
        bars = [[(max(low, limits[0]), y), (min(high, limits[1]), y)] for y, _, low, high in group]
        ax.add_collection(
            LineCollection(
                bars,
                colors=colour,
                linewidths=2.2 if not live else 1.4,
                linestyles="-" if not live else (0, (2, 1)),
                capstyle="butt",
                label=f"{'live' if live else 'backtest'} interval: {name}",
            ),
            autolim=False,
        )
        ax.plot(
            [u2 for _, u2, _, _ in group],
            [y for y, _, _, _ in group],
            marker="o" if not live else "D",
            markersize=6 if not live else 5,
            markerfacecolor=colour if not live else "white",
            markeredgecolor=colour,
            linestyle="none",
        )


def _coverage_marks(
    ax, marks: Sequence[tuple[float, float | None, float | None]], *, live: bool
) -> None:
    """Each ``(y, coverage_80, coverage_95)``: a square (80%) and a triangle (95%), red when
    more than 5 points off nominal; one artist per shape and colour."""
    groups: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for y, *values in marks:
        for value, nominal, marker in zip(values, (0.8, 0.95), ("s", "^"), strict=True):
            if value is None or not math.isfinite(value):
                continue
            colour = "tab:purple" if abs(value - nominal) <= 0.05 else "tab:red"
            xs, ys = groups.setdefault((marker, colour), ([], []))
            xs.append(100 * value)
            ys.append(y)
    for (marker, colour), (xs, ys) in groups.items():
        ax.plot(
            xs,
            ys,
            marker=marker,
            markersize=5 if not live else 4.5,
            markerfacecolor=colour if not live else "white",
            markeredgecolor=colour,
            linestyle="none",
        )


def plot_scoreboard(rows: Sequence[ScoreboardRow], *, title: str | None = None) -> Figure:
    """Every ticker's U2 with its 95% interval, backtest and live side by side, and coverage.

    Left panel: one line per ticker; a filled dot is the backtest U2 and its bar the 95%
    interval from the Diebold-Mariano test; a hollow diamond with a dashed bar is the live
    record (absent until forecasts were scored). Green: evidence of beating naive (the whole
    interval below the line at 1); red: evidence of doing worse; grey: cannot tell. Right
    panel: the share of days inside the 80% (squares) and 95% (triangles) intervals, filled
    for the backtest and hollow for live, with guides at the nominal 80% and 95%; a mark more
    than 5 points off nominal is red.

    Args:
        rows: One :class:`ScoreboardRow` per ticker (or per ticker and model: the labels then
            name the model), drawn top to bottom in this order.
        title: Figure title (default: says what U2 and the interval are).
    """
    n = len(rows)
    height = max(3.6, 1.7 + 0.3 * n)
    figure = Figure(figsize=(11, height), layout="constrained")
    figure.suptitle(
        title
        or "U2 = RMSE / naive RMSE (below 1 beats tomorrow = today), "
        "with 95% Diebold-Mariano intervals"
    )
    if not rows:
        figure.add_subplot().text(0.5, 0.5, "no ticker succeeded", ha="center", va="center")
        return figure
    left, right = figure.subplots(1, 2, sharey=True, width_ratios=[3, 1])
    limits = _u2_limits(rows)
    offset = 0.18 if any(r.has_live for r in rows) else 0.0
    for ax in (left, right):
        _stripes(ax, range(1, n, 2))
    for i, row in enumerate(rows):
        right.text(
            1.03,
            float(i),
            _coverage_text(row),
            transform=right.get_yaxis_transform(),
            va="center",
            fontsize=8 if n <= 30 else 6.5,
            color="0.25",
        )
    backtest = [
        (i - offset, r.backtest_u2, r.backtest_u2_low, r.backtest_u2_high)
        for i, r in enumerate(rows)
    ]
    live = [
        (i + offset, r.live_u2, r.live_u2_low, r.live_u2_high)
        for i, r in enumerate(rows)
        if r.has_live
    ]
    _draw_u2(left, backtest, live=False, limits=limits)
    _draw_u2(left, live, live=True, limits=limits)
    _coverage_marks(
        right, [(i - offset, r.coverage_80, r.coverage_95) for i, r in enumerate(rows)], live=False
    )
    _coverage_marks(
        right,
        [
            (i + offset, r.live_coverage_80, r.live_coverage_95)
            for i, r in enumerate(rows)
            if r.has_live
        ],
        live=True,
    )
    several_models = len({r.model for r in rows}) > 1
    labels = [
        r.ticker
        + (f" · {r.model}" if several_models else "")
        + (f"  (live {r.live_n}d)" if r.has_live else "")
        for r in rows
    ]
    left.set_yticks(range(n), labels, fontsize=9 if n <= 30 else 7)
    left.set_ylim(n - 0.5, -0.5)
    left.axvline(1.0, color="0.2", linewidth=1.0)
    if limits[2]:
        left.set_xscale("log")
    left.set_xlim(limits[0], limits[1])
    left.set_xlabel("U2 (log scale)" if limits[2] else "U2")
    left.grid(True, axis="x", alpha=0.3)
    right.axvline(80, color="tab:purple", linewidth=0.8, alpha=0.6)
    right.axvline(95, color="tab:purple", linewidth=0.8, alpha=0.6, linestyle="--")
    shares = _finite(
        [v for r in rows for v in (r.coverage_80, r.coverage_95, r.live_coverage_80,
                                   r.live_coverage_95)]
    )  # fmt: skip
    right.set_xlim(min([40.0, *(100 * v - 5 for v in shares)]), 104)
    right.set_xlabel("interval coverage (%)")
    right.set_title("80/95 held (%)", fontsize=9, loc="right")
    right.grid(True, axis="x", alpha=0.3)
    better = sum(verdict(r.backtest_u2_low, r.backtest_u2_high) == "better" for r in rows)
    worse = sum(verdict(r.backtest_u2_low, r.backtest_u2_high) == "worse" for r in rows)
    left.set_title(
        f"backtest: {better} of {n} beat naive with evidence, {worse} do worse, "
        f"{n - better - worse} cannot tell",
        fontsize=10,
        loc="left",
    )
    _scoreboard_legend(figure, live=offset > 0)
    return figure


def _percent(value: float | None) -> str:
    return "–" if value is None or not math.isfinite(value) else f"{100 * value:.0f}"


def _coverage_text(row: ScoreboardRow) -> str:
    text = f"{_percent(row.coverage_80)}/{_percent(row.coverage_95)}"
    if row.has_live:
        text += f"  live {_percent(row.live_coverage_80)}/{_percent(row.live_coverage_95)}"
    return text


def _scoreboard_legend(figure: Figure, *, live: bool) -> None:
    handles = [
        Line2D([], [], color="0.3", marker="o", linewidth=2.2, label="backtest U2, 95% interval"),
        Patch(color=BETTER, label="beats naive (interval < 1)"),
        Patch(color=UNCLEAR, label="cannot tell"),
        Patch(color=WORSE, label="worse than naive (interval > 1)"),
        Line2D([], [], color="tab:purple", marker="s", linestyle="none", label="80% coverage"),
        Line2D([], [], color="tab:purple", marker="^", linestyle="none", label="95% coverage"),
        Line2D([], [], color="tab:red", marker="s", linestyle="none", label="> 5 points off"),
    ]
    if live:
        handles.insert(
            1,
            Line2D(
                [],
                [],
                color="0.3",
                marker="D",
                markerfacecolor="white",
                linestyle=(0, (2, 1)),
                label="live U2, 95% interval",
            ),
        )
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
