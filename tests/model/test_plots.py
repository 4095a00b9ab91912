"""Figures are built with the object-oriented API and render to PNG."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from closecast.plots import plot_predictions, plot_summary


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
