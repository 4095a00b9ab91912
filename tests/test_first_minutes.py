"""What a newcomer meets in the first minutes: a day without trading says so and exits 0, and
the folders the README's commands write stay out of git."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from closecast.cli import main
from closecast.inputs.calendars import is_trading_day

REPO = Path(__file__).resolve().parents[1]
SATURDAY = date(2020, 12, 5)


@pytest.mark.usefixtures("prefect_harness")
def test_a_day_no_market_trades_says_so_and_exits_0(tmp_path, capsys) -> None:
    assert not is_trading_day("etf", SATURDAY)
    root = tmp_path / "store"
    code = main(
        ["run", "--tickers", "QQQ", "--as-of", SATURDAY.isoformat(), "--storage", str(root)]
    )
    printed = capsys.readouterr()
    assert code == 0  # nothing to do is not a failure: the schedule runs on every day
    assert f"nothing to do, nothing published: markets closed on {SATURDAY}" in printed.out
    assert "no metrics were published" not in printed.err
    assert not (root / "metrics").exists()


def test_folders_the_readme_commands_write_are_ignored_by_git() -> None:
    ignored = set((REPO / ".gitignore").read_text(encoding="utf-8").split())
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    for folder in ("closecast-data/", "closecast-replay/", "tutorial-out/"):
        assert folder.rstrip("/") in readme, folder  # a folder the README has users write
        assert folder in ignored, f".gitignore lacks {folder}"
