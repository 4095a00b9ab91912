"""S3 and S3-compatible (MinIO, Ceph, ...) storage via boto3.

Configuration follows the AWS conventions: credentials from the standard chain
(environment, shared files/profiles, container or instance roles), the endpoint from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (read natively by botocore), the region
from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile, else ``us-east-1``. A
Prefect ``MinIOCredentials`` or ``AwsCredentials`` block may be named instead.
"""

from __future__ import annotations

import functools
import mimetypes
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from closecast.storage.base import (
    DEFAULT_URL_EXPIRY,
    check_expiry,
    validate_key,
    validate_prefix,
)
from closecast.storage.errors import (
    BucketNotFoundError,
    ObjectNotFoundError,
    StorageAuthError,
    StorageError,
    StorageUnreachableError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"

_AUTH_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AuthorizationHeaderMalformed",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "403",
    }
)
_MISSING_OBJECT_CODES = frozenset({"NoSuchKey", "NotFound", "404"})
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


def client_config(**overrides: Any) -> Config:
    """Return the botocore config used for every S3 client.

    SigV4 (also for presigned URLs), path-style addressing and "when required"
    checksums keep MinIO/Ceph working with current botocore; a short connect timeout
    and a single retry make a down endpoint fail in seconds rather than minutes.

    Args:
        **overrides: Extra ``Config`` options that take precedence.
    """
    base = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": 2},
        connect_timeout=5,
        read_timeout=60,
    )
    return base.merge(Config(**overrides)) if overrides else base


def parse_s3_root(root: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into ``("bucket", "some/prefix")``.

    Raises:
        ValueError: If the URL is not ``s3://`` or the bucket name is invalid.
    """
    parts = urlsplit(root)
    if parts.scheme != "s3" or parts.query or parts.fragment:
        raise ValueError(f"not an s3://bucket/prefix root: {root!r}")
    bucket = parts.netloc
    if not _BUCKET_NAME.match(bucket):
        raise ValueError(f"invalid S3 bucket name {bucket!r} in {root!r}")
    prefix = parts.path.strip("/")
    if prefix:
        validate_key(prefix)
    return bucket, prefix


def build_client(credentials_block: str | None = None) -> S3Client:
    """Build an S3 client from the standard AWS configuration or a Prefect block.

    Args:
        credentials_block: ``"<block-type-slug>/<name>"`` of a saved Prefect
            ``MinIOCredentials`` or ``AwsCredentials`` block, or None for the standard
            credential chain.
    """
    if credentials_block is None:
        return _client_from_session(_new_session())
    return _client_from_block(credentials_block)


@functools.cache
def _shared_loader() -> Any:
    """botocore's model loader, created once per process.

    Sharing it lets each new session skip re-parsing the S3 service model (about
    0.4 s per client otherwise). Credentials and settings are still resolved per session.
    """
    return botocore.session.get_session().get_component("data_loader")


def _new_session() -> boto3.session.Session:
    """A fresh boto3 session (reads the environment now) with the shared model loader."""
    core = botocore.session.get_session()
    core.register_component("data_loader", _shared_loader())
    return boto3.session.Session(botocore_session=core)


def _client_from_session(
    session: boto3.session.Session,
    overrides: dict[str, Any] | None = None,
    region: str | None = None,
) -> S3Client:
    params = dict(overrides or {})
    user_config = params.pop("config", None)
    params.pop("region_name", None)
    config = client_config()
    if user_config is not None:
        config = config.merge(user_config)
    region = region or session.region_name or DEFAULT_REGION
    return session.client("s3", region_name=region, config=config, **params)


def _client_from_block(name: str) -> S3Client:
    """Load a Prefect credentials block by ``slug/name`` and build a client from it."""
    import prefect_aws  # noqa: F401  (registers the block types)
    from prefect.blocks.core import Block

    try:
        block = Block.load(name)
    except Exception as exc:
        raise StorageError(f"could not load Prefect credentials block {name!r}: {exc}") from exc
    if not hasattr(block, "get_boto3_session") or not hasattr(block, "aws_client_parameters"):
        raise StorageError(
            f"Prefect block {name!r} is a {type(block).__name__}, "
            "expected MinIOCredentials or AwsCredentials"
        )
    overrides = block.aws_client_parameters.get_params_override()
    return _client_from_session(block.get_boto3_session(), overrides, block.region_name)


def _safe_url(url: str) -> str:
    """Drop any ``user:password@`` part from an endpoint URL."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


class S3Storage:
    """Objects in an S3 bucket under an optional key prefix.

    Small writes are a single ``PutObject`` and files go through boto3's managed
    transfer (``PutObject`` or a completed multipart upload), so an object is replaced
    whole or not at all. Holds no credentials itself: only the boto3 client does.
    """

    def __init__(self, client: S3Client, bucket: str, prefix: str = "") -> None:
        """Wrap ``client`` for ``bucket`` with keys stored under ``prefix``."""
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._transfer = TransferConfig(max_concurrency=4)
        self._reopen_args: tuple[str, str | None] | None = None

    @classmethod
    def from_root(cls, root: str, *, credentials_block: str | None = None) -> S3Storage:
        """Open ``s3://bucket/prefix`` with a client from :func:`build_client`."""
        bucket, prefix = parse_s3_root(root)
        storage = cls(build_client(credentials_block), bucket, prefix)
        storage._reopen_args = (root, credentials_block)
        return storage

    def __reduce__(self) -> tuple[Any, tuple[str, str | None]]:
        """Pickle as "reopen this root" (a boto3 client cannot be pickled).

        The unpickled copy resolves credentials and endpoint again in its own process.

        Raises:
            TypeError: If the storage was built around a caller-supplied client.
        """
        if self._reopen_args is None:
            raise TypeError("an S3Storage built from a custom client cannot be pickled")
        return (_reopen, self._reopen_args)

    @property
    def endpoint(self) -> str:
        """The endpoint URL requests go to (without any embedded credentials)."""
        return _safe_url(self._client.meta.endpoint_url)

    @property
    def region(self) -> str:
        """The client's signing region."""
        return self._client.meta.region_name

    def describe(self) -> str:
        """Return ``s3://bucket/prefix at <endpoint> (region <r>)``."""
        root = f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"
        return f"{root} at {self.endpoint} (region {self.region})"

    def __repr__(self) -> str:
        """Return a representation built from :meth:`describe` (no secrets)."""
        return f"S3Storage({self.describe()!r})"

    # -- keys -------------------------------------------------------------------------

    def _full(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _full_prefix(self, prefix: str) -> str:
        validate_prefix(prefix)
        return f"{self.prefix}/{prefix}" if self.prefix else prefix

    def _relative(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    # -- errors -----------------------------------------------------------------------

    @contextmanager
    def _errors(self, operation: str, key: str | None = None) -> Iterator[None]:
        """Translate boto errors raised inside the block into ``StorageError``s."""
        try:
            yield
        except ClientError as exc:
            raise self._from_client_error(exc, operation, key) from _cause(exc)
        except S3UploadFailedError as exc:
            inner = exc.__context__
            if isinstance(inner, ClientError):
                raise self._from_client_error(inner, operation, key) from _cause(inner)
            raise StorageError(f"S3 {operation} failed for {self._where(key)}") from exc
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
            raise StorageAuthError(
                f"no usable S3 credentials for {self._where(key)}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile), or pass credentials_block"
            ) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StorageUnreachableError(
                f"cannot reach S3 endpoint {self.endpoint} for bucket {self.bucket!r} "
                f"during {operation} ({type(exc).__name__}); is the server running and "
                "AWS_ENDPOINT_URL right?"
            ) from exc

    def _where(self, key: str | None) -> str:
        where = f"bucket {self.bucket!r} at {self.endpoint}"
        return f"key {key!r} in {where}" if key is not None else where

    def _from_client_error(self, exc: ClientError, operation: str, key: str | None) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _AUTH_CODES or status == 403:
            return StorageAuthError(
                f"S3 {operation} refused ({code or status}) for {self._where(key)}: check the "
                "access key, secret key and the permissions on this bucket"
            )
        if code == "NoSuchBucket" or (key is None and status == 404):
            return BucketNotFoundError(
                f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}: create it "
                "(e.g. `mc mb` or `aws s3 mb`) or open the storage with create_bucket=True"
            )
        if key is not None and (code in _MISSING_OBJECT_CODES or status == 404):
            return ObjectNotFoundError(key, self.describe())
        message = error.get("Message", "")
        return StorageError(
            f"S3 {operation} failed for {self._where(key)}: {code or status} {message}".rstrip()
        )

    # -- operations -------------------------------------------------------------------

    def write_bytes(self, key: str, data: bytes, content_type: str | None = None) -> None:
        """Store ``data`` at ``key`` with one ``PutObject`` (atomic)."""
        full = self._full(key)
        with self._errors("put", key):
            self._client.put_object(
                Bucket=self.bucket,
                Key=full,
                Body=bytes(data),
                ContentType=content_type or _guess_type(key),
            )

    def read_bytes(self, key: str) -> bytes:
        """Return the object at ``key``.

        Raises:
            ObjectNotFoundError: If there is no such object.
        """
        full = self._full(key)
        with self._errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read()

    def exists(self, key: str) -> bool:
        """Return whether an object exists at ``key`` (one ``HeadObject``)."""
        full = self._full(key)
        try:
            with self._errors("head", key):
                self._client.head_object(Bucket=self.bucket, Key=full)
        except ObjectNotFoundError:
            return False
        return True

    def list_keys(self, prefix: str = "") -> list[str]:
        """Return the sorted keys (relative to the root) that start with ``prefix``."""
        full_prefix = self._full_prefix(prefix)
        if self.prefix and not prefix:
            full_prefix = f"{self.prefix}/"
        return sorted(self._relative(key) for key in self._iter_full_keys(full_prefix))

    def _iter_full_keys(self, full_prefix: str) -> Iterator[str]:
        paginator = self._client.get_paginator("list_objects_v2")
        with self._errors("list"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=full_prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]

    def delete(self, key: str) -> None:
        """Delete the object at ``key``; a missing object is not an error."""
        full = self._full(key)
        with self._errors("delete", key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under the non-empty ``prefix``; return the count.

        Uses one ``DeleteObject`` per key: ``DeleteObjects`` needs a Content-MD5 header
        that current botocore no longer sends, which older MinIO/Ceph reject.
        """
        validate_prefix(prefix, allow_empty=False)
        keys = self.list_keys(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def upload_file(self, key: str, path: str | Path) -> None:
        """Upload the local file ``path`` to ``key`` (single put or multipart; atomic)."""
        full = self._full(key)
        with self._errors("upload", key):
            self._client.upload_file(
                str(path),
                self.bucket,
                full,
                ExtraArgs={"ContentType": _guess_type(key)},
                Config=self._transfer,
            )

    def download_file(self, key: str, path: str | Path) -> None:
        """Download ``key`` to ``path`` (boto3 writes a temp file, then renames it)."""
        full = self._full(key)
        with self._errors("download", key):
            self._client.download_file(self.bucket, full, str(path), Config=self._transfer)

    def url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        """Return a presigned GET URL for ``key`` valid for ``expires`` (≤ 7 days).

        No request is made: the URL is signed locally and works only if the object
        exists and the credentials are valid when it is fetched.
        """
        full = self._full(key)
        seconds = check_expiry(expires)
        with self._errors("presign", key):
            return self._client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=seconds,
            )

    def check(self) -> None:
        """Verify the endpoint answers, the credentials work and the bucket exists.

        Raises:
            StorageUnreachableError: The endpoint cannot be reached.
            StorageAuthError: The credentials are missing, wrong or not allowed.
            BucketNotFoundError: The bucket does not exist.
        """
        with self._errors("check"):
            self._client.head_bucket(Bucket=self.bucket)

    def ensure_bucket(self) -> None:
        """Create the bucket if it does not exist yet."""
        try:
            self.check()
        except BucketNotFoundError:
            self._create_bucket()

    def _create_bucket(self) -> None:
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != DEFAULT_REGION:
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        with self._errors("create bucket"):
            try:
                self._client.create_bucket(**kwargs)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise


def _reopen(root: str, credentials_block: str | None) -> S3Storage:
    """Unpickle helper: open ``root`` again."""
    return S3Storage.from_root(root, credentials_block=credentials_block)


def _cause(exc: ClientError) -> ClientError | None:
    """Keep the botocore error as the cause unless it is an auth failure.

    Auth error responses carry the access key id, so they are not chained.
    """
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return None if code in _AUTH_CODES or status == 403 else exc


def _guess_type(key: str) -> str:
    """Guess a Content-Type from the key's extension (for browsers and consoles)."""
    if key.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
