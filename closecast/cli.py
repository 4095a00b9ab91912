"""The ``closecast`` command line. Each subcommand lives in ``closecast.commands``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from closecast import __version__
from closecast.commands._help import HelpFormatter, format_epilog, make_subparser

# Subcommand name -> module in closecast.commands. Each module defines
# ``add_arguments(parser)``, ``run(args) -> int``, ``EXAMPLES`` and ``EXIT_CODES``; they are
# imported lazily so that ``closecast --help`` never pays for TensorFlow or Prefect.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "run": ("run", "Run the daily forecast flow once (fetch, train, evaluate, publish)."),
    "stack": (
        "stack",
        "Start, stop or inspect the local Prefect stack (server + UI, pool, deployments, worker).",
    ),
    "tutorial": ("tutorial", "Reproduce the LSTM tutorial on a Yahoo CSV and report honest RMSEs."),
}

EPILOG = format_epilog(
    ("closecast run --tickers AAPL,BTC-USD --as-of 2020-12-07", "closecast stack up"),
    {
        0: "success",
        1: "the command ran but failed (each command's --help says when)",
        2: "bad usage or configuration",
    },
)


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
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return int(args._module.run(args))


if __name__ == "__main__":
    sys.exit(main())
