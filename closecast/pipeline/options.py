"""The settings of one pipeline run, as passed from the flow to its tasks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from closecast.choices import REQUESTED_MODES, RequestedMode, serve_choices
from closecast.locks import held
from closecast.pipeline.decisions import RetrainPolicy
from closecast.storage import Storage, open_storage
from lstm_model.config import ModelConfig, get_preset

MAX_EPOCHS = 10_000
"""Most training epochs a run accepts (the tutorial's 1000 with room): beyond it a run would
train for days and hold its leases all that time."""


MAX_HORIZON = 10
"""Most trading days ahead a run forecasts."""


def epoch_overrides(epochs: int | None) -> tuple[tuple[str, Any], ...]:
    """The ``overrides`` for an optional ``--epochs``/``epochs`` setting."""
    return (("epochs", epochs),) if epochs is not None else ()


@dataclass(frozen=True)
class RunOptions:
    """Everything a per-ticker task needs besides the ticker and the date.

    Only small, hashable values: tasks receive this, not DataFrames or models.
    """

    storage_root: str
    source: str = "sample"
    preset: str = "default"
    overrides: tuple[tuple[str, Any], ...] = ()
    mode: RequestedMode = "auto"
    policy: RetrainPolicy = field(default_factory=RetrainPolicy)
    finetune_epochs: int = 5
    finetune_learning_rate: float = 1e-4
    create_bucket: bool = False
    credentials_block: str | None = None
    lease_wait_seconds: float = 900.0
    lease_ttl_seconds: float = 300.0
    serve: str = "lstm"
    horizon: int = 1

    def __post_init__(self) -> None:
        if self.mode not in REQUESTED_MODES:
            raise ValueError(f"mode {self.mode!r} is not one of {', '.join(REQUESTED_MODES)}")
        if not 1 <= self.finetune_epochs <= MAX_EPOCHS:
            raise ValueError(
                f"finetune_epochs must be in 1..{MAX_EPOCHS}, got {self.finetune_epochs}"
            )
        epochs = dict(self.overrides).get("epochs")
        if isinstance(epochs, int) and epochs > MAX_EPOCHS:
            raise ValueError(f"epochs must be at most {MAX_EPOCHS}, got {epochs}")
        if not 0 < self.finetune_learning_rate < 1:
            raise ValueError(
                f"finetune_learning_rate must be in (0, 1), got {self.finetune_learning_rate}"
            )
        if not self.lease_wait_seconds >= 0:
            raise ValueError(f"lease_wait_seconds must be >= 0, got {self.lease_wait_seconds}")
        if not isinstance(self.horizon, int) or not 1 <= self.horizon <= MAX_HORIZON:
            raise ValueError(f"horizon must be an integer in 1..{MAX_HORIZON}, got {self.horizon}")
        if self.serve not in serve_choices():
            raise ValueError(f"serve {self.serve!r} is not one of {', '.join(serve_choices())}")
        if not self.lease_ttl_seconds > 0:
            raise ValueError(f"lease_ttl_seconds must be > 0, got {self.lease_ttl_seconds}")
        self.model_config()  # fail fast on an unknown preset or a bad override

    def open_storage(self) -> Storage:
        """The run's storage root, opened with its bucket and credentials settings."""
        return open_storage(
            self.storage_root,
            create_bucket=self.create_bucket,
            credentials_block=self.credentials_block,
        )

    @contextmanager
    def lease(self, key: str, what: str) -> Iterator[None]:
        """Hold a storage lease (``closecast.locks``) for the block, waiting as configured."""
        with held(
            self.open_storage(),
            key,
            what=what,
            wait=timedelta(seconds=self.lease_wait_seconds),
            ttl=timedelta(seconds=self.lease_ttl_seconds),
        ):
            yield

    def model_config(self) -> ModelConfig:
        config = get_preset(self.preset)
        return config.with_overrides(**dict(self.overrides)) if self.overrides else config
