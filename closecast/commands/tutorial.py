"""``closecast tutorial``: reproduce the LSTM stock tutorial on a Yahoo CSV, honestly.

Writes ``predictions.csv`` (date, actual, predicted, naive), ``plot.png`` and
``metrics.json`` (train RMSE, test RMSE, naive RMSE, U2, ...) into ``--out`` and prints the
metrics. Exit code 2 for a missing/unreadable CSV, a bad option or too short a history.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

PRESETS = ("tutorial", "default")
EXIT_CODES = {
    0: "done; predictions.csv, plot.png and metrics.json written to --out",
    2: "a missing or unreadable CSV, a bad option, or too short a history",
}
EXAMPLES = (
    "closecast tutorial --csv ../shared/data/seed/DIS.csv --out tutorial-out --epochs 20",
    "closecast tutorial --csv AAPL.csv --out aapl-default --preset default --seed 7",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv",
        type=Path,
        required=True,
        metavar="FILE",
        help="Yahoo CSV export (Date, Open, High, Low, Close, Adj Close, Volume; "
        "with or without its header row)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="output directory (created if missing)",
    )
    parser.add_argument(
        "--preset",
        choices=PRESETS,
        default="tutorial",
        help="model preset: tutorial (the original tutorial's network) or default",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the preset's (maximum) number of epochs (default: the preset's)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="override the preset's seed (default: the preset's)"
    )


class _PrintToStdout(logging.Handler):
    """Prints each record to whatever ``sys.stdout`` is when it is emitted."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"  {record.getMessage()}", flush=True)


def _print_training_progress() -> None:
    """Show the ML core's progress lines (epochs, loss, elapsed) on the terminal."""
    progress = logging.getLogger("lstm_model.progress")
    if not any(isinstance(h, _PrintToStdout) for h in progress.handlers):
        progress.addHandler(_PrintToStdout())
    progress.setLevel(logging.INFO)
    progress.propagate = False


def _fail(message: str) -> int:
    print(f"closecast tutorial: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from closecast.yahoo_csv import PriceFileError, read_yahoo_csv
    from lstm_model.config import ConfigError, get_preset
    from lstm_model.data import InsufficientDataError, price_series

    overrides = {}
    if args.epochs is not None:
        overrides["epochs"] = args.epochs
    if args.seed is not None:
        overrides["seed"] = args.seed
    try:
        config = get_preset(args.preset).with_overrides(**overrides)
    except ConfigError as exc:
        return _fail(str(exc))
    try:
        prices = price_series(read_yahoo_csv(args.csv), config.price_column)
    except (PriceFileError, ValueError, OSError) as exc:
        return _fail(str(exc))
    if len(prices) == 0:
        return _fail(f"{args.csv}: no usable {config.price_column} prices")

    # TensorFlow is imported only now, after the cheap checks.
    from closecast.plots import plot_predictions
    from lstm_model.tutorial import run_tutorial

    _print_training_progress()
    print(
        f"Training the {args.preset} network on {args.csv} (up to {config.epochs} epochs); "
        "progress every few seconds:",
        flush=True,
    )
    try:
        result = run_tutorial(prices, config)
    except InsufficientDataError as exc:
        return _fail(f"{args.csv}: history too short: {exc}")
    except ValueError as exc:
        return _fail(f"{args.csv}: {exc}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    frame = result.predictions.copy()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(out / "predictions.csv", index=False, float_format="%.6f")
    metrics = {"csv": str(args.csv), "preset": args.preset, **result.metrics}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    figure = plot_predictions(
        result.predictions,
        title=f"{args.csv.stem}: LSTM ({args.preset}) vs actual, test period",
        train_end=result.train_end,
        history=result.prices.loc[: result.train_end].iloc[-500:],
    )
    figure.savefig(out / "plot.png", dpi=100)

    m = result.metrics
    print(
        f"{args.csv.stem} ({args.preset}, {m['epochs_run']} epochs, {m['train_seconds']:.1f} s): "
        f"train {m['train_start']}..{m['train_end']} ({m['n_train']} days), "
        f"test ..{m['test_end']} ({m['n_test']} days)"
    )
    print(f"  train RMSE {m['train_rmse']:.4f}")
    print(f"  test RMSE  {m['test_rmse']:.4f}")
    print(f"  naive RMSE {m['naive_rmse']:.4f}  (tomorrow = today)")
    print(f"  U2         {m['u2']:.4f}  (< 1 beats naive)")
    print(f"wrote {out / 'predictions.csv'}, {out / 'plot.png'}, {out / 'metrics.json'}")
    return 0
