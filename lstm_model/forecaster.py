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
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lstm_model.base import META_FILE, write_meta
from lstm_model.config import ModelConfig
from lstm_model.data import InsufficientDataError, check_prices
from lstm_model.representation import (
    Representation,
    make_representation,
    representation_from_json,
)

__all__ = [
    "CorruptModelFileError",
    "Forecaster",
    "InsufficientDataError",
    "TrainingData",
    "prepare_training",
    "refit_config",
]

MODEL_FILE = "model.keras"
SCALER_FILE = "scaler.json"
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


class CorruptModelFileError(ValueError):
    """A saved model file that cannot be read; the message starts with the file's name.

    Attributes:
        file: The file's name in the model directory (``scaler.json``, ``meta.json``,
            ``model.keras``).
        reason: What went wrong.
    """

    def __init__(self, file: str, reason: str) -> None:
        super().__init__(f"{file}: unreadable ({reason})")
        self.file = file
        self.reason = reason

    def __reduce__(self) -> tuple[type[CorruptModelFileError], tuple[str, str]]:
        """Pickle by file and reason (errors cross process boundaries)."""
        return (type(self), (self.file, self.reason))


@contextmanager
def _naming_the_file(name: str) -> Iterator[None]:
    """Re-raise any failure to read or parse ``name`` as a :class:`CorruptModelFileError`
    naming it (the caller adds the model's folder); a corrupt ``scaler.json`` was reported as
    its folder alone."""
    try:
        yield
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
        raise CorruptModelFileError(name, f"{type(exc).__name__}: {exc}") from exc


@dataclass(frozen=True)
class TrainingData:
    """One ticker's prepared training set: capped prices, fitted representation, windows.

    The representation (scaler) is fit on these training prices only; the last ``n_val``
    windows (the end of the training period) are the validation slice.
    """

    data_start: pd.Timestamp  # first date of the prices given, before the cap
    prices: pd.Series  # the (capped) training prices
    values: np.ndarray  # ``prices`` as float64
    representation: Representation
    inputs: np.ndarray  # (n_windows, look_back, 1) float32
    targets: np.ndarray  # (n_windows,) float32
    n_val: int

    @property
    def n_fit(self) -> int:
        """Windows the network is trained on (all but the validation slice)."""
        return len(self.targets) - self.n_val

    @property
    def validation(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.n_val:
            return None
        return self.inputs[self.n_fit :], self.targets[self.n_fit :]


def cap_history(prices: pd.Series, config: ModelConfig) -> pd.Series:
    """The most recent ``config.max_train_days`` prices (all of them when uncapped)."""
    if config.max_train_days is not None and len(prices) > config.max_train_days:
        return prices.iloc[-config.max_train_days :]
    return prices


def validation_size(n_windows: int, config: ModelConfig) -> int:
    """Windows held back at the end of the training period for validation (0 when unused)."""
    if not config.uses_validation:
        return 0
    return max(1, round(n_windows * config.validation_fraction))


def prepare_training(train_prices: pd.Series, config: ModelConfig) -> TrainingData:
    """Cap the history, fit the representation on it and cut the windows and the split.

    Raises:
        InsufficientDataError: Too few prices for the window and validation slice.
    """
    check_prices(train_prices, what="train_prices")
    prices = cap_history(train_prices, config)
    rep = make_representation(config.representation, config.look_back)
    n_windows = len(prices) - rep.history
    n_val = validation_size(n_windows, config)
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
    return TrainingData(
        data_start=train_prices.index[0],
        prices=prices,
        values=values,
        representation=rep,
        inputs=inputs,
        targets=targets,
        n_val=n_val,
    )


@dataclass(frozen=True)
class TrainingRun:
    """What one network's training produced besides its weights."""

    history: dict[str, list[float]]  # per-epoch "loss" (and "val_loss" with validation)
    seconds: float  # wall time of the training loop
    epoch_timing: dict[str, float | None]  # first_epoch_seconds, epoch_seconds


def _train_keras(
    model: Any, data: TrainingData, config: ModelConfig, *, verbose: int
) -> TrainingRun:
    """Keras ``fit`` on the training windows, early-stopped on the validation slice if any."""
    from lstm_model.interrupt import raise_if_stopped, stop_callback
    from lstm_model.model import EpochTimer
    from lstm_model.progress import keras_progress

    timer = EpochTimer()
    what = f"training on {data.n_fit} windows"
    callbacks: list[Any] = [timer, stop_callback(), keras_progress(what, config.epochs)]
    if data.n_val and config.early_stopping_patience is not None:
        import keras

        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor="val_loss",
                patience=config.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    started = time.perf_counter()
    history = model.fit(
        data.inputs[: data.n_fit],
        data.targets[: data.n_fit],
        epochs=config.epochs,
        batch_size=config.batch_size,
        validation_data=data.validation,
        shuffle=True,
        callbacks=callbacks,
        verbose=verbose,
    )
    raise_if_stopped()
    return TrainingRun(history.history, time.perf_counter() - started, timer.summary())


def best_epoch(history: dict[str, list[float]], config: ModelConfig) -> int:
    """The 1-based epoch whose weights were kept.

    With early stopping the best weights are restored: the first epoch of least validation
    loss. Otherwise the weights of the last epoch run.
    """
    val_loss = history.get("val_loss")
    if config.early_stopping_patience is not None and val_loss:
        return int(np.argmin(val_loss)) + 1
    return len(history.get("loss", []))


def fit_meta(
    data: TrainingData,
    config: ModelConfig,
    *,
    gain: float | None,
    history: dict[str, list[float]],
    train_seconds: float,
    fit_seconds: float,
    epoch_timing: dict[str, float | None],
    val_stats: dict[str, Any],
) -> dict[str, Any]:
    """The metadata a fit writes beside the model (``meta.json``)."""
    loss = history.get("loss", [])
    val_loss = history.get("val_loss")
    return {
        "format": FORMAT_VERSION,
        "config": config.to_dict(),
        "representation": data.representation.kind,
        "data_start": _iso(data.data_start),
        "train_start": _iso(data.prices.index[0]),
        "train_end": _iso(data.prices.index[-1]),
        "trained_through": _iso(data.prices.index[-1]),
        "n_train": len(data.prices),
        "n_windows": int(data.n_fit),
        "n_val": int(data.n_val),
        "epochs_run": len(loss),
        "best_epoch": best_epoch(history, config),
        "final_loss": float(loss[-1]) if loss else None,
        "best_val_loss": float(min(val_loss)) if val_loss else None,
        "gain": gain,
        "seed": config.seed,
        "train_seconds": round(train_seconds, 3),
        "fit_seconds": round(fit_seconds, 3),
        **epoch_timing,
        "versions": _versions(),
        "fine_tunes": [],
        **val_stats,
    }


def fine_tuned_meta(
    meta: dict[str, Any],
    prices: pd.Series,
    *,
    first: int,
    n_windows: int,
    epochs: int,
    learning_rate: float,
    final_loss: float,
    seconds: float,
) -> dict[str, Any]:
    """A copy of ``meta`` with one more ``fine_tunes`` record and the new ``trained_through``."""
    meta = copy.deepcopy(meta)
    meta["fine_tunes"].append(
        {
            "from": _iso(prices.index[first]),
            "to": _iso(prices.index[-1]),
            "n_windows": n_windows,
            "epochs": epochs,
            "learning_rate": learning_rate,
            "final_loss": final_loss,
            "seconds": round(seconds, 3),
            "versions": _versions(),
        }
    )
    meta["trained_through"] = _iso(prices.index[-1])
    return meta


def refit_config(like: Forecaster) -> ModelConfig:
    """``like``'s configuration for a refit: its best epoch count, no validation slice."""
    epochs = int(like.meta.get("best_epoch") or like.meta.get("epochs_run") or like.config.epochs)
    return like.config.with_overrides(
        epochs=max(1, epochs), early_stopping_patience=None, shrinkage=False
    )


def refit_record(like: Forecaster) -> dict[str, Any]:
    """What a refit's meta says about the fit it copied (``refit_of``)."""
    return {
        "train_start": like.meta.get("train_start"),
        "train_end": like.meta.get("train_end"),
        "best_epoch": like.meta.get("best_epoch"),
        "epochs_run": like.meta.get("epochs_run"),
        "gain": like.gain,
        "val_u2": like.meta.get("val_u2"),
    }


class Forecaster:
    """A trained model with its representation state and metadata.

    Create with :meth:`fit`, :meth:`refit` or :meth:`load` (or many at once with
    :mod:`lstm_model.batch`); :meth:`fine_tune` returns a new instance.

    Args:
        config: The hyperparameters it was trained with.
        model: The Keras model; or ``None`` with ``weights``, in which case the Keras model is
            built on first use of :attr:`model` (the batched path trains weights without
            building a Keras model per ticker, which would cost more than the training).
        representation: The fitted representation (scaler).
        gain: The shrinkage gain, if any.
        meta: Metadata (see :func:`fit_meta`).
        weights: ``get_weights()`` of the network, when ``model`` is ``None``.
    """

    def __init__(
        self,
        config: ModelConfig,
        model: Any = None,
        representation: Representation | None = None,
        gain: float | None = None,
        meta: dict[str, Any] | None = None,
        *,
        weights: list[np.ndarray] | None = None,
    ) -> None:
        if (model is None) == (weights is None):
            raise ValueError("Forecaster needs exactly one of model and weights")
        if representation is None:
            raise ValueError("Forecaster needs a fitted representation")
        self.config = config
        self._model = model
        self._weights = weights
        self.representation = representation
        self.gain = gain
        self.meta: dict[str, Any] = meta if meta is not None else {}

    def __repr__(self) -> str:
        return (
            f"Forecaster(representation={self.representation.kind!r}, gain={self.gain!r}, "
            f"trained_through={self.meta.get('trained_through')!r})"
        )

    @property
    def model(self) -> Any:
        """The Keras model (built from the weights on first use)."""
        if self._model is None:
            from lstm_model.model import build_model

            model = build_model(self.config)
            model.set_weights(self._weights)
            self._model, self._weights = model, None
        return self._model

    def get_weights(self) -> list[np.ndarray]:
        """The network's weights (Keras ``get_weights()`` order), without building a model."""
        if self._model is None:
            return self._weights  # type: ignore[return-value]
        return self._model.get_weights()

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
        from lstm_model.model import build_model, seed_everything

        started = time.perf_counter()
        data = prepare_training(train_prices, config)
        seed_everything(config.seed)
        model = build_model(config)
        run = _train_keras(model, data, config, verbose=verbose)
        forecaster = cls(config=config, model=model, representation=data.representation)
        val_stats = forecaster._calibrate_on_validation(data)
        forecaster.meta = fit_meta(
            data,
            config,
            gain=forecaster.gain,
            history=run.history,
            train_seconds=run.seconds,
            fit_seconds=time.perf_counter() - started,
            epoch_timing=run.epoch_timing,
            val_stats=val_stats,
        )
        return forecaster

    @classmethod
    def refit(cls, prices: pd.Series, like: Forecaster, *, verbose: int = 0) -> Forecaster:
        """Retrain ``like``'s network on ``prices`` for ``like``'s best number of epochs.

        The second half of a retrain: ``like`` was fit on the prices before a holdout, with its
        own validation slice, early stopping and shrinkage gain; the refit trains the same
        network on the whole history through the run date for ``like.meta["best_epoch"]``
        epochs with no validation slice (so no day is held back), and copies ``like``'s gain.

        Args:
            prices: The whole history to train on (the ``max_train_days`` cap still applies).
            like: A forecaster made by :meth:`fit` (or by :meth:`refit`).
            verbose: Keras ``fit`` verbosity.

        Raises:
            InsufficientDataError: Too few prices for one window.
        """
        config = refit_config(like)
        forecaster = cls.fit(prices, config, verbose=verbose)
        return forecaster.as_refit_of(like)

    def as_refit_of(self, like: Forecaster) -> Forecaster:
        """This forecaster with ``like``'s gain and a meta that records the refit (in place)."""
        self.gain = like.gain
        self.meta["gain"] = like.gain
        self.meta["refit_of"] = refit_record(like)
        return self

    def _calibrate_on_validation(
        self, data: TrainingData, outputs: np.ndarray | None = None
    ) -> dict[str, Any]:
        """Fit the shrinkage gain on the validation slice and score it there (``val_*``).

        ``outputs``: the network's outputs on the validation windows, if already computed.
        """
        if not data.n_val:
            return {}
        from lstm_model import metrics

        n_fit, history = data.n_fit, self.representation.history
        prev = data.values[history - 1 : -1][n_fit:]
        actual = data.values[history:][n_fit:]
        if outputs is None:
            raw = self._raw_prices(data.inputs[n_fit:], prev)
        else:
            raw = self.representation.to_price(outputs, prev)
        if self.config.shrinkage:
            self.gain = fit_gain(np.log(actual / prev), np.log(raw / prev))
        predicted = self._apply_gain(raw, prev)
        scores = asdict(metrics.summarize(actual, predicted, prev))
        stats = {f"val_{k}": v for k, v in scores.items()}
        stats["val_start"] = _iso(data.prices.index[history:][n_fit])
        return stats

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

        from lstm_model.interrupt import raise_if_stopped, stop_callback
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
        model.set_weights(self.get_weights())
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
            callbacks=[stop_callback()],
            verbose=0,
        )
        raise_if_stopped("fine-tuning")
        meta = fine_tuned_meta(
            self.meta,
            prices,
            first=positions[0],
            n_windows=len(targets),
            epochs=epochs,
            learning_rate=learning_rate,
            final_loss=float(history.history["loss"][-1]),
            seconds=time.perf_counter() - started,
        )
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
        return float(
            self.forecast_windows(prices.to_numpy(dtype="float64")[np.newaxis, -history:])[0]
        )

    def forecast_windows(self, windows: np.ndarray) -> np.ndarray:
        """:meth:`forecast_next` from each row of ``windows`` (``(n, history)`` prices, the
        last ``history`` prices before each forecast day), in one network call."""
        windows = np.asarray(windows, dtype="float64")
        history = self.representation.history
        if windows.ndim != 2 or windows.shape[1] != history:
            raise ValueError(f"expected windows of {history} prices, got shape {windows.shape}")
        # The rows end to end: every history-th window of the whole reads exactly one row.
        inputs = self.representation.inputs(windows.reshape(-1))[::history]
        prev = windows[:, -1]
        return self._apply_gain(self._raw_prices(inputs, prev), prev)

    def fitted_range(self) -> tuple[float, float] | None:
        """Price range of a global scaler; ``None`` for relative representations."""
        return self.representation.fitted_range()

    # ---------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        """Write ``model.keras``, ``scaler.json`` and ``meta.json`` into ``directory``."""
        from lstm_model.network_file import save_network

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(directory / MODEL_FILE)
        else:  # trained or loaded as weights: no Keras model of its own to build
            save_network(self._weights, self.config, directory / MODEL_FILE)  # type: ignore[arg-type]
        (directory / SCALER_FILE).write_text(self.representation.to_json(), encoding="utf-8")
        write_meta(directory, dict(self.meta, gain=self.gain, config=self.config.to_dict()))

    @classmethod
    def load(cls, directory: Path) -> Forecaster:
        """Load what :meth:`save` wrote: the network's weights
        (:func:`lstm_model.network_file.read_network`, which refuses any other network), its
        scaler and metadata. The Keras model is built only if it is trained further."""
        from lstm_model.network_file import read_network

        directory = Path(directory)
        missing = [n for n in (MODEL_FILE, SCALER_FILE, META_FILE) if not (directory / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{directory}: missing {', '.join(missing)}")
        with _naming_the_file(META_FILE):
            meta = json.loads((directory / META_FILE).read_text(encoding="utf-8"))
            config = ModelConfig.from_dict(meta["config"])
        with _naming_the_file(SCALER_FILE):
            rep = representation_from_json((directory / SCALER_FILE).read_text(encoding="utf-8"))
        with _naming_the_file(MODEL_FILE):
            weights = read_network(directory / MODEL_FILE, config)
        return cls(config, None, rep, meta.get("gain"), meta, weights=weights)

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
        from lstm_model.inference import network_outputs

        return self.representation.to_price(network_outputs(self.get_weights(), inputs), prev)

    def _apply_gain(self, raw: np.ndarray, prev: np.ndarray) -> np.ndarray:
        if self.gain is None:
            return raw
        return prev * np.exp(self.gain * np.log(raw / prev))
