"""A model version's files go out together (on S3 each is a round trip), except meta.json,
which marks the version complete and is stored only once every other file is; loading
downloads them together and gives back the same model."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd

from closecast.pipeline.versions import META_FILE, load_model, save_model
from closecast.storage import open_storage
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster


class Meeting:
    """A real storage whose transfers of the files named in ``together`` each wait until all
    of them are in flight: sent one after another, the first would wait in vain (broken
    barrier, the test fails)."""

    def __init__(self, inner, together: set[str]) -> None:
        self.inner, self.together = inner, together
        self.barrier = threading.Barrier(len(together), timeout=30)
        self.done: list[str] = []
        self.started_after: dict[str, list[str]] = {}

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def _transfer(self, key: str, transfer) -> None:
        name = key.rsplit("/", 1)[-1]
        self.started_after[name] = list(self.done)
        if name in self.together:
            self.barrier.wait()
        transfer()
        self.done.append(name)

    def upload_file(self, key, path) -> None:
        self._transfer(key, lambda: self.inner.upload_file(key, path))

    def download_file(self, key, path) -> None:
        self._transfer(key, lambda: self.inner.download_file(key, path))


def test_version_files_go_out_together_and_meta_json_last(tmp_path) -> None:
    rng = np.random.default_rng(5)
    index = pd.bdate_range("2019-01-01", periods=260)
    prices = pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))), index=index)
    model = Forecaster.fit(prices, get_preset("fast").with_overrides(epochs=1))
    inner = open_storage(str(tmp_path))

    probe = tmp_path / "probe"
    model.save(probe)
    others = {p.name for p in probe.iterdir()} - {META_FILE}
    assert len(others) >= 2  # the LSTM's model.keras and scaler.json

    saving = Meeting(inner, others)
    files = save_model(saving, "QQQ", "v0001", model)
    assert files[-1] == META_FILE and set(files[:-1]) == others
    assert set(saving.started_after[META_FILE]) == others  # stored once the others are

    loading = Meeting(inner, set(files))
    loaded = load_model(loading, "QQQ", "v0001", files)
    assert set(loading.done) == set(files)
    start = prices.index[-30]
    pd.testing.assert_series_equal(
        loaded.predict_one_step(prices, start), model.predict_one_step(prices, start)
    )
