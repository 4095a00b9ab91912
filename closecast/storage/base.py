"""The :class:`Storage` protocol, key validation and :func:`open_storage`."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from closecast.storage.errors import InvalidKeyError, StorageConfigError
from closecast.storage.redaction import redact_text, redact_url

DEFAULT_URL_EXPIRY = timedelta(days=7)
"""Default lifetime of a presigned URL (the SigV4 maximum)."""

# "ftp://x", "http:host", "S3://b": a URL scheme (two letters or more, so "C:\\dir" is a path).
_URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")


@runtime_checkable
class Storage(Protocol):
    """A flat key/value object store rooted at a directory or an ``s3://`` prefix.

    Keys are ``/``-separated and relative to the root. Writes are atomic: a reader sees
    the previous object or the new one, never a partial one.
    """

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Atomically store ``data`` under ``key``, replacing any previous object."""
        ...

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Store ``data`` at ``key`` only if no object is there (atomic test-and-set).

        Returns:
            The new object's version tag (as :meth:`read_tagged` gives it) when this call
            created the object, None when one already existed.
        """
        ...

    def read_bytes(self, key: str) -> bytes:
        """Return the object at ``key``; raise ``ObjectNotFoundError`` if missing."""
        ...

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the object at ``key`` and its version tag, for :meth:`replace_if` and
        :meth:`delete_if` (the ETag on S3; locally a hash of the content).

        Raises:
            ObjectNotFoundError: If there is no object at ``key``.
        """
        ...

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace the object at ``key`` with ``data`` only if its version is still ``tag``
        (compare-and-swap).

        Returns:
            The new object's tag, or None when the object changed or went away since.
        """
        ...

    def delete_if(self, key: str, tag: str) -> bool:
        """Delete the object at ``key`` only if its version is still ``tag``.

        Returns:
            True when this call deleted it, False when it had changed or was gone.
        """
        ...

    def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key``."""
        ...

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys that start with ``prefix`` (plain string prefix)."""
        ...

    def delete(self, key: str) -> None:
        """Delete the object at ``key``; deleting a missing object is not an error."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object whose key starts with the non-empty ``prefix``.

        Returns:
            The number of objects deleted.
        """
        ...

    def upload_file(self, key: str, path: str | Path) -> None:
        """Atomically store the content of the local file ``path`` under ``key``."""
        ...

    def download_file(self, key: str, path: str | Path) -> None:
        """Copy the object at ``key`` to the local file ``path`` (atomically replaced)."""
        ...

    def url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        """Return a URL for ``key``: ``file://`` locally, a presigned GET URL on S3."""
        ...

    def describe(self) -> str:
        """Return a human description of the root (never a secret)."""
        ...

    def check(self) -> None:
        """Verify the store is usable; raise the specific ``StorageError`` otherwise."""
        ...


def validate_key(key: str) -> str:
    """Check that ``key`` is a relative, normalised ``/``-separated path.

    Args:
        key: The key to check.

    Returns:
        The key, unchanged.

    Raises:
        InvalidKeyError: If the key is empty, absolute, has empty, ``.`` or ``..``
            parts, a backslash or a NUL character.
    """
    if not isinstance(key, str) or not key:
        raise InvalidKeyError(f"storage key must be a non-empty string, got {key!r}")
    if key.startswith("/"):
        raise InvalidKeyError(f"storage key must be relative (no leading '/'): {key!r}")
    if "\\" in key or "\x00" in key:
        raise InvalidKeyError(f"storage key must not contain '\\' or NUL: {key!r}")
    if any(part in ("", ".", "..") for part in key.split("/")):
        raise InvalidKeyError(f"storage key must not have empty, '.' or '..' parts: {key!r}")
    return key


def validate_prefix(prefix: str, *, allow_empty: bool = True) -> str:
    """Check a listing prefix: a key, optionally ending in ``/``, or empty.

    Args:
        prefix: The prefix to check.
        allow_empty: Whether ``""`` (everything) is accepted.

    Returns:
        The prefix, unchanged.

    Raises:
        InvalidKeyError: If the prefix is not acceptable.
    """
    if prefix == "":
        if allow_empty:
            return prefix
        raise InvalidKeyError("prefix must not be empty here (it would match every object)")
    validate_key(prefix.removesuffix("/"))
    return prefix


def check_expiry(expires: timedelta) -> int:
    """Return ``expires`` in whole seconds, checking the SigV4 range (1 s to 7 days).

    Raises:
        ValueError: If the lifetime is outside the allowed range.
    """
    seconds = int(expires.total_seconds())
    if not 1 <= seconds <= int(DEFAULT_URL_EXPIRY.total_seconds()):
        raise ValueError(f"URL lifetime must be between 1 second and 7 days, got {expires}")
    return seconds


def local_path_from_root(root: str) -> Path | None:
    """Return the local directory named by ``root``, or None if it is an S3 root.

    Accepts plain paths and ``file://`` URLs (``file:///abs/dir``, ``file://localhost/...``).

    Raises:
        StorageConfigError: If ``root`` is empty, blank, holds a NUL or a control character,
            or uses a URL scheme other than ``s3://`` and ``file://``.
    """
    if not isinstance(root, str) or not root.strip():
        raise StorageConfigError(
            f"storage root must not be empty, got {root!r}: use a directory or s3://bucket/prefix"
        )
    if any(ord(char) < 32 for char in root):
        raise StorageConfigError(f"storage root {redact_text(root)!r} contains a control character")
    if root.startswith("s3://"):
        return None
    if root.startswith("file://"):
        parsed = urlsplit(root)
        if parsed.netloc not in ("", "localhost"):
            raise StorageConfigError(f"file:// root must be on this machine: {redact_url(root)!r}")
        return Path(unquote(parsed.path))
    if _URL_SCHEME.match(root):
        raise StorageConfigError(
            f"unsupported storage root {redact_url(root)!r}: use a directory, file:///dir "
            "or s3://bucket/prefix"
        )
    return Path(root)
