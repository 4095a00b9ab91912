"""What a task opens from a run's settings: the storage, its leases and the model
configuration. Settings travel between tasks (small, frozen, picklable); services are opened
where they are used and never cross a task boundary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from closecast.locks import held
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
        """Hold a storage lease (``closecast.locks``) for the block, waiting as configured."""
        with held(self.storage, key, what=what, wait=self.lease_wait, ttl=self.lease_ttl):
            yield
