"""Every model kind by name: fit one, load a saved one, whatever its kind.

Adding a model (e.g. a GRU) is one new module implementing
:class:`~lstm_model.base.ForecastModel` (whose ``meta`` carries ``"kind"``) plus one line in
:data:`MODELS`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from lstm_model.base import LSTM_KIND, ForecastModel, read_meta
from lstm_model.baselines import DriftForecaster, NaiveForecaster, SeasonalNaiveForecaster
from lstm_model.config import ModelConfig
from lstm_model.forecaster import Forecaster
from lstm_model.global_ar import GlobalARForecaster
from lstm_model.global_lstm import GlobalLSTM
from lstm_model.global_models import GlobalModel

__all__ = [
    "GLOBAL_MODELS",
    "MODELS",
    "UnknownModelError",
    "fit_model",
    "global_model_class",
    "load_global_model",
    "load_model",
    "model_class",
]

MODELS: dict[str, type[ForecastModel]] = {
    LSTM_KIND: Forecaster,
    NaiveForecaster.kind: NaiveForecaster,
    DriftForecaster.kind: DriftForecaster,
    SeasonalNaiveForecaster.kind: SeasonalNaiveForecaster,
}
"""Model kind -> class. The LSTM's kind is ``"lstm"``."""

GLOBAL_MODELS: dict[str, type[GlobalModel]] = {
    GlobalARForecaster.kind: GlobalARForecaster,
    GlobalLSTM.kind: GlobalLSTM,
}
"""Global model kind -> class (:class:`~lstm_model.global_models.GlobalModel`): fit once per
run on every ticker's history, then in the line-up and ``serve`` like the models above."""


class UnknownModelError(ValueError):
    """A model kind that is not registered; the message lists the known ones."""


def model_class(kind: str) -> type[ForecastModel]:
    """The class registered for ``kind``.

    Raises:
        UnknownModelError: ``kind`` is not in :data:`MODELS`.
    """
    try:
        return MODELS[kind]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown model kind {kind!r}; known kinds: {', '.join(sorted(MODELS))}"
        ) from None


def global_model_class(kind: str) -> type[GlobalModel]:
    """The class registered for a global ``kind``.

    Raises:
        UnknownModelError: ``kind`` is not in :data:`GLOBAL_MODELS`.
    """
    try:
        return GLOBAL_MODELS[kind]
    except (KeyError, TypeError):
        raise UnknownModelError(
            f"unknown global model kind {kind!r}; known: {', '.join(sorted(GLOBAL_MODELS))}"
        ) from None


def load_global_model(directory: Path) -> GlobalModel:
    """Load a saved global model, dispatching on ``meta.json``'s ``"kind"``.

    Raises:
        FileNotFoundError: No ``meta.json`` in ``directory``.
        UnknownModelError: The saved kind is not a registered global model (names the
            directory).
    """
    kind = read_meta(directory).get("kind")
    try:
        cls = global_model_class(kind)
    except UnknownModelError as error:
        raise UnknownModelError(f"{directory}: {error}") from None
    return cls.load(Path(directory))


def fit_model(
    kind: str, train_prices: pd.Series, config: ModelConfig, **params: Any
) -> ForecastModel:
    """Fit a model of ``kind`` on training prices (``params`` go to that model's ``fit``)."""
    return model_class(kind).fit(train_prices, config, **params)


def load_model(directory: Path) -> ForecastModel:
    """Load a saved model of any kind, dispatching on ``meta.json``'s ``"kind"``.

    A directory whose ``meta.json`` has no kind is an LSTM :class:`Forecaster` (saved before
    kinds existed).

    Raises:
        FileNotFoundError: No ``meta.json`` in ``directory``.
        UnknownModelError: The saved kind is not registered (the message names the directory).
    """
    kind = read_meta(directory).get("kind", LSTM_KIND)
    try:
        cls = model_class(kind)
    except UnknownModelError as error:
        raise UnknownModelError(f"{directory}: {error}") from None
    return cls.load(Path(directory))
