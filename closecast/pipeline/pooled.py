"""The run's pooled step: once every ticker is fetched, fit the watchlist's global models
(:data:`lstm_model.registry.GLOBAL_MODELS`) on every fetched ticker's stored history, then
let each chunk of per-ticker modelling load them by key.

Per watchlist and global model there is one champion
(:func:`closecast.outputs.catalog.global_champion_key`) and numbered versions
(``models/_global/<W>/<kind>/vNNNN/``): the serving model under ``model/`` and, in the
version that started a lineage, the *backtest* model under ``backtest/``, fit on every
ticker's prices before one hold-out date (:func:`lstm_model.global_models.holdout_start`)
and scored per ticker on its days from that date through the lineage's retrain date.

Each run, per global model:

* **retrain** (a new lineage) when there is no readable champion, the run asks for it, the
  lineage is ``max_model_age_days`` old, its *pooled* live record has gone bad with evidence
  (:func:`closecast.pipeline.decisions.live_degradation`, as for a ticker's lineage, on every
  ticker's scored forecasts of the lineage in relative units: price over the naive price, so
  a 20000-dollar coin does not outweigh a 100-dollar stock), or the run is dated before the
  champion's promotion (a *backfill*: stored, never promoted, so the live champion is
  untouched);
* **keep** the champion when no ticker has a price after what it trained on, or the run
  forecasts only some tickers of its watchlist (a partial rerun never refits the
  watchlist's model on a few tickers, not even with ``--mode retrain``, which is meant for
  those tickers' own models);
* otherwise **fine-tune**: ``refit`` on every price through the run date, same lineage.

A ticker added to the watchlist is forecast by the champion as it is (a global model takes
any ticker's own prices): no retrain is needed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd

from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline import live
from closecast.pipeline.decisions import live_degradation
from closecast.pipeline.evaluation import LeakageError, significance
from closecast.pipeline.histories import read_validated, remember_stored
from closecast.pipeline.settings import RetrainPolicy
from closecast.storage import CorruptObjectError, ObjectNotFoundError, Storage, StorageError
from closecast.storage.concurrent import concurrently
from closecast.storage.io import read_json, write_json
from closecast.storage.recording import ObjectEntry, RecordingStorage
from lstm_model import metrics
from lstm_model.base import META_FILE
from lstm_model.config import ModelConfig
from lstm_model.data import POOL_FLOOR, InsufficientDataError
from lstm_model.global_models import GlobalModel, for_ticker, holdout_start, serving_cut
from lstm_model.registry import GLOBAL_MODELS, global_model_class, load_global_model

MODEL_DIR = "model"
BACKTEST_DIR = "backtest"


@dataclass(frozen=True)
class GlobalChampion:
    """A watchlist's global model that serves, and its lineage's backtest.

    Attributes:
        kind: The global model kind.
        version: The serving version (``vNNNN``).
        lineage: The version that started the lineage (holds the backtest model).
        cut: The lineage's hold-out start: its backtest model trained on no price of any
            ticker dated on or after it.
        holdout_end: The last hold-out day (the lineage's retrain date).
        trained_through: The latest date the serving model trained on, for any ticker.
        retrained_on: When the lineage started.
        promoted_on: When this version became the champion.
        latest: The latest stored version (a backfill's too): the next one follows it.
        files: The serving model's files; ``backtest_files`` the backtest model's.
        n_tickers: Tickers the serving model was fit on.
        backtest_u2: The lineage's pooled backtest U2 (relative units, every ticker's days
            from the cut through ``holdout_end``): what its live record is held to.
    """

    kind: str
    version: str
    lineage: str
    cut: date
    holdout_end: date
    trained_through: date
    retrained_on: date
    promoted_on: date
    latest: str
    files: tuple[str, ...]
    backtest_files: tuple[str, ...]
    n_tickers: int
    backtest_u2: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self.__dict__.items()
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GlobalChampion:
        dates = ("cut", "holdout_end", "trained_through", "retrained_on", "promoted_on")
        values = {name: data[name] for name in cls.__dataclass_fields__ if name in data}
        values.update({name: date.fromisoformat(str(data[name])) for name in dates})
        values.update(files=tuple(data["files"]), backtest_files=tuple(data["backtest_files"]))
        return cls(**values)


@dataclass(frozen=True)
class GlobalRef:
    """What a chunk needs to load one global model (it crosses the task boundary): the
    versions to load and the lineage's hold-out, and how this run came by it."""

    watchlist: str
    champion: GlobalChampion
    mode: str  # retrain, finetune, keep
    reason: str

    @property
    def kind(self) -> str:
        return self.champion.kind


@dataclass(frozen=True)
class GlobalModels:
    """The run's global models: one reference per fitted kind, the kinds that failed (kind,
    error), the objects the step wrote, and the tickers' line-up ledgers it read (their
    bytes kept in this process, :func:`closecast.pipeline.histories.remember_stored`: under
    the ticker leases the flow holds, a chunk in this process takes them from memory)."""

    refs: tuple[GlobalRef, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()
    keys: tuple[str, ...] = ()
    ledgers: tuple[ObjectEntry, ...] = ()


@dataclass(frozen=True)
class LoadedGlobal:
    """A global model loaded in a chunk: the serving model and the lineage's backtest model."""

    ref: GlobalRef
    model: GlobalModel
    backtest: GlobalModel


class GlobalChampionUnreadableError(RuntimeError):
    """The pointer exists but cannot be read (a retrain replaces it)."""


# --- storage ---------------------------------------------------------------------------------


def read_global_champion(storage: Storage, watchlist: str, kind: str) -> GlobalChampion | None:
    """The watchlist's champion of ``kind``, or None when there is none.

    Raises:
        GlobalChampionUnreadableError: The pointer is there but unreadable (names the key).
    """
    key = catalog.global_champion_key(watchlist, kind)
    try:
        return GlobalChampion.from_json(read_json(storage, key))
    except ObjectNotFoundError:
        return None
    except (CorruptObjectError, KeyError, TypeError, ValueError) as exc:
        raise GlobalChampionUnreadableError(f"{key}: {type(exc).__name__}: {exc}") from exc


def _save(storage: Storage, prefix: str, model: GlobalModel) -> tuple[str, ...]:
    """Store a model's files under ``prefix``, ``meta.json`` last."""
    with tempfile.TemporaryDirectory(prefix="closecast-global-") as tmp:
        model.save(Path(tmp))
        names = sorted(p.name for p in Path(tmp).iterdir() if p.is_file())
        names = [n for n in names if n != META_FILE] + [META_FILE]
        for name in names:
            storage.upload_file(f"{prefix}/{name}", Path(tmp) / name)
    return tuple(names)


def _load(storage: Storage, prefix: str, files: Iterable[str]) -> GlobalModel:
    with tempfile.TemporaryDirectory(prefix="closecast-global-") as tmp:
        for name in files:
            storage.download_file(f"{prefix}/{name}", Path(tmp) / name)
        return load_global_model(Path(tmp))


def written_keys(ref: GlobalRef) -> list[str]:
    """The objects of the version this run stored for ``ref`` (none when it kept the
    champion): what the run's manifest lists for it, beside the tickers' own versions."""
    if ref.mode == "keep":
        return []
    champion = ref.champion
    prefix = catalog.global_model_prefix(ref.watchlist, ref.kind, champion.version)
    keys = [f"{prefix}/{MODEL_DIR}/{name}" for name in champion.files]
    if champion.lineage == champion.version:
        keys += [f"{prefix}/{BACKTEST_DIR}/{name}" for name in champion.backtest_files]
    return keys


def load_global(storage: Storage, ref: GlobalRef) -> LoadedGlobal:
    """A chunk's copy of one global model, loaded by key (serving and backtest models)."""
    champion = ref.champion
    version = catalog.global_model_prefix(ref.watchlist, ref.kind, champion.version)
    lineage = catalog.global_model_prefix(ref.watchlist, ref.kind, champion.lineage)
    return LoadedGlobal(
        ref,
        _load(storage, f"{version}/{MODEL_DIR}", champion.files),
        _load(storage, f"{lineage}/{BACKTEST_DIR}", champion.backtest_files),
    )


def load_globals(
    storage: Storage, pooled: GlobalModels | None
) -> tuple[list[LoadedGlobal], list[str]]:
    """Every global model of the run, loaded; and a warning per one that could not be."""
    loaded, warnings = [], []
    for ref in pooled.refs if pooled is not None else ():
        try:
            loaded.append(load_global(storage, ref))
        except (StorageError, OSError, ValueError, KeyError) as exc:
            warnings.append(f"{ref.kind} not loaded: {type(exc).__name__}: {exc}")
    return loaded, warnings


# --- the step ------------------------------------------------------------------------------


def run_histories(
    storage: Storage,
    items: Iterable[WatchItem],
    as_of: date,
    config: ModelConfig,
    stored: Mapping[str, ObjectEntry] | None = None,
) -> dict[str, pd.Series]:
    """Every ticker's validated model column through ``as_of`` (as the per-ticker modelling
    reads it, :func:`closecast.pipeline.histories.read_validated`: the chunks then find them
    parsed and validated; ``stored``: per ticker, the price object this run's fetch left,
    taken from memory when this process has it); tickers without a usable history are left
    out (they fail on their own)."""
    stored = stored or {}

    def read(item: WatchItem) -> pd.Series | None:
        try:
            prices, _ = read_validated(
                storage, item, as_of, price_column=config.price_column, min_rows=POOL_FLOOR,
                stored=stored.get(item.symbol),
            )  # fmt: skip
        except (StorageError, ValueError):
            return None
        return prices

    items = list(items)  # read a few at once: independent requests (S3 round trips)
    read_all = concurrently(read, items)
    return {item.symbol: p for item, p in zip(items, read_all, strict=True) if p is not None}


@dataclass(frozen=True)
class Relative:
    """Scored one-step forecasts of many tickers in relative units (each over its naive
    price, so the naive forecast is 1), in target-date order."""

    actual: tuple[float, ...] = ()
    predicted: tuple[float, ...] = ()

    @property
    def naive(self) -> tuple[float, ...]:
        return (1.0,) * len(self.actual)

    @classmethod
    def of(cls, rows: Iterable[tuple[date, float, float, float]]) -> Relative:
        """From (date, actual, predicted, naive) rows."""
        ordered = sorted(rows, key=lambda row: row[0])
        return cls(tuple(a / n for _, a, _, n in ordered), tuple(p / n for _, _, p, n in ordered))


def pooled_backtest(
    backtest: GlobalModel, histories: dict[str, pd.Series], cut: date, end: date
) -> Relative:
    """The backtest model's one-step forecasts of every ticker's days from ``cut`` through
    ``end`` (tickers with too few prices around the cut left out)."""
    known = {t: p[p.index <= pd.Timestamp(end)] for t, p in histories.items()}
    predictions = _one_step_each(backtest, known, pd.Timestamp(cut))
    rows = []
    for ticker, predicted in predictions.items():
        previous = known[ticker].shift(1)
        rows += [
            (day.date(), float(known[ticker][day]), float(value), float(previous[day]))
            for day, value in predicted.items()
        ]
    return Relative.of(rows)


def _one_step_each(
    model: GlobalModel, histories: dict[str, pd.Series], start: pd.Timestamp
) -> dict[str, pd.Series]:
    """Each ticker's one-step forecasts from ``start``, in ``histories``' order (tickers with
    too few prices around ``start`` left out): in one call when the model forecasts every
    ticker at once (``predict_each``: one network call, where one per ticker took 222
    sampled seconds of a cold 500-ticker run's pooled step), else ticker by ticker."""
    each = getattr(model, "predict_each", None)
    if callable(each):
        predicted = each(histories, start)
        return {t: predicted[t] for t in histories if t in predicted}
    found = {}
    for ticker, prices in histories.items():
        try:
            found[ticker] = for_ticker(model, ticker).predict_one_step(prices, start)
        except InsufficientDataError:
            continue
    return found


class LineupLedgerReads:
    """Each ticker's line-up ledgers (one object per ticker, every model's), read at most
    once per run: the live records of all the run's global models come from the same read.
    A ticker whose object cannot be read gives None."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._read: dict[str, live.LineupLedgers | None] = {}

    def __call__(self, ticker: str) -> live.LineupLedgers | None:
        if ticker not in self._read:
            try:
                self._read[ticker] = live.read_lineup_ledgers(self._storage, ticker)
            except StorageError:
                self._read[ticker] = None
        return self._read[ticker]


def pooled_live(
    ledgers: LineupLedgerReads, kind: str, lineage: str, histories: dict[str, pd.Series],
    as_of: date,
) -> Relative:  # fmt: skip
    """The lineage's live record over every ticker: each ticker's ledger of the global
    model scored against its prices through ``as_of`` in memory (the chunk scores and writes
    it), one step ahead. A ledger that cannot be read or scored honestly is left out."""

    def scored(ticker: str) -> live.Ledger | None:
        lineup = ledgers(ticker)
        if lineup is None:
            return None
        try:
            ledger, _ = live.score_served(lineup.of(kind), histories[ticker], as_of)
        except LeakageError:
            return None
        return ledger

    rows = []
    for ledger in concurrently(scored, list(histories)):
        if ledger is None:
            continue
        rows += [
            (row.target_date, row.actual, row.forecast, row.naive)
            for row in ledger.scored(lineage)
            if row.actual is not None and row.naive > 0
        ]
    return Relative.of(rows)


def _relative_u2(record: Relative) -> float | None:
    if not record.actual:
        return None
    return metrics.summarize(record.actual, record.predicted, record.naive).u2


def _decide(
    champion: GlobalChampion | None, unreadable: str | None, *, as_of: date, mode: str,
    policy: RetrainPolicy, latest_price: date, partial: bool, live_record: Relative,
) -> tuple[str, str]:  # fmt: skip
    if unreadable is not None:
        return "retrain", f"champion unreadable ({unreadable})"
    if champion is None:
        return "retrain", "no champion yet"
    if as_of < champion.promoted_on:
        return (
            "retrain",
            f"backfill: run date before the champion's promotion {champion.promoted_on}",
        )
    if partial:  # even on request: fit on some of the tickers it would serve them all
        return "keep", "a partial rerun serves the watchlist's champion as is"
    if mode == "retrain":
        return "retrain", "retrain requested"
    age = (as_of - champion.retrained_on).days
    if age >= policy.max_model_age_days:
        return "retrain", (
            f"lineage {champion.lineage} is {age} days old (max {policy.max_model_age_days})"
        )
    test = significance(live_record.actual, live_record.predicted, live_record.naive)
    degraded = live_degradation(test, champion.backtest_u2, policy)
    if degraded is not None:
        return "retrain", f"pooled {degraded}"
    if latest_price <= champion.trained_through:
        return "keep", f"no price after {champion.trained_through}"
    return "finetune", f"refit on prices through {latest_price}"


def _next_version(
    storage: Storage, watchlist: str, kind: str, champion: GlobalChampion | None
) -> str:
    if champion is not None:
        number = catalog.version_number(champion.latest) or 0
    else:
        prefix = catalog.global_models_prefix(watchlist, kind)
        names = {key[len(prefix) :].split("/")[0] for key in storage.list_keys(prefix)}
        number = max([0, *(catalog.version_number(n) or 0 for n in names)])
    version = catalog.version_name(number + 1)
    # What a killed run left in this slot is incomplete: start it afresh.
    storage.delete_prefix(f"{catalog.global_model_prefix(watchlist, kind, version)}/")
    return version


def fit_global(
    storage: Storage, kind: str, histories: dict[str, pd.Series], scope: RunScope,
    config: ModelConfig, *, mode: str = "auto", policy: RetrainPolicy | None = None,
    partial: bool = False, ledgers: LineupLedgerReads | None = None,
) -> tuple[GlobalRef, list[str]]:  # fmt: skip
    """Retrain, fine-tune or keep one global model of the scope's watchlist (see the module
    docstring); store a new version and, unless a backfill, point the champion at it.

    Returns:
        The reference chunks load it by, and the keys written.

    Raises:
        InsufficientDataError: Too little history to fit (no champion is changed).
    """
    as_of, watchlist = scope.run_date, scope.watchlist
    try:
        champion, unreadable = read_global_champion(storage, watchlist, kind), None
    except GlobalChampionUnreadableError as exc:
        champion, unreadable = None, str(exc)
    policy = policy or RetrainPolicy()
    latest_price = max(p.index[-1] for p in histories.values()).date() if histories else as_of
    live_record = (
        pooled_live(ledgers or LineupLedgerReads(storage), kind, champion.lineage, histories, as_of)
        if champion is not None and mode != "retrain" and not partial
        else Relative()
    )
    decision, reason = _decide(
        champion, unreadable, as_of=as_of, mode=mode, policy=policy,
        latest_price=latest_price, partial=partial, live_record=live_record,
    )  # fmt: skip
    if decision == "keep":
        assert champion is not None
        return GlobalRef(watchlist, champion, "keep", reason), []
    backfill = champion is not None and as_of < champion.promoted_on
    version = _next_version(storage, watchlist, kind, champion)
    prefix = catalog.global_model_prefix(watchlist, kind, version)
    keys: list[str] = []
    if decision == "retrain":
        cut = holdout_start(histories, config.test_size)
        backtest = global_model_class(kind).fit(histories, cut, config)
        model = backtest.refit(histories, serving_cut(as_of), config)
        backtest_files = _save(storage, f"{prefix}/{BACKTEST_DIR}", backtest)
        keys += [f"{prefix}/{BACKTEST_DIR}/{n}" for n in backtest_files]
        lineage, retrained_on, holdout_end = version, as_of, as_of
        backtest_u2 = _relative_u2(pooled_backtest(backtest, histories, cut, as_of))
    else:
        assert champion is not None
        old = catalog.global_model_prefix(watchlist, kind, champion.version)
        model = _load(storage, f"{old}/{MODEL_DIR}", champion.files).refit(
            histories, serving_cut(as_of), config
        )
        backtest_files, lineage = champion.backtest_files, champion.lineage
        cut, retrained_on, holdout_end = champion.cut, champion.retrained_on, champion.holdout_end
        backtest_u2 = champion.backtest_u2
    files = _save(storage, f"{prefix}/{MODEL_DIR}", model)
    keys += [f"{prefix}/{MODEL_DIR}/{n}" for n in files]
    made = GlobalChampion(
        kind=kind, version=version, lineage=lineage, cut=cut, holdout_end=holdout_end,
        trained_through=pd.Timestamp(model.meta["trained_through"]).date(),
        retrained_on=retrained_on, promoted_on=as_of, latest=version, files=files,
        backtest_files=backtest_files, n_tickers=len(model.meta.get("tickers", histories)),
        backtest_u2=backtest_u2,
    )  # fmt: skip
    if backfill:
        assert champion is not None
        write_json(
            storage,
            catalog.global_champion_key(watchlist, kind),
            replace(champion, latest=version).to_json(),
        )
        return GlobalRef(watchlist, made, "retrain", reason), keys
    write_json(storage, catalog.global_champion_key(watchlist, kind), made.to_json())
    keys.append(catalog.global_champion_key(watchlist, kind))
    return GlobalRef(watchlist, made, decision, reason), keys


def fit_global_models(
    storage: Storage, items: Iterable[WatchItem], scope: RunScope, config: ModelConfig, *,
    mode: str = "auto", policy: RetrainPolicy | None = None, partial: bool = False,
    kinds: Sequence[str] = tuple(GLOBAL_MODELS), stored: Mapping[str, ObjectEntry] | None = None,
) -> GlobalModels:  # fmt: skip
    """The scope's watchlist's global models of ``kinds`` (the run's line-up; default every
    registered one), fit on every fetched ticker's history through the run date
    (:func:`fit_global`; ``stored``: the price objects this run's fetch left, see
    :func:`run_histories`). A model that cannot be fit is reported in ``failures``; it never
    fails the run (the tickers go on without it)."""
    if not kinds:
        return GlobalModels()
    histories = run_histories(storage, items, scope.run_date, config, stored)
    refs, failures, keys = [], [], []
    read = RecordingStorage(storage, keep_bytes=_is_lineup_ledgers)
    ledgers = LineupLedgerReads(read)
    for kind in kinds:
        try:
            ref, written = fit_global(
                storage, kind, histories, scope, config, mode=mode, policy=policy,
                partial=partial, ledgers=ledgers,
            )  # fmt: skip
        except (StorageError, OSError, ValueError, GlobalChampionUnreadableError) as exc:
            failures.append((kind, f"{type(exc).__name__}: {exc}"))
            continue
        refs.append(ref)
        keys += written
    return GlobalModels(tuple(refs), tuple(failures), tuple(keys), _kept_ledgers(read, items))


def _is_lineup_ledgers(key: str) -> bool:
    ticker = catalog.ticker_of_key(key)
    return ticker is not None and key == catalog.lineup_ledgers_key(ticker)


def _kept_ledgers(read: RecordingStorage, items: Iterable[WatchItem]) -> tuple[ObjectEntry, ...]:
    """The line-up ledger objects the step read, their bytes kept for the chunks."""
    kept = []
    for item in items:
        key = catalog.lineup_ledgers_key(item.symbol)
        try:
            data = read.kept_bytes(key)
        except KeyError:  # not read (no live check needed it)
            continue
        if data is not None:
            kept.append(remember_stored(key, data))
    return tuple(kept)
