"""Leases on storage: atomic create-if-absent on both backends, waiting (and saying so),
take-over of abandoned leases (at once when the holder was a dead process on this machine,
after expiry otherwise), conditional take-over, renewal, and no lost update under contention."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from closecast.control import locks
from closecast.storage import open_storage

PROJECT_ROOT = Path(__file__).resolve().parents[2]

HOLD_UNTIL_KILLED = textwrap.dedent(
    """
    import sys, time
    from datetime import timedelta
    from closecast.control import locks
    from closecast.storage import open_storage

    with locks.held(open_storage(sys.argv[1]), "leases/scope.json", what="watchlist W",
                    run="flow run 'killed'", ttl=timedelta(minutes=5)):
        time.sleep(600)
    """
)


@pytest.fixture(params=["local", "s3"])
def storage_root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "root")
    request.getfixturevalue("s3_env")
    return request.getfixturevalue("s3_root")


@pytest.fixture
def storage(storage_root):
    return open_storage(storage_root)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def _lease_of(holder: locks.Holder, expires_in: timedelta) -> locks.Lease:
    return locks.Lease("leases/t.json", "their-run", "ticker T", datetime.now(UTC) + expires_in,
                       holder)  # fmt: skip


def test_create_exclusive_creates_once_and_gives_the_tag_a_read_would(storage) -> None:
    tag = storage.create_exclusive("leases/x.json", b"first")
    assert tag and tag == storage.read_tagged("leases/x.json")[1]
    assert storage.create_exclusive("leases/x.json", b"second") is None
    assert storage.read_bytes("leases/x.json") == b"first"
    storage.delete("leases/x.json")
    third = storage.create_exclusive("leases/x.json", b"third")
    assert third and third == storage.read_tagged("leases/x.json")[1] != tag


def test_a_new_lease_is_renewed_and_released_by_its_creation_tag(storage) -> None:
    """Taking a free lease is one request (its tag comes with the creation), and that tag
    is the one its renewal and release are conditional on."""
    ttl = timedelta(minutes=5)
    lease = locks.try_acquire(storage, "leases/n.json", "me", "ticker N", ttl)
    assert lease is not None and lease.tag == storage.read_tagged("leases/n.json")[1]
    renewed = locks._renew(storage, lease, ttl)
    assert renewed is not None and renewed.tag == storage.read_tagged("leases/n.json")[1]
    locks.release(storage, renewed)
    assert not storage.exists("leases/n.json")


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


def test_conditional_writes_only_touch_the_version_that_was_read(storage) -> None:
    storage.write_bytes("leases/x.json", b"first")
    data, first = storage.read_tagged("leases/x.json")
    assert data == b"first"
    second = storage.replace_if("leases/x.json", b"second", first)
    assert second is not None and second != first
    assert storage.read_tagged("leases/x.json") == (b"second", second)
    # Whoever read the first version lost the race: neither replace nor delete applies.
    assert storage.replace_if("leases/x.json", b"third", first) is None
    assert not storage.delete_if("leases/x.json", first)
    assert storage.read_bytes("leases/x.json") == b"second"
    assert storage.delete_if("leases/x.json", second)
    assert not storage.exists("leases/x.json")
    assert storage.replace_if("leases/x.json", b"fourth", second) is None
    assert not storage.exists("leases/x.json")
    assert storage.list_keys() == []  # the local lock files are not objects


def test_a_killed_run_on_this_machine_is_taken_over_at_once(storage_root, storage, caplog) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", HOLD_UNTIL_KILLED, storage_root],
        env={**os.environ, "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not storage.exists("leases/scope.json"):
            assert child.poll() is None, child.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "the child never took its lease"
            time.sleep(0.2)
    finally:
        child.kill()
        child.wait(timeout=60)
    dead = locks.Lease.from_bytes("leases/scope.json", storage.read_bytes("leases/scope.json"))
    assert dead is not None and dead.holder is not None and dead.holder.pid == child.pid
    assert dead.expires_at > datetime.now(UTC) + timedelta(minutes=3)  # far from expiring
    with (
        caplog.at_level(logging.INFO, logger="closecast.control.locks"),
        locks.held(
            storage,
            "leases/scope.json",
            what="watchlist W",
            wait=timedelta(seconds=60),
            poll_seconds=0.1,
        ) as lease,  # fmt: skip
    ):
        assert lease.holder is not None and lease.holder.pid == os.getpid()
        assert locks.Lease.from_bytes("x", storage.read_bytes("leases/scope.json")).owner == (
            lease.owner
        )
    assert "waiting" not in caplog.text  # taken at the first attempt
    assert "took over" in caplog.text and f"pid {child.pid} on host" in caplog.text
    assert "flow run 'killed'" in caplog.text and "is gone" in caplog.text
    assert not storage.exists("leases/scope.json")


def test_a_reused_process_id_does_not_keep_a_dead_run_s_lease(storage, caplog) -> None:
    this = locks.Holder.this_process()
    impostor = locks.Holder(this.host, this.machine, this.pid, this.started - 3600, "flow run 'x'")
    storage.write_bytes("leases/t.json", _lease_of(impostor, timedelta(minutes=5)).to_bytes())
    with caplog.at_level(logging.WARNING, logger="closecast.control.locks"):
        lease = locks.try_acquire(storage, "leases/t.json", "me", "ticker T", timedelta(minutes=5))
    assert lease is not None and "belongs to another process" in caplog.text


def test_a_live_holder_on_this_machine_keeps_its_lease(storage) -> None:
    alive = locks.Holder.this_process("flow run 'alive'")
    storage.write_bytes("leases/t.json", _lease_of(alive, timedelta(minutes=5)).to_bytes())
    assert (
        locks.try_acquire(storage, "leases/t.json", "me", "ticker T", timedelta(minutes=5)) is None
    )


@pytest.mark.parametrize("elsewhere", ["another host", "another container on this host"])
def test_a_lease_from_elsewhere_is_waited_for_saying_so(storage, elsewhere, caplog) -> None:
    # Its process id means nothing here (it is even the id of a dead process on this machine).
    here = locks.Holder.this_process()
    host, machine = (
        ("build-7", here.machine) if elsewhere == "another host" else (here.host, "pid:[1]")
    )
    theirs = locks.Holder(host, machine, _dead_pid(), here.started, "flow run 'elsewhere'")
    lease = _lease_of(theirs, timedelta(minutes=5))
    storage.write_bytes("leases/t.json", lease.to_bytes())
    with (
        caplog.at_level(logging.INFO, logger="closecast.control.locks"),
        pytest.raises(locks.LeaseTimeoutError, match="ticker T is being worked on"),
        locks.held(
            storage,
            "leases/t.json",
            what="ticker T",
            wait=timedelta(seconds=1),  # reports at about 0, 0.3, 0.6 and 0.9 s
            poll_seconds=0.1,
            report=timedelta(seconds=0.3),
        ),  # fmt: skip
    ):
        pass
    waits = [r.getMessage() for r in caplog.records if "waiting for" in r.getMessage()]
    assert len(waits) >= 2, caplog.text  # at once, then again while waiting
    named = f"pid {theirs.pid} on host {host} (flow run 'elsewhere')"
    assert named in waits[0] and "giving up at" in waits[0] and "so far" not in waits[0]
    assert "so far" in waits[-1]
    assert storage.read_bytes("leases/t.json") == lease.to_bytes()  # not taken


def test_of_runs_taking_over_one_expired_lease_only_one_gets_it(storage) -> None:
    contenders = 8
    for _round in range(10):
        expired = locks.Lease("leases/t.json", "gone", "ticker T", datetime.now(UTC))
        storage.write_bytes("leases/t.json", expired.to_bytes())
        start = threading.Barrier(contenders)
        winners: list[locks.Lease] = []

        def contend(number: int, start: threading.Barrier, winners: list[locks.Lease]) -> None:
            start.wait()
            lease = locks.try_acquire(
                storage, "leases/t.json", f"run-{number}", "ticker T", timedelta(minutes=5)
            )
            if lease is not None:
                winners.append(lease)

        threads = [
            threading.Thread(target=contend, args=(n, start, winners)) for n in range(contenders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert len(winners) == 1, [w.owner for w in winners]
        stored = locks.Lease.from_bytes("leases/t.json", storage.read_bytes("leases/t.json"))
        assert stored is not None and stored.owner == winners[0].owner


def test_a_holder_that_lost_its_lease_neither_renews_nor_releases_it(storage) -> None:
    ttl = timedelta(minutes=5)
    mine = locks.try_acquire(storage, "leases/t.json", "stalled-run", "ticker T", ttl)
    assert mine is not None
    # Taken over while this holder stalled (the same content but for the owner: a new version).
    successor = locks.Lease("leases/t.json", "next-run", "ticker T", mine.expires_at, mine.holder)
    storage.write_bytes("leases/t.json", successor.to_bytes())
    assert locks._renew(storage, mine, ttl) is None
    locks.release(storage, mine)
    assert storage.read_bytes("leases/t.json") == successor.to_bytes()
    assert socket.gethostname() in successor.to_bytes().decode()


def test_got_the_lease_is_said_only_after_waiting_for_another_run(tmp_path, caplog) -> None:
    storage = open_storage(str(tmp_path / "root"))
    create = storage.create_exclusive  # a loaded machine: the first attempt itself is slow

    def create_slowly(key: str, data: bytes) -> str | None:
        time.sleep(0.3)
        return create(key, data)

    storage.create_exclusive = create_slowly
    here = locks.Holder.this_process()
    theirs = locks.Holder("build-7", here.machine, 1, here.started, "flow run 'other'")
    with caplog.at_level(logging.INFO, logger="closecast.control.locks"):
        with locks.held(storage, "leases/u.json", what="ticker U", poll_seconds=0.1):
            pass
        assert "got the lease" not in caplog.text
        short = locks.Lease("leases/t.json", "their-run", "ticker T",
                            datetime.now(UTC) + timedelta(seconds=1), theirs)  # fmt: skip
        storage.write_bytes("leases/t.json", short.to_bytes())
        with locks.held(storage, "leases/t.json", what="ticker T", poll_seconds=0.1):
            pass
    assert "ticker T: got the lease 'leases/t.json' after" in caplog.text


def test_a_run_takes_its_ticker_leases_in_symbol_order(tmp_path) -> None:
    """Every run takes its tickers' leases in one order, so a run waiting for one ticker
    holds none that sorts after it: two runs sharing several tickers cannot each hold one
    the other waits for. Here BBB sorts after AAA, which another (live) run holds."""
    from dataclasses import replace

    from closecast.inputs.watchlist import WatchItem
    from closecast.outputs import catalog
    from closecast.pipeline.services import RunServices
    from closecast.pipeline.settings import RunSettings

    storage = open_storage(str(tmp_path / "root"))
    attempts: list[str] = []
    create = storage.create_exclusive

    def create_noting_it(key: str, data: bytes) -> str | None:
        attempts.append(key)
        return create(key, data)

    storage.create_exclusive = create_noting_it
    settings = RunSettings(storage=str(tmp_path / "root"), lease_wait_seconds=60)
    services = replace(RunServices.open(settings), storage=storage)
    aaa, bbb = catalog.ticker_lease_key("AAA"), catalog.ticker_lease_key("BBB")
    expires = datetime.now(UTC) + timedelta(minutes=5)
    alive = locks.Holder.this_process("flow run 'theirs'")
    storage.write_bytes(aaa, locks.Lease(aaa, "their-run", "ticker AAA", expires, alive).to_bytes())
    chunk = [WatchItem("BBB", "stock"), WatchItem("AAA", "stock")]  # watchlist order

    def model_the_chunk() -> None:
        with services.ticker_leases(item.symbol for item in chunk):
            pass

    worker = threading.Thread(target=model_the_chunk, daemon=True)
    worker.start()
    deadline = time.monotonic() + 60
    while aaa not in attempts:  # it tried AAA's lease and found it held
        assert time.monotonic() < deadline and worker.is_alive()
        time.sleep(0.05)
    assert not storage.exists(bbb)  # nothing held while it waits
    storage.delete(aaa)  # their run ends: this one gets both, AAA first
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert attempts[0] == aaa and attempts[-1] == bbb and attempts.count(bbb) == 1
    assert not storage.exists(aaa) and not storage.exists(bbb)  # released after


def test_leases_held_together_are_renewed_by_one_thread_and_released_early_or_at_the_end(
    tmp_path,
) -> None:
    """A run holds one lease per ticker from its fetch through its chunk's modelling: one
    thread keeps them all renewed, a chunk's are released as it finishes, the rest at the
    end (a release after the block would leave others waiting)."""
    storage = open_storage(str(tmp_path))
    ttl = timedelta(seconds=1.5)  # renewed every 0.5 s
    keys = [f"leases/{name}.json" for name in ("a", "b", "c")]

    def tags() -> dict[str, str]:
        return {key: storage.read_tagged(key)[1] for key in keys if storage.exists(key)}

    def renewers() -> int:
        return sum(1 for thread in threading.enumerate() if thread.name == "leases")

    before = renewers()
    with locks.held_in_order(storage, [(k, k) for k in keys], ttl=ttl) as leases:
        assert renewers() == before + 1  # one renewer for all of them
        taken = tags()
        deadline = time.monotonic() + 30
        while any(tags().get(key) == taken[key] for key in keys):  # each renewed
            assert time.monotonic() < deadline, "not renewed"
            time.sleep(0.1)
        leases.release(keys[:1])
        assert not storage.exists(keys[0]) and leases.keys() == keys[1:]
        theirs = locks.try_acquire(storage, keys[0], "other", keys[0], ttl)
        assert theirs is not None  # free for another run at once
        renewed = tags()
        deadline = time.monotonic() + 30
        while tags()[keys[1]] == renewed[keys[1]]:  # a renewal round went by...
            assert time.monotonic() < deadline, "not renewed"
            time.sleep(0.1)
        assert tags()[keys[0]] == theirs.tag  # ...without touching the released lease
    assert [k for k in keys if storage.exists(k)] == keys[:1]  # only the other run's
    assert renewers() == before
