"""The fixed choices of a run's settings, in one light module (the command line imports it
without loading pandas, TensorFlow or Prefect)."""

from __future__ import annotations

from typing import Literal, get_args

RequestedMode = Literal["auto", "retrain", "finetune"]
REQUESTED_MODES: tuple[str, ...] = get_args(RequestedMode)

RunnerKind = Literal["threads", "processes", "dask"]
RUNNER_KINDS: tuple[str, ...] = get_args(RunnerKind)

AUTO_SERVE = "auto"


def model_choices() -> tuple[str, ...]:
    """Every registered model kind, per-ticker models first
    (:data:`lstm_model.registry.MODELS`, then ``GLOBAL_MODELS``)."""
    from lstm_model.registry import GLOBAL_MODELS, MODELS  # pandas, not TensorFlow

    return (*MODELS, *GLOBAL_MODELS)


def serve_choices() -> tuple[str, ...]:
    """Which model may serve a ticker's forecasts: every registered model kind
    (:data:`lstm_model.registry.MODELS` and ``GLOBAL_MODELS``, so a new model is one module
    and one registry line), or ``auto`` (the policy of
    :func:`lstm_model.selection.select_model`: the best model that beats naive with evidence
    on the backtest days, else naive)."""
    return (*model_choices(), AUTO_SERVE)
