"""The fixed choices of a run's settings, in one light module (the command line imports it
without loading pandas, TensorFlow or Prefect)."""

from __future__ import annotations

from typing import Literal, get_args

RequestedMode = Literal["auto", "retrain", "finetune"]
REQUESTED_MODES: tuple[str, ...] = get_args(RequestedMode)

RunnerKind = Literal["threads", "processes", "dask"]
RUNNER_KINDS: tuple[str, ...] = get_args(RunnerKind)
