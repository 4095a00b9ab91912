"""Local-directory specifics: roots, URLs, checks and directory hygiene."""

from __future__ import annotations

import os
import re
import traceback
import urllib.request
from pathlib import Path

import pytest

from closecast.storage import StorageConfigError, StorageError, UnsafePathError, open_storage
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


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("http://example.com/x", "unsupported storage root 'http://example.com/x'"),
        ("ftp://host/dir", "unsupported storage root 'ftp://host/dir'"),
        ("S3://bucket/x", "unsupported storage root 'S3://bucket/x'"),
        ("s3:/bucket/x", "unsupported storage root 's3:/bucket/x'"),
        ("file://otherhost/x", "must be on this machine: 'file://otherhost/x'"),
        ("data\x00dir", "control character"),
    ],
)
def test_bad_roots_are_rejected_naming_them(
    root: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # where a relative root would be created
    with pytest.raises(StorageConfigError, match=re.escape(message)):
        open_storage(root)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "root", ["ftp://user:hunter2-secret@host/dir", "file://me:hunter2-secret@elsewhere/x"]
)
def test_bad_roots_never_show_an_embedded_password(root: str) -> None:
    with pytest.raises(StorageConfigError) as caught:
        open_storage(root)
    assert "hunter2-secret" not in "".join(traceback.format_exception(caught.value))
    assert "***@" in str(caught.value)


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


# -- symbolic links never take a key outside the root -----------------------------------------


@pytest.fixture
def escape(tmp_path: Path) -> tuple[LocalStorage, Path]:
    """A storage whose ``models`` directory is a symlink to a directory outside the root."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"outside")
    root = tmp_path / "data"
    root.mkdir()
    (root / "models").symlink_to(outside, target_is_directory=True)
    (root / "plots.png").symlink_to(outside / "secret.txt")
    storage = open_storage(str(root))
    assert isinstance(storage, LocalStorage)
    return storage, outside


@pytest.mark.parametrize(
    ("key", "operation"),
    [
        ("models/AAPL/champion.json", lambda s, k: s.write_bytes(k, b"x")),
        ("models/secret.txt", lambda s, k: s.write_bytes(k, b"x")),
        ("models/secret.txt", lambda s, k: s.read_bytes(k)),
        ("models/secret.txt", lambda s, k: s.delete(k)),
        ("models/secret.txt", lambda s, k: s.exists(k)),
        ("plots.png", lambda s, k: s.read_bytes(k)),
        ("plots.png", lambda s, k: s.write_bytes(k, b"x")),
        ("models/new.bin", lambda s, k, p=__file__: s.upload_file(k, p)),
    ],
)
def test_a_symlink_out_of_the_root_is_refused_naming_the_key(
    escape: tuple[LocalStorage, Path], key: str, operation
) -> None:
    storage, outside = escape
    with pytest.raises(UnsafePathError, match=re.escape(repr(key))) as caught:
        operation(storage, key)
    assert "outside the root" in str(caught.value)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_bytes() == b"outside"


def test_symlinks_that_stay_inside_the_root_still_work(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "real").mkdir(parents=True)
    (root / "alias").symlink_to(root / "real", target_is_directory=True)
    storage = open_storage(str(root))
    storage.write_bytes("alias/a.txt", b"1")
    assert (root / "real" / "a.txt").read_bytes() == b"1"
    assert storage.read_bytes("real/a.txt") == b"1"


def test_a_root_that_is_itself_a_symlink_works(tmp_path: Path) -> None:
    (tmp_path / "target").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "target", target_is_directory=True)
    storage = open_storage(str(tmp_path / "link"))
    storage.write_bytes("a/b.txt", b"1")
    assert (tmp_path / "target" / "a" / "b.txt").read_bytes() == b"1"


def test_a_listing_walks_only_its_prefixs_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    keys = ["models/A/v0001/m", "models/A/v0002/m", "models/AB/v0001/m", "plots/x/p", "top"]
    for key in keys:
        storage.write_bytes(key, b"x")
    walked: list[str] = []
    real_walk = os.walk

    def recording_walk(top, *args, **kwargs):
        walked.append(Path(top).relative_to(tmp_path).as_posix())
        return real_walk(top, *args, **kwargs)

    monkeypatch.setattr(os, "walk", recording_walk)
    assert storage.list_keys("models/A/") == keys[:2]
    assert walked == ["models/A"]  # not the whole root, which grows with every ticker
    assert storage.list_keys("models/A") == keys[:3]  # a partial name: its parent directory
    assert walked[-1] == "models"
    assert storage.list_keys("models/A/v0002/m") == ["models/A/v0002/m"]
    assert storage.list_keys("nothing/here/") == []
    assert storage.list_keys("") == sorted(keys)
