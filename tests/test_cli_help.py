"""Every closecast help page, read as a user reads it: each option has a line of help, its
default is shown, and the epilog lists the exit codes and at least two examples that parse."""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys

import pytest

from closecast.cli import build_parser, main

COMMANDS = [
    [],
    ["run"],
    ["replay"],
    ["tutorial"],
    ["stack"],
    ["stack", "up"],
    ["stack", "down"],
    ["stack", "status"],
]


def _help_page(command: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exited:
        main([*command, "--help"])
    assert exited.value.code == 0
    return capsys.readouterr().out


def _parser_of(command: list[str]) -> argparse.ArgumentParser:
    parser = build_parser()
    for name in command:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = subparsers.choices[name]
    return parser


def _section(page: str, title: str) -> list[str]:
    """The indented lines under ``title:`` up to the next blank line."""
    lines = page.splitlines()
    start = lines.index(f"{title}:") + 1
    section = []
    for line in lines[start:]:
        if not line.strip():
            break
        section.append(line)
    return section


def _option_entries(page: str) -> dict[str, str]:
    """Option string -> its help text (wrapped lines joined), from the ``options:`` section."""
    entries: dict[str, str] = {}
    current: list[str] = []
    for line in _section(page, "options"):
        match = re.match(r"^  (-[^\s,]+(?:, -[^\s,]+)*)(?: [^ ]+)?(?:  +(.*))?$", line)
        if match:
            current = [match.group(2) or ""]
            for option in match.group(1).split(", "):
                entries[option] = current  # type: ignore[assignment]
        else:
            current.append(line.strip())
    return {option: " ".join(" ".join(parts).split()) for option, parts in entries.items()}


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "closecast")
def test_help_page_explains_every_option_and_its_default(command, capsys) -> None:
    page = _help_page(command, capsys)
    entries = _option_entries(page)
    parser = _parser_of(command)
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        option = action.option_strings[-1]
        assert entries.get(option), f"{' '.join(command)} {option}: no help line\n{page}"
        if action.default not in (None, False, argparse.SUPPRESS):
            assert f"(default: {action.default})" in entries[option], (command, option)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "closecast")
def test_help_epilog_lists_exit_codes_and_examples_that_parse(command, capsys) -> None:
    page = _help_page(command, capsys)
    codes = {int(line.split()[0]): line for line in _section(page, "exit status")}
    assert {0, 2} <= set(codes), page  # success and argparse's usage error, at least
    assert all(len(line.split()) > 1 for line in codes.values()), "an exit code without meaning"

    examples = [line.strip() for line in _section(page, "examples")]
    assert len(examples) >= 2, page
    for example in examples:
        words = shlex.split(example)
        while "=" in words[0]:  # leading VAR=value assignments
            words.pop(0)
        assert words[0] == "closecast", example
        args = build_parser().parse_args(words[1:])  # exits (and fails) on a bad example
        assert args.command == words[1]


def test_run_help_names_the_options_the_issue_found_bare(capsys) -> None:
    entries = _option_entries(_help_page(["run"], capsys))
    assert "source's current date" in entries["--as-of"]
    assert "(default: auto)" in entries["--mode"] and "fine-tune" in entries["--mode"]
    assert "(default: threads)" in entries["--task-runner"]
    assert "(default: 2)" in entries["--workers"]


@pytest.mark.slow  # a fresh Python process
def test_building_the_command_line_leaves_the_pipeline_for_later() -> None:
    """``closecast run`` and ``replay`` start their Prefect server once the command line is
    parsed and checked; the pipeline's modules load afterwards, while the server boots. Building
    the parser (every subcommand's options, gc's defaults included) must not load them first."""
    code = (
        "import sys\n"
        "from closecast.cli import build_parser\n"
        "build_parser().parse_args(['gc', '--dry-run'])\n"
        "heavy = ('closecast.outputs.retention', 'closecast.pipeline.pooled', 'scipy')\n"
        "loaded = sorted(m for m in heavy if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)
