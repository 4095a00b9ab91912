"""The ``closecast`` command line. Each subcommand lives in ``closecast.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from closecast import __version__
from closecast.commands._environment import (
    allow_slow_server_start,
    dask_address_problem,
    keep_prefect_offline,
    one_blas_thread,
    prefect_api_problem,
)
from closecast.commands._help import HelpFormatter, format_epilog, make_subparser

# Subcommand name -> module in closecast.commands. Each module defines
# ``add_arguments(parser)``, ``run(args) -> int``, ``EXAMPLES`` and ``EXIT_CODES``; they are
# imported lazily so that ``closecast --help`` never pays for TensorFlow or Prefect.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Run the daily forecast flow once (fetch, train, evaluate, publish)."),
    "replay": (
        "replay",
        "Run the daily flow for each trading day of a range, in order, as the schedule would.",
    ),
    "stack": (
        "stack",
        "Start, stop or inspect the local Prefect stack (server + UI, pool, deployments, worker).",
    ),
    "gc": (
        "gc",
        "Remove old model versions and old runs' ticker plots by the retention policy.",
    ),
    "tutorial": ("tutorial", "Reproduce the LSTM tutorial on a Yahoo CSV and report honest RMSEs."),
}

# Commands that run the flow: they need the Prefect API (or a temporary server) and may
# use a Dask scheduler.
RUN_COMMANDS = ("run", "replay")

EPILOG = format_epilog(
    ("closecast run --tickers AAPL,BTC-USD --as-of 2020-12-07", "closecast stack up"),
    {
        0: "success",
        1: "the command ran but failed (each command's --help says when)",
        2: "bad usage or configuration",
    },
)


class ExpectedFailureTracebackFilter(logging.Filter):
    """Drop the traceback from a task-run log record when the error is bad *input*.

    A ticker failing on an unknown symbol, an unreadable price file or too short a history
    is an expected outcome with a message that says it all (it is in the metrics row too);
    Prefect's engine still logs it with a full traceback. Programming errors keep theirs.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record; strip ``exc_info`` from expected per-ticker failures."""
        error = record.exc_info[1] if record.exc_info else None
        if error is not None and isinstance(error, _expected_failures()):
            record.exc_info = None
            record.exc_text = None
        return True


def _expected_failures() -> tuple[type[BaseException], ...]:
    # Imported on first use: `closecast --help` must stay cheap.
    from closecast.inputs.tickers import InvalidTickerError
    from closecast.inputs.validation import PriceValidationError
    from closecast.inputs.yahoo_csv import PriceFileError
    from closecast.sources.base import PriceSourceError
    from closecast.storage.errors import CorruptObjectError

    return (
        PriceSourceError,
        PriceValidationError,
        PriceFileError,
        InvalidTickerError,
        CorruptObjectError,
    )


def quiet_expected_task_tracebacks() -> None:
    """Log expected per-ticker failures without a traceback (idempotent).

    Prefect's task-run records all come from the ``prefect.task_runs`` logger, whose
    filters survive Prefect's own logging set-up (it adds, never clears, filters).
    """
    logger = logging.getLogger("prefect.task_runs")
    if not any(isinstance(f, ExpectedFailureTracebackFilter) for f in logger.filters):
        logger.addFilter(ExpectedFailureTracebackFilter())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="closecast",
        description="Scheduled per-ticker LSTM price forecasting with honest baselines.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"closecast {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        module = importlib.import_module(f"closecast.commands.{module_name}")
        sub = make_subparser(
            subparsers,
            name,
            help=help_text,
            examples=module.EXAMPLES,
            exit_codes=module.EXIT_CODES,
        )
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    one_blas_thread()  # before anything loads NumPy (building the parser does)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    keep_prefect_offline()
    if args.command in RUN_COMMANDS:
        allow_slow_server_start()
        problems = [
            problem
            for problem in (
                prefect_api_problem(),
                dask_address_problem(args.dask_address) if args.dask_address else None,
            )
            if problem
        ]
        for problem in problems:
            print(f"closecast {args.command}: {problem}", file=sys.stderr)
        if problems:
            return 2
    if args.command == "run":
        quiet_expected_task_tracebacks()
    return int(args._module.run(args))


if __name__ == "__main__":
    sys.exit(main())
