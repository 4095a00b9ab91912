"""S3 and S3-compatible (MinIO, Ceph, ...) storage via boto3.

Configuration follows the AWS conventions: credentials from the standard chain
(environment, shared files/profiles, container or instance roles), the endpoint from
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (read natively by botocore), the region
from ``AWS_REGION`` / ``AWS_DEFAULT_REGION`` / the profile, else ``us-east-1``. A
Prefect ``MinIOCredentials`` or ``AwsCredentials`` block may be named instead.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import mimetypes
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from boto3.exceptions import S3UploadFailedError
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    CredentialRetrievalError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError

from closecast.storage.base import (
    DEFAULT_URL_EXPIRY,
    check_expiry,
    validate_key,
    validate_prefix,
)
from closecast.storage.errors import (
    BucketNotFoundError,
    NotS3EndpointError,
    ObjectNotFoundError,
    StorageAuthError,
    StorageConfigError,
    StorageError,
    StorageUnreachableError,
)
from closecast.storage.redaction import has_userinfo, redact_text, redact_url, strip_userinfo

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_REGION = "us-east-1"

_log = logging.getLogger(__name__)

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
# Statuses a gateway in front of a healthy S3 server answers while it is down or busy.
_GATEWAY_STATUSES = frozenset({502, 503, 504})
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
_MISSING_BUCKET_HINT = (
    "create it (e.g. `mc mb` or `aws s3 mb`), or let closecast create it: "
    "`closecast run --create-bucket` or the flow parameter `create_bucket=True`"
)


@dataclass(frozen=True)
class S3Timeouts:
    """How long one S3 request may take and how often it is tried.

    Attributes:
        connect: Seconds to wait for a TCP connection (``CLOSECAST_S3_CONNECT_TIMEOUT``).
        read: Seconds to wait for each read of an answer (``CLOSECAST_S3_READ_TIMEOUT``).
        max_attempts: Tries per request, the first included (``CLOSECAST_S3_MAX_ATTEMPTS``).
    """

    connect: float = 5.0
    read: float = 10.0
    max_attempts: int = 2

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> S3Timeouts:
        """Read the ``CLOSECAST_S3_*`` variables; unset ones keep their defaults.

        Raises:
            StorageConfigError: A value that is not a number in the allowed range.
        """
        env = os.environ if environ is None else environ
        defaults = cls()
        return cls(
            connect=_env_number(env, "CLOSECAST_S3_CONNECT_TIMEOUT", defaults.connect, float, 3600),
            read=_env_number(env, "CLOSECAST_S3_READ_TIMEOUT", defaults.read, float, 3600),
            max_attempts=int(
                _env_number(env, "CLOSECAST_S3_MAX_ATTEMPTS", defaults.max_attempts, int, 10)
            ),
        )


def _env_number(
    env: Mapping[str, str], name: str, default: float, kind: type, upper: float
) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        value = None
    if value is None or not 0 < value <= upper:
        unit = "a whole number" if kind is int else "a number of seconds"
        raise StorageConfigError(f"{name}={raw!r}: expected {unit} above 0 and at most {upper}")
    return value


def client_config(timeouts: S3Timeouts | None = None, **overrides: Any) -> Config:
    """Return the botocore config used for every S3 client.

    SigV4 (also for presigned URLs), path-style addressing and "when required"
    checksums keep MinIO/Ceph working with current botocore. Explicit connect/read
    timeouts and few attempts make a down or silent endpoint fail in seconds, not minutes.

    Args:
        timeouts: Timeouts and attempts; :meth:`S3Timeouts.from_env` when None.
        **overrides: Extra ``Config`` options that take precedence.
    """
    timeouts = timeouts or S3Timeouts.from_env()
    base = Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"mode": "standard", "total_max_attempts": timeouts.max_attempts},
        connect_timeout=timeouts.connect,
        read_timeout=timeouts.read,
    )
    return base.merge(Config(**overrides)) if overrides else base


def parse_s3_root(root: str) -> tuple[str, str]:
    """Split ``s3://bucket/some/prefix`` into ``("bucket", "some/prefix")``.

    Raises:
        StorageConfigError: If the URL is not ``s3://``, the bucket name is not a valid
            S3 bucket name, or the prefix is not a clean relative path (no ``..``, ``//``).
    """
    shown = redact_url(root)
    parts = urlsplit(root)
    if parts.scheme != "s3" or parts.query or parts.fragment or "#" in root or "?" in root:
        raise StorageConfigError(f"not an s3://bucket/prefix root: {shown!r}")
    bucket = parts.netloc
    if "@" in bucket:
        raise StorageConfigError(
            f"{shown!r}: an s3:// root takes no user:password@; credentials come from "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or --credentials-block"
        )
    if not bucket:
        raise StorageConfigError(f"no bucket in {shown!r}: use s3://bucket/prefix")
    problem = _bucket_name_problem(bucket)
    if problem:
        raise StorageConfigError(f"invalid S3 bucket name {bucket!r} in {shown!r}: {problem}")
    prefix = parts.path.strip("/")
    if prefix:
        try:
            validate_key(prefix)
        except ValueError as exc:
            raise StorageConfigError(f"invalid key prefix in {shown!r}: {exc}") from None
    return bucket, prefix


def _bucket_name_problem(bucket: str) -> str | None:
    """Why ``bucket`` breaks the S3 naming rules, or None if it follows them."""
    if not _BUCKET_NAME.match(bucket):
        return (
            "use 3 to 63 lowercase letters, digits, '.' and '-', starting and ending alphanumeric"
        )
    if ".." in bucket or ".-" in bucket or "-." in bucket:
        return "no '..', '.-' or '-.'"
    try:
        ipaddress.IPv4Address(bucket)
    except ValueError:
        return None
    return "a bucket name must not look like an IP address"


def build_client(credentials_block: str | None = None) -> S3Client:
    """Build an S3 client from the standard AWS configuration or a Prefect block.

    Args:
        credentials_block: ``"<block-type-slug>/<name>"`` of a saved Prefect
            ``MinIOCredentials`` or ``AwsCredentials`` block, or None for the standard
            credential chain.
    """
    return open_client(credentials_block)[0]


def open_client(
    credentials_block: str | None = None,
) -> tuple[S3Client, boto3.session.Session]:
    """:func:`build_client`, with the boto3 session that holds its credentials (to sign
    for another endpoint with them)."""
    if credentials_block is None:
        session = _new_session()
        return _client_from_session(session), session
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
    try:
        client = session.client("s3", region_name=region, config=config, **params)
        endpoint = client.meta.endpoint_url
        if has_userinfo(endpoint):
            # S3 authenticates with signed requests; a user:password@ in the endpoint is
            # never used, only copied into presigned URLs, logs and errors. Drop it here.
            _log.warning(
                "ignoring the credentials embedded in the S3 endpoint %s: S3 takes them from "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, a profile or a credentials block",
                redact_url(endpoint),
            )
            params["endpoint_url"] = strip_userinfo(endpoint)
            client = session.client("s3", region_name=region, config=config, **params)
    except (ValueError, BotoCoreError) as exc:  # e.g. "Invalid endpoint", unknown profile
        raise StorageConfigError(
            f"cannot configure the S3 client: {redact_text(str(exc))}"
        ) from None
    return client


def _client_from_block(name: str) -> tuple[S3Client, boto3.session.Session]:
    """Load a Prefect credentials block by ``slug/name`` and build a client from it."""
    import prefect_aws  # noqa: F401  (registers the block types)
    from prefect.blocks.core import Block

    try:
        block = Block.load(name)
    except Exception as exc:  # Prefect raises ValueError, httpx errors, ...: all unusable
        raise StorageConfigError(
            f"could not load Prefect credentials block {name!r}: {redact_text(str(exc))}"
        ) from None
    if not hasattr(block, "get_boto3_session") or not hasattr(block, "aws_client_parameters"):
        raise StorageError(
            f"Prefect block {name!r} is a {type(block).__name__}, "
            "expected MinIOCredentials or AwsCredentials"
        )
    try:
        overrides = block.aws_client_parameters.get_params_override()
        session = block.get_boto3_session()
    except (ValueError, BotoCoreError) as exc:  # the text may quote the endpoint URL
        raise StorageConfigError(
            f"Prefect block {name!r} cannot build an S3 client: {redact_text(str(exc))}"
        ) from None
    return _client_from_session(session, overrides, block.region_name), session


class S3Storage:
    """Objects in an S3 bucket under an optional key prefix.

    Small writes are a single ``PutObject`` and files go through boto3's managed
    transfer (``PutObject`` or a completed multipart upload), so an object is replaced
    whole or not at all. Holds no credentials itself: only the boto3 client does.
    """

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        prefix: str = "",
        session: boto3.session.Session | None = None,
    ) -> None:
        """Wrap ``client`` for ``bucket`` with keys stored under ``prefix``; ``session`` is
        the boto3 session the client came from (needed only to sign for another endpoint)."""
        self._client = client
        self._session = session
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._transfer = TransferConfig(max_concurrency=4)
        self._reopen_args: tuple[str, str | None] | None = None

    @classmethod
    def from_root(cls, root: str, *, credentials_block: str | None = None) -> S3Storage:
        """Open ``s3://bucket/prefix`` with a client from :func:`build_client`."""
        bucket, prefix = parse_s3_root(root)
        client, session = open_client(credentials_block)
        storage = cls(client, bucket, prefix, session)
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
        return redact_url(self._client.meta.endpoint_url)

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
        """Translate boto errors raised inside the block into ``StorageError``s.

        botocore's errors are never chained: their text may hold the endpoint URL (with
        whatever it embeds) or, for auth failures, the access key id. What helps is
        copied, redacted, into the message instead.
        """
        try:
            yield
        except ClientError as exc:
            raise self._from_client_error(exc, operation, key) from None
        except S3UploadFailedError as exc:
            inner = exc.__context__
            if isinstance(inner, ClientError):
                raise self._from_client_error(inner, operation, key) from None
            raise StorageError(
                f"S3 {operation} failed for {self._where(key)}: {_detail(exc)}"
            ) from None
        except (NoCredentialsError, PartialCredentialsError, CredentialRetrievalError):
            raise StorageAuthError(
                f"no usable S3 credentials for {self._where(key)}: set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY (or a profile), or pass credentials_block"
            ) from None
        except ResponseParserError:
            raise self._not_s3(operation, "an answer that is not S3 XML") from None
        except (ConnectTimeoutError, ReadTimeoutError) as exc:
            raise StorageUnreachableError(
                f"S3 endpoint {self.endpoint} did not answer in time for bucket "
                f"{self.bucket!r} during {operation} ({type(exc).__name__}, connect/read "
                f"timeouts {self._timeouts()}; set CLOSECAST_S3_CONNECT_TIMEOUT, "
                "CLOSECAST_S3_READ_TIMEOUT, CLOSECAST_S3_MAX_ATTEMPTS to change them)"
            ) from None
        except (BotoConnectionError, HTTPClientError) as exc:
            raise StorageUnreachableError(
                f"cannot reach S3 endpoint {self.endpoint} for bucket {self.bucket!r} "
                f"during {operation} ({type(exc).__name__}: {_detail(exc)}); is the server "
                "running and AWS_ENDPOINT_URL right?"
            ) from None
        except BotoCoreError as exc:
            raise StorageError(
                f"S3 {operation} failed for {self._where(key)}: {_detail(exc)}"
            ) from None

    def _timeouts(self) -> str:
        config = self._client.meta.config
        attempts = (config.retries or {}).get("total_max_attempts", "?")
        return f"{config.connect_timeout}s/{config.read_timeout}s, {attempts} attempt(s)"

    def _where(self, key: str | None) -> str:
        where = f"bucket {self.bucket!r} at {self.endpoint}"
        return f"key {key!r} in {where}" if key is not None else where

    def _not_s3(self, operation: str, answer: str) -> NotS3EndpointError:
        return NotS3EndpointError(
            f"{self.endpoint} is not an S3 endpoint: it gave {answer} to {operation} of bucket "
            f"{self.bucket!r}; point AWS_ENDPOINT_URL (or the credentials block's endpoint_url) "
            "at the S3 API, e.g. MinIO's port 9000, not its console or another web server"
        )

    def _from_client_error(self, exc: ClientError, operation: str, key: str | None) -> StorageError:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        # Only HEAD answers have no body; any other S3 error names an S3 error code.
        codeless = code in ("", str(status))
        if codeless and not str(getattr(exc, "operation_name", "")).startswith("Head"):
            if status in _GATEWAY_STATUSES:
                return StorageUnreachableError(
                    f"S3 endpoint {self.endpoint} answered HTTP {status} without an S3 error "
                    f"for {self._where(key)} during {operation} (a gateway in front of a "
                    "server that is down?)"
                )
            return self._not_s3(operation, f"HTTP {status} without an S3 error code")
        if code in _AUTH_CODES or status == 403:
            return StorageAuthError(
                f"S3 {operation} refused ({code or status}) for {self._where(key)}: check the "
                "access key, secret key and the permissions on this bucket"
            )
        if code == "NoSuchBucket" or (key is None and status == 404):
            return BucketNotFoundError(
                f"S3 bucket {self.bucket!r} does not exist at {self.endpoint}: "
                f"{_MISSING_BUCKET_HINT}"
            )
        if key is not None and (code in _MISSING_OBJECT_CODES or status == 404):
            return ObjectNotFoundError(key, self.describe())
        message = redact_text(str(error.get("Message", "")))
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

    def create_exclusive(self, key: str, data: bytes) -> str | None:
        """Create ``key`` unless it exists: a conditional ``PutObject`` (``If-None-Match:
        *``, honoured by AWS S3 and MinIO), which fails with 412 when an object is there.
        Returns the new object's ETag (from the same response: no second request), None
        when an object was there."""
        full = self._full(key)
        with self._errors("put", key):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=bytes(data),
                    ContentType=_guess_type(key),
                    IfNoneMatch="*",
                )
            except ClientError as exc:
                # 412: an object is there; 409: another conditional write to it is under way.
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if status in (409, 412) or code in _CONDITIONAL_WRITE_LOST:
                    return None
                raise
        return str(response["ETag"])

    def read_bytes(self, key: str) -> bytes:
        """Return the object at ``key``.

        Raises:
            ObjectNotFoundError: If there is no such object.
        """
        full = self._full(key)
        with self._errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read()

    def read_tagged(self, key: str) -> tuple[bytes, str]:
        """Return the object at ``key`` and its ETag.

        Raises:
            ObjectNotFoundError: If there is no such object.
        """
        full = self._full(key)
        with self._errors("get", key):
            response = self._client.get_object(Bucket=self.bucket, Key=full)
            return response["Body"].read(), str(response["ETag"])

    def replace_if(self, key: str, data: bytes, tag: str) -> str | None:
        """Replace ``key`` if its ETag is still ``tag``: a conditional ``PutObject``
        (``If-Match``), which S3 answers with 412 when the object changed and 404 when it is
        gone. A server that does not implement it gets a compare-then-write instead."""
        full = self._full(key)
        with self._errors("put", key):
            try:
                response = self._client.put_object(
                    Bucket=self.bucket,
                    Key=full,
                    Body=bytes(data),
                    ContentType=_guess_type(key),
                    IfMatch=tag,
                )
            except ClientError as exc:
                outcome = _conditional_outcome(exc)
                if outcome == "lost":
                    return None
                if outcome != "unsupported":
                    raise
            else:
                return str(response["ETag"])
        return self._replace_unconditionally_if(key, data, tag)

    def _replace_unconditionally_if(self, key: str, data: bytes, tag: str) -> str | None:
        try:
            _, current = self.read_tagged(key)
        except ObjectNotFoundError:
            return None
        if current != tag:
            return None
        self.write_bytes(key, data)
        return self.read_tagged(key)[1]

    def delete_if(self, key: str, tag: str) -> bool:
        """Delete ``key`` if its ETag is still ``tag``: a conditional ``DeleteObject``
        (``If-Match``); a server that does not implement it gets a compare-then-delete."""
        full = self._full(key)
        with self._errors("delete", key):
            try:
                self._client.delete_object(Bucket=self.bucket, Key=full, IfMatch=tag)
            except ClientError as exc:
                outcome = _conditional_outcome(exc)
                if outcome == "lost":
                    return False
                if outcome != "unsupported":
                    raise
            else:
                return True
        try:
            _, current = self.read_tagged(key)
        except ObjectNotFoundError:
            return False
        if current != tag:
            return False
        self.delete(key)
        return True

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

    def url(
        self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY, *, endpoint: str | None = None
    ) -> str:
        """Return a presigned GET URL for ``key`` valid for ``expires`` (≤ 7 days).

        No request is made: the URL is signed locally and works only if the object
        exists and the credentials are valid when it is fetched.

        Args:
            key: The object's key.
            expires: How long the URL stays valid.
            endpoint: Sign for this endpoint instead of the client's (the one a browser
                reaches, e.g. ``http://localhost:9000`` for a container's ``http://minio:9000``):
                SigV4 signs the host, so the URL must be signed for the host the browser
                sends. Same credentials, region and settings.

        Raises:
            StorageConfigError: ``endpoint`` is given but the storage was built around a
                caller's client, whose credentials it cannot reuse.
        """
        full = self._full(key)
        seconds = check_expiry(expires)
        client = self._client if endpoint is None else self._signer_for(endpoint)
        with self._errors("presign", key):
            return client.generate_presigned_url(
                "get_object",
                Params={"Bucket": self.bucket, "Key": full},
                ExpiresIn=seconds,
            )

    def _signer_for(self, endpoint: str) -> S3Client:
        if self._session is None:
            raise StorageConfigError(
                f"cannot sign URLs of {self.describe()} for {redact_url(endpoint)}: "
                "the storage was built around a caller's client"
            )
        meta = self._client.meta
        return self._session.client(
            "s3", endpoint_url=endpoint, region_name=meta.region_name, config=meta.config
        )

    def check(self) -> None:
        """Verify the endpoint is S3, the credentials work and the bucket exists.

        One ``ListObjectsV2`` of at most one key (it needs the same permission as
        ``HeadBucket``, but its answer has a body that tells an S3 server from any other).

        Raises:
            StorageUnreachableError: The endpoint cannot be reached or does not answer.
            NotS3EndpointError: Something answers HTTP there, but not as S3.
            StorageAuthError: The credentials are missing, wrong or not allowed.
            BucketNotFoundError: The bucket does not exist.
        """
        with self._errors("check"):
            listing = self._client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._full_prefix(""), MaxKeys=1
            )
        if listing.get("Name") != self.bucket:
            raise self._not_s3("check", "a success answer that is not an S3 bucket listing")

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


def _detail(exc: BaseException) -> str:
    """A botocore/boto3 error's text with any URL credentials redacted."""
    return redact_text(str(exc)) or type(exc).__name__


_CONDITIONAL_WRITE_LOST = frozenset({"PreconditionFailed", "ConditionalRequestConflict"})


def _conditional_outcome(exc: ClientError) -> str:
    """What a failed conditional request means: ``lost`` (the object changed or is gone),
    ``unsupported`` (the server does not implement the condition) or ``error``."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(exc.response.get("Error", {}).get("Code", ""))
    if status in (409, 412) or code in _CONDITIONAL_WRITE_LOST or code in _MISSING_OBJECT_CODES:
        return "lost"
    if status == 501 or code == "NotImplemented":
        return "unsupported"
    return "error"


def _guess_type(key: str) -> str:
    """Guess a Content-Type from the key's extension (for browsers and consoles)."""
    if key.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    return mimetypes.guess_type(key)[0] or "application/octet-stream"
