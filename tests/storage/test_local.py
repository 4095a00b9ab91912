"""Local-directory specifics: roots, URLs, checks and directory hygiene."""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import pytest

from closecast.storage import StorageError, open_storage
from closecast.storage.local import LocalStorage


def test_plain_path_and_file_url_roots_are_the_same(tmp_path: Path) -> None:
    plain = open_storage(str(tmp_path / "data"))
    via_url = open_storage((tmp_path / "data").as_uri())
    localhost = open_storage(f"file://localhost{tmp_path / 'data'}")
    plain.write_bytes("k", b"v")
    assert via_url.read_bytes("k") == b"v"
    assert localhost.read_bytes("k") == b"v"


def test_relative_root_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    storage = open_storage("./closecast-data")
    assert isinstance(storage, LocalStorage)
    assert storage.root == tmp_path / "closecast-data"
    storage.write_bytes("a", b"1")
    assert (tmp_path / "closecast-data" / "a").read_bytes() == b"1"


@pytest.mark.parametrize("root", ["", "http://example.com/x", "file://otherhost/x"])
def test_bad_roots_are_rejected(root: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - several distinct messages
        open_storage(root)


def test_credentials_block_is_refused_for_local_roots(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="s3://"):
        open_storage(str(tmp_path), credentials_block="minio-credentials/x")


def test_opening_does_not_create_the_root(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "later"))
    storage.check()
    assert storage.list_keys() == []
    assert not (tmp_path / "later").exists()


def test_url_is_a_file_url_that_reads_back(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "with space"))
    storage.write_bytes("plots/a b.png", b"png")
    url = storage.url("plots/a b.png")
    assert url.startswith("file:///")
    with urllib.request.urlopen(url) as response:
        assert response.read() == b"png"


def test_check_rejects_a_file_as_root(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        open_storage(str(tmp_path / "file" / "data")).check()


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_check_rejects_a_read_only_root(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o500)
    try:
        with pytest.raises(StorageError, match="not writable"):
            open_storage(str(root)).check()
    finally:
        root.chmod(0o700)


def test_delete_prunes_empty_directories_but_not_the_root(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "data"))
    storage.write_bytes("a/b/c.txt", b"x")
    storage.write_bytes("a/keep.txt", b"x")
    storage.delete("a/b/c.txt")
    assert not (tmp_path / "data" / "a" / "b").exists()
    storage.delete_prefix("a/")
    assert (tmp_path / "data").is_dir()
    assert list((tmp_path / "data").iterdir()) == []


def test_writing_under_an_existing_file_is_a_storage_error(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "data"))
    storage.write_bytes("a", b"x")
    with pytest.raises(StorageError, match="'a/b'"):
        storage.write_bytes("a/b", b"y")
    assert storage.list_keys() == ["a"]


def test_directories_are_not_objects(tmp_path: Path) -> None:
    storage = open_storage(str(tmp_path / "data"))
    storage.write_bytes("dir/x", b"1")
    assert not storage.exists("dir")
    with pytest.raises(KeyError):
        storage.read_bytes("dir")
