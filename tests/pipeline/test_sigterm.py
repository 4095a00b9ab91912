"""SIGTERM stops a long training within seconds, and the run publishes nothing half-done."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

from closecast.storage import open_storage
from lstm_model import interrupt
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster


def test_a_stop_request_ends_training_at_the_next_batch() -> None:
    rng = np.random.default_rng(0)
    prices = pd.Series(
        100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400))),
        index=pd.bdate_range("2019-01-01", periods=400),
    )
    config = get_preset("fast").with_overrides(epochs=100_000, batch_size=8)
    timer = threading.Timer(3.0, interrupt.request_stop)
    timer.start()
    began = time.monotonic()
    try:
        with pytest.raises(interrupt.TrainingInterrupted):
            Forecaster.fit(prices, config)
    finally:
        timer.cancel()
        interrupt.clear_stop()
    assert time.monotonic() - began < 30


@pytest.mark.slow
def test_sigterm_stops_closecast_run_within_seconds_without_publishing(
    tmp_path, migrated_prefect_home
) -> None:
    root = tmp_path / "store"
    log = tmp_path / "run.log"
    # The run's temporary Prefect server keeps its database here, not in the user's home.
    home = migrated_prefect_home(tmp_path / "prefect-home")
    # No global models: the signal should land in the per-ticker network's training, not in
    # the pooled step's global fit.
    argv = [sys.executable, "-m", "closecast.cli", "run", "--tickers", "QQQ", "--preset",
            "tutorial", "--models", "lstm,naive", "--storage", str(root)]  # fmt: skip
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                 env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
                                      "PREFECT_HOME": str(home), "PYTHONUNBUFFERED": "1"},
                                 start_new_session=True)  # fmt: skip
        try:
            # Wait until the 1000-epoch tutorial network is training: it says its epochs (the
            # log unbuffered), while the ticker's lease exists from the fetch on.
            deadline = time.monotonic() + 300
            while " epoch " not in log.read_text(errors="replace"):
                assert child.poll() is None, log.read_text()[-3000:]
                assert time.monotonic() < deadline, "training never started"
                time.sleep(0.5)
            time.sleep(5)
            child.send_signal(signal.SIGTERM)
            stopped = time.monotonic()
            code = child.wait(timeout=60)
            elapsed = time.monotonic() - stopped
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGKILL)
    text = log.read_text()
    assert elapsed < 20, text[-3000:]
    assert code == 143, text[-3000:]
    storage = open_storage(str(root))
    assert not storage.list_keys("runs/"), "a manifest was published"
    assert not storage.list_keys("models/QQQ/"), "a model was registered"
