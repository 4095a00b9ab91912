"""``closecast gc``: remove old model versions and old runs' per-ticker plots and predictions
by the retention policy (``closecast.outputs.retention``), so storage per ticker stays bounded."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

EXIT_OK, EXIT_FAILED, EXIT_CONFIG = 0, 1, 2
EXIT_CODES = {
    EXIT_OK: "collected (or, with --dry-run, showed what would be)",
    EXIT_FAILED: "a run is in progress or a lease was not free in time: nothing more was removed",
    EXIT_CONFIG: "bad usage or configuration; the message says what to fix",
}
EXAMPLES = (
    "closecast gc --dry-run",
    "closecast gc --storage s3://my-bucket/closecast --keep-versions 5 --manifest-days 14",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from closecast.outputs.retention_policy import RetentionPolicy

    defaults = RetentionPolicy()
    parser.add_argument(
        "--storage", metavar="ROOT", default="./closecast-data",
        help="local directory or s3://bucket/prefix",
    )  # fmt: skip
    parser.add_argument(
        "--as-of", type=date.fromisoformat, metavar="YYYY-MM-DD",
        help="the collection date: manifests of run dates within --manifest-days of it are "
        "kept whole (default: today, UTC)",
    )  # fmt: skip
    parser.add_argument(
        "--keep-versions", type=int, default=defaults.keep_versions, metavar="N",
        help="keep each ticker's last N model versions, besides its champion, latest version "
        "and their lineage roots",
    )  # fmt: skip
    parser.add_argument(
        "--manifest-days", type=int, default=defaults.manifest_days, metavar="X",
        help="keep whatever a manifest of the last X days lists, and those runs' plots "
        "and predictions",
    )  # fmt: skip
    parser.add_argument("--tickers", metavar="A,B", help="only these tickers (default: all)")
    parser.add_argument("--dry-run", action="store_true", help="show what would go; change nothing")
    parser.add_argument(
        "--lease-wait-seconds", type=float, default=900.0,
        metavar="S",
        help="how long to wait for a run holding a ticker's or a scope's lease",
    )  # fmt: skip
    parser.add_argument("--credentials-block", metavar="TYPE/NAME", help="S3 credentials block")
    parser.add_argument("--verbose", action="store_true", help="list every removed key")


def run(args: argparse.Namespace) -> int:
    from closecast.control.locks import LeaseTimeoutError
    from closecast.outputs.retention import RunInProgressError, collect
    from closecast.outputs.retention_policy import RetentionPolicy
    from closecast.storage import StorageError, open_storage

    try:
        policy = RetentionPolicy(args.keep_versions, args.manifest_days)
        storage = open_storage(args.storage, credentials_block=args.credentials_block)
    except (ValueError, StorageError) as exc:
        print(f"closecast gc: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    tickers = [t.strip() for t in args.tickers.split(",")] if args.tickers else None
    as_of = args.as_of or datetime.now(UTC).date()
    try:
        result = collect(
            storage,
            as_of=as_of,
            policy=policy,
            tickers=tickers,
            dry_run=args.dry_run,
            lease_wait=timedelta(seconds=args.lease_wait_seconds),
        )
    except (RunInProgressError, LeaseTimeoutError) as exc:
        print(f"closecast gc: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.verbose:
        for key in [*result.versions, *result.run_objects]:
            print(key)
    print(f"{storage.describe()}: {result.summary()} (as of {as_of}; {policy})")
    return EXIT_OK
