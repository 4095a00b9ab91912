"""A storage that remembers what it moved: per key, the size and sha256 of the bytes it last
read or wrote (or that there was no object), so that a manifest lists an object's digest
without reading it back and a failed commit restores a state object without reading it
again.

Every request goes to the wrapped storage, except reads of objects the caller declared
current (:meth:`RecordingStorage.known_current`: what an earlier task of the same run read,
under the ticker's lease the run has held since), answered from memory until written or
deleted. What is remembered is only as current as the caller's lease makes it: a ticker's
objects are written and read under the ticker's lease, so no other run changes them
meanwhile.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from closecast.storage.base import DEFAULT_URL_EXPIRY, Storage
from closecast.storage.errors import ObjectNotFoundError


@dataclass(frozen=True)
class ObjectEntry:
    """An object as stored: its key, size and sha256 (a manifest lists objects so)."""

    key: str
    size: int
    sha256: str

    @classmethod
    def of(cls, key: str, data: bytes) -> ObjectEntry:
        """The entry of ``data`` stored at ``key``."""
        return cls(key, len(data), hashlib.sha256(data).hexdigest())


ABSENT = None
"""What :meth:`RecordingStorage.seen` returns for a key known to hold no object."""


@dataclass(frozen=True)
class _Seen:
    entry: ObjectEntry | None  # None: no object there
    data: bytes | None  # kept only for keys the storage was asked to keep


class RecordingStorage:
    """A :class:`~closecast.storage.Storage` that passes every request on and remembers the
    outcome per key: the entry (size, sha256) of what it last read or wrote, or that the key
    holds nothing (a read that found none, a delete).

    Args:
        inner: The storage every request goes to.
        keep_bytes: Keys whose bytes are kept too (small state objects a commit may have to
            restore), not only their digest.
    """

    def __init__(self, inner: Storage, keep_bytes: Callable[[str], bool] = lambda key: False):
        self.inner = inner
        self._keep_bytes = keep_bytes
        self._seen: dict[str, _Seen] = {}
        self._current: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RecordingStorage({self.inner!r})"

    # --- what was seen -------------------------------------------------------------------

    def knows(self, key: str) -> bool:
        """Whether a request of this storage told what ``key`` holds."""
        with self._lock:
            return key in self._seen

    def seen(self, key: str) -> ObjectEntry | None:
        """The entry of what ``key`` held when last read or written here; :data:`ABSENT`
        (None) when it held nothing.

        Raises:
            KeyError: No request of this storage told what ``key`` holds.
        """
        with self._lock:
            return self._seen[key].entry

    def kept_bytes(self, key: str) -> bytes | None:
        """The bytes ``key`` held when last read or written here (None: no object).

        Raises:
            KeyError: Not known here, or a key whose bytes are not kept.
        """
        with self._lock:
            seen = self._seen[key]
        if seen.entry is not None and seen.data is None:
            raise KeyError(key)
        return seen.data

    def known_current(self, key: str, data: bytes) -> None:
        """Declare that ``key`` holds ``data`` (an earlier task of this run read it, under
        the ticker's lease held since): reads of it are answered from memory, and recorded,
        until it is written or deleted here."""
        with self._lock:
            self._current[key] = data

    def remember(self, key: str, data: bytes) -> None:
        """Record that ``key`` holds ``data``, known without a request: the bytes this run's
        fetch stored there, under the ticker's lease the run has held since."""
        self._record(key, data)

    def _record(self, key: str, data: bytes | None) -> None:
        entry = None if data is None else ObjectEntry.of(key, data)
        kept = data if data is not None and self._keep_bytes(key) else None
        with self._lock:
            self._seen[key] = _Seen(entry, kept)

    def _forget(self, key: str) -> None:
        with self._lock:
            self._seen.pop(key, None)
            self._current.pop(key, None)

    # --- the storage interface -----------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        with self._lock:
            self._current.pop(key, None)
        try:
            self.inner.write_bytes(key, data, content_type)
        except BaseException:
            self._forget(key)  # it may or may not have been replaced
            raise
        self._record(key, data)

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        self._forget(key)
        return self.inner.create_exclusive(key, data)

    def read_bytes(self, key: str) -> bytes:
        with self._lock:
            current = self._current.get(key)
        if current is not None:
            self._record(key, current)
            return current
        try:
            data = self.inner.read_bytes(key)
        except ObjectNotFoundError:
            self._record(key, None)
            raise
        self._record(key, data)
        return data

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        return self.inner.read_tagged(key)

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        self._forget(key)
        return self.inner.replace_if(key, data, tag)

    def delete_if(self, key: str, tag: str) -> bool:
        self._forget(key)
        return self.inner.delete_if(key, tag)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list_keys(self, prefix: str = "") -> list[str]:
        return self.inner.list_keys(prefix)

    def delete(self, key: str) -> None:
        with self._lock:
            self._current.pop(key, None)
        try:
            self.inner.delete(key)
        except BaseException:
            self._forget(key)
            raise
        self._record(key, None)

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            for key in [k for k in self._seen if k.startswith(prefix)]:
                del self._seen[key]
            for key in [k for k in self._current if k.startswith(prefix)]:
                del self._current[key]
        return self.inner.delete_prefix(prefix)

    def upload_file(self, key: str, path: str | Path) -> None:
        data = Path(path).read_bytes()  # the digest of what is sent (model files are small)
        try:
            self.inner.upload_file(key, path)
        except BaseException:
            self._forget(key)
            raise
        self._record(key, data)

    def download_file(self, key: str, path: str | Path) -> None:
        try:
            self.inner.download_file(key, path)
        except ObjectNotFoundError:
            self._record(key, None)
            raise
        except BaseException:
            self._forget(key)
            raise
        self._record(key, Path(path).read_bytes())

    def url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        return self.inner.url(key, expires)

    def describe(self) -> str:
        return self.inner.describe()

    def check(self) -> None:
        self.inner.check()
