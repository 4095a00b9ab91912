"""TensorFlow stays out of sight: its C++ log lines never reach the terminal of the CLI or of
a training script. (A Prefect process worker's output, with the ticker trained in a
process-pool worker of the flow run, is checked by the stack test, tests/deploy/test_stack.py,
whose deployment run does exactly that. That reading the flow and its tasks never imports
TensorFlow is checked in the fresh process of tests/pipeline/test_settings.py's flow-form
test.)

Each check runs in a fresh Python process, as a user's would, with TensorFlow's logging
variables removed from the environment (the test session's own conftest sets them). The quiet
training process also imports every lstm_model module afterwards: the ML core never imports
Prefect (the layering rule), checked in the same process."""

from __future__ import annotations

import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest

import lstm_model
from lstm_model.quiet import is_tensorflow_log_line

PROJECT_ROOT = Path(__file__).resolve().parents[1]

TRAIN_TINY = """
import numpy as np, pandas as pd
from lstm_model.config import get_preset
from lstm_model.forecaster import Forecaster

def train_tiny() -> float:
    index = pd.bdate_range("2020-01-01", periods=120)
    prices = pd.Series(100 + np.cumsum(np.random.default_rng(0).normal(size=120)), index=index)
    forecaster = Forecaster.fit(prices, get_preset("fast").with_overrides(epochs=2))
    return float(forecaster.forecast_next(prices))
"""


def _user_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TF_", "PREFECT_"))}
    env.update(
        PYTHONPATH=os.pathsep.join([str(PROJECT_ROOT), str(tmp_path)]),
        PREFECT_HOME=str(tmp_path / "prefect-home"),
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="180",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
    )
    env.update(extra)
    return env


def _run(args: list[str], tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, *args],
        cwd=tmp_path,
        env=_user_environment(tmp_path, **extra),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _tensorflow_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if is_tensorflow_log_line(line)]


def test_recognises_tensorflow_log_lines_and_only_those() -> None:
    assert is_tensorflow_log_line(
        "E0000 00:00:1796019428.121265    6836 node_def_util.cc:682] NodeDef mentions "
        "attribute use_unbounded_threadpool which is not in the op definition"
    )
    assert is_tensorflow_log_line(
        "I0000 00:00:1796019424.761107    6836 port.cc:153] oneDNN custom operations are on."
    )
    assert is_tensorflow_log_line(
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
    )
    assert not is_tensorflow_log_line("12:00:01.123 | INFO    | Task run 'forecast-AAPL' - ok")
    assert not is_tensorflow_log_line("Traceback (most recent call last):")
    assert not is_tensorflow_log_line("E0000 is not a log line without its header")


PREFECT_LOADED = "prefect modules loaded:"

# After training: every lstm_model module imported, then the Prefect modules loaded, on the
# last line of the output.
IMPORT_ALL_OF_LSTM_MODEL = """
import importlib, sys
for name in {modules!r}:
    importlib.import_module(name)
leaked = sorted(m for m in sys.modules if m == "prefect" or m.startswith("prefect."))
print("{marker}", ",".join(leaked))
"""


class TrainingRuns(NamedTuple):
    """The tiny training script run as a user would (quiet), and with the user's own
    ``TF_CPP_MIN_LOG_LEVEL=0`` (verbose)."""

    quiet: subprocess.CompletedProcess[str]
    verbose: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def training_runs(tmp_path_factory) -> TrainingRuns:
    """Two fresh processes, shared by the two tests below."""
    tmp_path = tmp_path_factory.mktemp("tiny")
    modules = [m.name for m in pkgutil.walk_packages(lstm_model.__path__, "lstm_model.")]
    assert modules, "lstm_model has no modules"
    (tmp_path / "tiny.py").write_text(
        TRAIN_TINY
        + "\nprint(train_tiny())\n"
        + IMPORT_ALL_OF_LSTM_MODEL.format(modules=modules, marker=PREFECT_LOADED)
    )
    quiet = _run(["tiny.py"], tmp_path)
    verbose = _run(["tiny.py"], tmp_path, TF_CPP_MIN_LOG_LEVEL="0")
    return TrainingRuns(quiet, verbose)


@pytest.mark.slow  # fresh Python processes
def test_training_prints_no_tensorflow_line_unless_the_user_asks(training_runs) -> None:
    quiet = training_runs.quiet
    assert np.isfinite(float(quiet.stdout.split()[0]))
    assert _tensorflow_lines(quiet.stderr) == []
    assert "NodeDef" not in quiet.stderr

    # A user's own level wins: with 0 TensorFlow's lines come back (so the check above can fail).
    assert _tensorflow_lines(training_runs.verbose.stderr)


@pytest.mark.slow  # a fresh Python process importing all of lstm_model (shared, above)
def test_no_lstm_model_module_imports_prefect(training_runs) -> None:
    (last,) = [line for line in training_runs.quiet.stdout.splitlines() if PREFECT_LOADED in line]
    leaked = last.removeprefix(PREFECT_LOADED).strip()
    assert leaked == "", f"lstm_model imported prefect: {leaked}"


@pytest.mark.slow  # fresh Python processes
def test_cli_tutorial_prints_no_tensorflow_line(tmp_path: Path) -> None:
    dates = pd.bdate_range("2012-01-02", periods=400)
    close = 20 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, len(dates))))
    frame = pd.DataFrame(
        {
            "Date": dates.strftime("%Y-%m-%d"),
            "Open": close,
            "High": close * 1.01,
            "Low": close * 0.99,
            "Close": close,
            "Adj Close": close,
            "Volume": 1000,
        }
    )
    frame.to_csv(tmp_path / "TINY.csv", index=False)
    args = ["--csv", "TINY.csv", "--out", "out", "--preset", "default", "--epochs", "1"]
    result = _run(["-m", "closecast.cli", "tutorial", *args], tmp_path)
    assert "test RMSE" in result.stdout
    assert _tensorflow_lines(result.stdout + result.stderr) == []
