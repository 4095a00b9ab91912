"""The fixed choices of a run's settings, in one light module (the command line imports it
without loading pandas, TensorFlow or Prefect)."""

from __future__ import annotations

from typing import Literal, get_args

RequestedMode = Literal["auto", "retrain", "finetune"]
REQUESTED_MODES: tuple[str, ...] = get_args(RequestedMode)

RunnerKind = Literal["threads", "processes", "dask"]
RUNNER_KINDS: tuple[str, ...] = get_args(RunnerKind)

SERVE_CHOICES: tuple[str, ...] = ("lstm", "naive", "drift", "seasonal_naive", "auto")
"""Which model serves a ticker's forecasts: a model kind, or ``auto`` (the policy of
:func:`lstm_model.selection.select_model`: the best model that beats naive with evidence on
the backtest days, else naive)."""
