"""What a task opens from a run's settings: the storage, its leases and the model
configuration. Settings travel between tasks (small, frozen, picklable); services are opened
where they are used and never cross a task boundary."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from closecast.control.locks import HeldLeases, held, held_in_order
from closecast.outputs import catalog
from closecast.pipeline.settings import RunSettings
from closecast.storage import Storage, open_storage
from lstm_model.config import ModelConfig


def open_run_storage(settings: RunSettings) -> Storage:
    """The run's storage root, opened with its bucket and credentials settings."""
    return open_storage(
        settings.storage,
        create_bucket=settings.create_bucket,
        credentials_block=settings.credentials_block,
    )


@dataclass(frozen=True)
class RunServices:
    """A run's storage, the model configuration and the lease timing, opened once per task.

    Attributes:
        storage: The run's storage root, opened with its bucket and credentials settings.
        config: The preset's model configuration with the run's overrides.
        lease_wait: How long to wait for a lease another run holds.
        lease_ttl: How long a lease outlives a killed holder.
    """

    storage: Storage
    config: ModelConfig
    lease_wait: timedelta
    lease_ttl: timedelta

    @classmethod
    def open(cls, settings: RunSettings) -> RunServices:
        """Open the services a run's settings describe."""
        return cls(
            storage=open_run_storage(settings),
            config=settings.training_config(),
            lease_wait=timedelta(seconds=settings.lease_wait_seconds),
            lease_ttl=timedelta(seconds=settings.lease_ttl_seconds),
        )

    @contextmanager
    def lease(self, key: str, what: str) -> Iterator[None]:
        """Hold a storage lease (``closecast.control.locks``) for the block, waiting as configured;
        waits and take-overs are reported in the current Prefect run's log."""
        log, run = _current_run()
        with held(
            self.storage,
            key,
            what=what,
            run=run,
            wait=self.lease_wait,
            ttl=self.lease_ttl,
            log=log,
        ):
            yield

    @contextmanager
    def ticker_leases(self, symbols: Iterable[str]) -> Iterator[HeldLeases]:
        """Hold every ticker's lease (``catalog.ticker_lease_key``) for the block, taken
        one at a time in symbol order and renewed from one thread; the block may release
        some early (:meth:`closecast.control.locks.HeldLeases.release`).

        Symbol order is the one order of every run: one waiting for a ticker holds none
        that sorts after it, so two runs sharing several tickers never each hold one the
        other waits for (watchlist order could, until one gave up after ``lease_wait``).
        """
        log, run = _current_run()
        leases = [(catalog.ticker_lease_key(s), f"ticker {s}") for s in sorted(set(symbols))]
        with held_in_order(
            self.storage, leases, run=run, wait=self.lease_wait, ttl=self.lease_ttl, log=log
        ) as held_leases:
            yield held_leases


def _current_run() -> tuple[logging.Logger | logging.LoggerAdapter, str]:
    """The current Prefect run's logger and a name for it (``flow run 'x' (id)``), so that
    a lease wait shows in the run's log and the lease names the run; outside a run, the
    ``closecast.control.locks`` logger and no name."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger
    from prefect.runtime import flow_run

    try:
        log = get_run_logger()
    except MissingContextError:
        return logging.getLogger("closecast.control.locks"), ""
    return log, f"flow run {flow_run.name!r} ({flow_run.id})" if flow_run.id else ""
