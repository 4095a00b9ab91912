"""S3-only behaviour: configuration, error mapping, buckets and the Prefect block path.

Runs against moto's server on loopback, or against the endpoint in ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import http.server
import json
import logging
import re
import socket
import threading
import time
import traceback
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from closecast.storage import (
    BucketNotFoundError,
    NotS3EndpointError,
    StorageAuthError,
    StorageConfigError,
    StorageError,
    StorageUnreachableError,
    open_storage,
)
from closecast.storage.s3 import S3Storage, S3Timeouts, parse_s3_root

WRONG_SECRET = "wrong-secret-Zq9vX2kP7mN4"  # deliberately invalid
MINIO_DOC = Path(__file__).resolve().parents[2] / "docs" / "minio.md"


def _documented_access_key() -> str:
    """The access key id docs/minio.md tells users to export (a word, like ``closecast``,
    that names the bucket and the project too)."""
    text = MINIO_DOC.read_text(encoding="utf-8")
    return re.search(r"^export AWS_ACCESS_KEY_ID=(\S+)", text, flags=re.MULTILINE).group(1)


@pytest.fixture
def s3(s3_root: str) -> S3Storage:
    """An S3 storage on a fresh bucket."""
    storage = open_storage(s3_root)
    assert isinstance(storage, S3Storage)
    return storage


# -- roots and configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "expected"),
    [
        ("s3://closecast", ("closecast", "")),
        ("s3://closecast/", ("closecast", "")),
        ("s3://closecast/runs/2024", ("closecast", "runs/2024")),
        ("s3://closecast/runs/2024/", ("closecast", "runs/2024")),
    ],
)
def test_parse_s3_root(root: str, expected: tuple[str, str]) -> None:
    assert parse_s3_root(root) == expected


@pytest.mark.parametrize(
    ("root", "message"),
    [
        ("s3://", "no bucket in 's3://'"),
        ("s3:///prefix", "no bucket in 's3:///prefix'"),
        ("s3://Bad_Bucket/x", "invalid S3 bucket name 'Bad_Bucket'"),
        ("s3://ab/x", "invalid S3 bucket name 'ab'"),
        ("s3://my..bucket/x", "invalid S3 bucket name 'my..bucket'"),
        ("s3://192.168.1.10/x", "look like an IP address"),
        ("s3://bucket:9000/x", "invalid S3 bucket name 'bucket:9000'"),
        ("s3://ok-bucket/../x", "invalid key prefix in 's3://ok-bucket/../x'"),
        ("s3://ok-bucket/a//b", "invalid key prefix in 's3://ok-bucket/a//b'"),
        ("s3://b?x=1", "not an s3://bucket/prefix root"),
        ("s3://bucket/x#frag", "not an s3://bucket/prefix root"),
    ],
)
def test_parse_s3_root_rejects_bad_roots_naming_them(root: str, message: str) -> None:
    with pytest.raises(StorageConfigError) as caught:
        parse_s3_root(root)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(StorageConfigError, match=re.escape(message)):
        open_storage(root)  # before any client is built or request made


def test_a_password_in_an_s3_root_is_never_shown() -> None:
    secret = "hunter2-secret"
    root = f"s3://me:{secret}@bucket/x"
    with pytest.raises(StorageConfigError) as caught:
        open_storage(root)
    assert secret not in "".join(traceback.format_exception(caught.value))
    assert "s3://***@bucket/x" in str(caught.value)


def test_client_uses_env_endpoint_and_s3_compatible_config(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_REGION", raising=False)
    storage = open_storage("s3://closecast-config-check/run")
    assert isinstance(storage, S3Storage)
    assert storage.endpoint == s3_env
    meta = storage._client.meta
    if not meta.config.region_name:
        assert storage.region == "us-east-1"
    assert meta.config.s3 == {"addressing_style": "path"}
    assert meta.config.request_checksum_calculation == "when_required"
    assert meta.config.response_checksum_validation == "when_required"
    assert meta.config.retries["mode"] == "standard"
    assert meta.config.connect_timeout <= 5


def test_service_specific_endpoint_wins(
    s3_root: str, closed_port: int, s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_env)
    storage = open_storage(s3_root)
    storage.write_bytes("k", b"v")
    assert storage.read_bytes("k") == b"v"


def test_describe_and_repr_never_show_credentials(s3: S3Storage) -> None:
    import os

    text = s3.describe() + repr(s3)
    assert s3.bucket in text
    assert s3.endpoint in text
    _assert_no_credentials_leak(
        AssertionError(text),
        os.environ["AWS_SECRET_ACCESS_KEY"],
        os.environ["AWS_ACCESS_KEY_ID"],
        named=(s3.bucket, s3.endpoint),
    )


def test_content_type_is_stored(s3: S3Storage, s3_client) -> None:
    s3.write_bytes("plot.png", b"\x89PNG")
    s3.write_bytes("data.json", b"{}", content_type="application/json; charset=utf-8")
    head = s3_client.head_object(Bucket=s3.bucket, Key="run/plot.png")
    assert head["ContentType"] == "image/png"
    head = s3_client.head_object(Bucket=s3.bucket, Key="run/data.json")
    assert head["ContentType"] == "application/json; charset=utf-8"


def test_prefix_isolates_roots(s3_bucket: str) -> None:
    run = open_storage(f"s3://{s3_bucket}/run")
    run2 = open_storage(f"s3://{s3_bucket}/run2")
    whole = open_storage(f"s3://{s3_bucket}")
    run.write_bytes("a", b"1")
    run2.write_bytes("a", b"2")
    assert run.list_keys() == ["a"]
    assert run2.list_keys() == ["a"]
    assert whole.list_keys() == ["run/a", "run2/a"]
    assert run.delete_prefix("a") == 1
    assert run2.read_bytes("a") == b"2"


def test_presigned_url_is_sigv4(s3: S3Storage) -> None:
    s3.write_bytes("x.txt", b"x")
    url = s3.url("x.txt")
    assert "X-Amz-Signature=" in url
    assert "X-Amz-Expires=604800" in url
    assert url.startswith(f"{s3.endpoint}/{s3.bucket}/run/x.txt?")


# -- buckets -------------------------------------------------------------------------------


def test_missing_bucket_raises_bucket_not_found(s3_env: str) -> None:
    bucket = f"closecast-missing-{uuid.uuid4().hex[:8]}"
    storage = open_storage(f"s3://{bucket}/run")
    with pytest.raises(BucketNotFoundError) as caught:
        storage.check()
    assert bucket in str(caught.value)
    assert "--create-bucket" in str(caught.value)  # the CLI flag
    assert "create_bucket=True" in str(caught.value)  # the flow parameter
    with pytest.raises(BucketNotFoundError):
        storage.write_bytes("a", b"x")
    with pytest.raises(BucketNotFoundError):
        storage.read_bytes("a")
    with pytest.raises(BucketNotFoundError):
        storage.list_keys()


def test_create_bucket_creates_it_once(s3_env: str, s3_client) -> None:
    bucket = f"closecast-test-{uuid.uuid4().hex[:8]}"
    try:
        storage = open_storage(f"s3://{bucket}/run", create_bucket=True)
        storage.check()
        storage.write_bytes("a", b"x")
        again = open_storage(f"s3://{bucket}/run", create_bucket=True)  # already there: no-op
        assert again.read_bytes("a") == b"x"
    finally:
        for key in s3_client.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3_client.delete_object(Bucket=bucket, Key=key["Key"])
        s3_client.delete_bucket(Bucket=bucket)


# -- unreachable endpoint ------------------------------------------------------------------


def test_unreachable_endpoint_fails_fast_naming_endpoint_and_bucket(
    s3_env: str, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    storage = open_storage("s3://closecast-nowhere/run")
    started = time.monotonic()
    with pytest.raises(StorageUnreachableError) as caught:
        storage.check()
    assert time.monotonic() - started < 5
    assert endpoint in str(caught.value)
    assert "closecast-nowhere" in str(caught.value)
    for call in (lambda: storage.write_bytes("a", b"x"), lambda: storage.list_keys()):
        with pytest.raises(StorageUnreachableError):
            call()


def test_unreachable_endpoint_with_create_bucket(
    s3_env: str, closed_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed_port}")
    with pytest.raises(StorageUnreachableError):
        open_storage("s3://closecast-nowhere/run", create_bucket=True)


# -- credentials ---------------------------------------------------------------------------


def _reset_moto_auth(endpoint: str, value: str) -> None:
    request = urllib.request.Request(
        f"{endpoint}/moto-api/reset-auth",
        data=value.encode(),
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form body would hide the value
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        json.loads(response.read())


@pytest.fixture
def enforced_auth(s3_server, s3_root: str) -> Iterator[dict[str, str] | None]:
    """Make the server check credentials; yield a valid key pair without S3 permissions.

    Moto accepts any credentials unless its IAM emulation is switched on
    (``/moto-api/reset-auth``); then it knows only IAM access keys it issued. A real
    endpoint (MinIO) always checks, and there is no key without permissions: yield None.
    """
    if s3_server.external:
        yield None
        return
    iam = boto3.session.Session().client(
        "iam",
        endpoint_url=s3_server.endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    user = f"closecast-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    _reset_moto_auth(s3_server.endpoint, "0")
    try:
        yield {"id": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
    finally:
        _reset_moto_auth(s3_server.endpoint, "inf")


def _assert_no_credentials_leak(
    error: BaseException, *values: str, named: tuple[str, ...] = ()
) -> None:
    """No credential ``values`` in what the error says, down its chain of causes, once the
    names the message must hold (``named``: bucket, endpoint) are blanked out.

    Only the messages are searched, not the traceback's file paths, source lines and module
    names, which hold no runtime value but do hold the project's name: docs/minio.md's access
    key is ``closecast``, which is also in the test bucket ``closecast-test-...``.
    """
    rendered = _messages(error)
    for name in sorted(named, key=len, reverse=True):
        rendered = rendered.replace(name, "<named>")
    for value in values:
        assert value not in rendered, f"credential {value!r} shown"


def _messages(error: BaseException) -> str:
    """Every message (with notes) of an error and of its causes and contexts."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts += [repr(current), str(current), *getattr(current, "__notes__", [])]
        current = current.__cause__ or current.__context__
    return "".join(parts)


def test_the_leak_check_sees_a_key_shown_beside_a_bucket_holding_it() -> None:
    key = _documented_access_key()
    bucket = f"{key}-test-0a1b2c3d"
    _assert_no_credentials_leak(PermissionError(f"bucket {bucket} refused"), key, named=(bucket,))
    with pytest.raises(AssertionError, match="shown"):
        _assert_no_credentials_leak(
            PermissionError(f"bucket {bucket} refused key {key}"), key, named=(bucket,)
        )
    try:  # a leak in a cause, behind a clean message, is seen too
        try:
            raise KeyError(f"no such key id {key}")
        except KeyError as inner:
            raise PermissionError(f"bucket {bucket} refused") from inner
    except PermissionError as outer:
        with pytest.raises(AssertionError, match="shown"):
            _assert_no_credentials_leak(outer, key, named=(bucket,))


def _credential_cases(enforced: dict[str, str] | None) -> list[tuple[str, str, str]]:
    """(expected S3 error code, access key id, secret) for each way to be refused."""
    import os

    # An unknown key: the one docs/minio.md tells MinIO users to export.
    cases = [("InvalidAccessKeyId", _documented_access_key(), WRONG_SECRET)]
    known_id = enforced["id"] if enforced else os.environ["AWS_ACCESS_KEY_ID"]
    cases.append(("SignatureDoesNotMatch", known_id, WRONG_SECRET))
    if enforced:
        cases.append(("AccessDenied", enforced["id"], enforced["secret"]))
    return cases


def test_wrong_credentials_raise_auth_error_without_leaking_them(
    s3_root: str, enforced_auth: dict[str, str] | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    bucket = parse_s3_root(s3_root)[0]
    for code, key_id, secret in _credential_cases(enforced_auth):
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
        storage = open_storage(s3_root)
        with pytest.raises(StorageAuthError, match=code):
            storage.write_bytes("a", b"x")
        for call in (
            storage.check,
            lambda storage=storage: storage.write_bytes("a", b"x"),
            lambda storage=storage: storage.read_bytes("a"),
            lambda storage=storage: storage.list_keys(),
        ):
            with pytest.raises(StorageAuthError) as caught:
                call()
            message = str(caught.value)
            assert bucket in message, code
            assert storage.endpoint in message, code
            _assert_no_credentials_leak(
                caught.value, key_id, secret, named=(bucket, storage.endpoint)
            )
        _assert_no_credentials_leak(AssertionError(repr(storage) + storage.describe()), secret)


def test_missing_credentials_raise_auth_error(
    s3_root: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    storage = open_storage(s3_root)
    with pytest.raises(StorageAuthError, match="AWS_ACCESS_KEY_ID"):
        storage.check()


def _minio_block_from_env(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> str:
    """Save a MinIO credentials block holding the test endpoint's credentials, then unset
    the AWS variables so they can come only from the block. Returns the block's name."""
    import os

    from prefect_aws import MinIOCredentials

    user = os.environ["AWS_ACCESS_KEY_ID"]
    password = os.environ["AWS_SECRET_ACCESS_KEY"]
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    block_name = f"closecast-test-{uuid.uuid4().hex[:8]}"
    MinIOCredentials(
        minio_root_user=user,
        minio_root_password=password,
        region_name="us-east-1",
        aws_client_parameters={"endpoint_url": endpoint},
    ).save(block_name)
    return block_name


# -- Prefect credentials block ---------------------------------------------------------------


@pytest.mark.usefixtures("prefect_harness")
def test_open_storage_with_prefect_minio_credentials_block(
    s3_root: str, s3_server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Endpoint and credentials come only from the block: the AWS env vars are unset."""
    import os

    password = os.environ["AWS_SECRET_ACCESS_KEY"]
    block_name = _minio_block_from_env(monkeypatch, s3_server.endpoint)
    storage = open_storage(s3_root, credentials_block=f"minio-credentials/{block_name}")
    storage.check()
    storage.write_bytes("from-block.txt", b"ok")
    assert storage.read_bytes("from-block.txt") == b"ok"
    assert s3_server.endpoint in storage.describe()
    assert password not in repr(storage) + storage.describe()
    assert storage._client.meta.config.s3 == {"addressing_style": "path"}
    with pytest.raises(StorageError, match="does-not-exist"):
        open_storage(s3_root, credentials_block="minio-credentials/does-not-exist")


# -- endpoints that are not S3, or never answer -----------------------------------------------


class _WebServer(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering every request with one HTML page and status."""

    daemon_threads = True

    def __init__(self, status: int) -> None:
        super().__init__(("127.0.0.1", 0), _PageHandler)
        self.status = status
        self.requests = 0
        self.url = f"http://127.0.0.1:{self.server_port}"


class _PageHandler(http.server.BaseHTTPRequestHandler):
    timeout = 10  # a stuck client cannot hold a handler thread longer
    page = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"

    def _answer(self) -> None:
        self.server.requests += 1
        if self.server.requests > 50:  # bounded: the tests send a handful
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        self.send_response(self.server.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(self.page)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(self.page)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet."""


@pytest.fixture
def web_server(request: pytest.FixtureRequest) -> Iterator[_WebServer]:
    """A plain web server on loopback answering every request with status ``request.param``."""
    server = _WebServer(request.param)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.mark.parametrize("web_server", [200, 404, 400], indirect=True)
def test_a_web_server_is_not_an_s3_endpoint(
    s3_env: str, web_server: _WebServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", web_server.url)
    storage = open_storage("s3://closecast-web/run")
    with pytest.raises(NotS3EndpointError) as caught:
        storage.check()
    assert f"{web_server.url} is not an S3 endpoint" in str(caught.value)
    assert not isinstance(caught.value, BucketNotFoundError)
    with pytest.raises(NotS3EndpointError):
        open_storage("s3://closecast-web/run", create_bucket=True)
    if web_server.status >= 400:  # a 200 to everything is caught by check() only
        for call in (lambda: storage.write_bytes("a", b"x"), lambda: storage.read_bytes("a")):
            with pytest.raises(NotS3EndpointError):
                call()


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A loopback port that accepts TCP connections and never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)  # the kernel completes handshakes; nobody ever reads or writes
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_an_endpoint_that_never_answers_fails_after_the_configured_timeouts(
    s3_env: str, silent_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_endpoint)
    monkeypatch.setenv("CLOSECAST_S3_CONNECT_TIMEOUT", "1")
    monkeypatch.setenv("CLOSECAST_S3_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("CLOSECAST_S3_MAX_ATTEMPTS", "1")
    storage = open_storage("s3://closecast-silent/run")
    config = storage._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (1.0, 0.5)
    assert config.retries["total_max_attempts"] == 1
    with pytest.raises(StorageUnreachableError) as caught:
        storage.check()
    message = str(caught.value)
    assert f"S3 endpoint {silent_endpoint} did not answer in time" in message
    assert "ReadTimeoutError" in message and "1.0s/0.5s, 1 attempt(s)" in message
    assert "closecast-silent" in message


def test_timeouts_default_to_seconds_not_minutes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONNECT_TIMEOUT", "READ_TIMEOUT", "MAX_ATTEMPTS"):
        monkeypatch.delenv(f"CLOSECAST_S3_{name}", raising=False)
    timeouts = S3Timeouts.from_env()
    worst = (timeouts.connect + timeouts.read) * timeouts.max_attempts
    assert worst <= 30, timeouts


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CLOSECAST_S3_CONNECT_TIMEOUT", "soon"),
        ("CLOSECAST_S3_READ_TIMEOUT", "-1"),
        ("CLOSECAST_S3_READ_TIMEOUT", "0"),
        ("CLOSECAST_S3_MAX_ATTEMPTS", "1.5"),
        ("CLOSECAST_S3_MAX_ATTEMPTS", "0"),
        ("CLOSECAST_S3_MAX_ATTEMPTS", "1000"),
    ],
)
def test_bad_timeout_settings_are_configuration_errors_naming_the_variable(
    s3_env: str, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(StorageConfigError, match=f"{name}={value!r}"):
        open_storage("s3://closecast-config/run")


def test_an_invalid_endpoint_url_is_a_configuration_error(
    s3_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", "not a url")
    with pytest.raises(StorageConfigError, match="not a url"):
        open_storage("s3://closecast-config/run")


# -- a password in the endpoint URL never reaches a log, an error or an artifact -----------

ENDPOINT_SECRET = "Endpoint-Pw-7fQ2"


def _with_userinfo(endpoint: str) -> str:
    return endpoint.replace("://", f"://closecast:{ENDPOINT_SECRET}@", 1)


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Capture every log record, botocore's and urllib3's DEBUG chatter included."""
    caplog.set_level(logging.DEBUG)
    return caplog


def test_endpoint_credentials_are_dropped_before_any_request(
    s3_root: str, s3_env: str, monkeypatch: pytest.MonkeyPatch, debug_logs
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL", _with_userinfo(s3_env))
    storage = open_storage(s3_root)
    storage.check()
    storage.write_bytes("a.txt", b"x")
    assert storage.read_bytes("a.txt") == b"x"
    url = storage.url("a.txt")
    with urllib.request.urlopen(url, timeout=10) as response:  # the link still works
        assert response.read() == b"x"
    shown = [storage.describe(), repr(storage), storage.endpoint, url, debug_logs.text]
    assert not [text for text in shown if ENDPOINT_SECRET in text]
    assert storage.endpoint == s3_env
    assert "ignoring the credentials embedded in the S3 endpoint" in debug_logs.text


@pytest.mark.parametrize("failure", ["unreachable", "silent", "web"])
def test_endpoint_credentials_never_appear_in_errors_or_logs(
    s3_env: str,
    closed_port: int,
    silent_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    debug_logs,
    failure: str,
) -> None:
    endpoint = {
        "unreachable": f"http://127.0.0.1:{closed_port}",
        "silent": silent_endpoint,
        "web": silent_endpoint,  # replaced below when a web server is wanted
    }[failure]
    server = None
    if failure == "web":
        server = _WebServer(404)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}).start()
        endpoint = server.url
    monkeypatch.setenv("AWS_ENDPOINT_URL", _with_userinfo(endpoint))
    # The silent endpoint waits out every read (three calls): a short timeout there; the
    # web server's answer is left its time, so that its error is the answer's, not a timeout.
    monkeypatch.setenv("CLOSECAST_S3_READ_TIMEOUT", "0.2" if failure == "silent" else "0.5")
    monkeypatch.setenv("CLOSECAST_S3_MAX_ATTEMPTS", "1")
    try:
        storage = open_storage("s3://closecast-leak/run")
        for call in (storage.check, lambda: storage.write_bytes("k", b"x"), storage.list_keys):
            with pytest.raises(StorageError) as caught:
                call()
            _assert_no_credentials_leak(caught.value, ENDPOINT_SECRET)
            assert endpoint in str(caught.value)
    finally:
        if server is not None:
            server.shutdown()
            server.server_close()
    assert ENDPOINT_SECRET not in debug_logs.text + storage.describe()


@pytest.mark.usefixtures("prefect_harness")
def test_a_password_in_a_blocks_endpoint_is_dropped_too(
    s3_root: str, s3_server, monkeypatch: pytest.MonkeyPatch, debug_logs
) -> None:
    block_name = _minio_block_from_env(monkeypatch, _with_userinfo(s3_server.endpoint))
    storage = open_storage(s3_root, credentials_block=f"minio-credentials/{block_name}")
    storage.write_bytes("k", b"v")
    shown = storage.describe() + storage.url("k") + debug_logs.text
    assert storage.endpoint == s3_server.endpoint
    assert ENDPOINT_SECRET not in shown
