"""Watchlist scale: today's per-ticker path against the batched path (lstm_model.batch).

Usage (from the repo root)::

    .venv/bin/python bench/bench_scale.py                       # 500 tickers, 30 per-ticker
    .venv/bin/python bench/bench_scale.py --tickers 100 --baseline 10
    .venv/bin/python bench/bench_scale.py --tickers 40 --rounds 6    # RSS over repeated rounds

Synthesises ``--tickers`` realistic price series by block-bootstrapping (20-day blocks) the
daily log returns of the shipped histories (``closecast/sample_data`` and ``--data``), then
measures, each in its own process (so peak RSS is the run's own):

* **cold run**, every ticker retrained as the pipeline does: a backtest fit on the prices
  before the held-out test period (validation slice, early stopping, shrinkage gain), scored
  one step ahead on the test period, then a refit on the whole history for the backtest's
  best epoch, and the next-day forecast;
* **warm day**, one new trading day: every refit model fine-tuned on it (5 epochs, learning
  rate 1e-4, as the pipeline's defaults), re-scored on the test period and forecast;
* per-phase seconds (train, evaluate, forecast; and on a sample of tickers, the fetch into the
  Parquet price store, saving the model, the predictions Parquet and the plot into a
  temporary local storage root);
* peak RSS of the batched cold run for ``--tickers`` tickers and for 4;
* U2 of both paths on the shipped histories themselves (same seeds).

Today's path is measured on ``--baseline`` tickers only and extrapolated per ticker (the
output says so). Prints a Markdown table and exits 0 when the issue-10 goals hold: cold run
at least 8x faster, warm day under 60 s, RSS ratio at most 1.5, U2 within 0.002.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from closecast.inputs.yahoo_csv import read_yahoo_csv  # noqa: E402
from lstm_model import metrics  # noqa: E402
from lstm_model.config import ModelConfig, get_preset  # noqa: E402
from lstm_model.data import price_series, split_by_date  # noqa: E402

BLOCK_DAYS = 20
FINETUNE_EPOCHS = 5  # the pipeline's RunSettings defaults
FINETUNE_LR = 1e-4
GOAL_SPEEDUP, GOAL_WARM_SECONDS, GOAL_RSS_RATIO, GOAL_U2 = 8.0, 60.0, 1.5, 0.002


# ---------------------------------------------------------------------- data
def shipped_histories(extra: Path | None) -> dict[str, pd.Series]:
    """Adjusted closes of the shipped CSVs (sample data, plus ``extra`` if given)."""
    dirs = [REPO / "closecast" / "sample_data"] + ([extra] if extra else [])
    series: dict[str, pd.Series] = {}
    for directory in dirs:
        for path in sorted(directory.glob("*.csv")):
            series.setdefault(path.stem, price_series(read_yahoo_csv(path)))
    return series


def synthesise(
    histories: dict[str, pd.Series], n: int, days: int, seed: int, end: str = "2020-12-11"
) -> list[pd.Series]:
    """``n`` series of ``days + 1`` business days ending on ``end``, each the 20-day-block
    bootstrap of one shipped history's log returns (round-robin), from a random starting
    price."""
    rng = np.random.default_rng(seed)
    returns = [np.diff(np.log(s.to_numpy())) for s in histories.values()]
    index = pd.bdate_range(end=end, periods=days + 1, name="date")
    out = []
    for i in range(n):
        source = returns[i % len(returns)]
        starts = rng.integers(0, len(source) - BLOCK_DAYS, size=days // BLOCK_DAYS + 1)
        path = np.concatenate([source[s : s + BLOCK_DAYS] for s in starts])[:days]
        prices = rng.uniform(10, 500) * np.exp(np.concatenate([[0.0], np.cumsum(path)]))
        out.append(pd.Series(prices, index=index, name=f"SYN{i:04d}"))
    return out


def u2_of(predicted: pd.Series, prices: pd.Series) -> float:
    idx = predicted.index
    return metrics.u2(
        prices.loc[idx].to_numpy(), predicted.to_numpy(), prices.shift(1).loc[idx].to_numpy()
    )


# ---------------------------------------------------------------------- the two paths
def per_ticker_cold(series: list[pd.Series], config: ModelConfig) -> tuple[dict, list]:
    """Today's path: one Forecaster.fit / refit per ticker, released between tickers."""
    from lstm_model.forecaster import Forecaster
    from lstm_model.model import release_tensorflow_state

    phases = dict.fromkeys(("train", "evaluate", "forecast"), 0.0)
    models, u2s = [], []
    for prices in series:
        train, test = split_by_date(prices, config.test_size)
        t0 = time.perf_counter()
        backtest = Forecaster.fit(train, config)
        t1 = time.perf_counter()
        u2s.append(u2_of(backtest.predict_one_step(prices, test.index[0]), prices))
        t2 = time.perf_counter()
        refit = Forecaster.refit(prices, backtest)
        t3 = time.perf_counter()
        refit.forecast_next(prices)
        t4 = time.perf_counter()
        phases["train"] += (t1 - t0) + (t3 - t2)
        phases["evaluate"] += t2 - t1
        phases["forecast"] += t4 - t3
        models.append(refit)
        release_tensorflow_state()
    return phases, [models, u2s]


def batched_cold(
    series: list[pd.Series], config: ModelConfig, group_size: int
) -> tuple[dict, list]:
    from lstm_model import batch

    splits = [split_by_date(p, config.test_size) for p in series]
    t0 = time.perf_counter()
    backtests = batch.fit_many([train for train, _ in splits], config, group_size=group_size)
    t1 = time.perf_counter()
    starts = [test.index[0] for _, test in splits]
    predicted = batch.predict_one_step_many(backtests, series, starts)
    u2s = [u2_of(p, s) for p, s in zip(predicted, series, strict=True)]
    t2 = time.perf_counter()
    refits = batch.refit_many(series, backtests, group_size=group_size)
    t3 = time.perf_counter()
    batch.forecast_next_many(refits, series)
    t4 = time.perf_counter()
    phases = {"train": (t1 - t0) + (t3 - t2), "evaluate": t2 - t1, "forecast": t4 - t3}
    return phases, [refits, u2s]


def warm_day(models: list, series: list[pd.Series], config: ModelConfig, batched: bool) -> dict:
    """One new day per ticker: fine-tune on it, score on the test period, forecast."""
    from lstm_model import batch
    from lstm_model.model import release_tensorflow_state

    rng = np.random.default_rng(1)
    grown, new_days = [], []
    for prices in series:
        day = prices.index[-1] + pd.offsets.BDay(1)
        move = float(np.exp(rng.normal(0.0, 0.015)))
        grown.append(pd.concat([prices, pd.Series([prices.iloc[-1] * move], index=[day])]))
        new_days.append(day)
    phases = dict.fromkeys(("train", "evaluate", "forecast"), 0.0)
    # score on the days after the refit's data: the new day (no leakage)
    if batched:
        t0 = time.perf_counter()
        tuned = batch.fine_tune_many(
            models, grown, new_days, epochs=FINETUNE_EPOCHS, learning_rate=FINETUNE_LR
        )
        t1 = time.perf_counter()
        batch.predict_one_step_many(models, grown, new_days)
        t2 = time.perf_counter()
        batch.forecast_next_many(tuned, grown)
        t3 = time.perf_counter()
        return {"train": t1 - t0, "evaluate": t2 - t1, "forecast": t3 - t2}
    for model, prices, day in zip(models, grown, new_days, strict=True):
        t0 = time.perf_counter()
        tuned = model.fine_tune(prices, day, epochs=FINETUNE_EPOCHS, learning_rate=FINETUNE_LR)
        t1 = time.perf_counter()
        model.predict_one_step(prices, day)
        t2 = time.perf_counter()
        tuned.forecast_next(prices)
        t3 = time.perf_counter()
        phases["train"] += t1 - t0
        phases["evaluate"] += t2 - t1
        phases["forecast"] += t3 - t2
        release_tensorflow_state()
    return phases


def _write_yahoo_csv(path: Path, prices: pd.Series) -> None:
    frame = pd.DataFrame(
        {
            "Date": prices.index.strftime("%Y-%m-%d"),
            "Open": prices.to_numpy(),
            "High": prices.to_numpy(),
            "Low": prices.to_numpy(),
            "Close": prices.to_numpy(),
            "Adj Close": prices.to_numpy(),
            "Volume": 1000,
        }
    )
    frame.to_csv(path, index=False)


def publish_sample(models: list, series: list[pd.Series], config: ModelConfig) -> dict:
    """Seconds per ticker, on the given sample, for the pipeline's I/O around training: the
    fetch (a Yahoo CSV read, validated and merged into the Parquet price store), saving the
    model, the predictions Parquet and the per-ticker plot (the pipeline's two-panel figure),
    all into a temporary local storage root."""
    from closecast.inputs.watchlist import WatchItem
    from closecast.outputs.plots import plot_ticker
    from closecast.pipeline.fetch import fetch_and_store
    from closecast.sources import CsvDirSource
    from closecast.storage import open_storage
    from closecast.storage.io import write_figure, write_parquet

    totals = dict.fromkeys(("fetch", "save model", "parquet", "plot"), 0.0)
    with tempfile.TemporaryDirectory() as root:
        storage = open_storage(root)
        csv_dir = Path(root) / "csv"
        csv_dir.mkdir()
        for prices in series:
            _write_yahoo_csv(csv_dir / f"{prices.name}.csv", prices)
        source = CsvDirSource(str(csv_dir))
        for model, prices in zip(models, series, strict=True):
            _, test = split_by_date(prices, config.test_size)
            tf = time.perf_counter()
            fetch_and_store(
                WatchItem(str(prices.name), "stock"), prices.index[-1].date(), storage, source
            )
            t0 = time.perf_counter()
            model.save(Path(root) / "models" / str(prices.name))
            t1 = time.perf_counter()
            predicted = model.predict_one_step(prices, test.index[0])
            frame = pd.DataFrame(
                {
                    "date": predicted.index.date,
                    "actual": prices.loc[predicted.index].to_numpy(),
                    "predicted": predicted.to_numpy(),
                    "naive": prices.shift(1).loc[predicted.index].to_numpy(),
                }
            )
            t2 = time.perf_counter()
            write_parquet(storage, f"predictions/{prices.name}.parquet", frame)
            t3 = time.perf_counter()
            figure = plot_ticker(frame, None, title=str(prices.name))
            write_figure(storage, f"plots/{prices.name}.png", figure)
            t4 = time.perf_counter()
            totals["fetch"] += t0 - tf
            totals["save model"] += t1 - t0
            totals["parquet"] += t3 - t2
            totals["plot"] += t4 - t3
    return {k: v / len(models) for k, v in totals.items()}


def repeated_rounds(args: argparse.Namespace) -> None:
    """Resident memory after each of ``--rounds`` batched rounds (fit, refit, fine-tune) of
    ``--tickers`` new tickers in this one process, as a long-lived worker runs them."""
    from lstm_model import batch

    config = get_preset(args.preset)
    histories = shipped_histories(args.data)
    page = os.sysconf("SC_PAGE_SIZE")
    for round_ in range(args.rounds):
        series = synthesise(histories, args.tickers, args.days, seed=args.seed + round_)
        trains = [split_by_date(s, config.test_size)[0] for s in series]
        fits = batch.fit_many(trains, config, group_size=args.group_size)
        refits = batch.refit_many(series, fits, group_size=args.group_size)
        batch.fine_tune_many(
            refits,
            series,
            [s.index[-1] for s in series],
            epochs=FINETUNE_EPOCHS,
            learning_rate=FINETUNE_LR,
            group_size=args.group_size,
        )
        rss = int(Path("/proc/self/statm").read_text().split()[1]) * page / 2**20
        print(f"round {round_ + 1}: {args.tickers * (round_ + 1)} tickers, RSS {rss:.0f} MB")


# ---------------------------------------------------------------------- workers
def worker(args: argparse.Namespace) -> dict:
    """One measured run in this process; returns a JSON-able dict."""
    config = get_preset(args.preset)
    histories = shipped_histories(args.data)
    if args.worker == "agreement":
        from lstm_model import batch
        from lstm_model.forecaster import Forecaster

        names = list(histories)
        series = [histories[n] for n in names]
        splits = [split_by_date(s, config.test_size) for s in series]
        starts = [test.index[0] for _, test in splits]
        many = batch.fit_many([train for train, _ in splits], config)
        rows = []
        for name, prices, (train, _), start, group in zip(
            names, series, splits, starts, many, strict=True
        ):
            alone = Forecaster.fit(train, config)
            (grouped,) = batch.predict_one_step_many([group], [prices], [start])
            rows.append(
                {
                    "ticker": name,
                    "u2_per_ticker": u2_of(alone.predict_one_step(prices, start), prices),
                    "u2_batched": u2_of(grouped, prices),
                    "epochs": [alone.meta["epochs_run"], group.meta["epochs_run"]],
                }
            )
        return {"rows": rows}
    series = synthesise(histories, args.tickers, args.days, seed=args.seed)
    started = time.perf_counter()
    if args.worker == "per-ticker":
        cold, (models, u2s) = per_ticker_cold(series, config)
    else:
        cold, (models, u2s) = batched_cold(series, config, args.group_size)
    cold_wall = time.perf_counter() - started
    result = {"n": len(series), "cold": cold, "cold_wall": cold_wall, "u2_median": None}
    result["u2_median"] = float(np.median(u2s))
    result["u2s"] = [float(u) for u in u2s]
    if not args.cold_only:
        started = time.perf_counter()
        result["warm"] = warm_day(models, series, config, batched=args.worker == "batched")
        result["warm_wall"] = time.perf_counter() - started
        sample = min(len(series), args.publish_sample)
        result["publish"] = publish_sample(models[:sample], series[:sample], config)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def run_worker(kind: str, tickers: int, args: argparse.Namespace, cold_only: bool = False) -> dict:
    command = [
        sys.executable,
        __file__,
        "--worker",
        kind,
        "--tickers",
        str(tickers),
        "--preset",
        args.preset,
        "--days",
        str(args.days),
        "--group-size",
        str(args.group_size),
        "--seed",
        str(args.seed),
        "--publish-sample",
        str(args.publish_sample),
    ]
    if args.data:
        command += ["--data", str(args.data)]
    if cold_only:
        command.append("--cold-only")
    print(f"# running {kind} on {tickers} tickers ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------------- report
def machine_facts() -> str:
    import tensorflow as tf

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{platform.node()} | nproc {os.cpu_count()} | RAM {mem:.0f} GiB | load avg {load} | "
        f"Python {platform.python_version()} | TensorFlow {tf.__version__}"
    )


def report(args: argparse.Namespace, base: dict, many: dict, small: dict, agree: dict) -> bool:
    n = args.tickers
    per = {k: v / base["n"] for k, v in base["cold"].items()}
    per_warm = {k: v / base["n"] for k, v in base["warm"].items()}
    base_cold = base["cold_wall"] / base["n"] * n
    base_warm = base["warm_wall"] / base["n"] * n
    speedup = base_cold / many["cold_wall"]
    rss_ratio = many["peak_rss_mb"] / small["peak_rss_mb"]
    diffs = [abs(r["u2_per_ticker"] - r["u2_batched"]) for r in agree["rows"]]
    # the per-ticker run's series are the first of the batched run's (same synthesis seed)
    synthetic = [abs(a - b) for a, b in zip(base["u2s"], many["u2s"], strict=False)]
    print(f"# {machine_facts()}")
    print(
        f"# preset {args.preset}, {n} synthetic series of {args.days} days, group size "
        f"{args.group_size}; per-ticker path measured on {base['n']} of them and "
        f"extrapolated x{n / base['n']:.1f} (marked ~)"
    )
    print()
    print("| measure | per-ticker path (today) | batched path | goal | ok |")
    print("|---|---|---|---|---|")
    ok_cold = speedup >= GOAL_SPEEDUP
    print(
        f"| cold run, {n} tickers (s) | ~{base_cold:.0f} | {many['cold_wall']:.1f} "
        f"({speedup:.1f}x faster) | >= {GOAL_SPEEDUP:.0f}x, < 180 s | "
        f"{'yes' if ok_cold else 'NO'} |"
    )
    for phase in ("train", "evaluate", "forecast"):
        print(f"| . cold {phase} (s) | ~{per[phase] * n:.1f} | {many['cold'][phase]:.1f} | | |")
    ok_warm = many["warm_wall"] < GOAL_WARM_SECONDS
    print(
        f"| warm day, {n} tickers (s) | ~{base_warm:.0f} | {many['warm_wall']:.1f} | "
        f"< {GOAL_WARM_SECONDS:.0f} s | {'yes' if ok_warm else 'NO'} |"
    )
    for phase in ("train", "evaluate", "forecast"):
        print(
            f"| . warm {phase} (s) | ~{per_warm[phase] * n:.1f} | {many['warm'][phase]:.1f} | | |"
        )
    for phase in ("fetch", "save model", "parquet", "plot"):
        print(
            f"| . publish: {phase}, {n} tickers (s, from {args.publish_sample}) | "
            f"~{base['publish'][phase] * n:.1f} | ~{many['publish'][phase] * n:.1f} | | |"
        )
    ok_rss = rss_ratio <= GOAL_RSS_RATIO
    print(
        f"| peak RSS, {n} vs 4 tickers (MB) | {base['peak_rss_mb']:.0f} ({base['n']} tickers) | "
        f"{many['peak_rss_mb']:.0f} vs {small['peak_rss_mb']:.0f} ({rss_ratio:.2f}x) | "
        f"<= {GOAL_RSS_RATIO}x | {'yes' if ok_rss else 'NO'} |"
    )
    ok_u2 = max(diffs) <= GOAL_U2 and max(synthetic) <= GOAL_U2
    print(
        f"| max U2 difference, {len(diffs)} shipped histories | | {max(diffs):.5f} | "
        f"<= {GOAL_U2} | {'yes' if max(diffs) <= GOAL_U2 else 'NO'} |"
    )
    print(
        f"| max U2 difference, {len(synthetic)} synthetic series (cold backtest) | | "
        f"{max(synthetic):.5f} | <= {GOAL_U2} | {'yes' if max(synthetic) <= GOAL_U2 else 'NO'} |"
    )
    print(
        f"| median U2, synthetic (cold backtest) | {base['u2_median']:.4f} ({base['n']}) | "
        f"{many['u2_median']:.4f} ({n}) | | |"
    )
    print()
    print("| shipped history | U2 per-ticker | U2 batched | epochs (per-ticker, batched) |")
    print("|---|---|---|---|")
    for r in agree["rows"]:
        print(
            f"| {r['ticker']} | {r['u2_per_ticker']:.5f} | {r['u2_batched']:.5f} | "
            f"{r['epochs'][0]}, {r['epochs'][1]} |"
        )
    per_ticker_cost = many["cold_wall"] / n
    print()
    print(
        f"# per ticker: cold {per_ticker_cost:.3f} s batched vs {base['cold_wall'] / base['n']:.2f}"
        f" s today; warm {many['warm_wall'] / n:.3f} s vs {base['warm_wall'] / base['n']:.2f} s"
    )
    return ok_cold and ok_warm and ok_rss and ok_u2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickers", type=int, default=500)
    parser.add_argument("--baseline", type=int, default=30, help="tickers for today's path")
    parser.add_argument("--preset", default="default")
    parser.add_argument("--days", type=int, default=1300, help="trading days per series")
    parser.add_argument("--group-size", type=int, default=None, help="default: batch default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--publish-sample", type=int, default=20)
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="extra directory of Yahoo CSVs to bootstrap from and compare U2 on "
        "(default: none, only the shipped closecast/sample_data)",
    )
    parser.add_argument("--worker", choices=("per-ticker", "batched", "agreement"))
    parser.add_argument("--cold-only", action="store_true")
    parser.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="instead: RSS after each of this many batched rounds of --tickers in one process",
    )
    args = parser.parse_args(argv)
    if args.group_size is None:
        from lstm_model.batch import DEFAULT_GROUP_SIZE

        args.group_size = DEFAULT_GROUP_SIZE
    if args.rounds:
        repeated_rounds(args)
        return 0
    if args.worker:
        print(json.dumps(worker(args)))
        return 0
    agree = run_worker("agreement", 0, args)
    small = run_worker("batched", 4, args, cold_only=True)
    many = run_worker("batched", args.tickers, args)
    base = run_worker("per-ticker", args.baseline, args)
    return 0 if report(args, base, many, small, agree) else 1


if __name__ == "__main__":
    sys.exit(main())
