"""Leases on storage objects: one run at a time per ticker, and per run scope.

Runs that share a storage root may come from different deployments, different Prefect
servers or a manual ``closecast run`` in ephemeral mode, so the lock lives where they meet:
the storage. A lease is an object created with an atomic create-if-absent
(:meth:`Storage.create_exclusive`: a hard link locally, ``If-None-Match: *`` on S3/MinIO). Its
holder renews it every ``ttl / 3`` from a background thread; a lease not renewed for ``ttl``
(its holder was killed) may be taken over. A run that cannot get a lease within ``wait``
fails with a message naming the lease, its holder and how to clear it.

Known limit: renewal and take-over are read-then-write, so a holder stalled for longer than
``ttl`` can race with the run taking over its lease.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from closecast.storage import ObjectNotFoundError, Storage

DEFAULT_TTL = timedelta(minutes=5)
DEFAULT_WAIT = timedelta(minutes=15)


class LeaseTimeoutError(RuntimeError):
    """Another run held the lease for longer than this run would wait."""


@dataclass(frozen=True)
class Lease:
    """What a lease object says: who holds it, and until when unless renewed."""

    key: str
    owner: str
    what: str
    expires_at: datetime

    def to_bytes(self) -> bytes:
        return json.dumps(
            {"owner": self.owner, "what": self.what, "expires_at": self.expires_at.isoformat()}
        ).encode("utf-8")

    @classmethod
    def from_bytes(cls, key: str, data: bytes) -> Lease | None:
        try:
            doc = json.loads(data)
            expires = datetime.fromisoformat(doc["expires_at"])
            return cls(key, str(doc["owner"]), str(doc["what"]), expires)
        except (ValueError, KeyError, TypeError):
            return None


def new_owner(label: str = "") -> str:
    """An owner id unique to this holder: host, process and a random part."""
    suffix = f" {label}" if label else ""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}{suffix}"


def _now() -> datetime:
    return datetime.now(UTC)


def _read(storage: Storage, key: str) -> Lease | None:
    try:
        return Lease.from_bytes(key, storage.read_bytes(key))
    except ObjectNotFoundError:
        return None


def try_acquire(storage: Storage, key: str, owner: str, what: str, ttl: timedelta) -> Lease | None:
    """Take the lease if it is free or expired; None when someone else holds it."""
    lease = Lease(key, owner, what, _now() + ttl)
    if storage.create_exclusive(key, lease.to_bytes()):
        return lease
    current = _read(storage, key)
    if current is None:
        # Released since (the next attempt may get it), or unreadable: never delete what
        # may be another run's fresh lease.
        return None
    if current.expires_at < _now():
        # Abandoned (its holder stopped renewing): take it over.
        storage.delete(key)
        if storage.create_exclusive(key, lease.to_bytes()):
            return lease
    return None


def _renew(storage: Storage, lease: Lease, ttl: timedelta) -> Lease | None:
    current = _read(storage, lease.key)
    if current is None or current.owner != lease.owner:
        return None  # lost (taken over after we stalled): stop renewing
    renewed = Lease(lease.key, lease.owner, lease.what, _now() + ttl)
    storage.write_bytes(lease.key, renewed.to_bytes())
    return renewed


def release(storage: Storage, lease: Lease) -> None:
    """Delete the lease if it is still ours."""
    current = _read(storage, lease.key)
    if current is not None and current.owner == lease.owner:
        storage.delete(lease.key)


@contextlib.contextmanager
def held(
    storage: Storage,
    key: str,
    *,
    what: str,
    owner: str | None = None,
    ttl: timedelta = DEFAULT_TTL,
    wait: timedelta = DEFAULT_WAIT,
    poll_seconds: float = 0.5,
) -> Iterator[Lease]:
    """Hold the lease at ``key`` for the block, renewing it in the background.

    Args:
        storage: Where the lease object lives.
        key: The lease object's key.
        what: What the lease protects, for messages (``"ticker AAPL"``).
        owner: This holder's id (default: host, pid and a random part).
        ttl: How long a lease lives without renewal.
        wait: How long to wait for another holder before giving up.
        poll_seconds: Pause between attempts while waiting.

    Raises:
        LeaseTimeoutError: Another run held it for longer than ``wait``; the message names
            the holder and the key to delete if that run is gone.
    """
    owner = owner or new_owner()
    deadline = time.monotonic() + wait.total_seconds()
    while (lease := try_acquire(storage, key, owner, what, ttl)) is None:
        if time.monotonic() >= deadline:
            current = _read(storage, key)
            holder = (
                f"{current.owner} (until {current.expires_at:%H:%M:%S} UTC unless renewed)"
                if current
                else "an unreadable lease"
            )
            raise LeaseTimeoutError(
                f"{what} is being worked on by another run: {holder}; waited "
                f"{wait.total_seconds():.0f}s. If that run is gone, its lease {key!r} "
                f"expires {ttl.total_seconds():.0f}s after its last renewal (or delete it)"
            )
        time.sleep(poll_seconds)
    stop = threading.Event()

    def keep_renewed() -> None:
        current: Lease | None = lease
        while current is not None and not stop.wait(ttl.total_seconds() / 3):
            with contextlib.suppress(Exception):  # a missed renewal is retried next period
                current = _renew(storage, current, ttl)

    renewer = threading.Thread(target=keep_renewed, name=f"lease-{key}", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join(timeout=5)
        with contextlib.suppress(Exception):
            release(storage, lease)
