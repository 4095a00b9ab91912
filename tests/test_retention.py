"""``closecast gc`` removes exactly what the retention policy says, on local storage and on
the loopback S3 server: never the champion, its lineage root, the latest versions or
anything a young manifest lists; old manifests stop listing what goes (they stay true);
a dry run changes nothing; a run in progress or a held ticker lease stops it."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from closecast.cli import main
from closecast.control.locks import LeaseTimeoutError, held
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.outputs.retention import RetentionPolicy, RunInProgressError, collect
from closecast.pipeline.publish import verify_manifest
from closecast.pipeline.versions import MODEL_FILES, Champion, write_champion
from closecast.storage import open_storage
from closecast.storage.io import dumps_json, write_json
from closecast.storage.s3 import S3Storage

DAY0 = date(2020, 12, 1)
DAYS = [DAY0 + timedelta(days=i) for i in range(9)]  # run i registered version i + 1
AS_OF = DAYS[-1]
POLICY = RetentionPolicy(keep_versions=3, manifest_days=2)  # young: DAYS[6:]
WATCHLIST = "w"


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path):
    if request.param == "s3":
        request.getfixturevalue("s3_env")
        return open_storage(f"s3://{request.getfixturevalue('s3_bucket')}/gc")
    return open_storage(str(tmp_path / "store"))


@pytest.fixture
def snapshot(storage, request) -> Callable[[], dict[str, str]]:
    """``snapshot()``: every object of the store, key -> a digest of its bytes.

    On S3, one listing's ETags (the MD5 of the bytes of a single PUT) through a plain boto3
    client, instead of a GET per object: the loopback server is most of these tests' time.
    """
    if not isinstance(storage, S3Storage):
        return lambda: _digests(storage)
    client, prefix = request.getfixturevalue("s3_client"), f"{storage.prefix}/"

    def etags() -> dict[str, str]:
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=storage.bucket, Prefix=prefix
        )
        return {
            item["Key"].removeprefix(prefix): item["ETag"]
            for page in pages
            for item in page.get("Contents", [])
        }

    return etags


def _digests(storage) -> dict[str, str]:
    return {
        key: hashlib.sha256(storage.read_bytes(key)).hexdigest() for key in storage.list_keys("")
    }


def _write(storage, key: str, data: bytes, written: dict[str, bytes]) -> str:
    storage.write_bytes(key, data)
    written[key] = data
    return key


def _version(storage, ticker: str, number: int, lineage: int, written: dict) -> list[str]:
    version, root = catalog.version_name(number), catalog.version_name(lineage)
    prefix = catalog.model_prefix(ticker, version)
    keys = []
    for name in MODEL_FILES:
        content = {"lineage": root} if name == "meta.json" else {"weights": number}
        keys.append(_write(storage, f"{prefix}/{name}", dumps_json(content).encode(), written))
    if number == lineage:  # a retrain: the lineage's backtest beside it
        key = catalog.backtest_key(ticker, version)
        keys.append(_write(storage, key, b"backtest of " + version.encode(), written))
    return keys


def _champion(storage, ticker: str, version: int, lineage: int) -> None:
    write_champion(
        storage,
        ticker,
        Champion(
            version=catalog.version_name(version),
            lineage=catalog.version_name(lineage),
            trained_through=DAY0,
            retrained_on=DAY0,
            promoted_on=DAY0,
            preset="fast",
            backtest=None,
        ),
    )


def _entry(key: str, data: bytes) -> dict:
    return {"key": key, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def build_store(storage) -> dict[str, bytes]:
    """AAA: lineage v0001 (v0001-v0003), then lineage v0004 (v0004-v0009), champion v0009;
    run i on DAYS[i] registered v000(i+1) and published its plot, predictions, metrics and
    a manifest listing them. BBB (no manifests): champion v0002 of lineage v0001; a
    backfill's lineage v0003 continued by v0004-v0006. Returns what it wrote but the
    champion pointers: key -> bytes (the manifests list digests of these, not read back)."""
    written: dict[str, bytes] = {}
    for number in range(1, 10):
        model_keys = _version(storage, "AAA", number, 1 if number <= 3 else 4, written)
        scope = RunScope(DAYS[number - 1], WATCHLIST)
        run_keys = [
            catalog.TICKER_PLOTS.key(scope, "AAA"),
            catalog.PREDICTIONS.key(scope, "AAA"),
            catalog.METRICS.key(scope),
            catalog.SUMMARY_PLOT.key(scope),
        ]
        for key in run_keys:
            _write(storage, key, f"{key} of run {number}".encode(), written)
        manifest = {
            "run_date": scope.run_date.isoformat(),
            "watchlist": WATCHLIST,
            "published_at": f"{scope.run_date.isoformat()}T22:00:00+00:00",
            "objects": [_entry(k, written[k]) for k in [*run_keys, *model_keys]],
            "state": [],
        }
        _write(storage, catalog.MANIFEST.key(scope), dumps_json(manifest).encode(), written)
    _champion(storage, "AAA", 9, 4)
    for number in range(1, 7):
        _version(storage, "BBB", number, 1 if number <= 2 else 3, written)
    _champion(storage, "BBB", 2, 1)
    return written


def versions(storage, ticker: str) -> set[str]:
    prefix = catalog.models_prefix(ticker)
    return {k[len(prefix) :].split("/")[0] for k in storage.list_keys(prefix) if "/v" in k}


def test_gc_removes_exactly_what_the_policy_says(storage, snapshot) -> None:
    written = build_store(storage)
    before = snapshot()
    result = collect(storage, as_of=AS_OF, policy=POLICY)

    # AAA: the last 3 (v0007-v0009, also what young manifests list), the champion v0009 and
    # its lineage root v0004. BBB: the last 3 (v0004-v0006), the champion v0002, its
    # lineage root v0001, and v0003, the root of the kept v0004-v0006.
    assert versions(storage, "AAA") == {"v0004", "v0007", "v0008", "v0009"}
    assert versions(storage, "BBB") == {f"v000{i}" for i in range(1, 7)}
    assert sorted(result.versions) == [f"models/AAA/v000{i}/" for i in (1, 2, 3, 5, 6)]
    # Old runs (DAYS[:6]) lose their ticker plots and predictions, nothing else.
    old = [RunScope(day, WATCHLIST) for day in DAYS[:6]]
    gone = {catalog.TICKER_PLOTS.key(s, "AAA") for s in old}
    gone |= {catalog.PREDICTIONS.key(s, "AAA") for s in old}
    assert set(result.run_objects) == gone
    after = snapshot()
    removed = set(before) - set(after)
    assert removed == gone | {k for k in before if k.startswith(tuple(result.versions))}
    # Every manifest is still true; the old ones say what was retired, the young ones are
    # untouched byte for byte.
    for day in DAYS:
        scope = RunScope(day, WATCHLIST)
        assert verify_manifest(storage, scope) == []
        key = catalog.MANIFEST.key(scope)
        if day in DAYS[6:]:
            assert after[key] == before[key]
        else:
            retired = {e["key"] for e in json.loads(storage.read_bytes(key))["retired"]}
            assert retired and retired <= removed
            assert retired == {e["key"] for e in json.loads(written[key])["objects"]} & removed
    # The champions still name complete versions.
    for ticker, version in (("AAA", "v0009"), ("BBB", "v0002")):
        for name in MODEL_FILES:
            assert storage.exists(f"{catalog.model_prefix(ticker, version)}/{name}")
    # A second collection finds nothing more.
    again = collect(storage, as_of=AS_OF, policy=POLICY)
    assert again.versions == [] and again.run_objects == []
    assert snapshot() == after


def test_a_dry_run_changes_nothing_and_plans_the_same(storage, snapshot) -> None:
    build_store(storage)
    before = snapshot()
    planned = collect(storage, as_of=AS_OF, policy=POLICY, dry_run=True)
    assert snapshot() == before
    done = collect(storage, as_of=AS_OF, policy=POLICY)
    assert (planned.versions, planned.run_objects, planned.manifests) == (
        done.versions,
        done.run_objects,
        done.manifests,
    )
    assert "would remove 5 model versions of 1 tickers" in planned.summary()


def test_young_manifests_protect_everything_they_list(storage) -> None:
    build_store(storage)
    # With every manifest young, only versions no manifest lists may go: BBB's v0004 has
    # none (BBB has no manifests) and is not among its last... so nothing of AAA goes.
    collect(storage, as_of=AS_OF, policy=RetentionPolicy(keep_versions=1, manifest_days=30))
    assert versions(storage, "AAA") == {f"v000{i}" for i in range(1, 10)}
    # BBB: last 1 (v0006), champion v0002 and root v0001, root v0003 of v0006.
    assert versions(storage, "BBB") == {"v0001", "v0002", "v0003", "v0006"}
    for day in DAYS:
        assert storage.exists(catalog.TICKER_PLOTS.key(RunScope(day, WATCHLIST), "AAA"))


def test_a_run_in_progress_or_a_held_ticker_lease_stops_gc(storage, snapshot) -> None:
    build_store(storage)
    before = snapshot()
    scope_lease = catalog.scope_lease_key(RunScope(AS_OF, WATCHLIST))
    with (
        held(storage, scope_lease, what="a run"),
        pytest.raises(RunInProgressError, match="a run is in progress"),
    ):
        collect(storage, as_of=AS_OF, policy=POLICY)
    assert snapshot() == before

    # A run modelling AAA holds its lease: gc waits for it, then gives up without touching
    # AAA's versions (old scopes' plots, under their own leases, may already be gone).
    release = threading.Event()
    taken = threading.Event()

    def run_holding_aaa() -> None:
        with held(storage, catalog.ticker_lease_key("AAA"), what="ticker AAA"):
            taken.set()
            release.wait(30)

    holder = threading.Thread(target=run_holding_aaa)
    holder.start()
    taken.wait(10)
    try:
        with pytest.raises(LeaseTimeoutError):
            collect(storage, as_of=AS_OF, policy=POLICY, lease_wait=timedelta(seconds=1))
    finally:
        release.set()
        holder.join()
    assert versions(storage, "AAA") == {f"v000{i}" for i in range(1, 10)}


def test_the_gc_command(tmp_path, capsys) -> None:
    storage = open_storage(str(tmp_path))
    build_store(storage)
    before = _digests(storage)
    common = ["gc", "--storage", str(tmp_path), "--as-of", AS_OF.isoformat()]
    common += ["--manifest-days", "2"]
    assert main([*common, "--dry-run", "--verbose"]) == 0
    out = capsys.readouterr().out
    assert "would remove 5 model versions of 1 tickers" in out and "models/AAA/v0001/" in out
    assert _digests(storage) == before
    assert main(common) == 0
    assert "removed 5 model versions" in capsys.readouterr().out
    assert main([*common, "--keep-versions", "0"]) == 2
    assert "keep_versions must be at least 1" in capsys.readouterr().err


def test_a_watchlists_global_model_versions_are_collected_by_the_same_policy(tmp_path) -> None:
    """Global versions (``models/_global/<W>/<kind>/``): lineage v0001 (v0001-v0002), then
    lineage v0003 (v0003-v0008), champion v0006, latest v0008 (a backfill's); a young
    manifest lists v0002. Kept: the last 3, the champion, what the young manifest lists,
    and each kept version's lineage root; nothing else, and no ticker named ``_global``."""
    from closecast.pipeline.pooled import BACKTEST_DIR, MODEL_DIR, GlobalChampion

    storage = open_storage(str(tmp_path / "store"))
    kind = "global_ar"

    def prefix(number: int) -> str:
        return catalog.global_model_prefix(WATCHLIST, kind, catalog.version_name(number))

    for number in range(1, 9):
        storage.write_bytes(f"{prefix(number)}/{MODEL_DIR}/model.npz", b"weights")
        if number in (1, 3):
            storage.write_bytes(f"{prefix(number)}/{BACKTEST_DIR}/model.npz", b"backtest")
    champion = GlobalChampion(
        kind=kind, version="v0006", lineage="v0003", cut=DAY0, holdout_end=DAY0,
        trained_through=DAY0, retrained_on=DAY0, promoted_on=DAY0, latest="v0008",
        files=("model.npz",), backtest_files=("model.npz",), n_tickers=2,
    )  # fmt: skip
    write_json(storage, catalog.global_champion_key(WATCHLIST, kind), champion.to_json())
    listed = f"{prefix(2)}/{MODEL_DIR}/model.npz"
    scope = RunScope(AS_OF, WATCHLIST)
    write_json(
        storage,
        catalog.MANIFEST.key(scope),
        {
            "run_date": AS_OF.isoformat(),
            "watchlist": WATCHLIST,
            "published_at": f"{AS_OF.isoformat()}T22:00:00+00:00",
            "objects": [_entry(listed, b"weights")],
            "state": [],
        },
    )

    planned = collect(storage, as_of=AS_OF, policy=POLICY, dry_run=True)
    result = collect(storage, as_of=AS_OF, policy=POLICY)
    assert planned.versions == result.versions == [prefix(n) + "/" for n in (4, 5)]
    home = f"{catalog.GLOBAL_MODELS_DIR}/{WATCHLIST}/{kind}"
    assert result.kept_versions == {home: ["v0001", "v0002", "v0003", "v0006", "v0007", "v0008"]}
    assert "of 0 tickers and 1 global models" in result.summary()
    for number in range(1, 9):
        assert storage.exists(f"{prefix(number)}/{MODEL_DIR}/model.npz") == (number not in (4, 5))
    assert storage.exists(catalog.global_champion_key(WATCHLIST, kind))
