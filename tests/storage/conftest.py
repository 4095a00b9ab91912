"""Fixtures for the storage tests: one ``storage`` per backend."""

from __future__ import annotations

import pytest

from closecast.storage import Storage, open_storage


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest) -> str:
    """The backend under test: ``local`` or ``s3``."""
    return request.param


@pytest.fixture
def storage_root(backend: str, request: pytest.FixtureRequest, tmp_path) -> str:
    """A fresh, empty root for ``backend``: a temp directory or ``s3://<new bucket>/run``."""
    if backend == "local":
        return str(tmp_path / "closecast-data")
    return request.getfixturevalue("s3_root")


@pytest.fixture
def storage(storage_root: str) -> Storage:
    """An opened storage on ``storage_root``."""
    return open_storage(storage_root)
