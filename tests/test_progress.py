"""Training reports progress (epochs, loss, elapsed) every few seconds: through the run
logger of the task that trains, and on the terminal for ``closecast tutorial``."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from lstm_model import batch, progress
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster


@pytest.fixture
def every_epoch(monkeypatch):
    monkeypatch.setattr(progress, "DEFAULT_EVERY_SECONDS", 0.0)
    # `closecast tutorial` (run earlier in the same process) prints progress itself and stops
    # it propagating; these tests read it through the root logger.
    monkeypatch.setattr(logging.getLogger("lstm_model.progress"), "propagate", True)


def _series(seed: int, n: int = 200) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.bdate_range("2017-01-02", periods=n)
    return pd.Series(100 * np.exp(np.cumsum(rng.normal(0, 0.01, n))), index=index, name=seed)


@pytest.mark.usefixtures("every_epoch")
def test_a_fit_reports_epochs_loss_and_elapsed(caplog) -> None:
    config = get_preset("fast").with_overrides(epochs=3)
    with caplog.at_level(logging.INFO, logger="lstm_model.progress"):
        Forecaster.fit(_series(1), config)
    lines = [r.getMessage() for r in caplog.records if r.name == "lstm_model.progress"]
    assert any("epoch 3/3, loss" in line for line in lines), lines


@pytest.mark.usefixtures("every_epoch")
def test_batched_training_reports_how_many_networks_are_still_training(caplog) -> None:
    config = get_preset("fast").with_overrides(epochs=3)
    with caplog.at_level(logging.INFO, logger="lstm_model.progress"):
        batch.fit_many([_series(1), _series(2)], config)
    lines = [r.getMessage() for r in caplog.records if r.name == "lstm_model.progress"]
    assert any("training 2 networks together: epoch 1, 2 still training" in x for x in lines)


@pytest.mark.usefixtures("every_epoch")
def test_a_global_fit_reports_its_epochs_over_every_ticker(caplog) -> None:
    """The pooled step's global LSTM trains one network on every ticker of the watchlist
    (minutes at hundreds of tickers): it reports its epochs like a ticker's training."""
    from lstm_model.global_lstm import GlobalLSTM

    series = {f"T{seed}": _series(seed, 260).rename(None) for seed in (1, 2, 3)}
    cut = series["T1"].index[200]
    with caplog.at_level(logging.INFO, logger="lstm_model.progress"):
        GlobalLSTM.fit(series, cut, get_preset("fast").with_overrides(epochs=2))
    lines = [r.getMessage() for r in caplog.records if r.name == "lstm_model.progress"]
    assert any("global_lstm on 3 tickers: epoch 2/2, loss" in line for line in lines), lines


def test_progress_is_throttled() -> None:
    throttle = progress.Throttle(every=3600)
    assert not throttle.due() and not throttle.due()


@pytest.mark.usefixtures("prefect_harness", "every_epoch")
def test_the_modelling_task_forwards_progress_to_its_run_logger(tmp_path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterTimestamp
    from prefect.logging.handlers import APILogWorker

    from closecast.pipeline.settings import RunSettings
    from flows.daily_forecast import daily_forecast

    settings = RunSettings(
        tickers=["QQQ"],
        storage=str(tmp_path),
        as_of=date(2020, 12, 11),
        preset="fast",
        models="lstm,naive,drift,seasonal_naive,global_ar",  # global_lstm: most of the time
        ticker_plots=0,  # the training's log lines are the point
    )
    began = datetime.now(UTC)
    state = daily_forecast(settings, return_state=True)
    assert state.is_completed(), state.message
    APILogWorker.drain_all(timeout=30)
    # This run's logs only: under xdist the session's API holds every earlier flow test's.
    since = LogFilter(timestamp=LogFilterTimestamp(after_=began))
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=since, limit=200, offset=0)
        while len(logs) % 200 == 0 and logs:  # page through them
            more = client.read_logs(log_filter=since, limit=200, offset=len(logs))
            if not more:
                break
            logs += more
    progress_logs = [log for log in logs if "networks together: epoch" in log.message]
    # In the task run's own log (so in the UI under forecast-<tickers>), at INFO.
    assert progress_logs and all(log.task_run_id is not None for log in progress_logs)
    assert {log.level for log in progress_logs} == {logging.INFO}


@pytest.mark.slow  # end to end: closecast tutorial trains the default network on 700 days
def test_the_tutorial_prints_progress(tmp_path, capsys, monkeypatch) -> None:
    from closecast.cli import main

    monkeypatch.setattr(progress, "DEFAULT_EVERY_SECONDS", 0.0)
    prices = _series(3, n=700)
    csv = tmp_path / "X.csv"
    rows = [
        f"{d:%Y-%m-%d},{p},{p},{p},{p},{p},1000" for d, p in zip(prices.index, prices, strict=True)
    ]
    csv.write_text("\n".join(rows) + "\n")
    code = main(["tutorial", "--csv", str(csv), "--out", str(tmp_path / "out"), "--preset",
                 "default", "--epochs", "2"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    assert "progress every few seconds" in out and "epoch 1/2, loss" in out
