"""The Keras network: LSTM(units) -> Dropout -> Dense(1), trained with Adam on MSE."""

from __future__ import annotations

import time

from lstm_model.config import ModelConfig
from lstm_model.quiet import quiet_tensorflow

quiet_tensorflow()  # before TensorFlow's first import: its C++ log lines are not for users

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TensorFlow ops deterministic.

    ``enable_op_determinism`` is process-wide and idempotent; it is what makes two runs with
    the same seed and data give identical weights.
    """
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


class EpochTimer(keras.callbacks.Callback):
    """Records the wall time of each training epoch (the first includes graph tracing)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self._started = 0.0

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.seconds.append(time.perf_counter() - self._started)

    def summary(self) -> dict[str, float | None]:
        """First-epoch seconds and the mean of the later epochs (steady state)."""
        later = self.seconds[1:]
        return {
            "first_epoch_seconds": round(self.seconds[0], 4) if self.seconds else None,
            "epoch_seconds": round(sum(later) / len(later), 4) if later else None,
        }


def build_model(config: ModelConfig) -> keras.Model:
    """A compiled LSTM(units) -> Dropout(dropout) -> Dense(1) regressor for ``look_back``
    steps of one feature."""
    return build_network(
        look_back=config.look_back, n_features=1, units=config.units, dropout=config.dropout,
        seed=config.seed, learning_rate=config.learning_rate, name="closecast_lstm",
    )  # fmt: skip


def build_network(
    *, look_back: int, n_features: int, units: int, dropout: float, seed: int,
    learning_rate: float, name: str,
) -> keras.Model:  # fmt: skip
    """A compiled LSTM(units) -> Dropout(dropout) -> Dense(1) regressor for ``look_back``
    steps of ``n_features`` (the per-ticker and the global LSTM share it)."""
    # Every random layer gets its own seed from the config. Left unseeded, Keras draws seeds
    # from Python's process-global ``random``, which other threads of a busy worker (Dask
    # heartbeats, Prefect's client) also draw from, so the same seed could give another model.
    model = keras.Sequential(
        [
            keras.Input(shape=(look_back, n_features)),
            keras.layers.LSTM(
                units,
                kernel_initializer=keras.initializers.GlorotUniform(seed=seed),
                recurrent_initializer=keras.initializers.Orthogonal(seed=seed + 1),
            ),
            keras.layers.Dropout(dropout, seed=seed + 2),
            keras.layers.Dense(
                1, kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 3)
            ),
        ],
        name=name,
    )
    compile_model(model, learning_rate)
    return model


def compile_model(model: keras.Model, learning_rate: float) -> None:
    # XLA ("auto") costs more to compile than it saves on networks this small: measured
    # ~25% slower per fresh model on CPU.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="mse",
        jit_compile=False,
    )


def _drop_custom_gradient_registrations() -> int:
    """Remove TensorFlow's per-trace ``CustomGradient-N`` gradient registrations.

    Keras's TensorFlow optimizer all-reduces gradients through ``tf.custom_gradient`` on
    every trace of a training step. In graph mode that registers a uniquely named gradient
    function in TensorFlow's process-global gradient registry and never removes it, and its
    closure keeps the whole traced training graph alive: about 11 MB per trained model, for
    the life of the process. The registrations are only consulted while that graph's
    gradients are being built, so once training is over they can go. TensorFlow offers no
    public API for this; if its internals change, this quietly does nothing.
    """
    try:
        from tensorflow.python.framework import ops

        registry = ops._gradient_registry._registry
    except (ImportError, AttributeError):
        return 0
    stale = [name for name in registry if name.startswith("CustomGradient-")]
    for name in stale:
        del registry[name]
    return len(stale)


def release_tensorflow_state() -> None:
    """Free what training left behind in this process, so memory does not grow per model.

    Call it between models, when no training is running in the process (the pipeline holds
    its per-process training lock).
    """
    import gc

    # One full collection, after the registrations that keep traced graphs alive are gone:
    # with Prefect and TensorFlow loaded, each walks hundreds of thousands of objects.
    keras.backend.clear_session(free_memory=False)
    _drop_custom_gradient_registrations()
    gc.collect()
