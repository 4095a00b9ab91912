"""Stopping training on request (SIGTERM, Prefect cancellation) within one batch.

Keras checks ``model.stop_training`` only between batches and epochs, and a signal handler
runs only in the main thread while training may run in worker threads. So a stop request is
a process-wide event: the handler (installed by the application, see
``closecast.control.interrupts``) sets it, and :func:`stop_callback` ends any training in the
process
at its next batch; the trainer then raises :class:`TrainingInterrupted` rather than return a
half-trained model.
"""

from __future__ import annotations

import threading
from typing import Any

_STOP = threading.Event()


class TrainingInterrupted(RuntimeError):
    """Training was stopped on request before it finished; its model must not be used."""


def request_stop() -> None:
    """Ask every training in this process to stop at its next batch."""
    _STOP.set()


def clear_stop() -> None:
    """Forget a stop request (a new run in the same process)."""
    _STOP.clear()


def stop_requested() -> bool:
    return _STOP.is_set()


def raise_if_stopped(what: str = "training") -> None:
    """Raise :class:`TrainingInterrupted` when a stop was requested."""
    if _STOP.is_set():
        raise TrainingInterrupted(f"{what} stopped on request (SIGTERM or cancellation)")


def stop_callback() -> Any:
    """A Keras callback that ends training at the next batch once a stop is requested."""
    import keras

    class StopOnRequest(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None) -> None:
            if _STOP.is_set():
                self.model.stop_training = True

        def on_epoch_begin(self, epoch, logs=None) -> None:
            if _STOP.is_set():
                self.model.stop_training = True

    return StopOnRequest()
