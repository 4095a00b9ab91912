"""A model version is one object (on S3 each request is a round trip): stored in one request,
loaded in one, giving back the same model; an archive that is not one is refused naming its
key, and versions stored before the archive (files side by side) still load."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest

from closecast.pipeline.versions import (
    META_FILE,
    VERSION_FILE,
    archive_directory,
    load_model,
    read_version_meta,
    save_model,
)
from closecast.storage import open_storage
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster


class Counting:
    """A real storage that records every call: (method, key)."""

    def __init__(self, inner) -> None:
        self.inner, self.calls = inner, []

    def __getattr__(self, name: str):
        attribute = getattr(self.inner, name)
        if not callable(attribute) or name in ("describe", "url"):
            return attribute

        def counted(*args, **kwargs):
            self.calls.append((name, str(args[0]) if args else ""))
            return attribute(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def fitted() -> tuple[Forecaster, pd.Series]:
    rng = np.random.default_rng(5)
    index = pd.bdate_range("2019-01-01", periods=260)
    prices = pd.Series(50 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))), index=index)
    return Forecaster.fit(prices, get_preset("fast").with_overrides(epochs=1)), prices


def test_a_version_is_one_object_stored_and_loaded_in_one_request(tmp_path, fitted) -> None:
    model, prices = fitted
    storage = Counting(open_storage(str(tmp_path / "store")))
    files = save_model(storage, "QQQ", "v0001", model)
    key = f"models/QQQ/v0001/{VERSION_FILE}"
    assert files == (VERSION_FILE,) and storage.calls == [("write_bytes", key)]
    archive = zipfile.ZipFile(io.BytesIO(storage.inner.read_bytes(key)))
    probe = tmp_path / "probe"
    model.save(probe)
    assert sorted(archive.namelist()) == sorted(p.name for p in probe.iterdir())
    assert len(archive.namelist()) >= 3  # the LSTM's model.keras, scaler.json, meta.json
    # Same files, same bytes: a manifest's digest of a version does not depend on the clock.
    assert storage.inner.read_bytes(key) == archive_directory(probe)

    for given in (files, None):  # the archive is what a version without named files is
        storage.calls.clear()
        loaded = load_model(storage, "QQQ", "v0001", given)
        assert storage.calls == [("read_bytes", key)]
    start = prices.index[-30]
    pd.testing.assert_series_equal(
        loaded.predict_one_step(prices, start), model.predict_one_step(prices, start)
    )
    meta = json.loads((probe / META_FILE).read_text())
    assert read_version_meta(storage.inner, "QQQ", "v0001", {VERSION_FILE}) == meta


def test_a_version_stored_before_the_archive_still_loads(tmp_path, fitted) -> None:
    model, prices = fitted
    storage = open_storage(str(tmp_path / "store"))
    probe = tmp_path / "probe"
    model.save(probe)
    names = [p.name for p in probe.iterdir() if p.name != META_FILE] + [META_FILE]
    for name in names:
        storage.upload_file(f"models/QQQ/v0001/{name}", probe / name)
    start = prices.index[-30]
    # By the files a champion names, and without them (a lineage root no pointer describes,
    # whose layout may be older than its fine-tuned champion's archive).
    for files in (tuple(names), None):
        loaded = load_model(storage, "QQQ", "v0001", files)
        pd.testing.assert_series_equal(
            loaded.predict_one_step(prices, start), model.predict_one_step(prices, start)
        )
    meta = json.loads((probe / META_FILE).read_text())
    assert read_version_meta(storage, "QQQ", "v0001", set(names)) == meta


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"junk", "is not a model version archive"),
        (_zip({"../meta.json": b"{}"}), "is not a plain file name"),
        (_zip({"sub/meta.json": b"{}"}), "is not a plain file name"),
    ],
)
def test_an_archive_that_is_not_a_version_is_refused_naming_its_key(
    tmp_path, data: bytes, why: str
) -> None:
    storage = open_storage(str(tmp_path / "store"))
    key = f"models/QQQ/v0001/{VERSION_FILE}"
    storage.write_bytes(key, data)
    with pytest.raises(ValueError, match=why) as caught:
        load_model(storage, "QQQ", "v0001", (VERSION_FILE,))
    assert key in str(caught.value)
