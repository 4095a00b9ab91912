"""Storage backends: one small interface over a local directory or an S3 bucket.

Use :func:`open_storage` with a directory or ``s3://bucket/prefix``; helpers for Parquet,
JSON and figures live in :mod:`closecast.storage.io`.
"""

from closecast.storage.base import DEFAULT_URL_EXPIRY, Storage, open_storage
from closecast.storage.errors import (
    BucketNotFoundError,
    InvalidKeyError,
    ObjectNotFoundError,
    StorageAuthError,
    StorageError,
    StorageUnreachableError,
)

__all__ = [
    "DEFAULT_URL_EXPIRY",
    "BucketNotFoundError",
    "InvalidKeyError",
    "ObjectNotFoundError",
    "Storage",
    "StorageAuthError",
    "StorageError",
    "StorageUnreachableError",
    "open_storage",
]
