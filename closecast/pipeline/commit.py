"""A ticker's state moves together: its ledgers and its champion pointer are written last, as
one step that is undone when any of its writes fails.

Everything a ticker writes that can fail without harm (a new model version, its run objects,
its plot) is written first. A failure there leaves the state as it was; a failure while
writing the state (a full disk) restores what the step had already written, so a ticker the
run reports as failed never has a promoted champion or a served forecast recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import suppress

from closecast.outputs import catalog
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.recording import RecordingStorage

StateWrite = tuple[str, Callable[[], object]]
"""A state object's key and the call that writes it."""


def commit_state(storage: Storage, writes: Sequence[StateWrite]) -> list[str]:
    """Perform ``writes`` in order; when one fails, put every key written so far back as it
    was (its previous bytes, or no object) and re-raise.

    Each write is atomic on its own (:meth:`closecast.storage.Storage.write_bytes`), so the
    key that failed is as it was too. Restoring is best effort: a storage that refuses it
    as well leaves the error of the write that failed to say so. What a key held is taken
    from a :class:`~closecast.storage.recording.RecordingStorage` that read or wrote it
    (keeping the bytes of :func:`is_state_key` keys) without a request, else read.

    Returns:
        The keys written.
    """
    previous: dict[str, bytes | None] = {}
    done: list[str] = []
    try:
        for key, write in writes:
            previous[key] = _held(storage, key)
            write()
            done.append(key)
    except BaseException:
        for key in reversed(done):
            with suppress(Exception):
                _restore(storage, key, previous[key])
        raise
    return done


def is_state_key(key: str) -> bool:
    """Whether ``key`` is ticker state a commit writes: a ledger or a champion pointer (a
    recording storage keeps their bytes, small, to restore them)."""
    ticker = catalog.ticker_of_key(key)
    return ticker is not None and (
        key == catalog.champion_key(ticker) or key.startswith(catalog.served_prefix(ticker))
    )


def _held(storage: Storage, key: str) -> bytes | None:
    """What ``key`` holds now: as this run last read or wrote it when its storage kept that
    (under the ticker's lease no other run changed it since), else read."""
    if isinstance(storage, RecordingStorage):
        try:
            return storage.kept_bytes(key)
        except KeyError:
            pass
    return _read_or_none(storage, key)


def _read_or_none(storage: Storage, key: str) -> bytes | None:
    try:
        return storage.read_bytes(key)
    except ObjectNotFoundError:
        return None


def _restore(storage: Storage, key: str, data: bytes | None) -> None:
    if data is None:
        storage.delete(key)
    else:
        storage.write_bytes(key, data)
