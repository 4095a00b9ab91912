"""The documents a newcomer follows say what the code does: no command that needs a file from
outside the repository, and names that exist where the docs place them."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import closecast.pipeline

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), REPO / "bench" / "README.md"]
# Absolute paths of the machine the project was written on, and the fixture folder beside
# the checkout there: neither exists in a fresh clone.
MACHINE_PATH = re.compile(r"/work/|/root/|\.\./shared/|REPO\.parent")


def _files_a_newcomer_runs() -> list[Path]:
    code = [*(REPO / "bench").glob("*.py"), *(REPO / "closecast" / "commands").glob("*.py")]
    return [*DOCS, REPO / "Makefile", *sorted(code)]


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
