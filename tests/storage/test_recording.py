"""A recording storage passes every request on and remembers, per key, the digest of what it
last read or wrote (or that nothing is there), on both backends; what it remembers is what
storage holds. Reads of objects declared current (what an earlier task of the run read,
under the ticker's lease) are answered from memory until they are written or deleted."""

from __future__ import annotations

import hashlib

import pytest

from closecast.storage import InvalidKeyError, ObjectNotFoundError, Storage
from closecast.storage.recording import ObjectEntry, RecordingStorage


def stored_entry(storage: Storage, key: str) -> ObjectEntry:
    data = storage.read_bytes(key)
    return ObjectEntry(key, len(data), hashlib.sha256(data).hexdigest())


def test_it_records_what_it_writes_reads_uploads_downloads_and_deletes(storage, tmp_path):
    recording = RecordingStorage(storage)
    assert not recording.knows("a/x.bin")

    recording.write_bytes("a/x.bin", b"first")
    assert recording.seen("a/x.bin") == stored_entry(storage, "a/x.bin")

    storage.write_bytes("a/x.bin", b"changed behind its back")
    assert recording.read_bytes("a/x.bin") == b"changed behind its back"
    assert recording.seen("a/x.bin") == stored_entry(storage, "a/x.bin")

    source = tmp_path / "model.keras"
    source.write_bytes(b"\x00model" * 1000)
    recording.upload_file("m/model.keras", source)
    assert recording.seen("m/model.keras") == stored_entry(storage, "m/model.keras")

    storage.write_bytes("m/scaler.json", b"{}")
    recording.download_file("m/scaler.json", tmp_path / "scaler.json")
    assert recording.seen("m/scaler.json") == ObjectEntry.of("m/scaler.json", b"{}")

    recording.delete("a/x.bin")
    assert recording.knows("a/x.bin") and recording.seen("a/x.bin") is None
    with pytest.raises(ObjectNotFoundError):
        recording.read_bytes("a/never")
    assert recording.knows("a/never") and recording.seen("a/never") is None

    recording.delete_prefix("m/")
    assert not recording.knows("m/model.keras") and not recording.knows("m/scaler.json")


def test_it_keeps_bytes_only_of_the_keys_asked(storage):
    recording = RecordingStorage(storage, keep_bytes=lambda key: key.startswith("state/"))
    recording.write_bytes("state/ledger.parquet", b"ledger")
    recording.write_bytes("runs/plot.png", b"png")
    with pytest.raises(ObjectNotFoundError):
        recording.read_bytes("state/absent.parquet")

    assert recording.kept_bytes("state/ledger.parquet") == b"ledger"
    assert recording.kept_bytes("state/absent.parquet") is None  # known: no object
    with pytest.raises(KeyError):
        recording.kept_bytes("runs/plot.png")  # only its digest
    with pytest.raises(KeyError):
        recording.kept_bytes("state/never-seen.parquet")


def test_a_failed_or_conditional_write_is_forgotten_not_guessed(storage):
    recording = RecordingStorage(storage)
    recording.write_bytes("k", b"one")
    with pytest.raises(InvalidKeyError):
        recording.write_bytes("k/../bad", b"two")
    assert recording.seen("k") == ObjectEntry.of("k", b"one")

    _, tag = storage.read_tagged("k")
    assert recording.replace_if("k", b"three", tag) is not None
    assert not recording.knows("k")  # conditional writes (leases) are not recorded
    assert recording.create_exclusive("new", b"x") == storage.read_tagged("new")[1]
    assert not recording.knows("new")


class Reads(RecordingStorage):
    """Counts the reads that reach the wrapped storage."""

    def __init__(self, inner: Storage) -> None:
        counted = self

        class Counting:
            def __getattr__(self, name):
                return getattr(inner, name)

            def read_bytes(self, key: str) -> bytes:
                counted.sent.append(key)
                return inner.read_bytes(key)

        self.sent: list[str] = []
        super().__init__(Counting())


def test_an_object_declared_current_is_read_from_memory_until_written_or_deleted(storage):
    storage.write_bytes("served/x.parquet", b"as the pooled step read it")
    recording = Reads(storage)
    recording.known_current("served/x.parquet", b"as the pooled step read it")
    assert recording.read_bytes("served/x.parquet") == b"as the pooled step read it"
    assert recording.read_bytes("served/x.parquet") == b"as the pooled step read it"
    assert recording.sent == []  # no request
    assert recording.seen("served/x.parquet") == stored_entry(storage, "served/x.parquet")

    recording.write_bytes("served/x.parquet", b"committed")
    assert recording.read_bytes("served/x.parquet") == b"committed"
    assert recording.sent == ["served/x.parquet"]  # written: read from storage again

    recording.known_current("served/y.parquet", b"y")
    storage.write_bytes("served/y.parquet", b"y")
    recording.delete("served/y.parquet")
    with pytest.raises(ObjectNotFoundError):
        recording.read_bytes("served/y.parquet")
