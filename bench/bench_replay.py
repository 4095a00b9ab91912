"""Cold and warm days of a replay: per-day and per-ticker seconds, start-up shown apart.

Replays the last N trading days of the shipped sample for a watchlist through the real
daily flow (Prefect's ephemeral API, local storage in a temporary directory). The first day
retrains every ticker (cold: backtest fit + refit on the whole history); the following days
fine-tune on the one new day, score and forecast (warm). Prints each day's wall time, each
ticker's model seconds (load, decide, train, register, forecast) and mode, then the warm/cold
ratio per ticker.

    .venv/bin/python bench/bench_replay.py --days 6 --preset default
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=6)
    parser.add_argument("--to", type=date.fromisoformat, default=date(2020, 12, 11))
    parser.add_argument("--preset", default="default")
    parser.add_argument("--tickers", default="AAPL,GOOG,QQQ,BTC-USD")
    parser.add_argument("--chunk-size", type=int, default=100)
    args = parser.parse_args()

    began = time.perf_counter()
    from closecast.commands.replay import replay_days
    from closecast.outputs import catalog
    from closecast.pipeline.run_tickers import select
    from closecast.pipeline.settings import RunSettings
    from closecast.storage import open_storage
    from closecast.storage.io import read_parquet
    from flows.daily_forecast import daily_forecast

    imports = time.perf_counter() - began
    tickers = args.tickers.split(",")
    selection = select(None, tickers)
    days = replay_days(list(selection.items), None, args.to, args.days)
    per_ticker: dict[str, dict[str, list[float]]] = {
        t: {"cold": [], "warm": [], "cold_train": [], "warm_train": []} for t in tickers
    }
    with tempfile.TemporaryDirectory() as root:
        print(f"imports {imports:.1f}s; replaying {days[0]}..{days[-1]} ({len(days)} days)")
        print(f"{'day':>10} {'wall_s':>7} {'model_s':>8} {'other_s':>8}  per ticker (mode seconds)")
        for number, day in enumerate(days):
            started = time.perf_counter()
            settings = RunSettings(
                tickers=tickers,
                storage=root,
                as_of=day,
                preset=args.preset,
                chunk_size=args.chunk_size,
            )
            state = daily_forecast(settings, return_state=True)
            wall = time.perf_counter() - started
            scope = catalog.RunScope(day, selection.name)
            rows = read_parquet(open_storage(root), catalog.METRICS.key(scope)).to_pylist()
            model = sum(r["model_seconds"] or 0 for r in rows)
            cells = []
            for r in rows:
                kind = "cold" if r["mode"] == "retrain" else "warm"
                per_ticker[r["ticker"]][kind].append(r["model_seconds"] or 0.0)
                per_ticker[r["ticker"]][f"{kind}_train"].append(r["train_seconds"] or 0.0)
                cells.append(
                    f"{r['ticker']} {r['mode']} {r['model_seconds']:.2f} "
                    f"(train {r['train_seconds']:.2f})"
                )
            label = " (includes Prefect/TensorFlow start-up)" if number == 0 else ""
            print(
                f"{day!s:>10} {wall:>7.1f} {model:>8.1f} {wall - model:>8.1f}  "
                f"{'; '.join(cells)}{label}  [{state.name}]"
            )
    print()
    print("model = load, decide, train, register, forecast; train = the training itself")
    print(
        f"{'ticker':>8} {'cold_model_s':>13} {'warm_model_s':>13} {'ratio':>7} "
        f"{'cold_train_s':>13} {'warm_train_s':>13} {'ratio':>7}"
    )
    for ticker, t in per_ticker.items():
        if t["cold"] and t["warm"]:
            cold, warm = statistics.mean(t["cold"]), statistics.median(t["warm"])
            cold_t, warm_t = statistics.mean(t["cold_train"]), statistics.median(t["warm_train"])
            print(
                f"{ticker:>8} {cold:>13.2f} {warm:>13.2f} {warm / cold:>7.1%} "
                f"{cold_t:>13.2f} {warm_t:>13.2f} {warm_t / max(cold_t, 1e-9):>7.1%}"
            )


if __name__ == "__main__":
    main()
