"""``closecast replay``: run the daily flow for each trading day of a range, in order.

Each day is its own flow run with its own outputs, exactly as the schedule would have made
it, so afterwards the live record (served forecasts scored on the prices that followed) is
there to read.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from datetime import date, timedelta
from typing import TYPE_CHECKING

from closecast.commands._temporary_server import TemporaryServerError, prefect_api_for_this_command
from closecast.commands.run import (
    EXIT_CODES as RUN_EXIT_CODES,
)
from closecast.commands.run import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_TICKER_FAILED,
    add_run_options,
    check_configuration,
    prepare_flow,
    settings_from_args,
)
from closecast.inputs.calendars import is_trading_day
from closecast.inputs.watchlist import WatchItem, split_tickers

if TYPE_CHECKING:
    from closecast.pipeline.run_tickers import RunTickers
    from closecast.pipeline.settings import RunSettings

MAX_REPLAY_DAYS = 3660
EXIT_CODES = RUN_EXIT_CODES | {
    1: "some replayed day had a failed ticker (the other days still ran; the last line lists them)"
}
EXAMPLES = (
    "closecast replay --days 10 --tickers AAPL --preset fast",
    "closecast replay --from 2020-11-02 --to 2020-12-11 --watchlist my-watchlist.yaml",
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--from",
        dest="start",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="first day to replay (or use --days)",
    )
    parser.add_argument(
        "--to",
        dest="end",
        type=date.fromisoformat,
        metavar="YYYY-MM-DD",
        help="last day to replay (default: the source's current date)",
    )
    parser.add_argument(
        "--days",
        type=int,
        metavar="N",
        help="replay the last N days on which any ticker of the watchlist trades, up to --to",
    )
    parser.add_argument(
        "--plot-every-day",
        action="store_true",
        help="draw each ticker's plot on every replayed day, not only on the last one (whose "
        "plot shows the whole live record); the summary plot is drawn every day",
    )
    add_run_options(parser, exclude=("as_of",))


def replay_days(items: list[WatchItem], start: date | None, end: date, days: int | None):
    """The days of ``[start, end]`` (or the last ``days`` of them) on which any ticker's
    market trades, in order."""
    trades = [
        day
        for day in _calendar_days(start or end - timedelta(days=(days or 1) * 2 + 10), end)
        if any(is_trading_day(item.asset_class, day) for item in items)
    ]
    return trades[-days:] if days else trades


def keep_startup_out_of_garbage_collection() -> None:
    """After the first day, leave what the process has built so far (Prefect, TensorFlow,
    pandas, their caches) out of later garbage collections.

    Each day's training releases TensorFlow's state with full collections, which walk every
    object of the process: millions, nearly all of them from start-up and alive until the
    end. Frozen, they are skipped; each later day's collection walks that day's objects only.
    """
    gc.collect()
    gc.freeze()


def _calendar_days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=i) for i in range((end - start).days + 1)]


def _check_range(args: argparse.Namespace, today: date) -> list[str]:
    problems = []
    if (args.start is None) == (args.days is None):
        problems.append("give exactly one of --from and --days")
    if args.days is not None and not 1 <= args.days <= MAX_REPLAY_DAYS:
        problems.append(f"--days: must be 1..{MAX_REPLAY_DAYS}, got {args.days}")
    end = args.end or today
    if end > today:
        problems.append(f"--to: {end} is after the {args.source} source's current date {today}")
    if args.start is not None and args.start > end:
        problems.append(f"--from: {args.start} is after --to {end}")
    if args.start is not None and (end - args.start).days > MAX_REPLAY_DAYS:
        problems.append(f"--from: more than {MAX_REPLAY_DAYS} days before --to")
    return problems


def run(args: argparse.Namespace) -> int:
    problems = check_configuration(args)
    if not problems:
        from closecast.pipeline.run_tickers import select
        from closecast.sources import get_source

        selection = select(args.watchlist, split_tickers(args.tickers), args.watchlist_name)
        today = get_source(args.source).today(selection.symbols)
        problems = _check_range(args, today)
    if problems:
        for problem in problems:
            print(f"closecast replay: {problem}", file=sys.stderr)
        return EXIT_CONFIG

    days = replay_days(list(selection.items), args.start, args.end or today, args.days)
    if not days:
        print("closecast replay: no trading day in that range", file=sys.stderr)
        return EXIT_CONFIG

    settings = settings_from_args(args)
    with prefect_api_for_this_command() as server:
        try:
            prepare_flow(settings, server)
        except TemporaryServerError as exc:
            print(f"closecast replay: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        return _replay(days, selection, settings, args.storage, args.plot_every_day)


def _replay(
    days: list[date],
    selection: RunTickers,
    settings: RunSettings,
    storage: str,
    plot_every_day: bool = False,
) -> int:
    """Each day its own flow run, in order, in this process. Each ticker's plot is drawn on
    the last day only, unless ``plot_every_day``: the plots were a quarter of a replayed
    day's work, and the last one shows every earlier day's forecasts too. The Prefect UI's
    artifacts (metrics table, summary, progress) are published on the last day only: an
    earlier day's would be superseded at once, and they cost about a tenth of a warm day
    (API calls, the summary's thumbnail)."""
    from closecast.control.interrupts import (
        EXIT_TERMINATED,
        interrupt_main_thread_on_sigterm,
        stopped_by_signal,
    )
    from flows.daily_forecast import daily_forecast
    from lstm_model.interrupt import stop_requested

    interrupt_main_thread_on_sigterm()
    print(
        f"Replaying {len(days)} day(s) {days[0]}..{days[-1]} for watchlist {selection.name} "
        f"({', '.join(selection.symbols)}) into {storage}",
        flush=True,
    )
    failed_days = []
    began = time.perf_counter()
    for number, day in enumerate(days, start=1):
        started = time.perf_counter()
        try:
            last = number == len(days)
            plots = {} if plot_every_day or last else {"ticker_plots": 0}
            shown = {} if last else {"ui_artifacts": False}
            day_settings = settings.model_copy(update={"as_of": day, **plots, **shown})
            state = daily_forecast(day_settings, return_state=True)
        except BaseException as exc:
            if not stopped_by_signal(exc):
                raise
            print(f"closecast replay: stopped during {day}; earlier days are complete",
                  file=sys.stderr)  # fmt: skip
            return EXIT_TERMINATED
        if stop_requested():
            print(f"closecast replay: stopped during {day}; earlier days are complete",
                  file=sys.stderr)  # fmt: skip
            return EXIT_TERMINATED
        if number == 1:
            keep_startup_out_of_garbage_collection()
        if not state.is_completed():
            failed_days.append(day)
        print(
            f"[{number}/{len(days)}] {day} {state.name}: {state.message or ''} "
            f"({time.perf_counter() - started:.1f}s)",
            flush=True,
        )
    print(
        f"Replayed {len(days)} day(s) in {time.perf_counter() - began:.0f}s; "
        f"{len(failed_days)} with failures"
        + (f": {', '.join(map(str, failed_days))}" if failed_days else "")
    )
    return EXIT_TICKER_FAILED if failed_days else EXIT_OK
