"""Project-wide guarantees: the CLI answers. (That lstm_model stays free of Prefect is checked
in the fresh training process of tests/test_tensorflow_noise.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest


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
