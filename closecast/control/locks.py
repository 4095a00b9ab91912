"""Leases on storage objects: one run at a time per ticker, and per run scope.

Runs that share a storage root may come from different deployments, different Prefect
servers or a manual ``closecast run`` in ephemeral mode, so the lock lives where they meet:
the storage. A lease is an object created with an atomic create-if-absent
(:meth:`Storage.create_exclusive`: a hard link locally, ``If-None-Match: *`` on S3/MinIO). It
names its holder: host, process id and start time, and the Prefect run. Its holder renews it
every ``ttl / 3`` from a background thread.

A lease may be taken over when its holder is known to be gone:

* at once when the holder ran on this machine and its process is gone (or its process id
  now belongs to a process started at another time): a crashed run's rerun does not wait;
* otherwise (another machine, a holder of unknown origin) only once the lease was not renewed
  for ``ttl``: a live run elsewhere cannot be seen, only its renewals.

Take-over, renewal and release are conditional writes on the version the run read
(:meth:`Storage.replace_if` / :meth:`Storage.delete_if`: ``If-Match`` on the ETag on S3, a
hash compared under a ``flock`` locally), so of two runs taking over one lease only one
succeeds, and a stalled holder that lost its lease cannot renew or delete its successor's.

A run that has to wait says so at once, naming the holder and when it will give up, and
again every ``report_seconds``; one that cannot get the lease within ``wait`` fails with a
message naming the lease, its holder and how to clear it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

import psutil

from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.concurrent import concurrently

DEFAULT_TTL = timedelta(minutes=5)
DEFAULT_WAIT = timedelta(minutes=15)
DEFAULT_REPORT = timedelta(seconds=30)
"""How often a run waiting for a lease says it is still waiting."""

_log = logging.getLogger(__name__)

# Two process start times further apart than this are two different processes (psutil's
# start times are exact to the clock tick; a process id is not reused within a second).
_START_TIME_TOLERANCE = 1.0


class LeaseTimeoutError(RuntimeError):
    """Another run held the lease for longer than this run would wait."""


@cache
def machine_id() -> str:
    """What two processes must share for one to judge the other's process id: the boot
    (kernel boot id, else boot time) and the process-id namespace (containers have their own).
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = f"boot-{psutil.boot_time():.0f}"
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        namespace = ""
    return f"{boot} {namespace}".strip()


@dataclass(frozen=True)
class Holder:
    """The process holding a lease: enough to tell, on its own machine, whether it lives.

    Attributes:
        host: Its host name.
        machine: Its :func:`machine_id` (process ids mean nothing across machines).
        pid: Its process id.
        started: Its process start time (seconds since the epoch, from psutil).
        run: The run it works for (a Prefect flow run's name and id), or ``""``.
    """

    host: str
    machine: str
    pid: int
    started: float
    run: str = ""

    @classmethod
    def this_process(cls, run: str = "") -> Holder:
        """The current process, working for ``run``."""
        pid = os.getpid()
        return cls(socket.gethostname(), machine_id(), pid, psutil.Process(pid).create_time(), run)

    def describe(self) -> str:
        """``pid 123 on host h (flow run 'x')``."""
        return f"pid {self.pid} on host {self.host}" + (f" ({self.run})" if self.run else "")

    def is_on_this_machine(self) -> bool:
        return self.host == socket.gethostname() and self.machine == machine_id()

    def why_gone(self) -> str | None:
        """Why this holder is known to be dead, or None (alive, or on another machine)."""
        if not self.is_on_this_machine():
            return None
        try:
            process = psutil.Process(self.pid)
            started = process.create_time()
            if process.status() == psutil.STATUS_ZOMBIE:
                return f"its process {self.pid} has exited"
        except psutil.NoSuchProcess:
            return f"its process {self.pid} on this machine is gone"
        except psutil.Error:
            return None  # cannot tell: treat as alive
        if abs(started - self.started) > _START_TIME_TOLERANCE:
            return f"its process {self.pid} is gone (that id now belongs to another process)"
        return None


@dataclass(frozen=True)
class Lease:
    """What a lease object says: who holds it, and until when unless renewed.

    ``tag`` is the stored object's version (not part of its content): the condition for
    renewing, releasing or taking over exactly the version that was read.
    """

    key: str
    owner: str
    what: str
    expires_at: datetime
    holder: Holder | None = None
    tag: str = ""

    def to_bytes(self) -> bytes:
        doc: dict[str, object] = {
            "owner": self.owner,
            "what": self.what,
            "expires_at": self.expires_at.isoformat(),
        }
        if self.holder is not None:
            doc |= {
                "host": self.holder.host,
                "machine": self.holder.machine,
                "pid": self.holder.pid,
                "started": self.holder.started,
                "run": self.holder.run,
            }
        return json.dumps(doc).encode("utf-8")

    @classmethod
    def from_bytes(cls, key: str, data: bytes, tag: str = "") -> Lease | None:
        try:
            doc = json.loads(data)
            expires = datetime.fromisoformat(doc["expires_at"])
            lease = cls(key, str(doc["owner"]), str(doc["what"]), expires, tag=tag)
        except (ValueError, KeyError, TypeError):
            return None
        try:  # written before leases named their process: judged by expiry only
            holder = Holder(
                str(doc["host"]),
                str(doc["machine"]),
                int(doc["pid"]),
                float(doc["started"]),
                str(doc.get("run", "")),
            )
        except (KeyError, TypeError, ValueError):
            return lease
        return replace(lease, holder=holder)

    def describe_holder(self) -> str:
        return self.holder.describe() if self.holder else self.owner

    def why_abandoned(self, now: datetime) -> str | None:
        """Why this lease may be taken over now, or None while its holder may be alive."""
        if self.expires_at < now:
            return f"it expired at {self.expires_at:%H:%M:%S} UTC (not renewed)"
        return self.holder.why_gone() if self.holder else None


def new_owner(label: str = "") -> str:
    """An owner id unique to this holder: host, process and a random part."""
    suffix = f" {label}" if label else ""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}{suffix}"


def _now() -> datetime:
    return datetime.now(UTC)


def _read(storage: Storage, key: str) -> Lease | None:
    try:
        data, tag = storage.read_tagged(key)
    except ObjectNotFoundError:
        return None
    return Lease.from_bytes(key, data, tag)


def try_acquire(
    storage: Storage,
    key: str,
    owner: str,
    what: str,
    ttl: timedelta,
    *,
    holder: Holder | None = None,
    log: logging.Logger | logging.LoggerAdapter = _log,
) -> Lease | None:
    """Take the lease if it is free or abandoned; None when someone else holds it.

    Args:
        storage: Where the lease object lives.
        key: The lease object's key.
        owner: This holder's id.
        what: What the lease protects, for messages.
        ttl: How long the lease lives without renewal.
        holder: This process (default: the current one, for no run).
        log: Where a take-over is reported.
    """
    lease = Lease(key, owner, what, _now() + ttl, holder or Holder.this_process())
    created = storage.create_exclusive(key, lease.to_bytes())
    if created is not None:
        return replace(lease, tag=created)  # the tag comes with the creation: no read
    current = _read(storage, key)
    if current is None:
        # Released since (the next attempt may get it), or unreadable: never delete what
        # may be another run's fresh lease.
        return None
    reason = current.why_abandoned(_now())
    if reason is None:
        return None
    # Only the version read is replaced: of two runs taking over, one wins.
    tag = storage.replace_if(key, lease.to_bytes(), current.tag)
    if tag is None:
        return None
    log.warning(
        "%s: took over the lease %r of %s: %s", what, key, current.describe_holder(), reason
    )
    return replace(lease, tag=tag)


def _renew(storage: Storage, lease: Lease, ttl: timedelta) -> Lease | None:
    """Extend the lease if it is still the version this holder wrote; None if it was lost."""
    renewed = replace(lease, expires_at=_now() + ttl)
    tag = storage.replace_if(lease.key, renewed.to_bytes(), lease.tag)
    return replace(renewed, tag=tag) if tag is not None else None


def release(storage: Storage, lease: Lease) -> None:
    """Delete the lease if it is still the version this holder wrote."""
    storage.delete_if(lease.key, lease.tag)


def _waiting_message(what: str, key: str, current: Lease | None, give_up: datetime) -> str:
    if current is None:
        holder = "another run (its lease is unreadable or was just released)"
    else:
        holder = (
            f"another run, {current.describe_holder()}, whose lease is renewed until "
            f"{current.expires_at:%H:%M:%S} UTC"
        )
    return f"{what}: waiting for {holder} (lease {key!r}); giving up at {give_up:%H:%M:%S} UTC"


def _acquire(
    storage: Storage,
    key: str,
    *,
    what: str,
    owner: str,
    holder: Holder,
    ttl: timedelta,
    wait: timedelta,
    poll_seconds: float,
    report: timedelta,
    log: logging.Logger | logging.LoggerAdapter,
) -> Lease:
    """Take the lease at ``key``, waiting (and saying so) while another run holds it.

    Raises:
        LeaseTimeoutError: Another run held it for longer than ``wait``.
    """
    began = time.monotonic()
    deadline = began + wait.total_seconds()
    give_up = _now() + wait
    next_report = began
    waited = False  # another run held it: a slow first attempt under load is not a wait
    while (lease := try_acquire(storage, key, owner, what, ttl, holder=holder, log=log)) is None:
        waited = True
        now = time.monotonic()
        if now >= deadline:
            current = _read(storage, key)
            held_by = (
                f"{current.describe_holder()}, owner {current.owner!r} (until "
                f"{current.expires_at:%H:%M:%S} UTC unless renewed)"
                if current
                else "an unreadable lease"
            )
            raise LeaseTimeoutError(
                f"{what} is being worked on by another run: {held_by}; waited "
                f"{wait.total_seconds():.0f}s. If that run is gone, its lease {key!r} "
                f"expires {ttl.total_seconds():.0f}s after its last renewal (or delete it)"
            )
        if now >= next_report:
            message = _waiting_message(what, key, _read(storage, key), give_up)
            if next_report > began:  # not the first report
                message += f" (waited {now - began:.0f}s so far)"
            log.info(message)
            next_report = now + report.total_seconds()
        time.sleep(poll_seconds)
    if waited:
        log.info("%s: got the lease %r after %.0fs", what, key, time.monotonic() - began)
    return lease


class HeldLeases:
    """Leases one holder keeps, renewed from one background thread until released.

    Each lease is renewed ``ttl / 3`` after it was taken or last renewed: one thread for any
    number of leases (a run holds one per ticker), the due renewals sent together
    (:func:`closecast.storage.concurrent.concurrently`). A lease found taken over is dropped
    with a warning: this holder's work on it is no longer exclusive.
    """

    def __init__(
        self, storage: Storage, ttl: timedelta, log: logging.Logger | logging.LoggerAdapter
    ) -> None:
        self._storage, self._ttl, self._log = storage, ttl, log
        self._period = ttl.total_seconds() / 3
        self._held: dict[str, tuple[Lease, str, float]] = {}  # key: lease, what, renewed at
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._renewer = threading.Thread(target=self._keep_renewed, name="leases", daemon=True)
        self._renewer.start()

    def keys(self) -> list[str]:
        """The keys of the leases still held."""
        with self._lock:
            return list(self._held)

    def lease(self, key: str) -> Lease:
        """The newest version of a held lease."""
        with self._lock:
            return self._held[key][0]

    def add(self, lease: Lease, what: str) -> None:
        """Keep ``lease`` (just taken) renewed until it is released."""
        with self._lock:
            self._held[lease.key] = (lease, what, time.monotonic())

    def release(self, keys: list[str] | None = None) -> None:
        """Release the held leases among ``keys`` (default: all), together; a release that
        fails leaves the lease to expire."""
        with self._lock:
            chosen = list(self._held) if keys is None else [k for k in keys if k in self._held]
            leases = [self._held.pop(key)[0] for key in chosen]

        def release_one(lease: Lease) -> None:
            with contextlib.suppress(Exception):
                release(self._storage, lease)

        concurrently(release_one, leases)

    def close(self) -> None:
        """Stop renewing and release every lease still held."""
        self._stop.set()
        self._renewer.join(timeout=5)
        self.release()

    def _due(self, now: float) -> tuple[list[str], float]:
        """The keys due for renewal, and how long until the next one is."""
        with self._lock:
            due = [k for k, (_, _, at) in self._held.items() if now - at >= self._period]
            pending = [at + self._period - now for k, (_, _, at) in self._held.items()]
        return due, min((p for p in pending if p > 0), default=self._period)

    def _keep_renewed(self) -> None:
        wait = self._period
        while not self._stop.wait(wait):
            due, wait = self._due(time.monotonic())
            concurrently(self._renew_one, due)
            if due:
                wait = self._due(time.monotonic())[1]

    def _renew_one(self, key: str) -> None:
        with self._lock:
            found = self._held.get(key)
        if found is None:  # released meanwhile
            return
        lease, what, _ = found
        try:
            renewed = _renew(self._storage, lease, self._ttl)
        except Exception:  # a missed renewal is retried next period
            return
        with self._lock:
            if key not in self._held:  # released while renewing: the release used the old tag
                return
            if renewed is None:
                del self._held[key]
            else:
                self._held[key] = (renewed, what, time.monotonic())
        if renewed is None:
            self._log.warning(
                "%s: lost the lease %r (taken over by another run after it was not "
                "renewed in time); this run's work on it is no longer exclusive",
                what,
                key,
            )


@contextlib.contextmanager
def held_in_order(
    storage: Storage,
    leases: Sequence[tuple[str, str]],
    *,
    owner: str | None = None,
    run: str = "",
    ttl: timedelta = DEFAULT_TTL,
    wait: timedelta = DEFAULT_WAIT,
    poll_seconds: float = 0.5,
    report: timedelta = DEFAULT_REPORT,
    log: logging.Logger | logging.LoggerAdapter = _log,
) -> Iterator[HeldLeases]:
    """Hold several leases for the block, taken one at a time in the order given and renewed
    from one background thread; the block may release some early
    (:meth:`HeldLeases.release`).

    Every holder of several leases takes them in one agreed order (tickers: by symbol), so
    one waiting for a lease never holds one that sorts after it, and two holders never each
    hold a lease the other waits for.

    Args:
        storage: Where the lease objects live.
        leases: Each lease's key and what it protects (for messages), in the order taken.
        owner, run, ttl, wait, poll_seconds, report, log: As for :func:`held`.

    Raises:
        LeaseTimeoutError: Another run held one for longer than ``wait`` (those already
            taken are released).
    """
    owner = owner or new_owner()
    holder = Holder.this_process(run)
    kept = HeldLeases(storage, ttl, log)
    try:
        for key, what in leases:
            lease = _acquire(
                storage, key, what=what, owner=owner, holder=holder, ttl=ttl, wait=wait,
                poll_seconds=poll_seconds, report=report, log=log,
            )  # fmt: skip
            kept.add(lease, what)
        yield kept
    finally:
        kept.close()


@contextlib.contextmanager
def held(
    storage: Storage,
    key: str,
    *,
    what: str,
    owner: str | None = None,
    run: str = "",
    ttl: timedelta = DEFAULT_TTL,
    wait: timedelta = DEFAULT_WAIT,
    poll_seconds: float = 0.5,
    report: timedelta = DEFAULT_REPORT,
    log: logging.Logger | logging.LoggerAdapter = _log,
) -> Iterator[Lease]:
    """Hold the lease at ``key`` for the block, renewing it in the background.

    Args:
        storage: Where the lease object lives.
        key: The lease object's key.
        what: What the lease protects, for messages (``"ticker AAPL"``).
        owner: This holder's id (default: host, pid and a random part).
        run: The run this process works for, named in the lease for others' messages.
        ttl: How long a lease lives without renewal.
        wait: How long to wait for another holder before giving up.
        poll_seconds: Pause between attempts while waiting.
        report: How often to say, while waiting, that the run is still waiting.
        log: Where waits, take-overs and a lost lease are reported (a run's logger).

    Raises:
        LeaseTimeoutError: Another run held it for longer than ``wait``; the message names
            the holder and the key to delete if that run is gone.
    """
    with held_in_order(
        storage, [(key, what)], owner=owner, run=run, ttl=ttl, wait=wait,
        poll_seconds=poll_seconds, report=report, log=log,
    ) as leases:  # fmt: skip
        yield leases.lease(key)
