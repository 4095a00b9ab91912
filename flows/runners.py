"""Task runners for the per-ticker work, chosen by a flow parameter."""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from prefect.task_runners import ProcessPoolTaskRunner, TaskRunner, ThreadPoolTaskRunner

from closecast.control.choices import RUNNER_KINDS, RunnerKind

__all__ = ["RUNNER_KINDS", "RunnerKind", "dask_teardown", "entered", "make_task_runner"]


def make_task_runner(kind: str, workers: int, dask_address: str | None = None) -> TaskRunner:
    """Build the task runner for the per-ticker work.

    Args:
        kind: ``threads``, ``processes`` or ``dask``.
        workers: Parallel workers (threads, processes, or local Dask workers).
        dask_address: With ``dask``: an existing cluster's scheduler address
            (``tcp://host:8786``); without it a local cluster of ``workers`` processes
            whose every listener (scheduler, dashboard, workers, nannies) is on loopback.

    Raises:
        ValueError: An unknown kind or a worker count below 1.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if kind == "threads":
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "processes":
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask":
        from prefect_dask import DaskTaskRunner

        if dask_address:
            return DaskTaskRunner(address=dask_address)
        return DaskTaskRunner(cluster_kwargs=local_dask_cluster_kwargs(workers))
    raise ValueError(f"task_runner {kind!r} is not one of {', '.join(RUNNER_KINDS)}")


def local_dask_cluster_kwargs(workers: int) -> dict[str, object]:
    """``LocalCluster`` settings for a run's own cluster: nothing listens beyond loopback.

    Dask's default dashboard address ``:8787`` binds every interface even when the scheduler
    is on 127.0.0.1; the dashboard gets a free loopback port instead (its link is in the run
    log). A cluster reachable from other machines is the user's own, through ``dask_address``.
    Each worker preloads this module, whose :func:`dask_teardown` makes the worker's exit quick.
    """
    return {
        "n_workers": workers,
        "threads_per_worker": 1,
        "processes": True,
        "host": "127.0.0.1",
        "dashboard_address": "127.0.0.1:0",
        "preload": [__name__],
    }


def dask_teardown(worker: object) -> None:
    """Dask's preload hook, run in each worker of a run's local cluster as the worker closes:
    freeze every object out of garbage collection before the process exits.

    A worker that ran the modelling task holds TensorFlow, Keras and Prefect (about 700k
    objects), and Python's last collections at interpreter exit walked every one of them:
    measured, a worker took about 1.8 s to exit on an idle machine and more than 4 s under
    load, when Dask's nanny kills it and the cluster's close times out (see :func:`entered`).
    Frozen, they are skipped: both workers were gone 0.35-0.8 s after the close began, under
    load. Nothing needs collecting this late: the process ends next.
    """
    gc.freeze()


@contextmanager
def entered(runner: TaskRunner, logger: logging.Logger | logging.LoggerAdapter) -> Iterator[None]:
    """Use ``runner`` inside the block, then shut it down. A shutdown that times out after
    the block ended normally is logged, not raised: every task's result is in hand by then,
    and a local Dask cluster under load may outlast Dask's 5 s for a worker process to exit
    (the flow would otherwise fail as timed out with its work done). An error inside the
    block still shuts the runner down and is what propagates."""
    runner.__enter__()
    try:
        yield
    except BaseException as exc:
        with suppress(TimeoutError):  # the block's own error says more
            runner.__exit__(type(exc), exc, exc.__traceback__)
        raise
    try:
        runner.__exit__(None, None, None)
    except TimeoutError as exc:
        logger.warning(
            "the %s task runner did not shut down in time (%s); every task had finished",
            type(runner).__name__, exc or "TimeoutError",
        )  # fmt: skip
