"""Figures are built with the object-oriented API, show what they claim and render to PNG."""

from __future__ import annotations

import dataclasses
import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from closecast.outputs.plots import (
    ScoreboardRow,
    plot_predictions,
    plot_scoreboard,
    plot_summary,
    plot_ticker,
    verdict,
)
from lstm_model.significance import diebold_mariano


def test_plot_predictions_marks_the_boundary() -> None:
    dates = pd.bdate_range("2020-01-01", periods=30)
    history = pd.Series(np.linspace(1, 2, 30), index=dates)
    frame = pd.DataFrame(
        {
            "date": dates[20:],
            "actual": history.iloc[20:].to_numpy(),
            "predicted": history.iloc[20:].to_numpy() + 0.01,
            "naive": history.iloc[19:29].to_numpy(),
        }
    )
    fig = plot_predictions(frame, title="T", train_end=dates[19], history=history.iloc[:20])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert ax.get_title() == "T"
    labels = [line.get_label() for line in ax.get_lines()]
    assert {"actual", "predicted", "train / test", "history"} <= set(labels)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    assert buffer.getvalue().startswith(b"\x89PNG")
    with pytest.raises(ValueError, match="naive"):
        plot_predictions(frame.drop(columns="naive"), title="T", train_end=None)


def test_plot_summary_has_a_panel_per_ticker_with_its_u2() -> None:
    frame = pd.DataFrame({"ticker": ["A", "B"], "rmse": [1.0, 2.0], "naive_rmse": [1.25, 1.6]})
    fig = plot_summary(frame)
    assert [ax.get_title() for ax in fig.axes] == ["A  U2 0.800", "B  U2 1.250"]
    assert [len(ax.patches) for ax in fig.axes] == [2, 2]
    assert [p.get_height() for p in fig.axes[1].patches] == [2.0, 1.6]


def test_plot_summary_of_no_ticker_says_so() -> None:
    fig = plot_summary(pd.DataFrame(columns=["ticker", "rmse", "naive_rmse"]))
    assert "no ticker succeeded" in fig.axes[0].texts[0].get_text()


def _backtest_frame(n: int = 60) -> pd.DataFrame:
    dates = pd.bdate_range("2021-01-04", periods=n)
    rng = np.random.default_rng(0)
    actual = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    predicted = np.concatenate([[100.0], actual[:-1]])
    frame = pd.DataFrame(
        {"date": dates, "actual": actual, "predicted": predicted, "naive": predicted}
    )
    for label, radius in (("80", 0.013), ("95", 0.02)):
        frame[f"lower_{label}"] = predicted * np.exp(-radius)
        frame[f"upper_{label}"] = predicted * np.exp(radius)
    return frame


def _live_frame(backtest: pd.DataFrame, pending: int) -> pd.DataFrame:
    live = backtest.tail(10).rename(columns={"date": "target_date", "predicted": "forecast"})
    live.loc[live.index[-pending:], "actual"] = np.nan
    return live


def _png(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def test_plot_ticker_draws_bands_and_says_how_much_they_held() -> None:
    backtest = _backtest_frame()
    inside_80 = (backtest["actual"] >= backtest["lower_80"]) & (
        backtest["actual"] <= backtest["upper_80"]
    )
    live = _live_frame(backtest, pending=3)
    fig = plot_ticker(backtest, live, title="AAPL")
    top, bottom = fig.axes[:2]
    assert fig.get_suptitle() == "AAPL"
    assert len(top.collections) == 2  # the 80% and 95% bands
    labels = top.get_legend_handles_labels()[1]
    assert f"80% interval, holds {100 * inside_80.mean():.0f}% of days" in labels
    assert {"actual", "predicted", "naive"} <= set(labels)
    assert "(7 scored, 3 pending)" in bottom.get_title(loc="left")
    actual_line = next(line for line in bottom.get_lines() if line.get_label() == "actual")
    assert len(actual_line.get_xdata()) == 7  # pending forecasts have no actual yet
    assert _png(fig).startswith(b"\x89PNG")


@pytest.mark.parametrize("scale", [1e-6, 1.0, 4000.0])  # prices ~0.0001, ~100, ~400000
def test_plot_ticker_keeps_every_label_on_the_canvas_without_a_layout_engine(scale) -> None:
    """The per-ticker figure has fixed margins (a layout engine would double its drawing
    time, and it is drawn for every ticker every run): they must hold the widest tick
    labels a price takes, a long title and both legends."""
    backtest = _backtest_frame(250)
    prices = ["actual", "predicted", "naive", "lower_80", "upper_80", "lower_95", "upper_95"]
    backtest[prices] *= scale
    history = pd.Series(
        backtest["actual"].to_numpy() * 0.9, index=backtest["date"] - pd.Timedelta(days=400)
    )
    title = "BRK-A: global_lstm v0012 (finetune) served; backtest U2 0.998, live U2 1.004"
    fig = plot_ticker(backtest, _live_frame(backtest, pending=1), title=title, history=history)
    assert fig.get_layout_engine() is None
    fig.draw_without_rendering()
    drawn = fig.get_tightbbox()  # inches: every drawn text, tick label, legend and title
    assert drawn.x0 >= 0 and drawn.y0 >= 0, drawn
    assert drawn.x1 <= fig.get_figwidth() and drawn.y1 <= fig.get_figheight(), drawn


def test_plot_ticker_without_a_live_record_says_so() -> None:
    backtest = _backtest_frame().drop(columns=["lower_95", "upper_95"])
    fig = plot_ticker(backtest, None, title="T")
    top, bottom = fig.axes[:2]
    assert len(top.collections) == 1  # only the 80% band given
    assert [t.get_text() for t in bottom.texts] == ["no served forecast scored yet"]
    pending_only = _live_frame(_backtest_frame(), pending=10)
    fig = plot_ticker(_backtest_frame(), pending_only, title="T")
    assert fig.axes[1].texts[0].get_text() == "no served forecast scored yet (10 pending)"


def test_plot_ticker_draws_step_1_of_a_long_form_backtest_and_names_missing_columns() -> None:
    one = _backtest_frame().assign(step=1)
    two = one.assign(step=2, predicted=one["predicted"] * 2)
    live = _live_frame(one, pending=2)
    live_two = live.assign(step=2, forecast=live["forecast"] * 2)
    fig = plot_ticker(pd.concat([one, two]), pd.concat([live, live_two]), title="T")
    predicted = next(line for line in fig.axes[0].get_lines() if line.get_label() == "predicted")
    np.testing.assert_allclose(predicted.get_ydata(), one["predicted"])
    forecast = next(line for line in fig.axes[1].get_lines() if line.get_label() == "forecast")
    np.testing.assert_allclose(forecast.get_ydata(), live["forecast"])
    with pytest.raises(ValueError, match="backtest frame lacks columns: naive"):
        plot_ticker(one.drop(columns="naive"), None, title="T")
    with pytest.raises(ValueError, match="live frame lacks columns: forecast"):
        plot_ticker(one, pd.DataFrame({"target_date": [], "actual": [], "naive": []}), title="T")


def _rows(count: int, live_every: int = 2) -> list[ScoreboardRow]:
    rng = np.random.default_rng(1)
    rows = []
    for i in range(count):
        actual = rng.normal(0, 1, 200)
        naive = actual + rng.normal(0, 1, 200)
        predicted = actual + rng.normal(0, 1, 200) * (0.7 if i == 0 else 1.0)
        live = None
        if i % live_every == 0:
            live = diebold_mariano(actual[:30], predicted[:30], naive[:30])
        rows.append(
            ScoreboardRow.from_tests(
                f"T{i:02d}",
                diebold_mariano(actual, predicted, naive),
                live,
                coverage_80=0.79,
                coverage_95=0.85,
                live_coverage_80=0.8 if live else None,
                live_coverage_95=0.9 if live else None,
            )
        )
    return rows


def test_scoreboard_row_carries_the_test_interval() -> None:
    rng = np.random.default_rng(2)
    actual = rng.normal(0, 1, 100)
    test = diebold_mariano(actual, actual + rng.normal(0, 0.5, 100), actual + rng.normal(0, 1, 100))
    row = ScoreboardRow.from_tests("A", test, coverage_80=0.8)
    assert (row.backtest_u2_low, row.backtest_u2_high) == test.u2_interval(0.95)
    assert row.backtest_u2 == test.u2 and row.backtest_n == 100 and not row.has_live
    assert verdict(row.backtest_u2_low, row.backtest_u2_high) == "better"


@pytest.mark.parametrize("count", [4, 60])
def test_scoreboard_has_a_line_per_ticker_with_live_beside_backtest(count) -> None:
    rows = _rows(count)
    fig = plot_scoreboard(rows)
    left, right = fig.axes[:2]
    labels = [t.get_text() for t in left.get_yticklabels()]
    assert labels[0] == "T00  (live 30d)" and labels[1] == "T01"
    assert len(labels) == count
    assert any(line.get_xdata()[0] == 1.0 for line in left.get_lines())  # the line at 1
    # every ticker has a backtest bar and its U2 dot on its own line (live a little below)
    backtest_y, live_y = -0.18, 0.18
    bars = _segments_by_colour(left)
    assert sum(len(segments) for segments in bars.values()) == count + len(
        [r for r in rows if r.has_live]
    )
    # the first ticker clearly beats naive: its backtest bar is green, and so is its dot
    assert _colour_at(bars, backtest_y) == to_rgba("tab:green")
    dots = _marks_at(left, "o", backtest_y)
    assert [to_rgba(d.get_markerfacecolor()) for d in dots] == [to_rgba("tab:green")]
    assert [d.get_markerfacecolor() for d in _marks_at(left, "D", live_y)] == ["white"]
    better = sum(verdict(r.backtest_u2_low, r.backtest_u2_high) == "better" for r in rows)
    assert left.get_title(loc="left").startswith(f"backtest: {better} of {count} beat naive")
    # coverage marks: 80% 79 is on target (purple), 95% 85 is 10 points off (red)
    square, triangle = _marks_at(right, "s", backtest_y), _marks_at(right, "^", backtest_y)
    assert [m.get_markerfacecolor() for m in square + triangle] == ["tab:purple", "tab:red"]
    live_marks = _marks_at(right, "s", live_y) + _marks_at(right, "^", live_y)
    assert [m.get_markerfacecolor() for m in live_marks] == ["white", "white"]  # hollow
    assert not _marks_at(right, "s", 1 + live_y)  # the second ticker has no live record
    assert right.texts[0].get_text() == "79/85  live 80/90"
    assert fig.get_size_inches()[1] > 0.25 * count
    assert _png(fig).startswith(b"\x89PNG")


def _segments_by_colour(ax) -> dict[tuple[float, ...], list[np.ndarray]]:
    """The interval bars of a scoreboard panel, by colour (one LineCollection per verdict)."""
    bars: dict[tuple[float, ...], list[np.ndarray]] = {}
    for collection in ax.collections:
        if isinstance(collection, LineCollection):
            colour = tuple(collection.get_colors()[0])
            bars.setdefault(colour, []).extend(collection.get_segments())
    return bars


def _colour_at(bars: dict[tuple[float, ...], list[np.ndarray]], y: float) -> tuple[float, ...]:
    (colour,) = [c for c, segments in bars.items() for s in segments if np.isclose(s[0][1], y)]
    return colour


def _marks_at(ax, marker: str, y: float) -> list:
    """The marker lines of ``ax`` with a ``marker`` point at height ``y``."""
    return [
        line
        for line in ax.get_lines()
        if line.get_marker() == marker and np.isclose(line.get_ydata(), y).any()
    ]


def test_scoreboard_names_the_model_when_rows_compare_several() -> None:
    rows = _rows(2, live_every=5)
    rows[1] = dataclasses.replace(rows[1], ticker="T00", model="drift")
    fig = plot_scoreboard(rows)
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert labels == ["T00 · lstm  (live 30d)", "T00 · drift"]


def test_scoreboard_of_no_ticker_says_so() -> None:
    fig = plot_scoreboard([])
    assert "no ticker succeeded" in fig.axes[0].texts[0].get_text()
