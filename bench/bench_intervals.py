"""Measure conformal-interval coverage, U2 and Diebold-Mariano p-values per model and ticker.

Usage (from the repo root)::

    /path/to/.venv/bin/python bench/bench_intervals.py               # shipped histories
    /path/to/.venv/bin/python bench/bench_intervals.py --data DIR --horizon 5

For every Yahoo CSV in ``--data`` (default: ``closecast/sample_data``) the last ``--test``
trading days (250) are the test period. Each model (naive, drift, and the LSTM ``--preset``,
``default`` unless told) is fit once on the prices before it (refit-free). Its interval radii
come from its own validation slice (the last ``validation_fraction`` of training windows;
days never used for gradient steps). Three calibrations are measured:

* ``raw``: plain log residuals of the validation slice, for the whole test period;
* ``scaled``: log residuals divided by the EWMA volatility at each forecast's origin
  (``lstm_model.intervals.ewma_volatility``), validation slice only;
* ``scaled+live``: as ``scaled``, and each test day also uses the test days *before* it
  whose outcome was known when its forecast was made (what a live record would know that
  day; never the day being scored). This is what the pipeline serves.

Prints a Markdown table: ticker, model, U2 with its 95% interval, the one-sided DM p-value
(model better than naive), and the coverage of the 80% and 95% intervals (static and
sequential), per horizon step when ``--horizon`` > 1. The target is coverage within 5 points
of nominal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from closecast.inputs.yahoo_csv import read_yahoo_csv  # noqa: E402
from lstm_model import intervals, metrics  # noqa: E402
from lstm_model.config import ModelConfig, get_preset  # noqa: E402
from lstm_model.data import price_series  # noqa: E402
from lstm_model.horizons import path_backtest, validation_backtest  # noqa: E402
from lstm_model.registry import fit_model  # noqa: E402
from lstm_model.significance import diebold_mariano  # noqa: E402

MODELS = ("naive", "drift", "lstm")


COVERAGES = ("raw", "scaled", "scaled+live")


@dataclass(frozen=True)
class Row:
    ticker: str
    model: str
    step: int
    n: int
    u2: float
    u2_low: float
    u2_high: float
    dm_p: float
    coverage: dict[str, tuple[float, float]]  # calibration -> (80%, 95%)
    seconds: float


def _coverage(frame: pd.DataFrame, calibration: pd.DataFrame, volatility, sequential: bool):
    bounded = intervals.backtest_bounds(frame, calibration, volatility, sequential=sequential)
    return tuple(
        metrics.coverage(bounded["actual"], *(bounded[c] for c in intervals.bound_columns(level)))
        for level in intervals.LEVELS
    )


def measure(ticker: str, prices: pd.Series, kind: str, config: ModelConfig, args) -> list[Row]:
    train = prices.iloc[: -args.test]
    start = prices.index[-args.test]
    started = time.perf_counter()
    model = fit_model(kind, train, config)
    calibration = validation_backtest(model, train, args.horizon)
    frame = path_backtest(model, prices, start, args.horizon)
    seconds = time.perf_counter() - started
    volatility = intervals.ewma_volatility(prices)
    rows = []
    for step in range(1, args.horizon + 1):
        part = frame[frame["step"] == step]
        known = calibration[calibration["step"] == step]
        test = diebold_mariano(part["actual"], part["predicted"], part["naive"], horizon=step)
        low, high = test.u2_interval(0.95)
        coverage = {
            "raw": _coverage(part, known, None, sequential=False),
            "scaled": _coverage(part, known, volatility, sequential=False),
            "scaled+live": _coverage(part, known, volatility, sequential=True),
        }
        rows.append(
            Row(ticker, kind, step, test.n, test.u2, low, high, test.p_value, coverage, seconds)
        )
    return rows


def _table(rows: list[Row], horizon: int) -> str:
    step_col = "| step " if horizon > 1 else ""
    covs = " | ".join(f"{name} 80 | {name} 95" for name in COVERAGES)
    lines = [
        f"| ticker | model {step_col}| n | U2 [95% interval] | DM p (better) | {covs} | s |",
        "|---|---|" + ("---|" if horizon > 1 else "") + "---|---|---|" + "---|---|" * 3 + "---|",
    ]
    for r in rows:
        step = f"| {r.step} " if horizon > 1 else ""
        cells = " | ".join(f"{100 * a:.1f} | {100 * b:.1f}" for a, b in r.coverage.values())
        lines.append(
            f"| {r.ticker} | {r.model} {step}| {r.n} | {r.u2:.4f} [{r.u2_low:.4f}, "
            f"{r.u2_high:.4f}] | {r.dm_p:.3f} | {cells} | {r.seconds:.1f} |"
        )
    return "\n".join(lines)


def _summary(rows: list[Row]) -> str:
    lines = ["", "Mean coverage over tickers, 80% / 95% (target: within 5 points of nominal):", ""]
    keys = sorted({(r.model, r.step) for r in rows}, key=lambda k: (k[1], k[0]))
    for model, step in keys:
        mine = [r for r in rows if (r.model, r.step) == (model, step)]
        parts = []
        for name in COVERAGES:
            c80 = np.mean([r.coverage[name][0] for r in mine])
            c95 = np.mean([r.coverage[name][1] for r in mine])
            parts.append(f"{name} {100 * c80:.1f} / {100 * c95:.1f}")
        lines.append(f"- {model} step {step}: " + ", ".join(parts))
    for name in COVERAGES:
        gap80 = max(abs(r.coverage[name][0] - 0.8) for r in rows)
        gap95 = max(abs(r.coverage[name][1] - 0.95) for r in rows)
        lines.append(
            f"- {name}: largest gap from nominal over every row: "
            f"80% {100 * gap80:.1f} points, 95% {100 * gap95:.1f} points"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "closecast" / "sample_data")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--test", type=int, default=250, help="trailing test days")
    parser.add_argument("--horizon", type=int, default=1)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    config = get_preset(args.preset)
    rows: list[Row] = []
    for path in sorted(args.data.glob("*.csv")):
        prices = price_series(read_yahoo_csv(path), config.price_column)
        for kind in args.models.split(","):
            rows.extend(measure(path.stem, prices, kind, config, args))
            print(f"done {path.stem} {kind}", file=sys.stderr, flush=True)
    print(_table(rows, args.horizon))
    print(_summary(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
