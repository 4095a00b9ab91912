"""Local-directory storage with atomic writes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

from closecast.storage.base import (
    DEFAULT_URL_EXPIRY,
    check_expiry,
    validate_key,
    validate_prefix,
)
from closecast.storage.errors import ObjectNotFoundError, StorageError, UnsafePathError

TEMP_PREFIX = ".closecast-tmp-"
"""Name prefix of in-flight temporary files; never listed as keys."""

LOCK_PREFIX = ".closecast-lock-"
"""Name prefix of the files that conditional writes lock (one per key); never listed."""

try:
    import fcntl
except ImportError:  # Windows: conditional writes are then compare-then-write, unguarded
    fcntl = None  # type: ignore[assignment]

_CHUNK = 1024 * 1024


class LocalStorage:
    """Objects as files under a root directory.

    Writes go to a temporary file in the destination directory, are flushed and
    fsynced, then renamed over the target with :func:`os.replace`, so a reader sees
    the old file or the new one. The root is created on the first write.
    """

    def __init__(self, root: Path) -> None:
        """Use ``root`` (made absolute) as the storage root."""
        self.root = root.expanduser().absolute()

    def __repr__(self) -> str:
        """Return a short representation naming the root."""
        return f"LocalStorage({str(self.root)!r})"

    def describe(self) -> str:
        """Return ``local directory <root>``."""
        return f"local directory {self.root}"

    def _path(self, key: str) -> Path:
        """The file of ``key``, refused if a symbolic link would take it out of the root."""
        path = self.root.joinpath(*validate_key(key).split("/"))
        real_root = self.root.resolve()
        real_path = path.resolve()  # follows every link that exists, even a dangling one
        if not real_path.is_relative_to(real_root):
            raise UnsafePathError(
                f"key {key!r} in {self.describe()} resolves to {real_path}, outside the root "
                "(through a symbolic link): refusing to read or write it"
            )
        return path

    def _not_found(self, key: str) -> ObjectNotFoundError:
        return ObjectNotFoundError(key, self.describe())

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Atomically write ``data`` to ``key`` (``content_type`` is ignored locally)."""
        view = memoryview(data)
        self._atomic_write(key, lambda out: out.write(view))

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Create ``key`` with ``data`` unless it exists: the content is written to a temp
        file and hard-linked into place, which fails atomically when the target exists.
        Returns the new object's tag (a hash of ``data``), None when ``key`` existed."""
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp_name = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
            with open(tmp_name, "xb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp_name, target)
            except FileExistsError:
                return None
            finally:
                os.unlink(tmp_name)
        except OSError as exc:
            raise StorageError(f"could not create {key!r} in {self.describe()}: {exc}") from exc
        _fsync_directory(target.parent)
        return _content_tag(data)

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the content of ``key`` and its tag (a hash of the content).

        Raises:
            ObjectNotFoundError: If there is no file at ``key``.
        """
        data = self.read_bytes(key)
        return data, _content_tag(data)

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace ``key`` with ``data`` if its content still has ``tag``; return the new tag.

        Compare and replace run under an exclusive ``flock`` on the key's lock file, which
        every conditional write takes; the replacement itself is the atomic rename of
        :meth:`write_bytes`, so the key never goes missing and a reader never sees half a
        file. The kernel drops the lock of a process that dies, so it never goes stale.
        """
        target = self._path(key)
        with self._locked(key, target):
            if self._current_tag(target) != tag:
                return None
            self.write_bytes(key, data)
        return _content_tag(data)

    def delete_if(self, key: str, tag: str) -> bool:
        """Delete ``key`` if its content still has ``tag`` (under the key's lock, as
        :meth:`replace_if`)."""
        target = self._path(key)
        with self._locked(key, target):
            if self._current_tag(target) != tag:
                return False
            with contextlib.suppress(FileNotFoundError):
                target.unlink()
        return True

    @staticmethod
    def _current_tag(target: Path) -> str | None:
        try:
            return _content_tag(target.read_bytes())
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None

    @contextlib.contextmanager
    def _locked(self, key: str, target: Path) -> Iterator[None]:
        """Hold the exclusive lock of ``key`` (a ``flock`` on a hidden file beside it)."""
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target.parent / f"{LOCK_PREFIX}{target.name}", os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StorageError(f"could not lock {key!r} in {self.describe()}: {exc}") from exc
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def upload_file(self, key: str, path: str | Path) -> None:
        """Atomically copy the local file ``path`` to ``key``."""
        with open(path, "rb") as src:
            self._atomic_write(key, lambda out: shutil.copyfileobj(src, out, _CHUNK))

    def _atomic_write(self, key: str, fill: Callable[[BinaryIO], object]) -> None:
        target = self._path(key)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            _replace_atomically(target, fill)
        except OSError as exc:
            raise StorageError(f"could not write {key!r} in {self.describe()}: {exc}") from exc

    def read_bytes(self, key: str) -> bytes:
        """Return the content of ``key``.

        Raises:
            ObjectNotFoundError: If there is no file at ``key``.
        """
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None

    def download_file(self, key: str, path: str | Path) -> None:
        """Copy ``key`` to the local file ``path``, replacing it atomically."""
        source = self._path(key)
        try:
            src = source.open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise self._not_found(key) from None
        with src:
            _replace_atomically(Path(path), lambda out: shutil.copyfileobj(src, out, _CHUNK))

    def exists(self, key: str) -> bool:
        """Return whether a file exists at ``key``."""
        return self._path(key).is_file()

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys starting with ``prefix``, skipping temporary files."""
        validate_prefix(prefix)
        # Only the prefix's deepest whole directory is walked, not the root: a listing of
        # one ticker's version must not grow with every other ticker and run in the store.
        directory = prefix.rpartition("/")[0]
        return sorted(key for key in self._walk(directory) if key.startswith(prefix))

    def _walk(self, directory: str = "") -> Iterator[str]:
        start = self.root / directory if directory else self.root
        if not start.is_dir():
            return
        for dirpath, _dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            for name in filenames:
                if not name.startswith((TEMP_PREFIX, LOCK_PREFIX)):
                    yield name if rel == "." else f"{rel}/{name}"

    def delete(self, key: str) -> None:
        """Delete ``key`` if present and prune the directories it leaves empty."""
        path = self._path(key)
        with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
            path.unlink()
            self._prune(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every key starting with the non-empty ``prefix``; return the count."""
        validate_prefix(prefix, allow_empty=False)
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def _prune(self, directory: Path) -> None:
        while directory != self.root and self.root in directory.parents:
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        """Return the ``file://`` URL of ``key`` (``expires`` is checked, then unused)."""
        check_expiry(expires)
        return self._path(key).as_uri()

    def check(self) -> None:
        """Verify the root is (or can become) a writable directory.

        Raises:
            StorageError: If the root is not a directory or is not writable.
        """
        existing = self.root
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            raise StorageError(f"{self.describe()}: {existing} is not a directory")
        if not os.access(existing, os.W_OK | os.X_OK):
            raise StorageError(f"{self.describe()}: {existing} is not writable")


def _content_tag(data: bytes) -> str:
    """A local object's version tag: its content's SHA-256 (leases never repeat content)."""
    return hashlib.sha256(data).hexdigest()


def _replace_atomically(target: Path, fill: Callable[[BinaryIO], object]) -> None:
    """Write ``target`` via a fsynced temp file in its directory and ``os.replace``.

    On any failure the temp file is removed and ``target`` is left untouched.
    """
    tmp_name = target.parent / f"{TEMP_PREFIX}{uuid.uuid4().hex}"
    # 0o666 filtered by the umask, like a plain open(); mkstemp would force 0o600.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp_name, flags, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    _fsync_directory(target.parent)


def _fsync_directory(directory: Path) -> None:
    """Persist a rename by fsyncing its directory (best effort; not on Windows)."""
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
