"""Global models against the per-ticker ones, per ticker, on one cut date for every model.

Usage (from the repo root)::

    .venv/bin/python bench/bench_global.py                          # shipped histories
    .venv/bin/python bench/bench_global.py --data DIR --cut 2019-12-16 --lstm-preset fast

Every Yahoo CSV in ``--data`` (default ``closecast/sample_data``) is one ticker. One cut date
(``--cut``; default the global hold-out start :func:`lstm_model.global_models.holdout_start`
of the histories for a 250-day test) splits every ticker: each model is fit once on the prices
dated before the cut (refit-free) and predicts one step ahead on every day from the cut to the
end of the data:

* ``drift``, the per-ticker ``lstm`` (``--lstm-preset``, trained in groups by
  :func:`lstm_model.batch.fit_many`), ``global_ar`` and ``global_lstm`` (fit on every
  history with enough days before the cut, whether or not it is scored);
* ``global_lstm+INPUTS`` for each ``--variants`` entry (``market``, ``volume``, ``weekday``,
  or several joined by ``+``): the optional inputs, each measured against the plain one.

A ticker is scored when it has ``--min-train`` prices before the cut and ``--min-test``
after it. Per model and ticker: U2 against naive and the one-sided Diebold-Mariano p-value
(:func:`lstm_model.significance.diebold_mariano`, "better" when p < 0.025, "worse" when
p > 0.975). Prints a Markdown summary (median and max U2, beats naive, DM evidence counts,
fit seconds) and, with ``--per-ticker``, every ticker's U2 per model; ``--json PATH`` writes
everything. Seconds depend on the load of the machine: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from closecast.inputs.yahoo_csv import read_yahoo_csv  # noqa: E402
from lstm_model import metrics  # noqa: E402
from lstm_model.baselines import DriftForecaster  # noqa: E402
from lstm_model.batch import fit_many, predict_one_step_many  # noqa: E402
from lstm_model.config import get_preset  # noqa: E402
from lstm_model.data import price_series  # noqa: E402
from lstm_model.global_lstm import GlobalLSTM, GlobalLSTMConfig  # noqa: E402
from lstm_model.significance import diebold_mariano, evidence  # noqa: E402

Predictions = dict[str, pd.Series]


@dataclass(frozen=True)
class Score:
    ticker: str
    model: str
    u2: float
    p_value: float
    verdict: str  # better, worse, unclear
    n: int


@dataclass(frozen=True)
class Summary:
    model: str
    tickers: int
    median_u2: float
    max_u2: float
    beats_naive: int
    better_with_evidence: int
    worse_with_evidence: int
    fit_seconds: float


def load_histories(folder: Path) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """Adjusted closes and volumes of every ``*.csv`` in ``folder`` (unreadable files and
    non-positive prices are skipped, as the validator would drop them)."""
    prices, volumes = {}, {}
    for path in sorted(folder.glob("*.csv")):
        try:
            frame = read_yahoo_csv(path)
            series = price_series(frame, "adj_close")
        except (ValueError, OSError) as error:
            print(f"skipped {path.name}: {error}", file=sys.stderr)
            continue
        series = series[series > 0]
        if len(series) < 3:
            continue
        volume = pd.Series(frame["volume"].to_numpy(dtype="float64"), index=frame["date"])
        volume = volume[~volume.index.duplicated()].reindex(series.index).fillna(0.0)
        prices[path.stem] = series
        volumes[path.stem] = volume
    return prices, volumes


def score(ticker: str, model: str, prices: pd.Series, predicted: pd.Series) -> Score:
    actual = prices.reindex(predicted.index).to_numpy()
    naive = prices.shift(1).reindex(predicted.index).to_numpy()
    values = predicted.to_numpy()
    result = diebold_mariano(actual, values, naive)
    return Score(
        ticker,
        model,
        metrics.u2(actual, values, naive),
        result.p_value,
        evidence(result),
        len(values),
    )


def drift(train: Mapping[str, pd.Series], full: Mapping[str, pd.Series], cut) -> Predictions:
    return {
        t: DriftForecaster.fit(train[t], get_preset("default")).predict_one_step(full[t], cut)
        for t in train
    }


def lstm(train, full, cut, preset: str) -> Predictions:
    tickers = list(train)
    models = fit_many([train[t] for t in tickers], get_preset(preset), return_exceptions=True)
    ok = [i for i, m in enumerate(models) if not isinstance(m, Exception)]
    predicted = predict_one_step_many(
        [models[i] for i in ok], [full[tickers[i]] for i in ok], [cut] * len(ok)
    )
    return {tickers[i]: p for i, p in zip(ok, predicted, strict=True)}


def global_ar(histories, cut) -> Predictions:
    from lstm_model.global_ar import GlobalARForecaster

    model = GlobalARForecaster.fit(histories, cut.date(), get_preset("default"))
    print(f"  global_ar: p = {model.lags}", file=sys.stderr)
    return {t: model.predict_one_step(t, s, cut) for t, s in histories.items() if _scorable(s, cut)}


def _scorable(prices: pd.Series, cut: pd.Timestamp, need: int = 22) -> bool:
    return (prices.index < cut).sum() >= need and (prices.index >= cut).any()


def global_lstm(
    histories, volumes, cut, inputs: tuple[str, ...], epochs: int, windows_per_epoch: int | None
) -> Predictions:
    config = GlobalLSTMConfig.like(
        get_preset("default"), inputs=inputs, epochs=epochs, windows_per_epoch=windows_per_epoch
    )
    model = GlobalLSTM.fit(histories, cut, config, volumes=volumes)
    print(
        f"  global_lstm{'+' if inputs else ''}{'+'.join(inputs)}: {model.meta['n_windows']} "
        f"windows ({config.windows_per_epoch} an epoch), {model.meta['epochs_run']} epochs "
        f"(best {model.meta['best_epoch']}), "
        f"median gain {model.meta['median_gain']:.3f}, {model.meta['fit_seconds']} s",
        file=sys.stderr,
    )
    warm_day(model, histories, volumes, cut)
    return model.predict_panel(histories, cut, volumes=volumes)


def warm_day(model: GlobalLSTM, histories, volumes, cut: pd.Timestamp) -> None:
    """Time what a warm day does with the global model: a refit on the first day after the
    cut, then every ticker's next-day forecast."""
    after = sorted({d for s in histories.values() for d in s.index[s.index >= cut][:1]})
    if not after:
        return
    next_cut = after[0] + pd.Timedelta(days=1)
    started = time.perf_counter()
    refit = model.refit(histories, next_cut, volumes=volumes)
    refit_seconds = time.perf_counter() - started
    upto = {t: s.loc[s.index < next_cut] for t, s in histories.items()}
    started = time.perf_counter()
    forecasts = refit.forecast_panel(
        upto, volumes={t: v.loc[v.index < next_cut] for t, v in volumes.items()}
    )
    print(
        f"  warm day: refit on {refit.meta['fine_tunes'][-1]['n_windows']} new windows "
        f"{refit_seconds:.1f} s, {len(forecasts)} forecasts {time.perf_counter() - started:.1f} s",
        file=sys.stderr,
    )


def summarise(model: str, scores: list[Score], seconds: float) -> Summary:
    u2 = np.array([s.u2 for s in scores])
    return Summary(
        model=model,
        tickers=len(scores),
        median_u2=float(np.nanmedian(u2)),
        max_u2=float(np.nanmax(u2)),
        beats_naive=int(np.sum(u2 < 1.0)),
        better_with_evidence=sum(s.verdict == "better" for s in scores),
        worse_with_evidence=sum(s.verdict == "worse" for s in scores),
        fit_seconds=round(seconds, 1),
    )


def default_cut(histories: Mapping[str, pd.Series], test: int) -> pd.Timestamp:
    from lstm_model.global_models import holdout_start

    return pd.Timestamp(holdout_start(histories, test))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO / "closecast" / "sample_data")
    parser.add_argument("--cut", type=pd.Timestamp, default=None)
    parser.add_argument("--test", type=int, default=250, help="test days for the default cut")
    parser.add_argument("--min-train", type=int, default=250)
    parser.add_argument("--min-test", type=int, default=60)
    parser.add_argument("--lstm-preset", default="default")
    parser.add_argument("--global-epochs", type=int, default=20)
    parser.add_argument(
        "--windows-per-epoch",
        type=lambda v: None if v == "none" else int(v),
        default=GlobalLSTMConfig().windows_per_epoch,
        help="global_lstm's training budget per epoch ('none': every window every epoch)",
    )
    parser.add_argument(
        "--models", default="drift,lstm,global_ar,global_lstm", help="comma-separated"
    )
    parser.add_argument("--variants", default="", help="e.g. market,volume,weekday")
    parser.add_argument("--per-ticker", action="store_true")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    histories, volumes = load_histories(args.data)
    cut = args.cut if args.cut is not None else default_cut(histories, args.test)
    scored = [
        t
        for t, s in histories.items()
        if (s.index < cut).sum() >= args.min_train and (s.index >= cut).sum() >= args.min_test
    ]
    train = {t: histories[t].loc[histories[t].index < cut] for t in scored}
    full = {t: histories[t] for t in scored}
    print(
        f"{len(histories)} histories in {args.data.name}/, cut {cut.date()}, {len(scored)} "
        f"scored (>= {args.min_train} prices before the cut, >= {args.min_test} from it)",
        file=sys.stderr,
    )
    runs: dict[str, Callable[[], Predictions]] = {
        "drift": lambda: drift(train, full, cut),
        "lstm": lambda: lstm(train, full, cut, args.lstm_preset),
        "global_ar": lambda: global_ar(histories, cut),
        "global_lstm": lambda: global_lstm(
            histories, volumes, cut, (), args.global_epochs, args.windows_per_epoch
        ),
    }
    for variant in filter(None, args.variants.split(",")):
        inputs = tuple(variant.split("+"))
        runs[f"global_lstm+{variant}"] = lambda inputs=inputs: global_lstm(
            histories, volumes, cut, inputs, args.global_epochs, args.windows_per_epoch
        )
    wanted = [m for m in args.models.split(",") if m] + [
        f"global_lstm+{v}" for v in filter(None, args.variants.split(","))
    ]
    scores: dict[str, list[Score]] = {}
    summaries: list[Summary] = []
    for model in wanted:
        started = time.perf_counter()
        predicted = runs[model]()
        seconds = time.perf_counter() - started
        scores[model] = [score(t, model, full[t], predicted[t]) for t in scored if t in predicted]
        summaries.append(summarise(model, scores[model], seconds))
        print(f"  {model}: {seconds:.1f} s", file=sys.stderr)

    print(f"\nCut {cut.date()}, {len(scored)} tickers scored; {machine()}\n")
    print(
        "| model | tickers | median U2 | max U2 | beats naive | better (DM) | worse (DM) "
        "| seconds |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in summaries:
        print(
            f"| {s.model} | {s.tickers} | {s.median_u2:.4f} | {s.max_u2:.4f} | {s.beats_naive} "
            f"| {s.better_with_evidence} | {s.worse_with_evidence} | {s.fit_seconds} |"
        )
    if args.per_ticker:
        print("\n| ticker | " + " | ".join(wanted) + " |")
        print("|---" * (len(wanted) + 1) + "|")
        by = {m: {s.ticker: s for s in scores[m]} for m in wanted}
        for t in scored:
            cells = [_cell(by[m].get(t)) for m in wanted]
            print(f"| {t} | " + " | ".join(cells) + " |")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "cut": str(cut.date()),
                    "data": str(args.data),
                    "machine": machine(),
                    "summary": [asdict(s) for s in summaries],
                    "scores": [asdict(s) for m in wanted for s in scores[m]],
                },
                indent=1,
            ),
            encoding="utf-8",
        )
    return 0


def _cell(s: Score | None) -> str:
    if s is None:
        return "-"
    mark = {"better": " (+)", "worse": " (-)"}.get(s.verdict, "")
    return f"{s.u2:.4f}{mark}"


def machine() -> str:
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.machine()}, {os.cpu_count()} CPUs, load average {load}"


if __name__ == "__main__":
    raise SystemExit(main())
