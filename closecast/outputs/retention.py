"""Retention: what ``closecast gc`` removes so storage per ticker stays bounded.

Every fine-tune stores a full model version and every run of a small watchlist a plot per
ticker; without retention a ticker grows by about 20 MB of models and 32 MB of plots a
year. The policy (:class:`RetentionPolicy`) keeps:

* per ticker, and per watchlist's global model (``models/_global/<W>/<kind>/``), the
  champion, the latest version, the last ``keep_versions`` versions, and the lineage root
  (the retrained version holding the lineage's backtest) of every version it keeps;
* everything a *young* manifest lists: a run date within ``manifest_days`` of ``as_of``
  (model versions, plots, predictions);
* every run-level table, summary plot and manifest (one small object per run).

It removes the other model versions and the per-ticker run objects (plots, backtest
predictions: :data:`closecast.outputs.catalog.RUN_TABLES` with ``per_ticker``) of old scopes.

Never deleting what a reader or a run may use:

* the manifests are read first; a scope lease held by a run (whose manifest is withdrawn
  while it rewrites its scope, and may again list what it listed) makes gc refuse;
* an old manifest stops listing what gc removes *before* it is removed (the entries move
  to ``retired``, with the date), under that scope's lease: a manifest stays true;
* each ticker's versions are decided and removed under the ticker's lease, from its
  champion pointer as it is then, so a run cannot register or promote meanwhile.

``dry_run`` computes the same plan and changes nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from closecast.control.locks import Lease, held
from closecast.outputs import catalog
from closecast.outputs.retention_policy import RetentionPolicy
from closecast.pipeline.pooled import (
    BACKTEST_DIR,
    GlobalChampionUnreadableError,
    read_global_champion,
)
from closecast.pipeline.publish import Manifest
from closecast.pipeline.versions import (
    ChampionUnreadableError,
    read_champion,
    read_version_meta,
    stored_versions,
)
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.concurrent import concurrently
from closecast.storage.errors import StorageError
from closecast.storage.io import read_json, write_json

MANIFESTS_PREFIX = f"{catalog.MANIFEST.name}/"


class RunInProgressError(RuntimeError):
    """A run holds a scope lease: gc would not know what its withdrawn manifest lists."""


@dataclass(frozen=True)
class ScopeManifest:
    """A scope's manifest as gc read it, and where it is stored."""

    key: str
    manifest: Manifest

    @property
    def scope(self) -> catalog.RunScope:
        return catalog.RunScope(self.manifest.run_date, self.manifest.watchlist)


@dataclass
class Collection:
    """What a collection removed (or, in a dry run, would remove).

    Attributes:
        versions: ``models/T/vNNNN/`` and ``models/_global/W/kind/vNNNN/`` prefixes.
        run_objects: Per-ticker run objects of old scopes (plots, predictions).
        manifests: Old manifests rewritten to stop listing what was removed.
        kept_versions: Per ticker (or ``_global/W/kind``), the versions kept.
        bytes_known: Bytes of the removed objects that a manifest recorded.
        dry_run: Nothing was changed.
    """

    versions: list[str] = field(default_factory=list)
    run_objects: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    kept_versions: dict[str, list[str]] = field(default_factory=dict)
    bytes_known: int = 0
    dry_run: bool = False

    def summary(self) -> str:
        verb = "would remove" if self.dry_run else "removed"
        homes = {p.rsplit("/", 2)[0] for p in self.versions}
        globals_ = {h for h in homes if h.startswith(f"models/{catalog.GLOBAL_MODELS_DIR}/")}
        also = f" and {len(globals_)} global models" if globals_ else ""
        return (
            f"{verb} {len(self.versions)} model versions of {len(homes - globals_)} tickers"
            f"{also}, "
            f"{len(self.run_objects)} per-ticker run objects of old runs "
            f"({self.bytes_known / 2**20:.1f} MB recorded in manifests); "
            f"{'would rewrite' if self.dry_run else 'rewrote'} {len(self.manifests)} old "
            "manifests to stop listing them"
        )


def read_manifests(storage: Storage) -> list[ScopeManifest]:
    """Every scope's manifest (one listing, the reads concurrently); unreadable ones are
    skipped (a scope without a true manifest is left alone)."""
    keys = [k for k in storage.list_keys(MANIFESTS_PREFIX) if k.endswith(catalog.MANIFEST.filename)]

    def read(key: str) -> ScopeManifest | None:
        try:
            return ScopeManifest(key, Manifest.from_json(read_json(storage, key)))
        except (ObjectNotFoundError, StorageError, ValueError, TypeError):
            return None

    return [m for m in concurrently(read, keys) if m is not None]


def live_scope_leases(storage: Storage, now: datetime) -> list[str]:
    """Scope leases a run holds now (expired ones belong to killed runs)."""
    live = []
    for key in storage.list_keys("leases/run_date="):
        try:
            lease = Lease.from_bytes(key, storage.read_bytes(key))
        except ObjectNotFoundError:
            continue
        if lease is None or lease.expires_at >= now:
            live.append(f"{key} ({lease.what if lease else 'unreadable'})")
    return live


def _lineage_of(storage: Storage, ticker: str, version: str, names: set[str]) -> str | None:
    try:
        meta = read_version_meta(storage, ticker, version, names)
    except (ObjectNotFoundError, StorageError, ValueError):
        return None
    lineage = meta.get("lineage") if isinstance(meta, dict) else None
    return str(lineage) if lineage else None


def versions_to_keep(
    storage: Storage,
    ticker: str,
    versions: Mapping[str, set[str]],
    policy: RetentionPolicy,
    protected: set[str],
) -> set[str]:
    """The ticker's versions the policy keeps: the champion (its version, latest and
    lineage), the last ``keep_versions``, those ``protected`` (young manifests list them),
    and the lineage root of each. Raises when the champion pointer is unreadable (gc then
    leaves the ticker alone: the next run retrains it)."""
    ordered = sorted(versions, key=lambda v: catalog.version_number(v) or 0)
    keep = set(ordered[-policy.keep_versions :]) | (protected & set(ordered))
    champion = read_champion(storage, ticker)
    if champion is not None:
        keep |= {champion.version, champion.lineage}
        latest = getattr(champion, "latest", None)
        if latest:
            keep.add(str(latest))
    roots = {_lineage_of(storage, ticker, v, versions.get(v, set())) for v in sorted(keep)}
    return (keep | {r for r in roots if r}) & set(ordered)


def versions_to_remove(
    storage: Storage, ticker: str, policy: RetentionPolicy, protected: set[str]
) -> tuple[list[str], list[str]] | None:
    """The ticker's stored versions as (kept, removed), oldest first, or None when its
    champion pointer is unreadable (gc then leaves the ticker alone: the next run retrains
    it)."""
    versions = stored_versions(storage, ticker)
    try:
        keep = versions_to_keep(storage, ticker, versions, policy, protected)
    except ChampionUnreadableError:
        return None
    return _by_number(keep), _by_number(set(versions) - keep)


def global_versions_to_remove(
    storage: Storage, home: ModelHome, policy: RetentionPolicy, protected: set[str]
) -> tuple[list[str], list[str]] | None:
    """A global model's stored versions as (kept, removed), oldest first: the champion's
    version, lineage and latest, the last ``keep_versions``, the ``protected``, and the
    lineage root of each (the nearest version at or before it that holds a backtest model).
    None when its champion pointer is unreadable."""
    assert home.global_kind is not None
    watchlist, kind = home.global_kind
    files: dict[str, set[str]] = {}
    for key in storage.list_keys(home.prefix):
        version, _, name = key[len(home.prefix) :].partition("/")
        if catalog.version_number(version) is not None:
            files.setdefault(version, set()).add(name)
    try:
        champion = read_global_champion(storage, watchlist, kind)
    except GlobalChampionUnreadableError:
        return None
    ordered = _by_number(files)
    keep = set(ordered[-policy.keep_versions :]) | (protected & set(ordered))
    if champion is not None:
        keep |= {champion.version, champion.lineage, champion.latest}
    roots = [v for v in ordered if any(n.startswith(f"{BACKTEST_DIR}/") for n in files[v])]
    for version in list(keep):
        number = catalog.version_number(version) or 0
        earlier = [r for r in roots if (catalog.version_number(r) or 0) <= number]
        if earlier:
            keep.add(earlier[-1])
    keep &= set(ordered)
    return _by_number(keep), _by_number(set(ordered) - keep)


def _by_number(versions: Iterable[str]) -> list[str]:
    return sorted(versions, key=lambda v: catalog.version_number(v) or 0)


@dataclass(frozen=True)
class ModelHome:
    """Where one model's versions live: a ticker's ``models/<T>/`` or a watchlist's global
    model's ``models/_global/<W>/<kind>/``; gc decides and removes each under its lease."""

    name: str  # the ticker, or ``_global/<W>/<kind>``
    prefix: str
    global_kind: tuple[str, str] | None = None  # (watchlist, kind) of a global model

    @classmethod
    def of_ticker(cls, ticker: str) -> ModelHome:
        return cls(ticker, catalog.models_prefix(ticker))

    @classmethod
    def of_global(cls, watchlist: str, kind: str) -> ModelHome:
        prefix = catalog.global_models_prefix(watchlist, kind)
        return cls(f"{catalog.GLOBAL_MODELS_DIR}/{watchlist}/{kind}", prefix, (watchlist, kind))

    def lease(self) -> tuple[str, str]:
        """The lease a run holds while it changes these versions, and what it is."""
        if self.global_kind is None:
            return catalog.ticker_lease_key(self.name), f"ticker {self.name}"
        return catalog.global_lease_key(self.global_kind[0]), f"global models of {self.name}"

    def decide(
        self, storage: Storage, policy: RetentionPolicy, protected: set[str]
    ) -> tuple[list[str], list[str]] | None:
        if self.global_kind is None:
            return versions_to_remove(storage, self.name, policy, protected)
        return global_versions_to_remove(storage, self, policy, protected)


@contextlib.contextmanager
def _lease(storage: Storage, key: str, what: str, wait: timedelta, dry_run: bool) -> Iterator[None]:
    if dry_run:
        yield
        return
    with held(storage, key, what=f"{what} (closecast gc)", wait=wait):
        yield


def collect(
    storage: Storage,
    *,
    as_of: date,
    policy: RetentionPolicy = RetentionPolicy(),  # noqa: B008 (frozen)
    tickers: Iterable[str] | None = None,
    dry_run: bool = False,
    lease_wait: timedelta = timedelta(minutes=15),
    now: datetime | None = None,
) -> Collection:
    """Apply the retention policy to a storage root (see the module docstring).

    Args:
        storage: The storage root.
        as_of: The collection date: manifests of run dates within ``manifest_days`` of it
            are young.
        policy: What to keep.
        tickers: Only these tickers' versions (default: every ticker under ``models/``);
            old scopes' per-ticker run objects of other tickers are then left too.
        dry_run: Compute the plan, change nothing.
        lease_wait: How long to wait for a run holding a ticker or scope lease.
        now: The time leases are judged by (default: now).

    Raises:
        RunInProgressError: A run holds a scope lease; nothing was changed.
    """
    manifests = read_manifests(storage)  # first: what any complete scope lists
    if running := live_scope_leases(storage, now or datetime.now(UTC)):
        raise RunInProgressError(
            f"a run is in progress ({', '.join(running[:3])}); nothing collected: run "
            "closecast gc when no run is going"
        )
    cutoff = as_of - timedelta(days=policy.manifest_days)
    young = [m for m in manifests if m.manifest.run_date >= cutoff]
    old = [m for m in manifests if m.manifest.run_date < cutoff]
    protected = _versions_listed(young)
    only = set(tickers) if tickers is not None else None
    homes = [ModelHome.of_ticker(t) for t in sorted(only or _stored_tickers(storage))]
    if only is None:
        homes += _global_homes(storage)
    result = Collection(dry_run=dry_run)
    sizes = {e.key: e.size for m in manifests for e in m.manifest.objects}

    # 1. Plan each model's versions (no lease yet: the plan is re-checked under it).
    plans: dict[ModelHome, set[str]] = {}
    for home in homes:
        if decided := home.decide(storage, policy, protected.get(home.prefix, set())):
            result.kept_versions[home.name], going = decided
            plans[home] = set(going)

    # 2. Old manifests stop listing what goes, before it goes (under each scope's lease).
    planned_prefixes = tuple(f"{h.prefix}{v}/" for h, versions in plans.items() for v in versions)
    for scoped in old:
        run_objects = _old_run_objects(scoped, only)
        models = {k for k in scoped.manifest.listed() if k.startswith(planned_prefixes)}
        if not run_objects and not models:
            continue
        scope = scoped.scope
        with _lease(storage, catalog.scope_lease_key(scope), scope.label, lease_wait, dry_run):
            if not dry_run:
                retired = scoped.manifest.retire(run_objects | models, as_of)
                write_json(storage, scoped.key, retired.to_json())
                concurrently(storage.delete, sorted(run_objects))
        result.manifests.append(scoped.key)
        result.run_objects += sorted(run_objects)
        result.bytes_known += sum(sizes.get(k, 0) for k in run_objects)

    # 3. Each model's versions, re-decided and removed under its lease.
    for home, planned in plans.items():
        if not planned:
            continue
        lease_key, what = home.lease()
        with _lease(storage, lease_key, what, lease_wait, dry_run):
            decided = home.decide(storage, policy, protected.get(home.prefix, set()))
            if decided is None:
                continue
            result.kept_versions[home.name], going = decided
            prefixes = [f"{home.prefix}{v}/" for v in going if v in planned]
            if not dry_run:
                concurrently(storage.delete_prefix, prefixes)
        result.versions += prefixes
        if prefixes:
            starts = tuple(prefixes)
            result.bytes_known += sum(s for key, s in sizes.items() if key.startswith(starts))
    return result


def _versions_listed(manifests: Iterable[ScopeManifest]) -> dict[str, set[str]]:
    """Per model home (its prefix), the versions the manifests list."""
    listed: dict[str, set[str]] = {}
    for scoped in manifests:
        for key in scoped.manifest.listed():
            parts = key.split("/")
            depth = 4 if parts[1:2] == [catalog.GLOBAL_MODELS_DIR] else 2
            if parts[0] == "models" and len(parts) > depth:
                listed.setdefault("/".join(parts[:depth]) + "/", set()).add(parts[depth])
    return listed


def _stored_tickers(storage: Storage) -> set[str]:
    """Every ticker with something under ``models/`` (global models are not tickers)."""
    return {
        parts[1]
        for key in storage.list_keys("models/")
        if len(parts := key.split("/")) > 2 and parts[1] != catalog.GLOBAL_MODELS_DIR
    }


def _global_homes(storage: Storage) -> list[ModelHome]:
    """Every watchlist's global models (``models/_global/<W>/<kind>/``)."""
    found = {
        (parts[2], parts[3])
        for key in storage.list_keys(f"models/{catalog.GLOBAL_MODELS_DIR}/")
        if len(parts := key.split("/")) > 4
    }
    return [ModelHome.of_global(w, k) for w, k in sorted(found)]


def _old_run_objects(scoped: ScopeManifest, only: set[str] | None) -> set[str]:
    """The per-ticker run objects (plots, predictions) an old manifest lists, of ``only``'s
    tickers when given."""
    scope = scoped.scope
    prefixes = tuple(t.prefix(scope) for t in catalog.RUN_TABLES if t.per_ticker)
    return {
        key
        for key in scoped.manifest.listed()
        if (ticker := catalog.ticker_of_key(key)) is not None
        and (only is None or ticker in only)
        and key.startswith(prefixes)
    }
