"""The documents a newcomer follows say what the code does: no command that needs a file from
outside the repository, and names that exist where the docs place them."""

from __future__ import annotations

import importlib
import pkgutil
import re
from datetime import date
from pathlib import Path

import closecast.pipeline

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
# Absolute paths of the machine the project was written on, and the fixture folder beside
# the checkout there: neither exists in a fresh clone.
MACHINE_PATH = re.compile(r"/work/|/root/|\.\./shared/|REPO\.parent")


def _files_a_newcomer_runs() -> list[Path]:
    code = [*(REPO / "bench").glob("*.py"), *(REPO / "closecast" / "commands").glob("*.py")]
    shipped_notes = sorted((REPO / "closecast").glob("*/SOURCES.md"))
    return [*DOCS, *shipped_notes, REPO / "Makefile", *sorted(code)]


def test_no_document_or_command_depends_on_a_path_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in _files_a_newcomer_runs()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if MACHINE_PATH.search(line)
    ]
    assert not found, "\n".join(found)


def _pipeline_modules() -> set[str]:
    return {info.name for info in pkgutil.iter_modules(closecast.pipeline.__path__)}


def test_architecture_names_live_in_the_modules_it_places_them_in() -> None:
    """`name` (`pipeline.module`) and `module.name` for closecast.pipeline's modules."""
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    modules = _pipeline_modules()
    placed = re.findall(r"`(\w+)` \(`(?:closecast\.)?pipeline\.(\w+)`", text)
    dotted = [
        (name, module)
        for module, name in re.findall(r"`(?:closecast\.)?(?:pipeline\.)?(\w+)\.(\w+)`", text)
        if module in modules
    ]
    assert placed and dotted  # the patterns still match how the document names things
    missing = [
        f"{module}.{name}"
        for name, module in [*placed, *dotted]
        if not hasattr(importlib.import_module(f"closecast.pipeline.{module}"), name)
    ]
    assert not missing, f"docs/ARCHITECTURE.md names what closecast.pipeline lacks: {missing}"


def test_shell_commands_use_the_project_environment() -> None:
    """A bare ``prefect`` (or ``closecast``, ``python``) is whatever PATH finds, if anything:
    the documented commands run the project's own, ``.venv/bin/...`` (or ``make``)."""
    bare = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for block in re.findall(r"```(?:bash|sh|shell)\n(.*?)```", text, flags=re.DOTALL):
            for line in block.splitlines():
                words = line.split("#", 1)[0].split()
                while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):
                    words.pop(0)  # VAR=value prefixes
                if words and words[0] in {"prefect", "closecast", "python", "pytest", "ruff"}:
                    bare.append(f"{path.relative_to(REPO)}: {line.strip()}")
    assert not bare, "\n".join(bare)


def test_readme_lists_the_fields_a_watchlist_entry_may_hold() -> None:
    from closecast.inputs.watchlist import ENTRY_FIELDS

    text = (REPO / "README.md").read_text(encoding="utf-8")
    (listed,) = re.findall(r"only ((?:`\w+`(?:, | and )?)+) per entry", text)
    assert set(re.findall(r"`(\w+)`", listed)) == set(ENTRY_FIELDS)


def test_task_run_names_are_the_documented_ones() -> None:
    """README and docs/stack.md show the modelling task's run names, per chunk of tickers."""
    from closecast.inputs.watchlist import WatchItem
    from closecast.outputs.catalog import RunScope
    from tasks.modelling import _chunk_name

    scope = RunScope(date(2020, 12, 11), "stocks")
    items = [WatchItem(symbol=s, asset_class="stock") for s in ("AAPL", "GOOG", "QQQ")]
    named = {
        _chunk_name({"items": items, "scope": scope}): "forecast-<FIRST>..<LAST>-<N>-<date>",
        _chunk_name({"items": items[:1], "scope": scope}): "forecast-<TICKER>-<date>",
    }
    values = {"<FIRST>": "AAPL", "<LAST>": "QQQ", "<N>": "3", "<TICKER>": "AAPL"}
    values["<date>"] = "2020-12-11"
    placeholder = re.compile("|".join(map(re.escape, values)))
    for doc in (REPO / "README.md", REPO / "docs" / "stack.md"):
        text = doc.read_text(encoding="utf-8")
        for name, template in named.items():
            assert f"`{template}`" in text, f"{doc.name} does not show {template}"
            assert placeholder.sub(lambda m: values[m[0]], template) == name
