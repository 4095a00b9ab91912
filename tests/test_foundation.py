"""Project-wide guarantees: the CLI answers, and lstm_model stays free of Prefect."""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import pytest

import lstm_model


@pytest.mark.slow  # a fresh Python process
def test_cli_help_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "closecast.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "usage: closecast" in result.stdout
    assert "tutorial" in result.stdout


@pytest.mark.slow  # a fresh Python process importing all of lstm_model
def test_no_lstm_model_module_imports_prefect() -> None:
    modules = [m.name for m in pkgutil.walk_packages(lstm_model.__path__, "lstm_model.")]
    assert modules, "lstm_model has no modules"
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m == 'prefect' or m.startswith('prefect.'))\n"
        "print(','.join(leaked))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "", f"lstm_model imported prefect: {result.stdout.strip()}"
