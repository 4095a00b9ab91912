"""A failed or interrupted write must leave the previous object whole and unchanged."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable

import pytest

from closecast.storage import Storage, StorageError, open_storage
from closecast.storage.local import TEMP_PREFIX, LocalStorage
from closecast.storage.s3 import S3Storage

OLD = b"old complete object " * 100
NEW = b"NEW OBJECT THAT MUST NEVER BE SEEN HALF-WRITTEN " * 200


class InjectedFailure(Exception):
    """Raised by the tests to simulate a crash or a lost connection mid-write."""


def _fail_s3_call(storage: S3Storage, operation: str, *, after: int = 0) -> None:
    """Make the ``after + 1``-th ``operation`` request of ``storage``'s client fail.

    The hook runs just before the request is sent, as a dropped connection would.
    """
    calls = {"n": 0}

    def hook(**_: object) -> None:
        calls["n"] += 1
        if calls["n"] > after:
            raise InjectedFailure(f"connection lost during {operation}")

    storage._client.meta.events.register(f"before-send.s3.{operation}", hook)


def _assert_only_old_object(storage: Storage, key: str) -> None:
    assert storage.read_bytes(key) == OLD
    assert storage.list_keys() == [key]


def test_failed_rename_keeps_previous_object(
    storage: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Local: the temp file is complete but the rename fails. S3: the PUT is lost."""
    storage.write_bytes("results/forecast.json", OLD)
    if isinstance(storage, LocalStorage):

        def broken_replace(*_: object) -> None:
            raise InjectedFailure("crash before rename")

        monkeypatch.setattr(os, "replace", broken_replace)
    else:
        _fail_s3_call(storage, "PutObject")
    with pytest.raises(InjectedFailure):
        storage.write_bytes("results/forecast.json", NEW)
    monkeypatch.undo()
    _assert_only_old_object(storage, "results/forecast.json")


def test_write_failing_partway_keeps_previous_object(
    storage: Storage, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The new content is half-copied (local) or half-uploaded (S3 multipart) when it fails."""
    storage.write_bytes("models/model.keras", OLD)
    source = tmp_path / "big.bin"
    if isinstance(storage, LocalStorage):
        source.write_bytes(NEW)
        real_copy: Callable[..., None] = shutil.copyfileobj

        def copy_half_then_fail(src, dst, length: int = 0) -> None:
            dst.write(src.read(len(NEW) // 2))
            raise InjectedFailure("disk gone mid-copy")

        monkeypatch.setattr(shutil, "copyfileobj", copy_half_then_fail)
    else:
        # Above boto3's 8 MiB threshold: a multipart upload whose 2nd part fails.
        source.write_bytes(os.urandom(17 * 1024 * 1024))
        _fail_s3_call(storage, "UploadPart", after=1)
        real_copy = shutil.copyfileobj
    with pytest.raises(InjectedFailure):
        storage.upload_file("models/model.keras", source)
    monkeypatch.setattr(shutil, "copyfileobj", real_copy)
    _assert_only_old_object(storage, "models/model.keras")


def test_no_multipart_upload_left_behind(s3_root: str, tmp_path, s3_client) -> None:
    """An upload that fails after some parts is aborted: no object, no orphan parts."""
    storage = open_storage(s3_root)
    assert isinstance(storage, S3Storage)
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(17 * 1024 * 1024))
    _fail_s3_call(storage, "UploadPart", after=1)
    with pytest.raises(InjectedFailure):
        storage.upload_file("models/model.keras", source)
    assert s3_client.list_multipart_uploads(Bucket=storage.bucket).get("Uploads", []) == []
    assert not storage.exists("models/model.keras")


def test_local_fsync_failure_keeps_previous_file_and_no_temp(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path / "data")
    storage.write_bytes("a/b.json", OLD)

    def broken_fsync(_: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StorageError, match="Input/output"):
        storage.write_bytes("a/b.json", NEW)
    monkeypatch.undo()
    _assert_only_old_object(storage, "a/b.json")
    assert os.listdir(tmp_path / "data" / "a") == ["b.json"]


def test_local_temp_files_from_a_crash_are_not_listed(tmp_path) -> None:
    storage = LocalStorage(tmp_path / "data")
    storage.write_bytes("a/b.json", OLD)
    (tmp_path / "data" / "a" / f"{TEMP_PREFIX}deadbeef").write_bytes(NEW[:10])
    (tmp_path / "data" / f"{TEMP_PREFIX}cafe").write_bytes(b"")
    _assert_only_old_object(storage, "a/b.json")


def test_local_write_keeps_umask_permissions(tmp_path) -> None:
    storage = LocalStorage(tmp_path / "data")
    storage.write_bytes("x", b"1")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "data" / "x").stat().st_mode & 0o777 == 0o666 & ~umask
