"""The real daily-forecast flow under a Prefect test harness, into local storage and into a
real S3-protocol server on loopback, checked object by object against the documented layout."""

from __future__ import annotations

import hashlib
import io
import json
from datetime import date

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from closecast.calendars import next_trading_day
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast
from lstm_model import metrics

FIRST_RUN = date(2020, 12, 7)
FOUR_DAYS_LATER = date(2020, 12, 11)
TICKERS = ["AAPL", "BTC-USD"]

METRIC_COLUMNS = {
    "ticker", "asset_class", "status", "mode", "mode_reason", "rmse", "naive_rmse", "u2",
    "mae", "mape", "directional_accuracy", "n_train", "n_test", "epochs", "train_seconds",
    "model_version", "promoted", "data_end", "error", "null_rows_dropped",
    "duplicates_resolved", "stale", "warnings",
}  # fmt: skip


def run(root: str, as_of: date, tickers=TICKERS, **params):
    return daily_forecast(
        tickers=tickers,
        source="sample",
        storage=root,
        as_of=as_of,
        preset="fast",
        return_state=True,
        **params,
    )


def read_table(storage, key: str) -> pd.DataFrame:
    return pq.read_table(io.BytesIO(storage.read_bytes(key))).to_pandas()


def check_run_outputs(storage, as_of: date, tickers: list[str]) -> pd.DataFrame:
    """Every object of the layout, with contents that agree with each other."""
    d = as_of.isoformat()
    metrics_frame = read_table(storage, f"metrics/run_date={d}/metrics.parquet")
    assert set(metrics_frame.columns) >= METRIC_COLUMNS
    assert list(metrics_frame["ticker"]) == tickers
    assert (metrics_frame["status"] == "ok").all(), metrics_frame["error"].tolist()

    for row in metrics_frame.itertuples():
        predictions = read_table(
            storage, f"predictions/run_date={d}/ticker={row.ticker}/predictions.parquet"
        )
        assert list(predictions.columns) == ["date", "actual", "predicted", "naive"]
        assert len(predictions) == row.n_test
        # The published RMSE is the RMSE of the published predictions.
        assert row.rmse == pytest.approx(metrics.rmse(predictions.actual, predictions.predicted))
        assert row.naive_rmse == pytest.approx(metrics.rmse(predictions.actual, predictions.naive))
        assert row.u2 == pytest.approx(row.rmse / row.naive_rmse)
        # naive(d) is the actual price of the previous trading day.
        np.testing.assert_allclose(predictions.naive.iloc[1:], predictions.actual.iloc[:-1])
        assert predictions.date.iloc[-1] == row.data_end
        assert row.data_end <= as_of
        png = storage.read_bytes(f"plots/run_date={d}/{row.ticker}.png")
        assert Image.open(io.BytesIO(png)).size[0] > 200
        for name in ("model.keras", "scaler.json", "meta.json"):
            assert storage.exists(f"models/{row.ticker}/{row.model_version}/{name}")
        champion = json.loads(storage.read_bytes(f"models/{row.ticker}/champion.json"))
        assert champion["version"] == row.model_version

    forecasts = read_table(storage, f"forecasts/run_date={d}/forecasts.parquet")
    assert list(forecasts.columns) == [
        "ticker", "data_end", "target_date", "forecast", "model_version",
    ]  # fmt: skip
    assert list(forecasts.ticker) == tickers
    for row in forecasts.itertuples():
        asset = "crypto" if row.ticker.endswith("-USD") else "stock"
        assert row.target_date == next_trading_day(asset, row.data_end)
        assert np.isfinite(row.forecast) and row.forecast > 0

    assert storage.read_bytes(f"plots/run_date={d}/summary.png").startswith(b"\x89PNG")
    manifest = json.loads(storage.read_bytes(f"runs/run_date={d}/manifest.json"))
    assert set(manifest["tickers"]) == set(tickers)
    listed = {obj["key"] for obj in manifest["objects"]}
    for prefix in ("predictions", "metrics", "forecasts", "plots"):
        assert set(storage.list_keys(f"{prefix}/run_date={d}/")) <= listed
    for obj in manifest["objects"]:
        data = storage.read_bytes(obj["key"])
        assert obj["size"] == len(data)
        assert obj["sha256"] == hashlib.sha256(data).hexdigest()
    return metrics_frame


@pytest.mark.usefixtures("prefect_harness")
def test_daily_runs_into_local_storage_then_fine_tune(tmp_path) -> None:
    root = str(tmp_path / "store")
    first = run(root, FIRST_RUN)
    assert first.is_completed(), first.message
    storage = open_storage(root)
    first_metrics = check_run_outputs(storage, FIRST_RUN, TICKERS)
    assert set(first_metrics["mode"]) == {"retrain"}
    # AAPL's shipped history has one Yahoo `null` row; validation's count reaches the metrics.
    by_ticker = first_metrics.set_index("ticker")
    assert by_ticker.loc["AAPL", "null_rows_dropped"] == 1
    assert by_ticker.loc["BTC-USD", "null_rows_dropped"] == 0
    assert first_metrics["promoted"].all()

    # Four days later, with default settings, each ticker fine-tunes its champion.
    second = run(root, FOUR_DAYS_LATER)
    assert second.is_completed(), second.message
    second_metrics = check_run_outputs(storage, FOUR_DAYS_LATER, TICKERS)
    assert set(second_metrics["mode"]) == {"finetune"}, second_metrics["mode_reason"].tolist()
    assert second_metrics["mode_reason"].str.contains("fine-tuned on").all()
    # The first date's outputs are untouched by the later run.
    assert storage.exists(f"runs/run_date={FIRST_RUN.isoformat()}/manifest.json")
    # Rerunning a date replaces that date's outputs (same keys), never another date's.
    again = run(root, FOUR_DAYS_LATER, tickers=["AAPL"])
    assert again.is_completed(), again.message
    assert storage.list_keys(f"predictions/run_date={FOUR_DAYS_LATER}/") == [
        f"predictions/run_date={FOUR_DAYS_LATER}/ticker=AAPL/predictions.parquet"
    ]
    assert storage.exists(f"predictions/run_date={FIRST_RUN}/ticker=BTC-USD/predictions.parquet")


@pytest.mark.usefixtures("prefect_harness")
def test_daily_run_into_loopback_s3(s3_env, s3_root) -> None:
    state = run(s3_root, FOUR_DAYS_LATER, tickers=["QQQ"])
    assert state.is_completed(), state.message
    check_run_outputs(open_storage(s3_root), FOUR_DAYS_LATER, ["QQQ"])


@pytest.mark.usefixtures("prefect_harness")
def test_unknown_ticker_fails_alone(tmp_path) -> None:
    root = str(tmp_path / "store")
    state = run(root, FOUR_DAYS_LATER, tickers=["GOOG", "NOSUCH"])
    assert state.is_failed()
    assert "NOSUCH" in state.message and "GOOG" not in state.message.split("failed:")[1]
    storage = open_storage(root)
    frame = read_table(storage, f"metrics/run_date={FOUR_DAYS_LATER}/metrics.parquet")
    by_ticker = frame.set_index("ticker")
    assert by_ticker.loc["GOOG", "status"] == "ok"
    assert by_ticker.loc["NOSUCH", "status"] == "failed"
    assert "NOSUCH" in by_ticker.loc["NOSUCH", "error"]
    assert storage.exists(f"predictions/run_date={FOUR_DAYS_LATER}/ticker=GOOG/predictions.parquet")
    manifest = json.loads(storage.read_bytes(f"runs/run_date={FOUR_DAYS_LATER}/manifest.json"))
    assert manifest["tickers"]["NOSUCH"]["status"] == "failed"


@pytest.mark.usefixtures("prefect_harness")
def test_run_without_as_of_is_named_after_the_resolved_date(tmp_path) -> None:
    from prefect.client.orchestration import get_client

    state = daily_forecast(
        tickers=["QQQ"], storage=str(tmp_path), preset="fast", epochs=1, return_state=True
    )
    assert state.is_completed(), state.message
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(state.state_details.flow_run_id)
    # The sample market's "today" is its last shipped day.
    assert flow_run.name == "daily-forecast-2020-12-11-sample"
    assert open_storage(str(tmp_path)).exists("runs/run_date=2020-12-11/manifest.json")
