"""`closecast tutorial` end to end on tiny CSVs (with and without Yahoo's header)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from closecast.cli import main

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


def write_csv(path: Path, n: int, *, header: bool, null_row: bool = False) -> Path:
    rng = np.random.default_rng(3)
    dates = pd.bdate_range("2010-01-04", periods=n)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    lines = [
        f"{d:%Y-%m-%d},{c:.6f},{c * 1.01:.6f},{c * 0.99:.6f},{c:.6f},{c * 0.9:.6f},1000"
        for d, c in zip(dates, close, strict=True)
    ]
    if null_row:
        lines[5] = f"{dates[5]:%Y-%m-%d},null,null,null,null,null,null"
    path.write_text((HEADER if header else "") + "\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.slow  # end to end: the tutorial's own network (240-day window) trained twice
@pytest.mark.parametrize("header", [True, False])
def test_tutorial_command_end_to_end(tmp_path, capsys, header) -> None:
    csv = write_csv(tmp_path / "TINY.csv", 560, header=header, null_row=header)
    out = tmp_path / "out"
    code = main(["tutorial", "--csv", str(csv), "--out", str(out), "--epochs", "2"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "test RMSE" in printed and "naive RMSE" in printed and "U2" in printed

    metrics = json.loads((out / "metrics.json").read_text())
    assert {"train_rmse", "test_rmse", "naive_rmse", "u2"} <= set(metrics)
    assert metrics["epochs_run"] == 2
    assert metrics["u2"] == pytest.approx(metrics["test_rmse"] / metrics["naive_rmse"])
    assert (out / "plot.png").read_bytes().startswith(b"\x89PNG")

    frame = pd.read_csv(out / "predictions.csv", parse_dates=["date"])
    assert list(frame.columns) == ["date", "actual", "predicted", "naive"]
    prices = pd.read_csv(csv, header=0 if header else None, na_values=["null"]).dropna()
    adj = pd.Series(prices.iloc[:, 5].to_numpy(), index=pd.to_datetime(prices.iloc[:, 0]))
    n = len(adj)
    assert len(frame) == n - n // 2  # 50/50 split, test gets the odd day
    # actual is the adjusted close of the same date; naive is the previous day's adjusted close
    np.testing.assert_allclose(frame["actual"], adj.loc[frame["date"]].to_numpy(), atol=1e-6)
    np.testing.assert_allclose(
        frame["naive"], adj.shift(1).loc[frame["date"]].to_numpy(), atol=1e-6
    )
    assert frame["predicted"].notna().all()


def test_tutorial_command_errors(tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["tutorial", "--csv", str(tmp_path / "missing.csv"), "--out", str(out)]) == 2
    assert "no such price file" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    assert main(["tutorial", "--csv", str(bad), "--out", str(out)]) == 2
    assert "error" in capsys.readouterr().err
    short = write_csv(tmp_path / "SHORT.csv", 300, header=True)
    assert main(["tutorial", "--csv", str(short), "--out", str(out), "--epochs", "1"]) == 2
    assert "too short" in capsys.readouterr().err
    assert main(["tutorial", "--csv", str(short), "--out", str(out), "--epochs", "0"]) == 2
    assert "'epochs' has bad value 0" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.slow  # end to end: the tutorial's own network on 5035 days
def test_tutorial_runs_on_its_shipped_dis_history_without_csv(tmp_path, capsys) -> None:
    out = tmp_path / "tutorial-out"
    assert main(["tutorial", "--out", str(out), "--epochs", "1"]) == 0
    assert "DIS.csv (shipped in closecast.tutorial_data)" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["csv"] == "DIS.csv (shipped in closecast.tutorial_data)"
    # The tutorial's own history (SOURCES.md): 5035 days, split 50/50 by date.
    assert metrics["train_start"] == "1996-12-31" and metrics["test_end"] == "2016-12-30"
    assert metrics["n_train"] + metrics["n_test"] == 5035
    assert metrics["n_test"] == 5035 - 5035 // 2
