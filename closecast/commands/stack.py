"""``closecast stack up|down|status``: the local Prefect stack (server + UI, work pool,
deployments, worker) on this machine. See docs/stack.md."""

from __future__ import annotations

import argparse
import json
import sys

EXIT_OK, EXIT_FAILED = 0, 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("up", "down", "status"), help="what to do")
    parser.add_argument(
        "--port", type=int, help="server/UI port (default: $CLOSECAST_STACK_PORT or 4200)"
    )
    parser.add_argument(
        "--host", help="server/UI address (default: $CLOSECAST_STACK_HOST or 127.0.0.1)"
    )
    parser.add_argument(
        "--storage",
        metavar="ROOT",
        help="storage root of the deployments: a directory or s3://bucket/prefix "
        "(default: $CLOSECAST_STORAGE or <project>/closecast-data)",
    )
    parser.add_argument(
        "--source", help="price source of the deployments (default: $CLOSECAST_SOURCE or sample)"
    )
    parser.add_argument(
        "--state-dir",
        metavar="DIR",
        help="Prefect home, logs and pids (default: <project>/.closecast-stack)",
    )
    parser.add_argument("--no-ui", action="store_true", help="serve the API without the UI")
    parser.add_argument(
        "--timeout", type=float, default=300, help="seconds to wait for each step (default 300)"
    )
    parser.add_argument("--json", action="store_true", help="print the status as JSON")


def _config(args: argparse.Namespace):
    from closecast.stack import StackConfig

    return StackConfig.from_environment(
        host=args.host,
        port=args.port,
        storage=args.storage,
        source=args.source,
        state_dir=args.state_dir,
        ui=False if args.no_ui else None,
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
    from closecast.stack import StackError, status, stop, up

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
    _parser = argparse.ArgumentParser(prog="closecast stack")
    add_arguments(_parser)
    sys.exit(run(_parser.parse_args()))
