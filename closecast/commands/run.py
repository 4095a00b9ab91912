"""``closecast run``: run the daily forecast flow once, here and now."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date

# Exit codes: every ticker succeeded / some ticker failed / bad usage or configuration.
EXIT_OK, EXIT_TICKER_FAILED, EXIT_CONFIG = 0, 1, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--watchlist", metavar="FILE", help="watchlist YAML (default: packaged)")
    which.add_argument("--tickers", metavar="A,B", help="comma-separated symbols instead")
    parser.add_argument(
        "--source", default="sample", help="sample (shipped data), yahoo, or csv:DIR"
    )
    parser.add_argument(
        "--storage",
        default="./closecast-data",
        metavar="ROOT",
        help="local directory or s3://bucket/prefix (default: ./closecast-data)",
    )
    parser.add_argument("--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD")
    parser.add_argument("--mode", choices=("auto", "retrain", "finetune"), default="auto")
    parser.add_argument("--preset", default="default", help="default, fast or tutorial")
    parser.add_argument("--epochs", type=int, help="override the preset's training epochs")
    parser.add_argument("--workers", type=int, default=2, help="parallel tickers (default 2)")
    parser.add_argument(
        "--task-runner", choices=("threads", "processes", "dask"), default="threads"
    )
    parser.add_argument("--dask-address", help="scheduler of an existing Dask cluster")
    parser.add_argument(
        "--create-bucket", action="store_true", help="create the S3 bucket if missing"
    )
    parser.add_argument("--credentials-block", help="Prefect block, e.g. minio-credentials/NAME")


MAX_EPOCHS = 10_000
"""Largest ``--epochs`` accepted: beyond it a run would train for days."""


def _check_configuration(args: argparse.Namespace) -> list[str]:
    """Everything that can be checked before the flow starts, as messages saying what to fix.

    Nothing here writes: a configuration error leaves the storage root untouched.
    """
    from closecast.pipeline.options import RunOptions, epoch_overrides
    from closecast.sources import CsvDirSource, get_source
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
        source = get_source(args.source)
        if isinstance(source, CsvDirSource) and not source.directory.is_dir():
            problems.append(f"--source: {args.source!r}: no such directory {source.directory}")
    except ValueError as exc:
        problems.append(f"--source: {exc}")
    if args.epochs is not None and args.epochs > MAX_EPOCHS:
        problems.append(f"--epochs: at most {MAX_EPOCHS}, got {args.epochs}")
    else:
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
    except (StorageError, ValueError) as exc:  # StorageConfigError is both
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
