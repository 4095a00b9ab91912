"""A ticker's all-or-nothing commit restores what it had written when a later write fails,
taking what each key held from the recording storage that read it (no request), or reading it
when nothing was recorded."""

from __future__ import annotations

from contextlib import suppress
from functools import partial

import pytest

from closecast.outputs import catalog
from closecast.pipeline.commit import commit_state, is_state_key
from closecast.storage import ObjectNotFoundError, StorageError, open_storage
from closecast.storage.recording import RecordingStorage

LEDGER, BASELINE, POINTER = (
    catalog.served_key("QQQ"),
    catalog.served_key("QQQ", "drift"),
    catalog.champion_key("QQQ"),
)


class Reads:
    """Counts the reads that reach the storage."""

    def __init__(self, inner) -> None:
        self.inner, self.keys = inner, []

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def read_bytes(self, key: str) -> bytes:
        self.keys.append(key)
        return self.inner.read_bytes(key)


def full_disk(key: str) -> None:
    raise StorageError(f"could not write {key!r}: [Errno 28] No space left on device")


@pytest.mark.parametrize("recorded", [True, False])
def test_a_failed_commit_restores_every_key_as_it_was(tmp_path, recorded: bool) -> None:
    inner = open_storage(str(tmp_path))
    inner.write_bytes(LEDGER, b"old ledger")
    inner.write_bytes(POINTER, b"old pointer")
    reads = Reads(inner)
    storage = RecordingStorage(reads, keep_bytes=is_state_key) if recorded else reads
    if recorded:  # what the ticker's plan read (the baseline ledger: none yet)
        for key in (LEDGER, BASELINE, POINTER):
            with suppress(ObjectNotFoundError):
                storage.read_bytes(key)
    reads.keys.clear()

    writes = [
        (LEDGER, partial(storage.write_bytes, LEDGER, b"new ledger")),
        (BASELINE, partial(storage.write_bytes, BASELINE, b"new drift ledger")),
        (POINTER, partial(full_disk, POINTER)),
    ]
    with pytest.raises(StorageError, match="No space left"):
        commit_state(storage, writes)

    assert inner.read_bytes(LEDGER) == b"old ledger"
    assert not inner.exists(BASELINE)  # it had none: the one written is removed
    assert inner.read_bytes(POINTER) == b"old pointer"
    assert reads.keys == ([] if recorded else [LEDGER, BASELINE, POINTER])


def test_state_keys_are_the_ledgers_and_the_pointer() -> None:
    assert all(is_state_key(key) for key in (LEDGER, BASELINE, POINTER))
    assert not is_state_key(catalog.prices_key("QQQ"))
    assert not is_state_key(f"{catalog.model_prefix('QQQ', 'v0001')}/meta.json")
