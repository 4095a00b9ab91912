"""SIGTERM (how Prefect workers cancel a flow run, how ``kill`` asks a process to stop) stops
training within a batch, and the run then publishes nothing more.

While a flow runs, Prefect owns the SIGTERM handler: it raises its termination signal in the
main thread, which is waiting for the per-ticker tasks. Training runs in worker threads that
a signal cannot reach, and the task runner waits for them on the way out, so
:func:`training_stops_with_the_run` turns any exception leaving the main thread's wait into a
stop request that every training in the process sees at its next batch.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

from lstm_model.interrupt import request_stop

EXIT_TERMINATED = 143  # 128 + SIGTERM, what shells report for a terminated process


@contextlib.contextmanager
def training_stops_with_the_run() -> Iterator[None]:
    """Ask every training in this process to stop if the block ends by an exception
    (Prefect's termination signal, KeyboardInterrupt, a crash)."""
    try:
        yield
    except BaseException:
        request_stop()
        raise


def interrupt_main_thread_on_sigterm() -> None:
    """Outside a flow run (before, after, between replayed days), turn SIGTERM into
    ``KeyboardInterrupt`` so the command line ends cleanly; inside one, Prefect's handler
    takes over and :func:`training_stops_with_the_run` does the rest."""

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        request_stop()
        raise KeyboardInterrupt("SIGTERM")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)


def stopped_by_signal(error: BaseException) -> bool:
    """Whether ``error`` is how a flow call ends after SIGTERM or Ctrl-C."""
    from prefect.exceptions import TerminationSignal

    return isinstance(error, KeyboardInterrupt | TerminationSignal)
