"""Keep TensorFlow's C++ log lines away from users.

TensorFlow's C++ core logs through absl straight to file descriptor 2, bypassing Python's
``sys.stderr`` and so every Python logging handler:

* while importing, ``I0000 ... port.cc] oneDNN custom operations are on ...`` (twice) and
  absl's ``WARNING: All log messages before absl::InitializeLog() is called are written to
  STDERR``. These are printed while the shared library loads, before TensorFlow applies
  ``TF_CPP_MIN_LOG_LEVEL``, so no setting hides them;
* while training, ``E0000 ... node_def_util.cc] NodeDef mentions attribute
  use_unbounded_threadpool ...`` (a harmless version skew between Keras's tf.data graph and
  the installed op registry). ``TF_CPP_MIN_LOG_LEVEL=3`` hides these: it drops C++ messages
  below FATAL.

:func:`quiet_tensorflow` does both, once per process, right before TensorFlow is first
imported (:mod:`lstm_model.model` calls it), so the CLI, Prefect workers and process or Dask
task-runner workers are all covered without any work at import time elsewhere. A user who sets
``TF_CPP_MIN_LOG_LEVEL`` themselves keeps their level, and with ``0`` sees every line.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager

# What TensorFlow's C++ logging may print by default: errors and below stay hidden.
QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}

# absl's log line prefix, e.g. "E0000 00:00:1796019428.121265    6836 node_def_util.cc:682] ".
_ABSL_LINE = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ [\w.-]+:\d+\] ")
_ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called"
# The second line of cpu_feature_guard.cc's start-up message (shown at levels 0 to 2).
_CPU_FEATURES = "To enable the following instructions:"


def is_tensorflow_log_line(line: str) -> bool:
    """A line written by TensorFlow's C++ (absl) logging rather than by Python."""
    return bool(_ABSL_LINE.match(line)) or line.startswith((_ABSL_PREAMBLE, _CPU_FEATURES))


def quiet_tensorflow() -> None:
    """Import TensorFlow with its C++ log lines kept off the terminal. Idempotent.

    Call it right before the first ``import keras`` / ``import tensorflow`` of a process.
    """
    for name, value in QUIET_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if "tensorflow" in sys.modules or os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0":
        return
    with _stderr_filtered(is_tensorflow_log_line):
        import tensorflow  # noqa: F401


@contextmanager
def _stderr_filtered(drop: Callable[[str], bool]) -> Iterator[None]:
    """Capture file descriptor 2 for the block, then write back every line ``drop`` keeps.

    Other threads' output (e.g. a Prefect console log line) written meanwhile is kept, only
    delayed until the block ends.
    """
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable descriptor 2 (closed, or a detached stderr)
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            text = capture.read().decode("utf-8", errors="replace")
            kept = [line for line in text.splitlines(keepends=True) if not drop(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()
