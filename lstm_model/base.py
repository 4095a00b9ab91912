"""The interface every forecasting model implements (the LSTM and the baselines alike).

It is the method set of :class:`lstm_model.forecaster.Forecaster`, so the LSTM satisfies it
as it is; evaluation code written against :class:`ForecastModel` treats every model the same.
A model's kind is ``meta["kind"]`` (the LSTM's meta has none: it is ``"lstm"``), read with
:func:`model_kind`. Multi-step forecasts come from :func:`lstm_model.horizons.forecast_path`,
which uses a model's own ``forecast_path`` when it has one and otherwise feeds
``forecast_next`` back recursively.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import pandas as pd

from lstm_model.config import ModelConfig

__all__ = ["LSTM_KIND", "META_FILE", "ForecastModel", "model_kind", "read_meta", "write_meta"]

LSTM_KIND = "lstm"
"""The kind of a :class:`~lstm_model.forecaster.Forecaster` (its ``meta.json`` has no kind)."""

META_FILE = "meta.json"
"""The file of a saved model's metadata, every kind's (the kind is in it)."""


def write_meta(directory: Path, meta: Mapping[str, Any]) -> None:
    """Write a model's metadata into its directory (created if need be)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def read_meta(directory: Path, kind: str | None = None) -> dict[str, Any]:
    """A saved model's metadata.

    Args:
        directory: The model's directory.
        kind: The kind the caller loads; None to accept any.

    Raises:
        FileNotFoundError: No :data:`META_FILE` in ``directory``.
        ValueError: ``kind`` is given and the saved kind is another.
    """
    path = Path(directory) / META_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: missing {META_FILE}")
    meta = json.loads(path.read_text(encoding="utf-8"))
    if kind is not None and meta.get("kind") != kind:
        raise ValueError(f"{path}: kind {meta.get('kind')!r} is not {kind!r}")
    return meta


@runtime_checkable
class ForecastModel(Protocol):
    """A fitted one-step-ahead price forecaster.

    Contract (tested for every registered model):

    * ``fit`` sees training prices only; ``meta["trained_through"]`` is the last date used.
    * ``predict_one_step(prices, start)`` returns a Series indexed by every date ``>= start``
      in ``prices``; the value for date ``d`` depends only on prices dated before ``d``.
    * ``forecast_next(prices)`` is the forecast for the trading day after ``prices`` ends and
      equals what ``predict_one_step`` would predict for that day.
    * ``save(dir)`` writes ``meta.json`` (with ``"kind"``, except the LSTM's) and whatever
      else the model needs; ``load(dir)`` restores an equal model.
    """

    meta: dict[str, Any]

    @classmethod
    def fit(cls, train_prices: pd.Series, config: ModelConfig) -> Self: ...

    def predict_one_step(self, prices: pd.Series, start: pd.Timestamp) -> pd.Series: ...

    def forecast_next(self, prices: pd.Series) -> float: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


def model_kind(model: ForecastModel) -> str:
    """The registry name of a model: ``meta["kind"]``, or ``"lstm"`` when absent."""
    return str(model.meta.get("kind", LSTM_KIND))
