"""The real daily-forecast flow under a Prefect test harness, day after day, into local
storage and into a real S3-protocol server on loopback, checked object by object."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image
from prefect.states import State

from closecast.cli import main
from closecast.inputs.calendars import next_trading_day
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow, PredictionRow, arrow_schema
from closecast.pipeline.settings import RunSettings, every_model
from closecast.pipeline.versions import VERSION_FILE, read_version_meta
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast

DAYS = [date(2020, 12, 8), date(2020, 12, 9), date(2020, 12, 10), date(2020, 12, 11)]
TICKERS = ["AAPL", "BTC-USD"]
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"


def run(root: str, as_of: date | None, tickers=TICKERS, **params):
    params.setdefault("models", MODELS)
    settings = RunSettings(
        tickers=tickers, source="sample", storage=root, as_of=as_of, preset="fast", **params
    )
    return daily_forecast(settings, return_state=True)


def read_table(storage, key: str) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(storage.read_bytes(key))).to_pandas()


def sha(storage, key: str) -> str:
    return hashlib.sha256(storage.read_bytes(key)).hexdigest()


def snapshot(storage) -> dict[str, str]:
    return {key: sha(storage, key) for key in storage.list_keys("")}


def assert_manifest_true(storage, scope: RunScope) -> dict:
    """A manifest lists every object of its scope, each exactly as stored."""
    manifest = json.loads(storage.read_bytes(catalog.MANIFEST.key(scope)))
    listed = {obj["key"] for obj in manifest["objects"]}
    for prefix in catalog.run_prefixes(scope):
        assert set(storage.list_keys(prefix)) - {catalog.MANIFEST.key(scope)} <= listed
    for obj in manifest["objects"]:
        data = storage.read_bytes(obj["key"])
        assert obj["size"] == len(data), obj["key"]
        assert obj["sha256"] == hashlib.sha256(data).hexdigest(), obj["key"]
    return manifest


def check_scope(
    storage, scope: RunScope, tickers: list[str], *, ticker_plots: bool = True
) -> pd.DataFrame:
    """Every object of the catalog for one scope, with contents that agree with each other
    (each ticker's plot among them unless ``ticker_plots`` is False)."""
    metrics_frame = read_table(storage, catalog.METRICS.key(scope))
    assert list(metrics_frame.columns) == arrow_schema(MetricsRow).names
    assert list(metrics_frame["ticker"]) == tickers
    assert (metrics_frame["status"] == "ok").all(), metrics_frame["error"].tolist()
    forecasts = read_table(storage, catalog.FORECASTS.key(scope)).set_index("ticker")
    for row in metrics_frame.itertuples():
        # The serving model has seen every price through the run date's last bar.
        assert row.trained_through == row.data_end <= scope.run_date
        predictions = read_table(storage, catalog.PREDICTIONS.key(scope, row.ticker))
        assert list(predictions.columns) == arrow_schema(PredictionRow).names
        # The bands hold the prediction, and the 95% band holds the 80% one.
        assert (predictions.lower_95 <= predictions.lower_80).all()
        assert (predictions.lower_80 <= predictions.predicted).all()
        assert (predictions.predicted <= predictions.upper_80).all()
        assert (predictions.upper_80 <= predictions.upper_95).all()
        inside = (predictions.lower_80 <= predictions.actual) & (
            predictions.actual <= predictions.upper_80
        )
        assert row.backtest_coverage_80 == pytest.approx(inside.mean())
        assert len(predictions) == row.backtest_n
        # The published backtest RMSE is the RMSE of the published backtest predictions,
        # and the backtest ends before the lineage's model was refit.
        err = predictions.actual - predictions.predicted
        assert row.backtest_rmse == pytest.approx(np.sqrt(np.mean(err**2)))
        np.testing.assert_allclose(predictions.naive.iloc[1:], predictions.actual.iloc[:-1])
        if ticker_plots:
            png = storage.read_bytes(catalog.TICKER_PLOTS.key(scope, row.ticker))
            assert Image.open(io.BytesIO(png)).size[0] > 200
        assert storage.exists(f"models/{row.ticker}/{row.model_version}/{VERSION_FILE}")
        forecast = forecasts.loc[row.ticker]
        asset = "crypto" if row.ticker.endswith("-USD") else "stock"
        assert forecast.target_date == next_trading_day(asset, row.data_end)
        assert forecast.model_version == row.model_version
        assert np.isfinite(forecast.forecast) and forecast.forecast > 0
        assert forecast.lower_95 < forecast.lower_80 < forecast.forecast < forecast.upper_80
        assert forecast.upper_80 < forecast.upper_95
    live_scores = read_table(storage, catalog.LIVE_SCORES.key(scope))
    assert set(live_scores["window"]) == {"20d", "60d", "lineage"}
    assert storage.read_bytes(catalog.SUMMARY_PLOT.key(scope)).startswith(b"\x89PNG")
    manifest = assert_manifest_true(storage, scope)
    assert set(manifest["tickers"]) == set(tickers)
    listed = {obj["key"] for obj in manifest["objects"]}
    for row in metrics_frame.itertuples():
        if row.mode in ("retrain", "finetune"):  # this run wrote a new model version
            version_files = set(storage.list_keys(f"models/{row.ticker}/{row.model_version}/"))
            assert VERSION_FILE in {k.rsplit("/", 1)[1] for k in version_files}
            assert version_files <= listed, version_files - listed
    assert {f"prices/ticker={t}/prices.parquet" for t in tickers} <= {
        obj["key"] for obj in manifest["state"]
    }
    return metrics_frame.set_index("ticker")


def assert_dm_recomputed(storage, scope: RunScope, hand_dm) -> int:
    """Every Diebold-Mariano number of the scope's metrics and model_scores tables equals
    the test recomputed here from the published predictions and ledgers (with
    ``horizon=step``); returns how many were checked."""
    checked = 0

    def same(published_stat, published_p, actual, predicted, naive, horizon=1) -> None:
        nonlocal checked
        stat, p = hand_dm(actual, predicted, naive, horizon)
        assert published_stat == pytest.approx(stat, rel=1e-9, abs=1e-12)
        assert published_p == pytest.approx(p, rel=1e-9, abs=1e-12)
        checked += 1

    metrics_frame = read_table(storage, catalog.METRICS.key(scope))
    for row in metrics_frame[metrics_frame["status"] == "ok"].itertuples():
        backtest = read_table(storage, catalog.PREDICTIONS.key(scope, row.ticker))
        same(row.backtest_dm_stat, row.backtest_dm_p, backtest.actual, backtest.predicted,
             backtest.naive)  # fmt: skip
        ledger = read_table(storage, catalog.served_key(row.ticker))
        lineage = ledger[
            (ledger.lineage == row.lineage) & (ledger.step == 1) & ledger.actual.notna()
            & (ledger.target_date <= row.data_end)
        ]  # fmt: skip
        assert len(lineage) == row.live_n_lineage
        if len(lineage) >= 3:
            same(row.live_dm_stat_lineage, row.live_dm_p_lineage, lineage.actual,
                 lineage.forecast, lineage.naive)  # fmt: skip
        else:
            assert pd.isna(row.live_dm_p_lineage)
    scores = read_table(storage, catalog.MODEL_SCORES.key(scope))
    for row in scores[scores["dm_p"].notna()].itertuples():
        if row.record == "backtest":
            if row.model != "lstm" or row.step != 1:
                continue  # baselines' and multi-step backtests are not published
            frame = read_table(storage, catalog.PREDICTIONS.key(scope, row.ticker))
            frame = frame.rename(columns={"date": "target_date", "predicted": "forecast"})
        else:
            ledger = read_table(storage, catalog.served_key(row.ticker, row.model))
            frame = ledger[
                (ledger.model == row.model) & (ledger.step == row.step) & ledger.actual.notna()
                & (ledger.target_date >= row.first_date) & (ledger.target_date <= row.last_date)
            ]  # fmt: skip
        assert len(frame) == row.n, (row.ticker, row.model, row.record, row.step)
        same(row.dm_stat, row.dm_p, frame.actual, frame.forecast, frame.naive, row.step)
    return checked


def price_on(storage, ticker: str, day: date) -> float:
    prices = read_table(storage, catalog.prices_key(ticker))
    return float(prices.loc[prices["date"] == day, "adj_close"].iloc[0])


@pytest.mark.usefixtures("prefect_harness")
@pytest.mark.slow  # a three-day replay
def test_replayed_days_serve_fresh_models_and_score_what_was_served(tmp_path, capsys) -> None:
    root = str(tmp_path / "store")
    days = DAYS[1:]  # a retrain, then two fine-tunes: each path of a day after a day
    began = datetime.now(UTC)
    code = main(
        ["replay", "--from", str(days[0]), "--to", str(days[-1]), "--tickers", ",".join(TICKERS),
         "--preset", "fast", "--storage", root, "--models", MODELS]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    # BTC-USD trades every day; AAPL on weekdays: three runs, one per day, with progress.
    assert "[3/3] 2020-12-11 Completed" in out
    storage = open_storage(root)

    frames = {
        day: check_scope(storage, RunScope(day, "adhoc"), TICKERS, ticker_plots=day == days[-1])
        for day in days
    }
    first = frames[days[0]]
    assert set(first["mode"]) == {"retrain"} and first["promoted"].all()
    assert (first["live_scored_now"] == 0).all()

    for previous, day in itertools.pairwise(days):
        today = frames[day]
        before = read_table(storage, catalog.FORECASTS.key(RunScope(previous, "adhoc")))
        for ticker in TICKERS:
            row = today.loc[ticker]
            # Fine-tuned on exactly the one new day, then promoted: the lineage continues.
            assert row["mode"] == "finetune", row["mode_reason"]
            assert row["n_train"] == 1 and row["lineage"] == first.loc[ticker, "model_version"]
            meta = read_version_meta(storage, ticker, row["model_version"], {VERSION_FILE})
            assert meta["fine_tunes"][-1]["from"] == meta["fine_tunes"][-1]["to"] == str(day)
            # Day k scored the forecast day k-1 served, against the price table.
            assert row["live_scored_now"] == 1
            served = before.set_index("ticker").loc[ticker]
            assert served.target_date == day
            actual = price_on(storage, ticker, day)
            assert served.naive == pytest.approx(price_on(storage, ticker, previous))
            ledger = read_table(storage, catalog.served_key(ticker)).set_index("target_date")
            assert ledger.loc[day, "actual"] == pytest.approx(actual)
            assert ledger.loc[day, "forecast"] == pytest.approx(served.forecast)
            scored = ledger[ledger["actual"].notna() & (ledger.index <= day)]
            assert row["live_n_lineage"] == len(scored)
            hand_u2 = np.sqrt(np.mean((scored.actual - scored.forecast) ** 2)) / np.sqrt(
                np.mean((scored.actual - scored.naive) ** 2)
            )
            assert row["live_u2_lineage"] == pytest.approx(hand_u2)
            # The backtest beside it is the lineage's, unchanged by fine-tunes.
            assert row["backtest_u2"] == pytest.approx(first.loc[ticker, "backtest_u2"])

    # After the last day the champion is the model that day served, trained through it.
    for ticker in TICKERS:
        champion = json.loads(storage.read_bytes(catalog.champion_key(ticker)))
        assert champion["version"] == frames[days[-1]].loc[ticker, "model_version"]
        assert champion["trained_through"] == str(days[-1])
    # The pooled step: one global_ar champion for the watchlist, retrained on the first day
    # and refit day after day in its lineage, in every ticker's line-up every day.
    champion = json.loads(storage.read_bytes(catalog.global_champion_key("adhoc", "global_ar")))
    assert (champion["version"], champion["lineage"]) == ("v0003", "v0001")
    assert champion["trained_through"] == str(days[-1])
    for number, day in enumerate(days, start=1):
        scores = read_table(storage, catalog.MODEL_SCORES.key(RunScope(day, "adhoc")))
        backtests = scores[(scores["model"] == "global_ar") & (scores["record"] == "backtest")]
        assert sorted(backtests["ticker"]) == sorted(TICKERS)
        # The day's manifest lists every file of the global version it stored.
        version = catalog.global_model_prefix("adhoc", "global_ar", catalog.version_name(number))
        manifest = json.loads(storage.read_bytes(catalog.MANIFEST.key(RunScope(day, "adhoc"))))
        stored = storage.list_keys(f"{version}/")
        assert stored and set(stored) <= {obj["key"] for obj in manifest["objects"]}
    # Later runs never touched an earlier day's objects: its manifest is still true.
    assert_manifest_true(storage, RunScope(days[0], "adhoc"))
    # Each ticker's plot on the last day only (it shows every day's forecasts); the summary
    # plot every day.
    for day in days:
        scope = RunScope(day, "adhoc")
        plots = {t for t in TICKERS if storage.exists(catalog.TICKER_PLOTS.key(scope, t))}
        assert plots == (set(TICKERS) if day == days[-1] else set()), day
        assert storage.exists(catalog.SUMMARY_PLOT.key(scope)), day
    # The UI's artifacts (metrics table, summary, progress) on the last day's flow run only.
    artifacts = _artifact_keys_by_run_since(began)
    assert len(artifacts) == len(days), artifacts  # one flow run per day
    shown = {f"closecast-{kind}-adhoc" for kind in ("metrics", "summary", "progress")}
    assert {name: keys for name, keys in artifacts.items() if keys} == {
        next(name for name in artifacts if str(days[-1]) in name): shown
    }


def _artifact_keys_by_run_since(began: datetime) -> dict[str, set[str]]:
    """The artifact keys of each flow run started since ``began``, by flow-run name."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        ArtifactFilter,
        ArtifactFilterFlowRunId,
        FlowRunFilter,
        FlowRunFilterStartTime,
    )

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(start_time=FlowRunFilterStartTime(after_=began))
        )
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[run.id for run in runs])
            )
        )
    keys = {run.id: set() for run in runs}
    for artifact in artifacts:
        keys[artifact.flow_run_id].add(artifact.key)
    return {run.name: keys[run.id] for run in runs}


def _watchlist(tmp_path, name: str, entries: list[tuple[str, str]]) -> str:
    path = tmp_path / f"{name}.yaml"
    lines = ["tickers:"] + [f"  - {{symbol: {s}, asset_class: {a}}}" for s, a in entries]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.mark.usefixtures("prefect_harness")
def test_watchlists_share_storage_and_partial_reruns_touch_only_their_ticker(tmp_path) -> None:
    root = str(tmp_path / "store")
    stocks = _watchlist(tmp_path, "stocks", [("AAPL", "stock"), ("QQQ", "etf")])
    crypto = _watchlist(tmp_path, "crypto", [("BTC-USD", "crypto")])
    day = DAYS[-1]
    common = dict(source="sample", storage=root, as_of=day, preset="fast", models=MODELS)

    def run_flow(**params):
        return daily_forecast(RunSettings(**common, **params), return_state=True)

    assert run_flow(watchlist=stocks).is_completed()
    assert run_flow(watchlist=crypto).is_completed()
    storage = open_storage(root)
    # Both deployments' outputs for the date are complete, side by side.
    check_scope(storage, RunScope(day, "stocks"), ["AAPL", "QQQ"])
    check_scope(storage, RunScope(day, "crypto"), ["BTC-USD"])
    metrics = pq.read_table(str(tmp_path / "store" / "metrics")).to_pandas()
    assert sorted(metrics["watchlist"].astype(str).unique()) == ["crypto", "stocks"]

    before = snapshot(storage)
    state = run_flow(watchlist=stocks, tickers=["AAPL"], mode="retrain")
    assert state.is_completed(), state.message
    after = snapshot(storage)
    changed = {k for k in after if before.get(k) != after[k]} | (before.keys() - after.keys())
    for key in changed:
        assert "AAPL" in key or key.startswith(
            tuple(catalog.run_prefixes(RunScope(day, "stocks")))
        ), key
    # QQQ's objects and its rows in the shared tables are untouched; AAPL's are replaced.
    assert not any("QQQ" in key for key in changed)
    rerun = check_scope(storage, RunScope(day, "stocks"), ["AAPL", "QQQ"])
    assert rerun.loc["AAPL", "mode_reason"].startswith("retrain requested")
    first_stocks = before[catalog.METRICS.key(RunScope(day, "stocks"))]
    assert first_stocks != after[catalog.METRICS.key(RunScope(day, "stocks"))]
    assert not any(k.startswith(("models/BTC-USD", "served/ticker=BTC")) for k in changed)

    # A bare `--tickers GOOG` rerun (filed under `adhoc`) touches only GOOG's state, the
    # adhoc outputs and the adhoc global models (fit on the tickers it names); every other
    # object, stocks' and crypto's included, is as it was.
    before = snapshot(storage)
    state = run_flow(tickers=["GOOG"], ticker_plots=0)  # GOOG's plot is not looked at
    assert state.is_completed(), state.message
    after = snapshot(storage)
    changed = {k for k in after if before.get(k) != after[k]} | (before.keys() - after.keys())
    adhoc = (
        *catalog.run_prefixes(RunScope(day, "adhoc")),
        f"models/{catalog.GLOBAL_MODELS_DIR}/adhoc/",
    )
    assert changed and all("GOOG" in key or key.startswith(adhoc) for key in changed), changed
    check_scope(storage, RunScope(day, "stocks"), ["AAPL", "QQQ"])
    check_scope(storage, RunScope(day, "crypto"), ["BTC-USD"])


@pytest.mark.usefixtures("prefect_harness")
def test_daily_run_into_loopback_s3(s3_env, s3_root, hand_dm) -> None:
    """The default line-up, every registered model (the other flow tests leave out
    global_lstm): each is fit, scored and served."""
    state = run(s3_root, DAYS[-1], tickers=["QQQ"], models=every_model())
    assert state.is_completed(), state.message
    storage = open_storage(s3_root)
    check_scope(storage, RunScope(DAYS[-1], "adhoc"), ["QQQ"])
    scores = read_table(storage, catalog.MODEL_SCORES.key(RunScope(DAYS[-1], "adhoc")))
    assert set(scores.loc[scores["record"] == "backtest", "model"]) == set(every_model())
    served = set(read_table(storage, catalog.lineup_ledgers_key("QQQ"))["model"])
    assert served == set(every_model()) - {"lstm"}  # each served a forecast into its ledger
    for kind in RunSettings().global_models():
        assert storage.exists(catalog.global_champion_key("adhoc", kind)), kind
    assert assert_dm_recomputed(open_storage(s3_root), RunScope(DAYS[-1], "adhoc"), hand_dm) == 2


@dataclass(frozen=True)
class OneRun:
    """A published run three tests read: its storage root and final state."""

    root: str
    state: State


ONE_RUN_MODELS = ("lstm", "naive", "drift", "global_ar")


@pytest.fixture(scope="module")
def one_run(tmp_path_factory, prefect_harness) -> OneRun:
    """QQQ and an unknown ticker, dated by the source (no ``as_of``), with a line-up of four
    models: one flow run for the tests below, each checking one thing of it."""
    root = str(tmp_path_factory.mktemp("one-run") / "store")
    state = run(
        root, None, tickers=["QQQ", "NOSUCH"], epochs=1, models=ONE_RUN_MODELS, ticker_plots=0
    )  # no ticker plot (about 0.5 CPU-s): none of them looks at it
    return OneRun(root, state)


def test_unknown_ticker_fails_alone(one_run: OneRun) -> None:
    state = one_run.state
    assert state.is_failed()
    assert "NOSUCH" in state.message and "QQQ" not in state.message.split("failed:")[1]
    storage = open_storage(one_run.root)
    scope = RunScope(DAYS[-1], "adhoc")
    by_ticker = read_table(storage, catalog.METRICS.key(scope)).set_index("ticker")
    assert by_ticker.loc["QQQ", "status"] == "ok"
    assert by_ticker.loc["NOSUCH", "status"] == "failed"
    assert "NOSUCH" in by_ticker.loc["NOSUCH", "error"]
    assert storage.exists(catalog.PREDICTIONS.key(scope, "QQQ"))
    manifest = assert_manifest_true(storage, scope)
    assert manifest["tickers"]["NOSUCH"]["status"] == "failed"


def test_run_without_as_of_is_named_after_the_resolved_date(one_run: OneRun) -> None:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(one_run.state.state_details.flow_run_id)
    # The sample market's "today" is its last shipped day; the watchlist is named.
    assert flow_run.name == "daily-forecast-2020-12-11-adhoc-sample"
    assert open_storage(one_run.root).exists(
        catalog.MANIFEST.key(RunScope(date(2020, 12, 11), "adhoc"))
    )


def test_a_run_fits_scores_and_serves_only_the_models_of_its_line_up(one_run: OneRun) -> None:
    storage = open_storage(one_run.root)
    scope = RunScope(DAYS[-1], "adhoc")
    scores = read_table(storage, catalog.MODEL_SCORES.key(scope))
    assert set(scores["model"]) == set(ONE_RUN_MODELS)
    assert set(scores.loc[scores["record"] == "backtest", "model"]) == set(ONE_RUN_MODELS)
    # The pooled step fit global_ar alone; the models left out served nothing.
    assert storage.exists(catalog.global_champion_key("adhoc", "global_ar"))
    assert not storage.list_keys(catalog.global_models_prefix("adhoc", "global_lstm"))
    ledgers = set(storage.list_keys("served/ticker=QQQ/"))
    assert ledgers == {catalog.served_key("QQQ"), catalog.lineup_ledgers_key("QQQ")}
    lineup_ledgers = read_table(storage, catalog.lineup_ledgers_key("QQQ"))
    assert set(lineup_ledgers["model"]) == set(ONE_RUN_MODELS) - {"lstm"}
    manifest = assert_manifest_true(storage, scope)
    assert manifest["parameters"]["models"] == list(ONE_RUN_MODELS)
    served_state = {o["key"] for o in manifest["state"] if o["key"].startswith("served/")}
    assert served_state == ledgers


@pytest.mark.usefixtures("prefect_harness")
def test_future_run_dates_are_refused_and_closed_markets_do_no_work(tmp_path) -> None:
    root = tmp_path / "store"
    future = run(str(root), date(2999, 1, 1), tickers=["QQQ"])
    assert future.is_failed()
    assert not root.exists() or not any(root.rglob("champion.json"))

    saturday = run(str(root), date(2020, 12, 5), tickers=["QQQ"])
    assert saturday.is_completed()
    assert "markets closed on 2020-12-05" in saturday.message
    assert not root.exists() or not any(root.rglob("*.parquet"))
