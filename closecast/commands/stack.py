"""``closecast stack up|down|status``: the local Prefect stack (server + UI, work pool,
deployments, worker) on this machine. See docs/stack.md."""

from __future__ import annotations

import argparse
import json
import sys

from closecast.commands._help import HelpFormatter, make_subparser

EXIT_OK, EXIT_FAILED = 0, 1
EXIT_CODES = {
    EXIT_OK: "done (status: the stack is running)",
    EXIT_FAILED: "the stack could not be started or stopped (status: it is not running)",
}
EXAMPLES = (
    "closecast stack up --port 4300",
    "closecast stack status --json",
)
# action -> (help, examples, exit codes)
ACTIONS: dict[str, tuple[str, tuple[str, ...], dict[int, str]]] = {
    "up": (
        "Start server + UI, work pool, deployments and worker; stop all of it on failure.",
        (
            "closecast stack up",
            "CLOSECAST_STORAGE=s3://closecast/prod closecast stack up --source yahoo",
        ),
        {EXIT_OK: "the stack is up and healthy", EXIT_FAILED: "it could not be started"},
    ),
    "down": (
        "Stop every process of the stack (flow runs and Dask workers included).",
        ("closecast stack down", "closecast stack down --state-dir /tmp/my-stack"),
        {EXIT_OK: "nothing of the stack runs any more", EXIT_FAILED: "it could not be stopped"},
    ),
    "status": (
        "Show pids, health, workers online and where the logs are.",
        ("closecast stack status", "closecast stack status --json --port 4300"),
        {EXIT_OK: "the stack is running", EXIT_FAILED: "it is not running"},
    ),
}


def _common_options() -> argparse.ArgumentParser:
    """Options every action takes: they say which stack (where it listens, where it lives)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--port", type=int, help="server/UI port (default: $CLOSECAST_STACK_PORT or 4200)"
    )
    common.add_argument(
        "--host", help="server/UI address (default: $CLOSECAST_STACK_HOST or 127.0.0.1)"
    )
    common.add_argument(
        "--storage",
        metavar="ROOT",
        help="storage root of the deployments: a directory or s3://bucket/prefix "
        "(default: $CLOSECAST_STORAGE or <project>/closecast-data)",
    )
    common.add_argument(
        "--source", help="price source of the deployments (default: $CLOSECAST_SOURCE or sample)"
    )
    common.add_argument(
        "--state-dir",
        metavar="DIR",
        help="Prefect home, logs and pids (default: $CLOSECAST_STACK_STATE_DIR or "
        "<project>/.closecast-stack)",
    )
    return common


def add_arguments(parser: argparse.ArgumentParser) -> None:
    common = _common_options()
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, (help_text, examples, exit_codes) in ACTIONS.items():
        sub = make_subparser(
            actions,
            name,
            help=help_text,
            examples=examples,
            exit_codes=exit_codes,
            parents=[common],
        )
        if name == "up":
            sub.add_argument("--no-ui", action="store_true", help="serve the API without the UI")
            sub.add_argument(
                "--timeout", type=float, default=300, help="seconds to wait for each step"
            )
        if name in ("up", "status"):
            sub.add_argument("--json", action="store_true", help="print the status as JSON")


def _config(args: argparse.Namespace):
    from closecast.control.stack import StackConfig

    return StackConfig.from_environment(
        host=args.host,
        port=args.port,
        storage=args.storage,
        source=args.source,
        state_dir=args.state_dir,
        ui=False if getattr(args, "no_ui", False) else None,
    )


def _print_status(info: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(info, indent=2))
        return
    if not info["running"]:
        print(f"closecast stack: not running ({info['state_dir']})")
        return
    print(f"closecast stack: {'healthy' if info['healthy'] else 'NOT healthy'}")
    print(f"  UI          {info['ui_url']}")
    print(f"  API         {info['api_url']}  (export PREFECT_API_URL={info['api_url']})")
    print(f"  server pid  {info['server_pid']}")
    print(f"  worker pid  {info['worker_pid']}  online: {', '.join(info['workers_online']) or '-'}")
    print(f"  processes   {info['processes']}")
    print(f"  logs        {info['state_dir']}/*.log")


def run(args: argparse.Namespace) -> int:
    from closecast.control.stack import StackError, status, stop, up

    try:
        config = _config(args)
        if args.action == "up":
            print(
                f"Starting the closecast stack on {config.ui_url} "
                f"(storage {config.storage}, source {config.source}) ...",
                flush=True,
            )
            state = up(config, timeout=args.timeout)
            for deployment in state.get("deployments", []):
                print(f"  deployment  daily-forecast/{deployment['name']}")
            _print_status(status(config), args.json)
            print(
                "\nTrigger a run:  PREFECT_API_URL="
                f"{config.api_url} prefect deployment run daily-forecast/stocks-daily"
                "\nStop:           closecast stack down"
            )
        elif args.action == "down":
            pids = stop(config)
            print(
                f"closecast stack: stopped {len(pids)} process(es)"
                + (f" ({', '.join(map(str, pids))})" if pids else "")
            )
        else:
            info = status(config)
            _print_status(info, args.json)
            return EXIT_OK if info["running"] else EXIT_FAILED
    except StackError as exc:
        print(f"closecast stack: {exc}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":  # python -m closecast.commands.stack up|down|status
    _parser = argparse.ArgumentParser(prog="closecast stack", formatter_class=HelpFormatter)
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
