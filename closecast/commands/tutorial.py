"""``closecast tutorial``: reproduce the LSTM stock tutorial on a Yahoo CSV, honestly.

Without ``--csv`` it trains on the tutorial's own DIS history, shipped in
``closecast/tutorial_data`` (see its SOURCES.md). Writes ``predictions.csv`` (date, actual,
predicted, naive), ``plot.png`` and ``metrics.json`` (train RMSE, test RMSE, naive RMSE,
U2, ...) into ``--out`` and prints the metrics. Exit code 2 for a missing/unreadable CSV, a
bad option or too short a history.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path

PRESETS = ("tutorial", "default")
TUTORIAL_DATA = "closecast.tutorial_data"
TUTORIAL_CSV = "DIS.csv"  # the original tutorial's history, shipped with closecast
EXIT_CODES = {
    0: "done; predictions.csv, plot.png and metrics.json written to --out",
    2: "a missing or unreadable CSV, a bad option, or too short a history",
}
EXAMPLES = (
    "closecast tutorial --out tutorial-out --epochs 20",
    "closecast tutorial --csv AAPL.csv --out aapl-default --preset default --seed 7",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--csv",
        type=Path,
        default=None,
        metavar="FILE",
        help="Yahoo CSV export (Date, Open, High, Low, Close, Adj Close, Volume; "
        "with or without its header row); default: the tutorial's DIS history, shipped "
        "with closecast",
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


@contextmanager
def _price_file(csv: Path | None) -> Iterator[Path]:
    """The CSV asked for, or a real path to the shipped DIS history."""
    if csv is not None:
        yield csv
        return
    # as_file gives a real path even when the package is installed as a zip.
    with resources.as_file(resources.files(TUTORIAL_DATA).joinpath(TUTORIAL_CSV)) as path:
        yield Path(path)


def _fail(message: str) -> int:
    print(f"closecast tutorial: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    with _price_file(args.csv) as csv:
        label = str(csv) if args.csv else f"{TUTORIAL_CSV} (shipped in {TUTORIAL_DATA})"
        return _run(args, csv, label)


def _run(args: argparse.Namespace, csv: Path, label: str) -> int:
    from closecast.inputs.yahoo_csv import PriceFileError, read_yahoo_csv
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
        prices = price_series(read_yahoo_csv(csv), config.price_column)
    except (PriceFileError, ValueError, OSError) as exc:
        return _fail(str(exc))
    if len(prices) == 0:
        return _fail(f"{label}: no usable {config.price_column} prices")

    # TensorFlow is imported only now, after the cheap checks.
    from closecast.outputs.plots import plot_predictions
    from lstm_model.tutorial import run_tutorial

    _print_training_progress()
    print(
        f"Training the {args.preset} network on {label} (up to {config.epochs} epochs); "
        "progress every few seconds:",
        flush=True,
    )
    try:
        result = run_tutorial(prices, config)
    except InsufficientDataError as exc:
        return _fail(f"{label}: history too short: {exc}")
    except ValueError as exc:
        return _fail(f"{label}: {exc}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    frame = result.predictions.copy()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    frame.to_csv(out / "predictions.csv", index=False, float_format="%.6f")
    metrics = {"csv": label, "preset": args.preset, **result.metrics}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    figure = plot_predictions(
        result.predictions,
        title=f"{csv.stem}: LSTM ({args.preset}) vs actual, test period",
        train_end=result.train_end,
        history=result.prices.loc[: result.train_end].iloc[-500:],
    )
    figure.savefig(out / "plot.png", dpi=100)

    m = result.metrics
    print(
        f"{csv.stem} ({args.preset}, {m['epochs_run']} epochs, {m['train_seconds']:.1f} s): "
        f"train {m['train_start']}..{m['train_end']} ({m['n_train']} days), "
        f"test ..{m['test_end']} ({m['n_test']} days)"
    )
    print(f"  train RMSE {m['train_rmse']:.4f}")
    print(f"  test RMSE  {m['test_rmse']:.4f}")
    print(f"  naive RMSE {m['naive_rmse']:.4f}  (tomorrow = today)")
    print(f"  U2         {m['u2']:.4f}  (< 1 beats naive)")
    print(f"wrote {out / 'predictions.csv'}, {out / 'plot.png'}, {out / 'metrics.json'}")
    return 0
