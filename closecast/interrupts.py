"""SIGTERM (how Prefect workers cancel a flow run, and how ``kill`` asks) stops training
within a batch, and the run then publishes nothing more."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

from lstm_model.interrupt import request_stop


def stop_training_on_sigterm() -> bool:
    """Chain a SIGTERM handler that first asks every training in the process to stop.

    The previous handler (Prefect's, which turns SIGTERM into its termination signal, or the
    default, which exits) still runs afterwards. Handlers can only be installed from the main
    thread; elsewhere this does nothing and returns False.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: FrameType | None) -> Any:
        request_stop()
        if callable(previous):
            return previous(signum, frame)
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)
        return None

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
