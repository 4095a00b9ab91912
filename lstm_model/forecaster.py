"""The forecaster: fit, fine-tune, one-step-ahead predictions, next-day forecast, persistence.

A :class:`Forecaster` bundles a Keras model, the fitted representation (scaler) and
metadata. All heavy lifting about prices lives in :mod:`lstm_model.representation`; this
class only trains and applies the network and maps its outputs back to prices.
"""

from __future__ import annotations

import copy
import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices
from lstm_model.representation import (
    Representation,
    make_representation,
    representation_from_json,
)

__all__ = ["Forecaster", "InsufficientDataError"]

MODEL_FILE = "model.keras"
SCALER_FILE = "scaler.json"
META_FILE = "meta.json"
FORMAT_VERSION = 1


def _versions() -> dict[str, str]:
    import keras
    import tensorflow as tf

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "keras": keras.__version__,
        "tensorflow": tf.__version__,
    }


def _iso(ts: pd.Timestamp) -> str:
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def fit_gain(actual_moves: np.ndarray, predicted_moves: np.ndarray) -> float:
    """Least-squares gain ``g`` in [0, 1] minimising ``sum((a - g * p) ** 2)``."""
    denom = float(np.dot(predicted_moves, predicted_moves))
    if denom <= 0 or not np.isfinite(denom):
        return 0.0
    return float(np.clip(np.dot(actual_moves, predicted_moves) / denom, 0.0, 1.0))


@dataclass
class Forecaster:
    """A trained model with its representation state and metadata.

    Create with :meth:`fit` or :meth:`load`; :meth:`fine_tune` returns a new instance.
    """

    config: ModelConfig
    model: Any  # keras.Model
    representation: Representation
    gain: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    # ----------------------------------------------------------------- training
    @classmethod
    def fit(cls, train_prices: pd.Series, config: ModelConfig, *, verbose: int = 0) -> Forecaster:
        """Train on training-period prices only.

        Args:
            train_prices: Prices indexed by an ascending DatetimeIndex (training rows only).
            config: Hyperparameters; ``max_train_days`` keeps only the most recent prices.
            verbose: Keras ``fit`` verbosity.

        Raises:
            InsufficientDataError: Too few prices for the window and validation slice.
        """
        from lstm_model.model import EpochTimer, build_model, seed_everything

        check_prices(train_prices, what="train_prices")
        started = time.perf_counter()
        prices = train_prices
        if config.max_train_days is not None and len(prices) > config.max_train_days:
            prices = prices.iloc[-config.max_train_days :]
        rep = make_representation(config.representation, config.look_back)
        n_windows = len(prices) - rep.history
        n_val = 0
        if config.uses_validation:
            n_val = max(1, round(n_windows * config.validation_fraction))
        if n_windows - n_val < 1:
            raise InsufficientDataError(
                f"need at least {rep.history + 1 + (1 if config.uses_validation else 0)} "
                f"training prices for a {config.look_back}-day window "
                f"({config.representation}{', with a validation slice' if n_val else ''}), "
                f"got {len(prices)}"
            )
        values = prices.to_numpy(dtype="float64")
        rep.fit(values)
        inputs, targets = rep.windows(values)
        n_fit = len(targets) - n_val

        seed_everything(config.seed)
        model = build_model(config)
        timer = EpochTimer()
        callbacks: list[Any] = [timer]
        validation = None
        if n_val:
            validation = (inputs[n_fit:], targets[n_fit:])
        stopper = None
        if n_val and config.early_stopping_patience is not None:
            import keras

            stopper = keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
            callbacks.append(stopper)
        fit_started = time.perf_counter()
        history = model.fit(
            inputs[:n_fit],
            targets[:n_fit],
            epochs=config.epochs,
            batch_size=config.batch_size,
            validation_data=validation,
            shuffle=True,
            callbacks=callbacks,
            verbose=verbose,
        )
        fit_seconds = time.perf_counter() - fit_started
        forecaster = cls(config=config, model=model, representation=rep)

        val_stats: dict[str, Any] = {}
        if n_val:
            dates = prices.index[rep.history :][n_fit:]
            prev = values[rep.history - 1 : -1][n_fit:]
            raw = forecaster._raw_prices(inputs[n_fit:], prev)
            actual = values[rep.history :][n_fit:]
            if config.shrinkage:
                forecaster.gain = fit_gain(np.log(actual / prev), np.log(raw / prev))
            predicted = forecaster._apply_gain(raw, prev)
            from lstm_model import metrics

            val_stats = metrics.summarize(actual, predicted, prev)
            val_stats = {f"val_{k}": v for k, v in val_stats.items()}
            val_stats["val_start"] = _iso(dates[0])

        loss = history.history.get("loss", [])
        forecaster.meta = {
            "format": FORMAT_VERSION,
            "config": config.to_dict(),
            "representation": rep.kind,
            "data_start": _iso(train_prices.index[0]),
            "train_start": _iso(prices.index[0]),
            "train_end": _iso(prices.index[-1]),
            "trained_through": _iso(prices.index[-1]),
            "n_train": len(prices),
            "n_windows": int(n_fit),
            "n_val": int(n_val),
            "epochs_run": len(loss),
            # The epoch whose weights were kept (early stopping restores the best one): what
            # a refit on the whole history trains for.
            "best_epoch": stopper.best_epoch + 1 if stopper is not None else len(loss),
            "final_loss": float(loss[-1]) if loss else None,
            "best_val_loss": (
                float(min(history.history["val_loss"])) if "val_loss" in history.history else None
            ),
            "gain": forecaster.gain,
            "seed": config.seed,
            "train_seconds": round(fit_seconds, 3),
            "fit_seconds": round(time.perf_counter() - started, 3),
            **timer.summary(),
            "versions": _versions(),
            "fine_tunes": [],
            **val_stats,
        }
        return forecaster

    def fine_tune(
        self, prices: pd.Series, new_from: pd.Timestamp, *, epochs: int, learning_rate: float
    ) -> Forecaster:
        """Continue training on targets dated ``>= new_from``; returns a new Forecaster.

        ``prices`` may start earlier than ``new_from`` so that the first new targets have full
        windows. The representation (scaler) and shrinkage gain are kept as they are.

        Raises:
            InsufficientDataError: No target on or after ``new_from`` has a full window.
        """
        import keras

        from lstm_model.model import compile_model, seed_everything

        check_prices(prices)
        if not isinstance(epochs, int) or epochs < 1:
            raise ValueError(f"epochs must be an integer >= 1, got {epochs!r}")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate!r}")
        inputs, positions = self._inputs_from(prices, pd.Timestamp(new_from))
        values = prices.to_numpy(dtype="float64")
        targets = self.representation.targets(values)[positions - self.representation.history]
        started = time.perf_counter()
        seed_everything(self.config.seed)
        model = keras.models.clone_model(self.model)
        model.set_weights(self.model.get_weights())
        compile_model(model, learning_rate)
        # A daily fine-tune sees a batch or two: tracing the training graph (about a second)
        # would cost more than the steps themselves, so those run eagerly.
        model.run_eagerly = len(targets) <= self.config.batch_size
        history = model.fit(
            inputs,
            targets,
            epochs=epochs,
            batch_size=self.config.batch_size,
            shuffle=True,
            verbose=0,
        )
        meta = copy.deepcopy(self.meta)
        meta["fine_tunes"].append(
            {
                "from": _iso(prices.index[positions[0]]),
                "to": _iso(prices.index[-1]),
                "n_windows": len(targets),
                "epochs": epochs,
                "learning_rate": learning_rate,
                "final_loss": float(history.history["loss"][-1]),
                "seconds": round(time.perf_counter() - started, 3),
                "versions": _versions(),
            }
        )
        meta["trained_through"] = _iso(prices.index[-1])
        return Forecaster(
            config=self.config,
            model=model,
            representation=representation_from_json(self.representation.to_json()),
            gain=self.gain,
            meta=meta,
        )

    # ---------------------------------------------------------------- forecasting
    def predict_one_step(self, prices: pd.Series, start: pd.Timestamp) -> pd.Series:
        """One-step-ahead predictions for every date ``>= start`` in ``prices``.

        The prediction for date ``d`` uses only prices dated before ``d``.

        Raises:
            InsufficientDataError: Fewer than ``history`` prices before the first such date.
        """
        check_prices(prices)
        inputs, positions = self._inputs_from(prices, pd.Timestamp(start))
        values = prices.to_numpy(dtype="float64")
        prev = values[positions - 1]
        predicted = self._apply_gain(self._raw_prices(inputs, prev), prev)
        return pd.Series(predicted, index=prices.index[positions], name="predicted")

    def forecast_next(self, prices: pd.Series) -> float:
        """The forecast for the trading day after the last date in ``prices``."""
        check_prices(prices)
        history = self.representation.history
        if len(prices) < history:
            raise InsufficientDataError(
                f"need at least {history} prices to forecast the next day, got {len(prices)}"
            )
        values = prices.to_numpy(dtype="float64")[-history:]
        window = self.representation.inputs(values)[-1:]
        prev = values[-1:]
        return float(self._apply_gain(self._raw_prices(window, prev), prev)[0])

    def fitted_range(self) -> tuple[float, float] | None:
        """Price range of a global scaler; ``None`` for relative representations."""
        return self.representation.fitted_range()

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``model.keras``, ``scaler.json`` and ``meta.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / MODEL_FILE)
        (directory / SCALER_FILE).write_text(self.representation.to_json(), encoding="utf-8")
        meta = dict(self.meta, gain=self.gain, config=self.config.to_dict())
        (directory / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")

    @classmethod
    def load(cls, directory: Path) -> Forecaster:
        """Load what :meth:`save` wrote (the Keras model with ``safe_mode=True``)."""
        import keras

        directory = Path(directory)
        missing = [n for n in (MODEL_FILE, SCALER_FILE, META_FILE) if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory}: missing {', '.join(missing)}")
        meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
        config = ModelConfig.from_dict(meta["config"])
        rep = representation_from_json((directory / SCALER_FILE).read_text(encoding="utf-8"))
        model = keras.models.load_model(directory / MODEL_FILE, safe_mode=True, compile=False)
        return cls(config=config, model=model, representation=rep, gain=meta.get("gain"), meta=meta)

    # ---------------------------------------------------------------- internals
    def _inputs_from(self, prices: pd.Series, start: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
        """Windows for every target position ``p`` with ``prices.index[p] >= start``."""
        history = self.representation.history
        first = int(prices.index.searchsorted(start, side="left"))
        n = len(prices)
        if first >= n:
            raise InsufficientDataError(
                f"no prices on or after {_iso(start)} (prices end {_iso(prices.index[-1])})"
            )
        if first < history:
            raise InsufficientDataError(
                f"need {history} prices before {_iso(prices.index[first])} for a "
                f"{self.config.look_back}-day window, got {first}"
            )
        positions = np.arange(first, n)
        values = prices.to_numpy(dtype="float64")[first - history :]
        inputs = self.representation.inputs(values)[:-1]
        return inputs, positions

    def _raw_prices(self, inputs: np.ndarray, prev: np.ndarray) -> np.ndarray:
        from lstm_model.model import predict

        return self.representation.to_price(predict(self.model, inputs), prev)

    def _apply_gain(self, raw: np.ndarray, prev: np.ndarray) -> np.ndarray:
        if self.gain is None:
            return raw
        return prev * np.exp(self.gain * np.log(raw / prev))
