"""Storage backends: one small interface over a local directory or an S3 bucket.

Use :func:`open_storage` with a directory or ``s3://bucket/prefix``; helpers for Parquet,
JSON and figures live in :mod:`closecast.storage.io`.
"""

from closecast.storage.base import DEFAULT_URL_EXPIRY, Storage
from closecast.storage.errors import (
    BucketNotFoundError,
    CorruptObjectError,
    InvalidKeyError,
    NotS3EndpointError,
    ObjectNotFoundError,
    StorageAuthError,
    StorageConfigError,
    StorageError,
    StorageUnreachableError,
    UnsafePathError,
)
from closecast.storage.factory import open_storage
from closecast.storage.redaction import redact_text, redact_url

__all__ = [
    "DEFAULT_URL_EXPIRY",
    "BucketNotFoundError",
    "CorruptObjectError",
    "InvalidKeyError",
    "NotS3EndpointError",
    "ObjectNotFoundError",
    "Storage",
    "StorageAuthError",
    "StorageConfigError",
    "StorageError",
    "StorageUnreachableError",
    "UnsafePathError",
    "open_storage",
    "redact_text",
    "redact_url",
]
