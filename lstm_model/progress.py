"""Training progress, reported through the standard ``logging`` module at most every few
seconds (logger ``lstm_model.progress``): epochs done, loss, elapsed time.

The ML core knows nothing of where logs go: the pipeline forwards this logger to the Prefect
run logger of the task that trains (so it shows in the UI and on the terminal), and the
``closecast tutorial`` command prints it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

logger = logging.getLogger("lstm_model.progress")

DEFAULT_EVERY_SECONDS = 5.0


class Throttle:
    """True at most once every ``every`` seconds (and on the first call after that)."""

    def __init__(self, every: float | None = None) -> None:
        self.every = DEFAULT_EVERY_SECONDS if every is None else every
        self.started = time.monotonic()
        self._last = self.started

    def due(self) -> bool:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            return True
        return False

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


def keras_progress(what: str, epochs: int, every: float | None = None) -> Any:
    """A Keras callback logging ``what: epoch e/epochs, loss L, Ns`` every ``every`` seconds."""
    import keras

    class ProgressLogger(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.throttle = Throttle(every)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            if self.throttle.due():
                loss = (logs or {}).get("loss")
                shown = "n/a" if loss is None else f"{float(loss):.4g}"
                logger.info(
                    "%s: epoch %d/%d, loss %s, %.0fs",
                    what,
                    epoch + 1,
                    epochs,
                    shown,
                    self.throttle.elapsed,
                )

    return ProgressLogger()
