"""Memory and time per ticker across many trainings in one process.

The pipeline trains one model per ticker in a long-lived worker process; TensorFlow state
must not grow from ticker to ticker. This runs the real per-ticker step (retrain, evaluate,
forecast, publish into a temporary local store) ``--rounds`` times over the sample tickers
and prints resident memory after each, with and without releasing Keras state between
tickers, so a leak shows as a rising column.

    .venv/bin/python bench/bench_pipeline_memory.py --rounds 3 --preset fast
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from datetime import date

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="fast")
    parser.add_argument("--as-of", type=date.fromisoformat, default=date(2020, 12, 11))
    parser.add_argument(
        "--no-release",
        action="store_true",
        help="skip releasing TensorFlow state between tickers (to compare)",
    )
    args = parser.parse_args()

    from closecast.inputs.watchlist import load_watchlist
    from closecast.outputs.catalog import RunScope
    from closecast.pipeline.fetch import fetch_and_store
    from closecast.pipeline.services import open_run_storage
    from closecast.pipeline.settings import RunSettings
    from closecast.pipeline.ticker import forecast_ticker
    from closecast.sources import get_source
    from lstm_model.model import release_tensorflow_state

    items = load_watchlist()
    with tempfile.TemporaryDirectory() as root:
        options = RunSettings(storage=root, preset=args.preset, mode="retrain")
        storage, source = open_run_storage(options), get_source(options.source)
        for item in items:
            fetch_and_store(item, args.as_of, storage, source)
        print(f"preset={args.preset} release={'no' if args.no_release else 'yes'}")
        print(f"{'round':>5} {'ticker':>8} {'seconds':>8} {'rss_mb':>8}")
        baseline = None
        for round_ in range(1, args.rounds + 1):
            for item in items:
                began = time.perf_counter()
                forecast_ticker(item, RunScope(args.as_of, "bench"), options)
                if not args.no_release:
                    release_tensorflow_state()
                rss = rss_mb()
                baseline = baseline or rss
                print(
                    f"{round_:>5} {item.symbol:>8} {time.perf_counter() - began:>8.2f} {rss:>8.1f}"
                )
        print(f"growth after first ticker: {rss - baseline:+.1f} MB over {args.rounds} rounds")


if __name__ == "__main__":
    main()
