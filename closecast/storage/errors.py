"""Storage errors.

Every error raised by a storage backend derives from :class:`StorageError`, so callers
can catch one type. Messages name the root, endpoint, bucket or key involved but never a
credential.
"""

from __future__ import annotations


class StorageError(RuntimeError):
    """Base class for all storage failures."""


class InvalidKeyError(StorageError, ValueError):
    """A key or prefix is not a relative, `/`-separated path without `..` parts."""


class ObjectNotFoundError(StorageError, KeyError):
    """The requested object does not exist.

    Also a :class:`KeyError`, so ``except KeyError`` works for mapping-style callers.

    Attributes:
        key: The missing key, relative to the storage root.
        root: A description of the storage root that was searched.
    """

    def __init__(self, key: str, root: str) -> None:
        """Build the error for ``key`` missing under ``root``."""
        super().__init__(f"no object {key!r} in {root}")
        self.key = key
        self.root = root

    def __str__(self) -> str:
        """Return the plain message (KeyError would otherwise quote it)."""
        return str(self.args[0])

    def __reduce__(self) -> tuple[type[ObjectNotFoundError], tuple[str, str]]:
        """Pickle by key and root (errors cross process boundaries in task runners)."""
        return (type(self), (self.key, self.root))


class StorageUnreachableError(StorageError):
    """The storage endpoint could not be reached (connection refused, timeout, DNS)."""


class StorageAuthError(StorageError):
    """The credentials were missing, unknown, wrong or not allowed to do the operation."""


class BucketNotFoundError(StorageError):
    """The bucket named in an ``s3://`` root does not exist."""


class StorageConfigError(StorageError, ValueError):
    """A storage configuration that cannot work, refused before any request is made.

    A malformed root (empty, unsupported scheme, invalid bucket name, ``..`` in the prefix),
    a bad ``CLOSECAST_S3_*`` setting, an invalid endpoint URL or an unusable credentials block.
    """


class NotS3EndpointError(StorageError):
    """The endpoint answers HTTP but not as an S3 server (e.g. a web server or a proxy page)."""


class UnsafePathError(InvalidKeyError):
    """A key of a local storage resolves outside its root (through a symbolic link)."""


class CorruptObjectError(StorageError, ValueError):
    """An object exists but cannot be decoded (corrupt JSON, Parquet, ...).

    Attributes:
        key: The unreadable key, relative to the storage root.
        root: A description of the storage root.
        detail: What the decoder said.
    """

    def __init__(self, key: str, root: str, detail: str) -> None:
        """Build the error for the unreadable ``key`` under ``root``."""
        super().__init__(f"object {key!r} in {root} is corrupt: {detail}")
        self.key = key
        self.root = root
        self.detail = detail

    def __reduce__(self) -> tuple[type[CorruptObjectError], tuple[str, str, str]]:
        """Pickle by key, root and detail (errors cross process boundaries)."""
        return (type(self), (self.key, self.root, self.detail))
