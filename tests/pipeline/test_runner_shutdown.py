"""A task runner's shutdown: a timeout after every task finished costs a warning, not the run,
and a run's own Dask workers exit without walking their heap."""

from __future__ import annotations

import gc
import logging

import pytest
from prefect.task_runners import ThreadPoolTaskRunner

from flows.runners import entered, local_dask_cluster_kwargs


class SlowToStop(ThreadPoolTaskRunner):
    """A real thread-pool runner whose shutdown then times out, as a local Dask cluster's
    does when a worker process outlasts Dask's 5 s to exit."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.exits: list[type[BaseException] | None] = []

    def __exit__(self, exc_type, exc_value, traceback) -> None:
        super().__exit__(exc_type, exc_value, traceback)
        self.exits.append(exc_type)
        raise TimeoutError


def test_a_shutdown_timeout_after_the_work_is_logged_not_raised(caplog) -> None:
    runner = SlowToStop()
    with caplog.at_level(logging.WARNING), entered(runner, logging.getLogger("run")):
        done = True

    assert done and runner.exits == [None]
    assert "SlowToStop task runner did not shut down in time" in caplog.text


@pytest.mark.parametrize("error", [ValueError("a task failed"), TimeoutError("in the block")])
def test_an_error_in_the_block_shuts_the_runner_down_and_propagates(error) -> None:
    runner = SlowToStop()
    with pytest.raises(type(error), match=str(error)), entered(runner, logging.getLogger("run")):
        raise error

    assert runner.exits == [type(error)]


def test_a_run_clusters_workers_freeze_their_objects_as_they_close() -> None:
    """A local cluster's worker exits quickly: as it closes, its preloaded hook freezes its
    objects out of garbage collection, so the interpreter's last collections skip them (a
    worker holding TensorFlow took seconds to exit otherwise). The worker runs in this process
    here, so the freeze is seen here."""
    from distributed import LocalCluster

    # In this process: a worker thread, on in-process transport rather than loopback TCP.
    settings = {**local_dask_cluster_kwargs(1), "processes": False, "host": None}
    with LocalCluster(**settings) as cluster:
        (worker,) = cluster.workers.values()
        before = gc.get_freeze_count()
        assert worker.status.name == "running"
    assert gc.get_freeze_count() > before
