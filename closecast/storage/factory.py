"""Open a storage root: the one module that knows every backend (the backends know only
:mod:`closecast.storage.base`)."""

from __future__ import annotations

from closecast.storage.base import Storage, local_path_from_root
from closecast.storage.errors import StorageConfigError
from closecast.storage.local import LocalStorage
from closecast.storage.redaction import redact_url


def open_storage(
    root: str,
    *,
    create_bucket: bool = False,
    credentials_block: str | None = None,
) -> Storage:
    """Open the storage at ``root``.

    Args:
        root: A local directory (plain path or ``file://`` URL) or ``s3://bucket/prefix``.
        create_bucket: For S3, create the bucket if it does not exist (one request now).
            Ignored locally: the directory is created on the first write.
        credentials_block: For S3, a Prefect block ``"<block-type-slug>/<name>"``
            (``minio-credentials/...`` or ``aws-credentials/...``) to build the client
            from instead of the standard AWS credential chain.

    Returns:
        A :class:`Storage`. Opening is cheap; call ``check()`` to verify access.

    Raises:
        StorageConfigError: If ``root`` is malformed (also a ``ValueError``), or a
            credentials block is given for a local root.
        StorageError: If ``create_bucket`` is set and the bucket cannot be created.
    """
    path = local_path_from_root(root)
    if path is not None:
        if credentials_block is not None:
            raise StorageConfigError(
                f"credentials_block only applies to s3:// roots, not {redact_url(root)!r}"
            )
        return LocalStorage(path)

    from closecast.storage.s3 import S3Storage  # boto3 only for S3 roots

    storage = S3Storage.from_root(root, credentials_block=credentials_block)
    if create_bucket:
        storage.ensure_bucket()
    return storage
