"""``closecast run``: run the daily forecast flow once, here and now."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

# Exit codes: every ticker succeeded / some ticker failed / bad usage or configuration.
EXIT_OK, EXIT_TICKER_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_CODES = {
    EXIT_OK: "every ticker succeeded",
    EXIT_TICKER_FAILED: "some ticker failed (its metrics row says why; the others are published)",
    EXIT_CONFIG: "bad usage or configuration; the message says what to fix",
}
EXAMPLES = (
    "closecast run --tickers AAPL,BTC-USD --as-of 2020-12-07",
    "closecast run --watchlist my-watchlist.yaml --source yahoo --storage s3://my-bucket/closecast",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument(
        "--watchlist",
        metavar="FILE",
        help="watchlist YAML: tickers: [{symbol, asset_class: stock|etf|crypto}] "
        "(default: the packaged AAPL, GOOG, QQQ, BTC-USD)",
    )
    which.add_argument(
        "--tickers",
        metavar="A,B",
        help="comma-separated symbols instead of a watchlist (asset classes guessed)",
    )
    parser.add_argument(
        "--source",
        default="sample",
        help="price source: sample (shipped histories, offline), yahoo (yfinance) "
        "or csv:DIR (DIR/<TICKER>.csv Yahoo exports)",
    )
    parser.add_argument(
        "--storage",
        default="./closecast-data",
        metavar="ROOT",
        help="where outputs go: a local directory or s3://bucket/prefix",
    )
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the run date: prices up to it, forecasts for the next trading day "
        "(default: the source's current date; the sample's is 2020-12-11)",
    )
    parser.add_argument(
        "--mode",
        choices=("auto", "retrain", "finetune"),
        default="auto",
        help="auto: per ticker, retrain when the model is missing, old, out of its range "
        "or degraded, else fine-tune it (the reason is recorded); retrain: train anew; "
        "finetune: fine-tune the champion",
    )
    parser.add_argument(
        "--preset",
        default="default",
        help="model preset: default, fast (tiny, for tests) or tutorial "
        "(the original tutorial's network)",
    )
    parser.add_argument(
        "--epochs", type=int, help="override the preset's training epochs (default: the preset's)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="parallel tickers (threads, processes or Dask workers)",
    )
    parser.add_argument(
        "--task-runner",
        choices=("threads", "processes", "dask"),
        default="threads",
        help="where the per-ticker work runs: threads of this process, a local process pool, "
        "or Dask (a local cluster, or --dask-address)",
    )
    parser.add_argument(
        "--dask-address",
        metavar="tcp://HOST:PORT",
        help="scheduler of an existing Dask cluster, with --task-runner dask "
        "(default: start a local cluster of --workers processes)",
    )
    parser.add_argument(
        "--create-bucket", action="store_true", help="create the S3 bucket if it is missing"
    )
    parser.add_argument(
        "--credentials-block",
        metavar="TYPE/NAME",
        help="Prefect block holding the S3 credentials, e.g. minio-credentials/NAME "
        "(default: the standard AWS environment and config files)",
    )


def _check_configuration(args: argparse.Namespace) -> list[str]:
    """Everything that can be checked before the flow starts, as messages saying what to fix."""
    from closecast.pipeline.options import RunOptions, epoch_overrides
    from closecast.sources import get_source
    from closecast.storage import StorageError, open_storage
    from closecast.watchlist import WatchlistError, items_from_symbols, load_watchlist

    problems = []
    try:
        if args.tickers is not None:
            items_from_symbols(args.tickers.split(","))
        else:
            load_watchlist(args.watchlist)
    except WatchlistError as exc:
        problems.append(f"watchlist: {exc}")
    try:
        get_source(args.source)
    except ValueError as exc:
        problems.append(f"--source: {exc}")
    try:
        RunOptions(
            storage_root=args.storage,
            preset=args.preset,
            overrides=epoch_overrides(args.epochs),
        )
    except ValueError as exc:
        problems.append(f"--preset/--epochs: {exc}")
    if args.workers < 1:
        problems.append(f"--workers: must be at least 1, got {args.workers}")
    try:
        open_storage(
            args.storage,
            create_bucket=args.create_bucket,
            credentials_block=args.credentials_block,
        ).check()
    except StorageError as exc:
        problems.append(f"--storage: {exc}")
    return problems


def _print_metrics(storage_root: str, run_date: date, credentials_block: str | None) -> None:
    from closecast.pipeline import layout
    from closecast.storage import open_storage
    from closecast.storage.io import read_parquet

    storage = open_storage(storage_root, credentials_block=credentials_block)
    frame = read_parquet(storage, layout.metrics_key(run_date)).to_pandas()
    columns = ["ticker", "status", "mode", "rmse", "naive_rmse", "u2", "model_version", "error"]
    print()
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nOutputs for {run_date} under {storage.describe()}:")
    for key in (
        layout.metrics_key(run_date),
        layout.forecasts_key(run_date),
        f"predictions/run_date={run_date.isoformat()}/",
        f"plots/run_date={run_date.isoformat()}/",
        layout.manifest_key(run_date),
    ):
        print(f"  {key}")


def run(args: argparse.Namespace) -> int:
    # Prefect's ephemeral API server gets 20 s to start by default, too little on a busy
    # two-core machine while TensorFlow loads; a user's own setting still wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    problems = _check_configuration(args)
    if problems:
        for problem in problems:
            print(f"closecast run: {problem}", file=sys.stderr)
        return EXIT_CONFIG

    from flows.daily_forecast import daily_forecast

    state = daily_forecast(
        watchlist=args.watchlist,
        tickers=args.tickers.split(",") if args.tickers else None,
        source=args.source,
        storage=args.storage,
        mode=args.mode,
        as_of=args.as_of,
        preset=args.preset,
        epochs=args.epochs,
        task_runner=args.task_runner,
        workers=args.workers,
        dask_address=args.dask_address,
        create_bucket=args.create_bucket,
        credentials_block=args.credentials_block,
        return_state=True,
    )
    run_date = args.as_of
    if run_date is None:
        from closecast.sources import get_source

        run_date = get_source(args.source).today()
    try:
        _print_metrics(args.storage, run_date, args.credentials_block)
    except Exception as exc:  # the flow itself failed before publishing anything
        print(f"closecast run: no metrics were published ({exc})", file=sys.stderr)
    print(f"\n{state.name}: {state.message or ''}")
    return EXIT_OK if state.is_completed() else EXIT_TICKER_FAILED
