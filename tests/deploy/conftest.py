"""Fixtures for the deployment tests: a Prefect test harness for the in-process flow tests."""

from __future__ import annotations

import pytest
from prefect.testing.utilities import prefect_test_harness


@pytest.fixture(scope="module")
def prefect_harness():
    """A real, temporary Prefect API (SQLite) for the flow runs of one test module.

    Module-scoped (not session-scoped as in tests/pipeline) so that its server is gone
    before the stack test starts its own and the two do not compete for the CPU.
    """
    with prefect_test_harness(server_startup_timeout=600):  # minutes on a busy machine
        yield
