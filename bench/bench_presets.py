"""Benchmark the model presets on real price histories and check the default's hard targets.

Usage (from the repo root)::

    .venv/bin/python bench/bench_presets.py --epochs 10

Runs the ``default`` preset on every ``*.csv`` in ``--data`` (default: the histories shipped in
``closecast/sample_data``) and on ``--dis`` (default: the tutorial's DIS history shipped in
``closecast/tutorial_data``) with its own test split (the trailing ``test_size`` trading
days), then DIS on the tutorial's 50/50 split with ``default`` and with ``tutorial``
(``--epochs`` epochs; its full 1000-epoch training time is extrapolated linearly from the
measured epochs). Prints a Markdown table: preset, ticker,
split, RMSE, naive RMSE, U2, training seconds, and whether the hard targets hold.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from closecast.inputs.yahoo_csv import read_yahoo_csv  # noqa: E402
from lstm_model import metrics  # noqa: E402
from lstm_model.config import ModelConfig, get_preset  # noqa: E402
from lstm_model.data import price_series, split_by_date  # noqa: E402
from lstm_model.forecaster import Forecaster  # noqa: E402

SAMPLE_DATA = REPO / "closecast" / "sample_data"  # the `sample` source's histories
TUTORIAL_DIS = REPO / "closecast" / "tutorial_data" / "DIS.csv"  # `closecast tutorial`'s
TUTORIAL_TEST_RMSE = 2.10  # measured: tutorial preset, full 1000 epochs, DIS 50/50
TUTORIAL_FULL_SECONDS = 480.0  # measured: ~8 min on this machine


def evaluate(prices: pd.Series, config: ModelConfig) -> dict[str, float]:
    train, test = split_by_date(prices, config.test_size)
    started = time.perf_counter()
    forecaster = Forecaster.fit(train, config)
    seconds = time.perf_counter() - started
    predicted = forecaster.predict_one_step(prices, test.index[0])
    previous = prices.shift(1).loc[test.index]
    scores = metrics.summarize(test.to_numpy(), predicted.to_numpy(), previous.to_numpy())
    result: dict[str, Any] = asdict(scores)
    result.update(
        seconds=seconds,
        epochs_run=forecaster.meta["epochs_run"],
        train_seconds=forecaster.meta["train_seconds"],
        first_epoch_seconds=forecaster.meta["first_epoch_seconds"],
        epoch_seconds=forecaster.meta["epoch_seconds"],
        gain=forecaster.gain if forecaster.gain is not None else float("nan"),
        n_test=len(test),
    )
    del forecaster
    keras.backend.clear_session()
    gc.collect()
    return result


def full_tutorial_seconds(result: dict) -> float:
    """Extrapolated 1000-epoch training time: the first epoch (with graph tracing) plus 999
    steady-state epochs at the mean of the measured later ones."""
    if result["epoch_seconds"] is None:
        return result["train_seconds"] * 1000
    return result["first_epoch_seconds"] + 999 * result["epoch_seconds"]


def split_label(config: ModelConfig) -> str:
    size = config.test_size
    return (
        f"{100 - round(size * 100)}/{round(size * 100)}"
        if isinstance(size, float)
        else f"last {size}d"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=SAMPLE_DATA,
        help="directory of Yahoo CSVs (default: closecast/sample_data, the shipped histories)",
    )
    parser.add_argument(
        "--dis",
        type=Path,
        default=TUTORIAL_DIS,
        help="the tutorial's DIS history (default: closecast/tutorial_data/DIS.csv)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="epochs for the tutorial preset (time is extrapolated to 1000)",
    )
    parser.add_argument("--skip-tutorial", action="store_true")
    parser.add_argument("--preset", default="default", help="preset to check (default: default)")
    args = parser.parse_args(argv)

    series: dict[str, pd.Series] = {}
    if args.data is not None:
        for path in sorted(Path(args.data).glob("*.csv")):
            series[path.stem] = price_series(read_yahoo_csv(path))
    if args.dis is not None:
        series["DIS"] = price_series(read_yahoo_csv(args.dis))
    if not series:
        parser.error("no data: pass --data DIR and/or --dis PATH")

    config = get_preset(args.preset)
    rows = []
    header = (
        "preset",
        "ticker",
        "split",
        "RMSE",
        "naive RMSE",
        "U2",
        "dir.acc",
        "gain",
        "epochs",
        "train s",
    )
    print(
        f"# {platform.node()} | {os.cpu_count()} CPUs | Python {platform.python_version()} | "
        f"keras {keras.__version__} | numpy {np.__version__}",
        flush=True,
    )
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)

    def report(preset: str, ticker: str, cfg: ModelConfig, r: dict, seconds: str) -> None:
        row = (
            preset,
            ticker,
            split_label(cfg),
            f"{r['rmse']:.3f}",
            f"{r['naive_rmse']:.3f}",
            f"{r['u2']:.3f}",
            f"{r['directional_accuracy']:.3f}",
            f"{r['gain']:.2f}",
            str(r["epochs_run"]),
            seconds,
        )
        rows.append((preset, ticker, cfg, r))
        print("| " + " | ".join(row) + " |", flush=True)

    u2s = []
    for ticker, prices in series.items():
        r = evaluate(prices, config)
        u2s.append(r["u2"])
        report(args.preset, ticker, config, r, f"{r['seconds']:.1f}")

    half = None
    tutorial = None
    if "DIS" in series:
        dis_cfg = config.with_overrides(test_size=0.5)
        half = evaluate(series["DIS"], dis_cfg)
        report(args.preset, "DIS", dis_cfg, half, f"{half['seconds']:.1f}")
        if not args.skip_tutorial:
            tut_cfg = get_preset("tutorial").with_overrides(epochs=args.epochs)
            tutorial = evaluate(series["DIS"], tut_cfg)
            full = full_tutorial_seconds(tutorial)
            report(
                f"tutorial ({args.epochs} ep)",
                "DIS",
                tut_cfg,
                tutorial,
                f"{tutorial['seconds']:.1f} (1000 ep ≈ {full:.0f})",
            )

    print()
    median = statistics.median(u2s)
    ok_u2 = max(u2s) <= 1.02 and median < 1.0
    print(
        f"{args.preset}: max U2 {max(u2s):.3f}, median U2 {median:.4f} "
        f"-> {'OK' if ok_u2 else 'FAIL'} (target: max <= 1.02, median < 1.0)"
    )
    ok = ok_u2
    if half is not None:
        budget = 0.02 * TUTORIAL_FULL_SECONDS
        if tutorial is not None:
            budget = 0.02 * full_tutorial_seconds(tutorial)
        ok_rmse = half["rmse"] < TUTORIAL_TEST_RMSE
        ok_time = half["seconds"] <= budget
        print(
            f"DIS 50/50: RMSE {half['rmse']:.3f} vs tutorial {TUTORIAL_TEST_RMSE} -> "
            f"{'OK' if ok_rmse else 'FAIL'}; fit {half['seconds']:.1f}s vs budget "
            f"{budget:.1f}s (2% of tutorial) -> {'OK' if ok_time else 'FAIL'}"
        )
        ok = ok and ok_rmse and ok_time
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
