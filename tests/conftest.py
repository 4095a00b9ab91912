"""Shared fixtures. Area-specific fixtures live in each tests/<area>/conftest.py.

Reuse these rather than starting your own servers:

* ``prefect_harness`` (session): a temporary Prefect API with its own SQLite database.
* ``migrated_prefect_home``: puts a Prefect database with every migration applied into a
  fresh ``PREFECT_HOME`` for a child process or server, as on a machine that has run Prefect
  before (built once per session: ``migrated_prefect_database``).
* ``s3_server`` / ``s3_endpoint`` (session), ``s3_env``, ``s3_client``, ``s3_bucket``,
  ``s3_root`` (per test): moto's S3 server on a free loopback port and a fresh bucket.
* ``closed_port``: a loopback port nothing listens on.
* ``hand_dm``: the Diebold-Mariano test computed from its definition, to check published
  numbers against.
* tests/model/conftest.py: ``fast_model`` and ``window_model`` (session), tiny models trained
  once; read them, never change them.

``make test`` runs the suite with pytest-xdist: each worker is its own process with its own
session fixtures (Prefect API, moto server), so a session fixture must not assume it is the
only one on the machine (take free ports, temporary directories). Mark a test
``@pytest.mark.slow`` if it starts child processes, servers beyond these, a browser, or
replays several days: ``make test-fast`` leaves those out.
"""

from __future__ import annotations

import asyncio
import fcntl
import gc
import json
import logging
import os
import shutil
import socket
import sqlite3
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

# Quiet TensorFlow's C++ start-up chatter; must be set before TensorFlow is imported.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")


# --- S3 (moto server mode, or a real endpoint such as MinIO) --------------------------------

MOTO_ACCESS_KEY = "testing"
MOTO_SECRET_KEY = "testing"
AWS_ENV_VARS = (
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


class S3Server(NamedTuple):
    """The S3 endpoint the tests use and whether the user supplied it."""

    endpoint: str
    external: bool


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """Moto's S3 server on a free loopback port, or the user's ``AWS_ENDPOINT_URL``.

    Set ``AWS_ENDPOINT_URL`` (plus credentials) to run the S3 tests against a real
    S3-compatible server such as the MinIO from ``deployments/compose.yaml``.
    """
    external = os.environ.get("AWS_ENDPOINT_URL")
    if external:
        yield S3Server(external.rstrip("/"), external=True)
        return
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}", external=False)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    """URL of the S3 endpoint for the session (moto on loopback unless the user set one)."""
    return s3_server.endpoint


@pytest.fixture
def s3_env(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path_factory) -> str:
    """Point the standard AWS environment variables at the test endpoint for one test.

    With moto, all AWS settings are replaced by dummy credentials and the user's AWS
    config files are hidden; with a user-supplied endpoint, the user's credentials and
    region are kept. Returns the endpoint URL.
    """
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    if s3_server.external:
        if not (os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")):
            monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        return s3_server.endpoint
    for name in AWS_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server.endpoint)
    missing = tmp_path_factory.getbasetemp() / "no-aws-config"
    monkeypatch.setenv("AWS_CONFIG_FILE", str(missing))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(missing))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", MOTO_ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", MOTO_SECRET_KEY)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return s3_server.endpoint


@pytest.fixture(scope="session")
def _s3_admin_client(s3_server: S3Server):
    """A plain boto3 client for bucket set-up and clean-up, independent of closecast."""
    import boto3
    from botocore.config import Config

    credentials = {}
    if not s3_server.external:
        credentials = {
            "aws_access_key_id": MOTO_ACCESS_KEY,
            "aws_secret_access_key": MOTO_SECRET_KEY,
        }
    return boto3.session.Session().client(
        "s3",
        endpoint_url=s3_server.endpoint,
        region_name=os.environ.get("AWS_REGION")
        or os.environ.get("AWS_DEFAULT_REGION")
        or "us-east-1",
        config=Config(
            s3={"addressing_style": "path"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
        **credentials,
    )


def _empty_and_delete_bucket(client, bucket: str) -> None:
    """Remove every object, pending multipart upload, then the bucket itself."""
    paginator = client.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:  # one request per page of up to 1000 keys, not one per key
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_client(s3_env: str, _s3_admin_client):
    """A plain boto3 S3 client for the test endpoint, independent of closecast code."""
    return _s3_admin_client


@pytest.fixture
def s3_bucket(s3_client) -> Iterator[str]:
    """A fresh, empty bucket ``closecast-test-<uuid8>``, deleted with its content after."""
    bucket = f"closecast-test-{uuid.uuid4().hex[:8]}"
    s3_client.create_bucket(Bucket=bucket)
    yield bucket
    _empty_and_delete_bucket(s3_client, bucket)


@pytest.fixture
def s3_root(s3_bucket: str) -> str:
    """``s3://<fresh bucket>/run`` with the AWS environment pointed at the test endpoint."""
    return f"s3://{s3_bucket}/run"


@pytest.fixture
def closed_port() -> int:
    """A loopback TCP port with nothing listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- Prefect: the test API, and a migrated database for fresh Prefect homes ----------------

PREFECT_DATABASE = "prefect.db"
"""The SQLite file Prefect uses by default, under ``PREFECT_HOME``."""


@pytest.fixture(scope="session")
def migrated_prefect_database(tmp_path_factory) -> Path:
    """A Prefect SQLite database with every migration applied, built once for the whole test
    session: the xdist workers share it (the first builds it under a file lock).

    A Prefect server on a new database runs all of Prefect's migrations before it answers:
    measured, 15-16 CPU-s to become ready on a fresh database against 6-7 on a migrated one.
    Building the database once here (about 7.5 CPU-s) and copying it saves the difference at
    every server a test starts. Never open this file; copy it (``migrated_prefect_home``).
    """
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the xdist session's directory, shared by its workers
    template = shared / "prefect-migrated.db"
    with (shared / "prefect-migrated.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        if not template.exists():
            _build_migrated_database(template)
    return template


def _build_migrated_database(template: Path) -> None:
    """Run Prefect's migrations on a new database, then publish a consistent copy of it at
    ``template`` (SQLite's backup, then a rename: a reader never sees half a file)."""
    import prefect.settings
    from prefect.server.database import provide_database_interface
    from prefect.server.database.dependencies import temporary_database_interface

    work = template.with_name(f"{template.stem}-build.db")
    url = f"sqlite+aiosqlite:///{work}"
    setting = prefect.settings.PREFECT_SERVER_DATABASE_CONNECTION_URL

    async def migrate() -> None:
        database = provide_database_interface()
        await database.create_db()
        await (await database.engine()).dispose()

    # As Prefect's own test harness points its server at a temporary database.
    with temporary_database_interface(), prefect.settings.temporary_settings({setting: url}):
        asyncio.run(migrate())
    partial = template.with_name(f"{template.stem}-partial.db")
    source, target = sqlite3.connect(work), sqlite3.connect(partial)
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    partial.replace(template)


@pytest.fixture(scope="session")
def migrated_prefect_home(migrated_prefect_database: Path) -> Callable[[Path], Path]:
    """``migrated_prefect_home(home)`` creates the Prefect home ``home`` holding a migrated
    database, as on a machine that has run Prefect before, and returns ``home``.

    For child processes and servers given a fresh ``PREFECT_HOME``. A test that checks a
    new machine gives its process an empty home instead (test_cli_environment's
    ``test_an_ephemeral_run_prints_no_telemetry_line_and_its_server_serves_every_thread``
    does).
    """

    def seed(home: Path) -> Path:
        home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(migrated_prefect_database, home / PREFECT_DATABASE)
        return home

    return seed


@pytest.fixture(scope="session")
def prefect_harness(migrated_prefect_database: Path, tmp_path_factory) -> Iterator[None]:
    """A real, temporary Prefect API (SQLite) shared by every test that runs flows or blocks.

    Its database starts as a copy of the session's migrated one: Prefect's harness would
    migrate a new one in a temporary directory of its own (``mkdtemp``), so that directory is
    chosen here, holding the copy under the name the harness gives its database.
    """
    from unittest import mock

    # Prefect sets up its logging when prefect.main is first imported, its console handler
    # keeping the sys.stderr of that moment. Imported first by a test's `closecast run`, that
    # was the test's capsys stream, closed after it: the harness's teardown then logged into
    # a closed file and failed the test (test_first_minutes or test_cli_run run alone).
    import prefect.main  # noqa: F401
    import prefect.testing.utilities as harness_module
    from prefect.settings import (
        PREFECT_API_BLOCKS_REGISTER_ON_START,
        PREFECT_SERVER_ANALYTICS_ENABLED,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED,
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED,
        get_current_settings,
        temporary_settings,
    )

    from closecast.commands._temporary_server import no_flow_heartbeats

    directory = tmp_path_factory.mktemp("prefect-harness")
    shutil.copyfile(migrated_prefect_database, directory / "prefect-test.db")
    # The server inherits these: no telemetry (it would try to reach Prefect's servers) and
    # no registration of every installed block type at start (a block's save registers its
    # own type).
    server_settings = {
        PREFECT_SERVER_ANALYTICS_ENABLED: False,
        PREFECT_API_BLOCKS_REGISTER_ON_START: False,
        # No flow-run heartbeats, as against a run command's temporary server (no test
        # here waits for a server to mark a dead run crashed).
        **no_flow_heartbeats(),
        # Automations (triggers and their actions) and the event store: no closecast run
        # defines an automation and no test reads events back, yet the server evaluated
        # and stored every task-run event and polled for proactive triggers while idle.
        # Task runs, logs, artifacts and flow runs are recorded as before.
        PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: False,
        PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: False,
    }
    # Generous: on a busy shared machine (or with xdist workers starting theirs at once) the
    # temporary server can take minutes to come up; on an idle one it takes seconds.
    with (
        temporary_settings(server_settings),
        mock.patch.object(harness_module, "mkdtemp", return_value=str(directory)),
        harness_module.prefect_test_harness(server_startup_timeout=600),
    ):
        database = get_current_settings().server.database.connection_url
        # Fails loudly if a Prefect release names its database otherwise (a silent fresh one
        # would only be slower).
        assert database is not None
        assert database.get_secret_value().endswith(f"{directory}/prefect-test.db")
        # Flow runs train: TensorFlow is imported here, at once, so that its objects and
        # Prefect's are frozen out of garbage collection before the first run.
        import lstm_model.model  # noqa: F401

        _freeze_newly_imported_libraries()
        yield


# --- Garbage collection: the libraries' objects frozen ---------------------------------------

_HEAVY_LIBRARIES = ("prefect", "keras", "tensorflow")
_frozen_with: set[str] = set()


def _freeze_newly_imported_libraries() -> None:
    """``gc.freeze()`` what the process holds when Prefect or TensorFlow has newly been
    imported, after a full collection.

    A full garbage collection walks every tracked object: with Prefect and TensorFlow loaded,
    about 700k of them and 0.45 s of CPU, and a flow run makes two (``release_tensorflow_state``
    after training) besides Python's own. Frozen objects are left out of collections, so a
    flow run's CPU drops by about a fifth. They are never collected either, so this freezes
    only when one of those libraries is new (a few times per process at most), never per test.
    """
    loaded = {name for name in _HEAVY_LIBRARIES if name in sys.modules} - _frozen_with
    if loaded:
        gc.collect()
        gc.freeze()
        _frozen_with.update(loaded)


@pytest.fixture(autouse=True, scope="module")
def _libraries_frozen_out_of_garbage_collection() -> None:
    """Freeze the libraries the previous modules imported (see above)."""
    _freeze_newly_imported_libraries()


# --- Order: the costliest test files first ---------------------------------------------------

MEASURED_COSTS = Path(__file__).with_name("durations.json")
"""CPU-seconds of each test that took 1 s or more (the test's process plus the child processes
it waited for), measured over a whole ``make test``; together about 93% of the suite's CPU.
Refresh it when tests move a lot; a test it does not name gets an estimate."""

# Estimates for the tests durations.json does not name (CPU-seconds, the medians measured):
# a quick test, and one that runs flows or child processes (the flow and slow markers).
_QUICK_TEST_COST = 0.02
_PROCESS_TEST_COST = 4.0


def _uses_prefect(item: pytest.Item) -> bool:
    return "prefect_harness" in getattr(item, "fixturenames", ())


def _test_cost(item: pytest.Item, measured: dict[str, float]) -> float:
    if item.nodeid in measured:
        return measured[item.nodeid]
    if _uses_prefect(item) or item.get_closest_marker("slow") is not None:
        return _PROCESS_TEST_COST
    return _QUICK_TEST_COST


@pytest.hookimpl(wrapper=True)  # around every other implementation, ``-m``'s included
def pytest_collection_modifyitems(items: list[pytest.Item]) -> Iterator[None]:
    """Mark ``flow`` every test that uses the Prefect API (``prefect_harness``, directly or
    through another of its fixtures) before ``-m`` selects: it runs flows, and ``make
    test-fast`` leaves those out. Then run the selected test files in order of their cost,
    the costliest first.

    ``make test`` hands whole files to the xdist workers in collection order
    (``--dist loadfile --no-loadscope-reorder``). Handing out the long files first and the
    many quick ones last keeps both workers busy to the end; in file-name order, or xdist's
    default of the files with the most tests first, two long files were often left to run
    last, one per worker. A file's cost is that of its selected tests (durations.json), so
    ``make test-fast`` no longer starts with files whose costly tests it leaves out while
    the model-training files, with few tests each, came last. Tests keep their order within
    a file, so module-scoped fixtures are still built once.
    """
    for item in items:
        if _uses_prefect(item):
            item.add_marker(pytest.mark.flow)
    yield  # ``-m`` deselects here
    measured = json.loads(MEASURED_COSTS.read_text(encoding="utf-8"))

    def test_file(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0]

    cost: dict[str, float] = {}
    for item in items:
        cost[test_file(item)] = cost.get(test_file(item), 0.0) + _test_cost(item, measured)
    position = {id(item): index for index, item in enumerate(items)}
    items.sort(key=lambda item: (-cost[test_file(item)], position[id(item)]))


def _hand_dm(actual, predicted, naive, horizon: int = 1) -> tuple[float, float]:
    """Diebold-Mariano statistic (Harvey-Leybourne-Newbold correction) and one-sided p-value
    for "the model's squared errors are smaller than naive's", from the definition:
    ``d = e_model^2 - e_naive^2``, long-run variance from autocovariances up to lag
    ``horizon - 1`` (lag 0 alone if that is not positive), Student t with ``n - 1`` df."""
    from scipy import stats

    a, f, b = (np.asarray(x, dtype="float64") for x in (actual, predicted, naive))
    d = (a - f) ** 2 - (a - b) ** 2
    n, h = d.size, horizon
    if not d.any():
        return 0.0, 0.5  # the model is the naive forecast: no evidence either way
    centred = d - d.mean()
    gamma = [float(centred[k:] @ centred[: n - k]) / n for k in range(h)]
    variance = gamma[0] + 2 * sum(gamma[1:])
    if variance <= 0:
        variance = gamma[0]
    statistic = d.mean() / np.sqrt(variance / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    return float(statistic), float(stats.t.cdf(statistic, n - 1))


@pytest.fixture(scope="session")
def hand_dm():
    """``hand_dm(actual, predicted, naive, horizon) -> (statistic, one-sided p)``: the
    Diebold-Mariano test written out here, independent of lstm_model.significance."""
    return _hand_dm
