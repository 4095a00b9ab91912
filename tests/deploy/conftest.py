"""Fixtures for the deployment tests: a Prefect test harness for the in-process flow tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def prefect_harness():
    """A real, temporary Prefect API (SQLite) for the flow runs of one test module.

    Module-scoped (not session-scoped as in tests/pipeline) so that its server is gone
    before the stack test starts its own and the two do not compete for the CPU.
    """
    # Imported here, not at the top: it loads Prefect's whole server (about 4 CPU-s), which
    # collecting the suite (each xdist worker does, for make test-fast too) does not need.
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=600):  # minutes on a busy machine
        yield
