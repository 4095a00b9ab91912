"""The model registry cleans up after killed runs: half-stored versions and staging
directories of dead processes go; complete versions, the champion and live staging stay."""

from __future__ import annotations

import os
import subprocess
import sys

from closecast.pipeline.versions import (
    MODEL_FILES,
    TEMP_DIR_PREFIX,
    VERSION_FILE,
    next_version,
    remove_incomplete_versions,
    remove_orphaned_temp_dirs,
)
from closecast.storage import open_storage


def test_half_stored_versions_are_removed_but_never_the_champion(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    for name in MODEL_FILES:
        storage.write_bytes(f"models/T/v0001/{name}", b"x")
    storage.write_bytes("models/T/v0002/model.keras", b"x")  # killed while storing
    storage.write_bytes("models/T/v0003/model.keras", b"x")  # (the champion, say)
    storage.write_bytes(f"models/T/v0004/{VERSION_FILE}", b"x")  # one object: complete
    storage.write_bytes("models/T/champion.json", b"{}")
    assert remove_incomplete_versions(storage, "T", keep="v0003") == ["v0002"]
    assert not storage.list_keys("models/T/v0002/")
    assert storage.exists("models/T/v0001/meta.json") and storage.exists("models/T/champion.json")
    assert storage.exists("models/T/v0003/model.keras")
    assert storage.exists(f"models/T/v0004/{VERSION_FILE}")
    assert next_version(storage, "T") == "v0005"


def test_staging_directories_of_dead_processes_are_removed(tmp_path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    orphan = tmp_path / f"{TEMP_DIR_PREFIX}{dead.stdout.strip()}-abc"
    live = tmp_path / f"{TEMP_DIR_PREFIX}{os.getpid()}-def"
    unrelated = tmp_path / "something-else"
    for path in (orphan, live, unrelated):
        path.mkdir()
        (path / "model.keras").write_bytes(b"x")
    assert remove_orphaned_temp_dirs(tmp_path) == [orphan]
    assert live.exists() and unrelated.exists() and not orphan.exists()
