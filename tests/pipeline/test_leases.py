"""Leases on storage: atomic create-if-absent on both backends, waiting, take-over of
abandoned leases, renewal, and no lost update under contention."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest

from closecast import locks
from closecast.storage import open_storage


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "local":
        return open_storage(str(tmp_path / "root"))
    request.getfixturevalue("s3_env")
    return open_storage(request.getfixturevalue("s3_root"))


def test_create_exclusive_creates_once(storage) -> None:
    assert storage.create_exclusive("leases/x.json", b"first")
    assert not storage.create_exclusive("leases/x.json", b"second")
    assert storage.read_bytes("leases/x.json") == b"first"
    storage.delete("leases/x.json")
    assert storage.create_exclusive("leases/x.json", b"third")


def test_a_held_lease_makes_others_wait_then_fail_naming_it(storage) -> None:
    with locks.held(storage, "leases/t.json", what="ticker T", owner="first-run"):
        began = time.monotonic()
        with (
            pytest.raises(locks.LeaseTimeoutError, match="ticker T is being worked on") as info,
            locks.held(storage, "leases/t.json", what="ticker T", wait=timedelta(seconds=0.6)),
        ):
            pass
        assert time.monotonic() - began >= 0.5
        assert "first-run" in str(info.value) and "leases/t.json" in str(info.value)
    # Released: the next holder gets it at once.
    with locks.held(storage, "leases/t.json", what="ticker T", wait=timedelta(0)):
        pass
    assert not storage.exists("leases/t.json")


def test_an_abandoned_lease_is_taken_over_after_it_expires(storage) -> None:
    stale = locks.Lease("leases/t.json", "killed-run", "ticker T", datetime.now(UTC))
    storage.write_bytes("leases/t.json", stale.to_bytes())
    with locks.held(storage, "leases/t.json", what="ticker T", wait=timedelta(seconds=1)) as lease:
        assert lease.owner != "killed-run"


def test_a_lease_is_renewed_while_held(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    ttl = timedelta(seconds=0.6)
    with locks.held(storage, "leases/t.json", what="ticker T", ttl=ttl):
        time.sleep(1.5)  # more than two ttls: only renewal keeps it alive
        assert locks.try_acquire(storage, "leases/t.json", "other", "ticker T", ttl) is None


def test_contending_holders_never_lose_an_update(storage) -> None:
    storage.write_bytes("counter", b"0")

    def add(times: int) -> None:
        for _ in range(times):
            with locks.held(storage, "leases/c.json", what="counter", poll_seconds=0.01):
                value = int(storage.read_bytes("counter"))
                storage.write_bytes("counter", str(value + 1).encode())

    threads = [threading.Thread(target=add, args=(10,)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert int(storage.read_bytes("counter")) == 30
