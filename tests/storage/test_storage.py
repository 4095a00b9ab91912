"""Backend-agnostic behaviour, run on the local directory and on S3 (moto or MinIO)."""

from __future__ import annotations

import pickle
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from closecast.storage import (
    InvalidKeyError,
    ObjectNotFoundError,
    Storage,
    StorageError,
    open_storage,
)


def test_round_trip_bytes(storage: Storage) -> None:
    storage.write_bytes("results/AAPL/forecast.json", b'{"x": 1}', content_type="application/json")
    assert storage.read_bytes("results/AAPL/forecast.json") == b'{"x": 1}'
    assert storage.exists("results/AAPL/forecast.json")
    assert not storage.exists("results/AAPL/missing.json")


def test_overwrite_replaces_content(storage: Storage) -> None:
    storage.write_bytes("a.bin", b"first version")
    storage.write_bytes("a.bin", b"2nd")
    assert storage.read_bytes("a.bin") == b"2nd"


def test_empty_and_binary_payloads(storage: Storage) -> None:
    payload = bytes(range(256)) * 50
    storage.write_bytes("empty", b"")
    storage.write_bytes("binary", memoryview(payload))
    assert storage.read_bytes("empty") == b""
    assert storage.read_bytes("binary") == payload


def test_missing_object_raises_key_error_naming_key_and_root(storage: Storage) -> None:
    with pytest.raises(ObjectNotFoundError) as caught:
        storage.read_bytes("nope/missing.parquet")
    assert isinstance(caught.value, KeyError)
    assert isinstance(caught.value, StorageError)
    assert caught.value.key == "nope/missing.parquet"
    message = str(caught.value)
    assert "nope/missing.parquet" in message
    assert storage.describe() in message


def test_list_keys_sorted_relative_and_prefix_filtered(storage: Storage) -> None:
    for key in ["b/2.txt", "a/1.txt", "b/1.txt", "ba.txt", "c/deep/er/x.txt"]:
        storage.write_bytes(key, key.encode())
    assert storage.list_keys() == ["a/1.txt", "b/1.txt", "b/2.txt", "ba.txt", "c/deep/er/x.txt"]
    assert storage.list_keys("b/") == ["b/1.txt", "b/2.txt"]
    assert storage.list_keys("b") == ["b/1.txt", "b/2.txt", "ba.txt"]
    assert storage.list_keys("c/deep") == ["c/deep/er/x.txt"]
    assert storage.list_keys("zzz/") == []


def test_list_keys_on_empty_root(storage: Storage) -> None:
    assert storage.list_keys() == []


def test_delete_and_delete_prefix(storage: Storage) -> None:
    for key in ["runs/1/a", "runs/1/b", "runs/2/a", "runs10/a", "keep"]:
        storage.write_bytes(key, b"x")
    storage.delete("keep")
    storage.delete("keep")  # deleting a missing object is fine
    assert not storage.exists("keep")
    assert storage.delete_prefix("runs/1/") == 2
    assert storage.list_keys() == ["runs/2/a", "runs10/a"]
    assert storage.delete_prefix("runs/") == 1
    assert storage.list_keys() == ["runs10/a"]
    assert storage.delete_prefix("nothing/") == 0


def test_delete_prefix_refuses_empty_prefix(storage: Storage) -> None:
    storage.write_bytes("a", b"x")
    with pytest.raises(InvalidKeyError):
        storage.delete_prefix("")
    assert storage.list_keys() == ["a"]


BAD_KEYS = ["", "/abs", "../escape", "a/../../b", "a//b", "a/./b", "trailing/", "back\\slash"]


def test_bad_keys_are_rejected(storage: Storage) -> None:
    for key in BAD_KEYS:
        with pytest.raises(InvalidKeyError):
            storage.write_bytes(key, b"x")
        with pytest.raises(InvalidKeyError):
            storage.read_bytes(key)
        with pytest.raises(InvalidKeyError):
            storage.exists(key)
    with pytest.raises(InvalidKeyError):
        storage.list_keys("../")
    assert storage.list_keys() == []


def test_upload_and_download_file(storage: Storage, tmp_path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"date,close\n2024-01-02,1.0\n")
    storage.upload_file("uploads/in.csv", source)
    assert storage.read_bytes("uploads/in.csv") == source.read_bytes()

    target = tmp_path / "out.csv"
    target.write_bytes(b"old content that must be replaced")
    storage.download_file("uploads/in.csv", target)
    assert target.read_bytes() == source.read_bytes()


def test_download_missing_raises_and_leaves_target(storage: Storage, tmp_path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"keep me")
    with pytest.raises(ObjectNotFoundError):
        storage.download_file("missing.bin", target)
    assert target.read_bytes() == b"keep me"


def test_url_fetches_the_object(storage: Storage) -> None:
    storage.write_bytes("plots/AAPL.png", b"\x89PNG fake", content_type="image/png")
    url = storage.url("plots/AAPL.png", expires=timedelta(hours=1))
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"\x89PNG fake"


def test_url_rejects_lifetimes_beyond_seven_days(storage: Storage) -> None:
    with pytest.raises(ValueError, match="7 days"):
        storage.url("x", expires=timedelta(days=8))


def test_check_passes_and_describe_names_the_root(storage: Storage, storage_root: str) -> None:
    storage.check()
    expected = storage_root if storage_root.startswith("s3://") else str(Path(storage_root))
    assert expected in storage.describe()
    assert expected in repr(storage)


def test_storage_satisfies_protocol(storage: Storage) -> None:
    assert isinstance(storage, Storage)


def test_reopening_sees_the_same_objects(storage: Storage, storage_root: str) -> None:
    storage.write_bytes("persist/me", b"1")
    assert open_storage(storage_root).read_bytes("persist/me") == b"1"


def test_storage_and_errors_survive_pickling(storage: Storage) -> None:
    """Task runners (Dask, subprocesses) pickle arguments and exceptions."""
    storage.write_bytes("k", b"v")
    clone = pickle.loads(pickle.dumps(storage))
    assert clone.read_bytes("k") == b"v"
    assert clone.describe() == storage.describe()
    with pytest.raises(ObjectNotFoundError) as caught:
        storage.read_bytes("missing")
    error = pickle.loads(pickle.dumps(caught.value))
    assert isinstance(error, ObjectNotFoundError)
    assert (error.key, error.root, str(error)) == ("missing", storage.describe(), str(caught.value))
