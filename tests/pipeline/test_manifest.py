"""The manifest as a typed record: what is written is what is read back, and a listed object
that changed is caught."""

from __future__ import annotations

import json
from datetime import date

import pytest

from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.publish import (
    Manifest,
    RunRows,
    TickerStatus,
    describe_object,
    publish_run,
    read_manifest,
    verify_manifest,
    withdraw_manifest,
)
from closecast.pipeline.settings import RunSettings
from closecast.storage import open_storage
from closecast.storage.io import write_json

SCOPE = RunScope(date(2020, 12, 11), "stocks")


def _manifest(storage) -> Manifest:
    storage.write_bytes("plots/a.png", b"png bytes")
    storage.write_bytes("prices/a.parquet", b"prices")
    return Manifest(
        run_date=SCOPE.run_date,
        watchlist=SCOPE.watchlist,
        published_at="2020-12-11T22:00:00+00:00",
        parameters=RunSettings(tickers=["AAPL"], horizon=3).recorded(),
        run_tickers=("AAPL",),
        tickers={"AAPL": TickerStatus("ok"), "QQQ": TickerStatus("failed", "boom")},
        objects=(describe_object(storage, "plots/a.png"),),
        state=(describe_object(storage, "prices/a.parquet"),),
    )


def test_a_manifest_reads_back_as_written(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    manifest = _manifest(storage)
    write_json(storage, catalog.MANIFEST.key(SCOPE), manifest.to_json())
    document = json.loads(storage.read_bytes(catalog.MANIFEST.key(SCOPE)))
    assert document["objects"] == [
        {"key": "plots/a.png", "size": 9, "sha256": manifest.objects[0].sha256}
    ]
    assert document["tickers"]["QQQ"] == {"status": "failed", "error": "boom"}
    assert document["parameters"]["horizon"] == 3
    assert read_manifest(storage, SCOPE) == manifest
    assert verify_manifest(storage, SCOPE) == []

    storage.write_bytes("plots/a.png", b"other bytes")
    assert verify_manifest(storage, SCOPE) == [
        "plots/a.png: differs from the manifest (size or sha256)"
    ]
    assert withdraw_manifest(storage, SCOPE) == manifest
    assert not storage.exists(catalog.MANIFEST.key(SCOPE))


def test_an_unreadable_manifest_is_named_and_withdrawn_as_none(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    write_json(storage, catalog.MANIFEST.key(SCOPE), {"run_date": "2020-12-11"})
    with pytest.raises(ValueError, match="not a manifest"):
        read_manifest(storage, SCOPE)
    assert withdraw_manifest(storage, SCOPE) is None
    assert not storage.exists(catalog.MANIFEST.key(SCOPE))


def test_what_gc_retired_stays_on_record_through_a_rerun(tmp_path) -> None:
    """A retired entry survives the manifest's round trip and a rerun of the scope, until
    the rerun writes that object again (then it is listed, not retired)."""
    storage = open_storage(str(tmp_path))
    manifest = _manifest(storage).retire({"plots/a.png"}, date(2021, 1, 4))
    assert manifest.objects == () and manifest.listed() == set()
    assert [(e.key, e.retired_on) for e in manifest.retired] == [("plots/a.png", "2021-01-04")]
    assert Manifest.from_json(json.loads(json.dumps(manifest.to_json()))) == manifest

    def rerun(keys: list[str]) -> Manifest:
        return publish_run(
            storage, SCOPE, RunRows({}), keys, [], run_tickers=["AAPL"], members=None,
            previous=manifest, parameters={},
        )  # fmt: skip

    assert [e.key for e in rerun([]).retired] == ["plots/a.png"]
    again = rerun(["plots/a.png"])
    assert again.retired == () and "plots/a.png" in again.listed()
