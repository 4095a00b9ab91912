"""Publishing sends independent storage requests together, at most REQUESTS_IN_FLIGHT at a
time (on S3 each is a network round trip), and the manifest is the same as if they had gone
one by one: every object, in order, with its size and sha256 as stored."""

from __future__ import annotations

import contextvars
import threading
import time
from datetime import date

import pytest

from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.publish import RunRows, describe_object, publish_run, verify_manifest
from closecast.storage import open_storage
from closecast.storage.concurrent import REQUESTS_IN_FLIGHT, concurrently
from closecast.storage.recording import RecordingStorage

SCOPE = RunScope(date(2020, 12, 11), "many")


class CountingStorage:
    """A real storage whose reads take a little while and are counted while in flight."""

    def __init__(self, inner, delay: float = 0.02) -> None:
        self.inner, self.delay = inner, delay
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0

    def read_bytes(self, key: str) -> bytes:
        with self.lock:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            time.sleep(self.delay)
            return self.inner.read_bytes(key)
        finally:
            with self.lock:
                self.in_flight -= 1

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


def _ticker_objects(storage, n: int) -> list[str]:
    keys = []
    for i in range(n):
        key = catalog.PREDICTIONS.key(SCOPE, f"T{i:03d}")
        storage.write_bytes(key, f"object {i}".encode() * (i + 1))
        keys.append(key)
    return keys


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_manifest_digests_are_read_concurrently_and_bounded(backend, tmp_path, request) -> None:
    if backend == "s3":
        request.getfixturevalue("s3_env")
        root = f"s3://{request.getfixturevalue('s3_bucket')}/publish"
    else:
        root = str(tmp_path)
    inner = open_storage(root)
    keys = _ticker_objects(inner, 40)
    storage = CountingStorage(inner)
    manifest = publish_run(
        storage, SCOPE, RunRows({}), [*keys, "models/GONE/v0001/model.keras"], [],
        run_tickers=[f"T{i:03d}" for i in range(40)], members=None, previous=None,
        parameters={},
    )  # fmt: skip
    assert 1 < storage.most_in_flight <= REQUESTS_IN_FLIGHT
    listed = [entry.key for entry in manifest.objects]
    assert listed[:40] == keys  # in order; an absent key is left out, not an error
    assert "models/GONE/v0001/model.keras" not in listed
    assert list(manifest.objects[:40]) == [describe_object(inner, key) for key in keys]
    assert verify_manifest(inner, SCOPE) == []


def test_one_failing_request_fails_the_whole_after_the_others_finish() -> None:
    done = []

    def work(i: int) -> int:
        time.sleep(0.01)
        if i == 3:
            raise OSError("disk full")
        done.append(i)
        return i

    with pytest.raises(OSError, match="disk full"):
        concurrently(work, range(20), threads=4)
    assert sorted(done) == [i for i in range(20) if i != 3]  # nothing left running
    assert concurrently(lambda i: i * i, range(10)) == [i * i for i in range(10)]


def test_digests_recorded_as_written_are_listed_without_reading_them_back(tmp_path) -> None:
    inner = open_storage(str(tmp_path))
    keys = _ticker_objects(inner, 6)
    recording = RecordingStorage(inner)
    for key in keys[:4]:  # what the tickers' tasks wrote or read, recorded as they did
        recording.read_bytes(key)
    known = {key: recording.seen(key) for key in keys[:4]}
    known[catalog.prices_key("T000")] = None  # state known to be absent: not listed
    storage = CountingStorage(inner, delay=0.0)
    reads: list[str] = []
    storage.read_bytes = lambda key: reads.append(key) or inner.read_bytes(key)  # type: ignore[method-assign]
    manifest = publish_run(
        storage, SCOPE, RunRows({}), keys, [catalog.prices_key("T000")],
        run_tickers=[f"T{i:03d}" for i in range(6)], members=None, previous=None,
        parameters={}, known=known,
    )  # fmt: skip
    assert not set(reads) & set(known)  # only the others were read back
    assert set(keys[4:]) <= set(reads)
    assert [entry.key for entry in manifest.objects][:6] == keys
    assert manifest.state == ()
    assert verify_manifest(inner, SCOPE) == []


def test_each_call_runs_in_the_callers_context() -> None:
    run = contextvars.ContextVar("run", default="none")
    run.set("task run 7")  # as Prefect's run context is set in a task's thread

    def seen(i: int) -> tuple[int, str]:
        time.sleep(0.01)
        return i, run.get()

    assert concurrently(seen, range(12), threads=4) == [(i, "task run 7") for i in range(12)]
