"""Model hyperparameters as one frozen, validated dataclass, and the named presets.

``tutorial`` reproduces the well-known Keras LSTM stock tutorial (with its look-ahead bugs
fixed); ``default`` is the measured best (see ``docs/model.md``); ``fast`` is tiny, for tests.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any


class ConfigError(ValueError):
    """A model configuration with a bad field, value or preset name."""


REPRESENTATIONS: tuple[str, ...] = ("global_minmax", "relative_log_return")
"""Ways of turning prices into network inputs/targets (see :mod:`lstm_model.representation`)."""

# The price columns a model may be trained on (closecast.inputs.schema.PRICE_COLUMNS is the frame).
MODEL_PRICE_COLUMNS: tuple[str, ...] = ("adj_close", "close", "open", "high", "low")


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to train one :class:`~lstm_model.forecaster.Forecaster`.

    Attributes:
        representation: ``global_minmax`` (prices scaled 0..1 by a scaler fit on training rows,
            as in the tutorial) or ``relative_log_return`` (standardised daily log returns in,
            next log return out, mapped back as ``last_price * exp(r_hat)``).
        look_back: Days of history in each input window.
        units: LSTM units.
        dropout: Dropout rate after the LSTM.
        batch_size: Training batch size.
        epochs: Maximum training epochs.
        learning_rate: Adam learning rate.
        early_stopping_patience: Epochs without validation improvement before stopping (best
            weights restored); ``None`` trains all ``epochs`` with no validation slice.
        validation_fraction: Share of the training windows, taken from the END of the training
            period (never the test period), used for early stopping and the shrinkage gain.
        shrinkage: Fit a gain in [0, 1] on the validation slice that scales each predicted
            log move (``prev * exp(g * log(pred / prev))``); 0 falls back to the naive forecast.
        max_train_days: Use at most this many of the most recent training prices (``None``:
            all of them). Bounds training time.
        test_size: Held-out tail: a fraction in (0, 1) or a number of trailing trading days.
        price_column: Which price column to model (``adj_close`` in the tutorial).
        seed: Seed for Python, NumPy and TensorFlow (with deterministic ops).
    """

    representation: str = "relative_log_return"
    look_back: int = 20
    units: int = 32
    dropout: float = 0.1
    batch_size: int = 256
    epochs: int = 30
    learning_rate: float = 0.005
    early_stopping_patience: int | None = 5
    validation_fraction: float = 0.2
    shrinkage: bool = True
    max_train_days: int | None = 1000
    test_size: float | int = 250
    price_column: str = "adj_close"
    seed: int = 42

    def __post_init__(self) -> None:
        _validate(self)

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        """Return a copy with some fields changed (validated).

        Raises:
            ConfigError: An unknown field, or a value out of range (the message names both).
        """
        known = {f.name for f in fields(self)}
        for name in overrides:
            if name not in known:
                raise ConfigError(
                    f"unknown config field {name!r} (value {overrides[name]!r}); "
                    f"valid fields: {', '.join(sorted(known))}"
                )
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        return cls().with_overrides(**dict(data))

    def architecture(self) -> ModelConfig:
        """This configuration with its training length set aside (``epochs=1``): every
        network built from configurations of one architecture is the same until trained (a
        fine-tune or a refit sets ``epochs`` per ticker), so training groups and the saved
        network's template are keyed by it."""
        return self.with_overrides(epochs=1)

    @property
    def uses_validation(self) -> bool:
        """Whether training holds back a validation slice at the end of the training period."""
        return self.early_stopping_patience is not None or self.shrinkage


def _bad(name: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"config field {name!r} has bad value {value!r}: expected {expected}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _validate(config: ModelConfig) -> None:
    if config.representation not in REPRESENTATIONS:
        raise _bad("representation", config.representation, f"one of {', '.join(REPRESENTATIONS)}")
    for name in ("look_back", "units", "batch_size", "epochs"):
        value = getattr(config, name)
        if not _is_int(value) or value < 1:
            raise _bad(name, value, "an integer >= 1")
    if not _is_number(config.dropout) or not 0.0 <= config.dropout < 1.0:
        raise _bad("dropout", config.dropout, "a number in [0, 1)")
    if not _is_number(config.learning_rate) or config.learning_rate <= 0:
        raise _bad("learning_rate", config.learning_rate, "a number > 0")
    patience = config.early_stopping_patience
    if patience is not None and (not _is_int(patience) or patience < 1):
        raise _bad("early_stopping_patience", patience, "None or an integer >= 1")
    fraction = config.validation_fraction
    if not _is_number(fraction) or not 0.0 < fraction < 0.5:
        raise _bad("validation_fraction", fraction, "a number in (0, 0.5)")
    if not isinstance(config.shrinkage, bool):
        raise _bad("shrinkage", config.shrinkage, "True or False")
    cap = config.max_train_days
    if cap is not None and (not _is_int(cap) or cap <= config.look_back + 1):
        raise _bad(
            "max_train_days", cap, f"None or an integer > look_back + 1 ({config.look_back + 1})"
        )
    size = config.test_size
    if _is_int(size):
        if size < 1:
            raise _bad("test_size", size, "a fraction in (0, 1) or an integer number of days >= 1")
    elif not (isinstance(size, float) and 0.0 < size < 1.0):
        raise _bad("test_size", size, "a fraction in (0, 1) or an integer number of days >= 1")
    if config.price_column not in MODEL_PRICE_COLUMNS:
        raise _bad("price_column", config.price_column, f"one of {', '.join(MODEL_PRICE_COLUMNS)}")
    if not _is_int(config.seed) or config.seed < 0:
        raise _bad("seed", config.seed, "an integer >= 0")


_PRESETS: dict[str, ModelConfig] = {
    # The tutorial, exactly: LSTM(25) -> Dropout(0.1) -> Dense(1), adam (lr 0.001), MSE,
    # 240-day window, batch 240, 1000 epochs, adjusted close scaled 0..1 by one global scaler
    # (fit on training rows only here), 50/50 split, no early stopping, no shrinkage.
    "tutorial": ModelConfig(
        representation="global_minmax",
        look_back=240,
        units=25,
        dropout=0.1,
        batch_size=240,
        epochs=1000,
        learning_rate=0.001,
        early_stopping_patience=None,
        validation_fraction=0.2,
        shrinkage=False,
        max_train_days=None,
        test_size=0.5,
        price_column="adj_close",
        seed=42,
    ),
    # Measured best (docs/model.md): small, relative representation, early stopping and a
    # validation-fit shrinkage gain; trains in a few seconds.
    "default": ModelConfig(),
    # Tiny, for tests: trains in about a second.
    "fast": ModelConfig(
        look_back=10,
        units=8,
        batch_size=64,
        epochs=5,
        learning_rate=0.01,
        early_stopping_patience=None,
        max_train_days=400,
        test_size=50,
    ),
}

PRESET_NAMES: tuple[str, ...] = tuple(_PRESETS)


def get_preset(name: str) -> ModelConfig:
    """The named preset (``tutorial``, ``default`` or ``fast``).

    Raises:
        ConfigError: An unknown name; the message lists the valid ones.
    """
    try:
        return _PRESETS[name]
    except (KeyError, TypeError):
        raise ConfigError(
            f"unknown preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}"
        ) from None
