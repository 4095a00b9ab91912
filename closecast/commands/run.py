"""``closecast run``: run the daily forecast flow once, here and now."""

from __future__ import annotations

import argparse
import os
import sys
from datetime import date
from typing import Any

from closecast.choices import REQUESTED_MODES, RUNNER_KINDS, serve_choices

# Exit codes: every ticker succeeded / some ticker failed / bad usage or configuration.
EXIT_OK, EXIT_TICKER_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_CODES = {
    EXIT_OK: "every ticker succeeded",
    EXIT_TICKER_FAILED: "some ticker failed (its metrics row says why; the others are published)",
    EXIT_CONFIG: "bad usage or configuration; the message says what to fix",
    143: "stopped by SIGTERM or Ctrl-C; nothing more was published",  # interrupts.EXIT_TERMINATED
}
EXAMPLES = (
    "closecast run --tickers AAPL,BTC-USD --as-of 2020-12-07",
    "closecast run --watchlist my-watchlist.yaml --source yahoo --storage s3://my-bucket/closecast",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--as-of",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="the run date: prices up to it, forecasts for the next trading day "
        "(default: the source's current date; the sample's is 2020-12-11)",
    )
    add_run_options(parser)


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``replay`` share (everything but the date)."""
    parser.add_argument(
        "--watchlist",
        metavar="FILE",
        help="watchlist YAML: tickers: [{symbol, asset_class: stock|etf|crypto}] "
        "(default: the packaged AAPL, GOOG, QQQ, BTC-USD)",
    )
    parser.add_argument(
        "--tickers",
        metavar="A,B",
        help="comma-separated symbols: with --watchlist, the subset to rerun; alone, an "
        "ad-hoc run filed under the watchlist name 'adhoc'",
    )
    parser.add_argument(
        "--watchlist-name",
        metavar="NAME",
        help="name the outputs are filed under (default: the watchlist file's stem)",
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
        "--mode",
        choices=REQUESTED_MODES,
        default="auto",
        help="auto: per ticker, retrain or fine-tune as the retrain policy says (the reason "
        "is recorded); retrain: train anew; finetune: fine-tune the serving model",
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
        "--serve",
        choices=serve_choices(),
        default="lstm",
        help="whose forecast is served: the LSTM, a baseline, or auto (the model that beats "
        "naive with evidence on the backtest days, else naive); a watchlist entry's 'serve' "
        "overrides it",
    )
    parser.add_argument(
        "--horizon",
        type=int,
        default=1,
        help="trading days ahead to forecast (1..10), each scored against its own naive forecast",
    )
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=100,
        help="most tickers trained together in one task (one traced graph serves them all)",
    )
    parser.add_argument(
        "--task-runner",
        choices=RUNNER_KINDS,
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


def check_configuration(args: argparse.Namespace) -> list[str]:
    """Everything that can be checked before the flow starts, as messages saying what to fix.

    Nothing here writes: a configuration error leaves the storage root untouched.
    """
    from closecast.catalog import CatalogError
    from closecast.pipeline.options import MAX_EPOCHS, RunOptions, epoch_overrides
    from closecast.pipeline.selection import select
    from closecast.sources import CsvDirSource, get_source
    from closecast.storage import StorageError, open_storage
    from closecast.watchlist import WatchlistError, split_tickers

    problems = []
    try:
        select(
            args.watchlist,
            split_tickers(args.tickers),
            args.watchlist_name,
        )
    except (WatchlistError, CatalogError) as exc:
        problems.append(f"watchlist: {exc}")
    try:
        source = get_source(args.source)
        if isinstance(source, CsvDirSource) and not source.directory.is_dir():
            problems.append(f"--source: {args.source!r}: no such directory {source.directory}")
    except ValueError as exc:
        problems.append(f"--source: {exc}")
    else:
        if getattr(args, "as_of", None) is not None and args.as_of > (today := source.today()):
            problems.append(
                f"--as-of: {args.as_of} is after the {args.source} source's current date "
                f"{today}; a run cannot be dated in the future"
            )
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
    if not 1 <= args.horizon <= 10:
        problems.append(f"--horizon: must be 1..10, got {args.horizon}")
    if args.chunk_size < 1:
        problems.append(f"--chunk-size: must be at least 1, got {args.chunk_size}")
    try:
        open_storage(
            args.storage,
            create_bucket=args.create_bucket,
            credentials_block=args.credentials_block,
        ).check()
    except (StorageError, ValueError) as exc:  # StorageConfigError is both
        problems.append(f"--storage: {exc}")
    return problems


def _print_metrics(args: argparse.Namespace, run_date: date) -> None:
    from closecast import catalog
    from closecast.pipeline.selection import select
    from closecast.storage import open_storage
    from closecast.storage.io import read_parquet
    from closecast.watchlist import split_tickers

    selection = select(args.watchlist, split_tickers(args.tickers), args.watchlist_name)
    scope = catalog.RunScope(run_date, selection.name)
    storage = open_storage(args.storage, credentials_block=args.credentials_block)
    frame = read_parquet(storage, catalog.METRICS.key(scope)).to_pandas()
    columns = [
        "ticker", "status", "mode", "backtest_u2", "live_n_lineage", "live_u2_lineage",
        "model_version", "error",
    ]  # fmt: skip
    print()
    print(frame[columns].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"\nOutputs for {run_date}, watchlist {scope.watchlist}, under {storage.describe()}:")
    for key in catalog.run_prefixes(scope):
        print(f"  {key}")


def flow_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """The ``daily_forecast`` parameters the options of ``run`` (and ``replay``) give."""
    from closecast.watchlist import split_tickers

    return {
        "watchlist": args.watchlist,
        "tickers": split_tickers(args.tickers),
        "watchlist_name": args.watchlist_name,
        "source": args.source,
        "storage": args.storage,
        "mode": args.mode,
        "preset": args.preset,
        "epochs": args.epochs,
        "task_runner": args.task_runner,
        "workers": args.workers,
        "chunk_size": args.chunk_size,
        "serve": args.serve,
        "horizon": args.horizon,
        "dask_address": args.dask_address,
        "create_bucket": args.create_bucket,
        "credentials_block": args.credentials_block,
    }


def allow_slow_server_start() -> None:
    # Prefect's ephemeral API server gets 20 s to start by default, too little on a busy
    # two-core machine while TensorFlow loads; a user's own setting still wins.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def run(args: argparse.Namespace) -> int:
    allow_slow_server_start()
    problems = check_configuration(args)
    if problems:
        for problem in problems:
            print(f"closecast run: {problem}", file=sys.stderr)
        return EXIT_CONFIG

    from closecast.interrupts import (
        EXIT_TERMINATED,
        interrupt_main_thread_on_sigterm,
        stopped_by_signal,
    )
    from flows.daily_forecast import daily_forecast
    from lstm_model.interrupt import stop_requested

    interrupt_main_thread_on_sigterm()
    try:
        state = daily_forecast(**flow_parameters(args), as_of=args.as_of, return_state=True)
    except BaseException as exc:
        if not stopped_by_signal(exc):
            raise
        print("closecast run: stopped (SIGTERM or Ctrl-C); this run published no manifest",
              file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    if stop_requested():
        print(f"closecast run: stopped (SIGTERM); {state.name}, no manifest published",
              file=sys.stderr)  # fmt: skip
        return EXIT_TERMINATED
    run_date = args.as_of
    if run_date is None:
        from closecast.sources import get_source

        run_date = get_source(args.source).today()
    try:
        _print_metrics(args, run_date)
    except Exception as exc:  # the flow itself failed before publishing anything
        print(f"closecast run: no metrics were published ({exc})", file=sys.stderr)
    print(f"\n{state.name}: {state.message or ''}")
    return EXIT_OK if state.is_completed() else EXIT_TICKER_FAILED
