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


def test_plot_summary_groups_bars() -> None:
    frame = pd.DataFrame({"ticker": ["A", "B"], "rmse": [1.0, 2.0], "naive_rmse": [1.1, 1.9]})
    fig = plot_summary(frame)
    ax = fig.axes[0]
    assert len(ax.patches) == 4
    assert [t.get_text() for t in ax.get_xticklabels()] == ["A", "B"]
