"""The line-up: the LSTM beside the baselines (naive, drift, seasonal naive), each behind
the same forecaster interface, evaluated by the same code on the same days.

* **Backtest**: every baseline is fit on the prices before the serving lineage's hold-out
  days and scored on exactly those days, as the LSTM's backtest was. The days are the
  lineage's, so these backtests are computed once per lineage and kept beside it
  (``models/T/<lineage>/lineup.parquet``), recomputed only when the prices through those
  days, the settings or the registered kinds changed.
* **Live**: every baseline serves its own forecast each run into its own ledger (every
  line-up model's in one object, ``served/ticker=T/lineup_ledgers.parquet``), scored like
  the LSTM's once the prices are known.
  Baselines are refit on the whole history every run (they are a mean at most).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.records import ONE_STEP_COLUMNS, ModelScoreRow, ServedRow
from closecast.pipeline import live
from closecast.pipeline.evaluation import LeakageError, backtest_frames, evaluate, significance
from closecast.pipeline.pooled import LoadedGlobal
from closecast.pipeline.serving import Lineage, Served, serve
from closecast.pipeline.uncertainty import BAND_COLUMNS, coverage
from closecast.storage import CorruptObjectError, ObjectNotFoundError, Storage
from closecast.storage.io import read_parquet, write_parquet
from lstm_model import metrics
from lstm_model.config import ModelConfig
from lstm_model.global_models import for_ticker
from lstm_model.horizons import PATH_COLUMNS
from lstm_model.intervals import ewma_volatility
from lstm_model.registry import GLOBAL_MODELS, MODELS, fit_model
from lstm_model.selection import Selection, select_model

LSTM = live.LSTM
BASELINE_KINDS: tuple[str, ...] = tuple(kind for kind in MODELS if kind != LSTM)
"""Every registered model but the LSTM (:data:`lstm_model.registry.MODELS`): a new model is
in the line-up as soon as it is registered."""

GLOBAL_KINDS: tuple[str, ...] = tuple(GLOBAL_MODELS)
"""The global models (:data:`lstm_model.registry.GLOBAL_MODELS`): fit once per run on every
ticker (:mod:`closecast.pipeline.pooled`), then scored and served here like the baselines."""


@dataclass(frozen=True)
class ScoredColumns:
    """A record's scored forecasts as arrays, in date order: what its line-up row is
    computed from (a run scores 18 records a ticker; a frame's columns cost far more).

    Attributes:
        first_date: The first scored day (None: none scored).
        last_date: The last scored day.
        actual: The prices that came.
        predicted: The model's forecasts.
        naive: The naive forecasts of the same origins.
        bands: The interval bounds (:data:`BAND_COLUMNS`); None when the record has none.
    """

    first_date: date | None
    last_date: date | None
    actual: np.ndarray
    predicted: np.ndarray
    naive: np.ndarray
    bands: dict[str, np.ndarray] | None = None

    def coverage(self) -> tuple[float | None, float | None]:
        """80% and 95% coverage (:func:`closecast.pipeline.uncertainty.coverage`)."""
        if self.bands is None:
            return None, None
        b = self.bands
        return (
            coverage(self.actual, b["lower_80"], b["upper_80"]),
            coverage(self.actual, b["lower_95"], b["upper_95"]),
        )


@dataclass(frozen=True)
class Record:
    """One model's scored forecasts on one record (date, actual, predicted, naive), at one
    step ahead."""

    model: str
    record: str
    frame: pd.DataFrame
    step: int = 1

    def columns(self) -> ScoredColumns:
        frame = self.frame
        n = len(frame)
        actual, predicted, naive = (
            frame[column].to_numpy(dtype="float64") for column in ("actual", "predicted", "naive")
        )
        bands = None
        if set(BAND_COLUMNS) <= set(frame.columns):
            bands = {column: frame[column].to_numpy(dtype="float64") for column in BAND_COLUMNS}
        dates = frame["date"]
        first, last = (dates.iloc[0], dates.iloc[-1]) if n else (None, None)
        return ScoredColumns(first, last, actual, predicted, naive, bands)


@dataclass(frozen=True)
class LiveWindow:
    """One model's scored live forecasts over a trailing window (``record``: ``live_20d``,
    ``live_60d``), at one step ahead, as served rows: scored without a frame."""

    model: str
    record: str
    rows: tuple[ServedRow, ...]
    step: int = 1

    def columns(self) -> ScoredColumns:
        rows = self.rows

        def array(values) -> np.ndarray:
            return np.array(list(values), dtype="float64")

        bands = {column: array(_nan(getattr(r, column)) for r in rows) for column in BAND_COLUMNS}
        return ScoredColumns(
            rows[0].target_date if rows else None,
            rows[-1].target_date if rows else None,
            array(r.actual for r in rows),
            array(r.forecast for r in rows),
            array(r.naive for r in rows),
            bands,
        )


def score_row(ticker: str, record: Record | LiveWindow, *, serving: bool) -> ModelScoreRow:
    """A line of the line-up: RMSE, naive RMSE, U2, direction and Diebold-Mariano (for a
    ``step``-ahead record, against the naive forecast of that step: the last known price)."""
    columns = record.columns()
    n = len(columns.actual)
    values: dict[str, float | None] = dict.fromkeys(
        ("rmse", "naive_rmse", "u2", "directional_accuracy", "dm_stat", "dm_p")
    )
    if n:
        actual, predicted, naive = columns.actual, columns.predicted, columns.naive
        scores = metrics.summarize(actual, predicted, naive)
        values.update(
            rmse=scores.rmse,
            naive_rmse=scores.naive_rmse,
            u2=scores.u2,
            directional_accuracy=scores.directional_accuracy,
        )
        result = significance(actual, predicted, naive, horizon=record.step)
        if result is not None:
            values.update(dm_stat=result.statistic, dm_p=result.p_value)
    coverage_80, coverage_95 = columns.coverage()
    return ModelScoreRow(
        ticker=ticker,
        model=record.model,
        record=record.record,
        coverage_80=coverage_80,
        coverage_95=coverage_95,
        first_date=columns.first_date,
        last_date=columns.last_date,
        n=n,
        serving=serving,
        step=record.step,
        **values,
    )


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def live_records(
    model: str, ledger: live.Ledger, price_dates: pd.DatetimeIndex, horizon: int = 1
) -> list[LiveWindow]:
    """A model's live record over the trailing 20 and 60 trading days, per step ahead."""
    return [
        LiveWindow(
            model,
            f"live_{window}d",
            tuple(live.window_rows(ledger, price_dates, window, step)),
            step,
        )
        for step in range(1, horizon + 1)
        for window in live.TRAILING_WINDOWS
    ]


def path_records(model: str, path: pd.DataFrame, days: Sequence[date], horizon: int):
    """Records of a multi-step backtest (long form) for steps 2..horizon, on ``days``."""
    dates = pd.to_datetime(path["date"]).dt.date
    records = []
    for step in range(2, horizon + 1):
        rows = path[(path["step"] == step) & dates.isin(set(days))]
        frame = pd.DataFrame(
            {
                "date": pd.to_datetime(rows["date"]).dt.date.to_numpy(),
                "actual": rows["actual"].to_numpy(dtype="float64"),
                "predicted": rows["predicted"].to_numpy(dtype="float64"),
                "naive": rows["naive"].to_numpy(dtype="float64"),
            }
        )
        records.append(Record(model, "backtest", frame, step))
    return records


def baseline_backtest(
    kind: str, prices: pd.Series, days: Sequence[date], config: ModelConfig, horizon: int = 1
) -> tuple[Record, pd.DataFrame | None]:
    """A baseline fit before the first of ``days`` and scored on exactly ``days`` (and, for
    ``horizon`` > 1, its multi-step backtest in long form)."""
    start, end = pd.Timestamp(days[0]), pd.Timestamp(days[-1])
    model = fit_model(kind, prices[prices.index < start], config)
    known = prices[prices.index <= end]
    frame = evaluate(model, known, start).predictions
    frame = frame[frame["date"].isin(set(days))].reset_index(drop=True)
    frames = backtest_frames(model, known, frame, horizon)
    return Record(kind, "backtest", frames.predictions), frames.path


@dataclass(frozen=True)
class KeptBacktests:
    """Line-up models' backtests on a lineage's hold-out days, as kept beside the lineage:
    kind -> (one-step record, multi-step path).

    Attributes:
        by_kind: The backtests.
        failed: Kinds left out of the line-up: a baseline too short a history could not fit,
            a global model trained on a scored day.
        digest: What the backtests are a function of (:func:`lineup_digest`,
            :func:`global_lineup_digest`).
        same_days: The global models scored on exactly the lineage's days (the others on
            their own lineage's hold-out: left out of ``auto``'s comparison).
    """

    by_kind: dict[str, tuple[Record, pd.DataFrame | None]]
    failed: frozenset[str]
    digest: str
    same_days: frozenset[str] = frozenset()


def lineup_digest(
    prices: pd.Series, days: Sequence[date], config: ModelConfig, horizon: int
) -> str:
    """What the baselines' backtests on ``days`` are a function of: every price through the
    last of them, the days, the configuration, the horizon and the registered kinds. A
    revision or re-basing of those prices changes it, and the backtests are recomputed."""
    settings = (sorted(config.to_dict().items()), horizon, BASELINE_KINDS, [str(d) for d in days])
    return _digest(prices, pd.Timestamp(days[-1]), settings)


def _digest(prices: pd.Series, through: pd.Timestamp, settings: object) -> str:
    """SHA-256 of every price dated up to ``through`` (dates and values) and ``settings``."""
    known = prices[prices.index <= through]
    digest = hashlib.sha256()
    digest.update(known.index.asi8.tobytes())
    digest.update(known.to_numpy(dtype="float64").tobytes())
    digest.update(repr(settings).encode())
    return digest.hexdigest()


def compute_baseline_backtests(
    prices: pd.Series, days: Sequence[date], config: ModelConfig, horizon: int
) -> KeptBacktests:
    """Every baseline's backtest on ``days``, from scratch."""
    by_kind, failed = {}, set()
    for kind in BASELINE_KINDS:
        try:
            by_kind[kind] = baseline_backtest(kind, prices, days, config, horizon)
        except ValueError:  # InsufficientDataError: too short a history for this baseline
            failed.add(kind)
    return KeptBacktests(by_kind, frozenset(failed), lineup_digest(prices, days, config, horizon))


def _to_table(backtests: KeptBacktests) -> pa.Table:
    parts = []
    for kind, (record, path) in backtests.by_kind.items():
        parts.append(record.frame.assign(model=kind, part="backtest", step=1))
        if path is not None:
            parts.append(path.assign(model=kind, part="path"))
    empty = pd.DataFrame(columns=["model", "part", "date"])
    frame = pd.concat(parts, ignore_index=True) if parts else empty
    frame["date"] = pd.to_datetime(frame["date"])
    table = pa.Table.from_pandas(frame, preserve_index=False)
    metadata = {
        b"digest": backtests.digest.encode(),
        b"failed": ",".join(sorted(backtests.failed)).encode(),
        b"same_days": ",".join(sorted(backtests.same_days)).encode(),
    }
    return table.replace_schema_metadata(metadata)


def _kinds(metadata: dict[bytes, bytes], name: bytes) -> frozenset[str]:
    return frozenset(filter(None, metadata.get(name, b"").decode().split(",")))


def _from_table(table: pa.Table) -> KeptBacktests:
    """The backtests a kept object holds. Each model's parts are taken and converted in
    Arrow, only their own columns (every ticker reads two of these a day: one pandas frame
    of the whole object, grouped and re-selected, cost several times more)."""
    metadata = table.schema.metadata or {}
    rows: dict[tuple[str, str], list[int]] = {}
    if table.num_rows:
        models, parts = table.column("model").to_pylist(), table.column("part").to_pylist()
        for i, group in enumerate(zip(models, parts, strict=True)):
            rows.setdefault(group, []).append(i)
    by_kind = {}
    for kind in (*BASELINE_KINDS, *GLOBAL_KINDS):
        one_rows, path_rows = rows.get((kind, "backtest")), rows.get((kind, "path"))
        if one_rows is None and path_rows is None:
            continue
        one = table.take(pa.array(one_rows or [], pa.int64())).select(list(ONE_STEP_COLUMNS))
        dates = pc.cast(one.column("date"), pa.date32(), safe=False)  # what .dt.date gives
        one = one.set_column(0, "date", dates).to_pandas()
        path = None
        if path_rows is not None:
            path = table.take(pa.array(path_rows, pa.int64())).select(list(PATH_COLUMNS))
            path = path.to_pandas().astype({"step": "int64"})
        by_kind[kind] = (Record(kind, "backtest", one), path)
    return KeptBacktests(
        by_kind,
        _kinds(metadata, b"failed"),
        metadata.get(b"digest", b"").decode(),
        _kinds(metadata, b"same_days"),
    )


def _kept(
    storage: Storage, key: str, digest: str, compute: Callable[[], KeptBacktests]
) -> tuple[KeptBacktests, list[str]]:
    """The backtests kept at ``key`` when they were made from what ``digest`` covers, else
    ``compute()``d: written when nothing is kept there yet, never rewritten (a manifest may
    list the kept object by its digest)."""
    try:
        kept = _from_table(read_parquet(storage, key))
    except (ObjectNotFoundError, CorruptObjectError):
        kept = None
    if kept is not None and kept.digest == digest:
        return kept, []
    fresh = compute()
    if kept is not None:
        return fresh, []  # stored for other prices or settings; it stays as it was
    write_parquet(storage, key, _to_table(fresh))
    return fresh, [key]


def lineage_baseline_backtests(
    storage: Storage, ticker: str, lineage: str, prices: pd.Series, days: Sequence[date],
    config: ModelConfig, horizon: int,
) -> tuple[KeptBacktests, list[str]]:  # fmt: skip
    """The baselines' backtests on a lineage's hold-out days, computed once per lineage and
    kept beside it (:func:`closecast.outputs.catalog.lineup_backtest_key`); recomputed, never
    rewritten, when what they depend on changed (:func:`lineup_digest`).

    Returns:
        The backtests, and the key written (once, for the lineage's first run).
    """
    key = catalog.lineup_backtest_key(ticker, lineage)
    digest = lineup_digest(prices, days, config, horizon)
    return _kept(
        storage, key, digest, lambda: compute_baseline_backtests(prices, days, config, horizon)
    )


@dataclass(frozen=True)
class Lineup:
    """Every model's scores for one ticker, its one-step backtest frames, today's served
    forecasts, one per step (the LSTM's are served by the pipeline; the baselines' here),
    and the objects the line-up stored."""

    rows: list[ModelScoreRow]
    backtests: dict[str, pd.DataFrame]
    served: dict[str, list[ServedRow]]
    keys: tuple[str, ...] = ()
    # Every line-up model's ledger, to write together (empty: none to write, a backfill).
    ledgers: dict[str, live.Ledger] = field(default_factory=dict)


def _lstm_records(
    backtest: pd.DataFrame | None, path: pd.DataFrame | None, ledger: live.Ledger,
    price_dates: pd.DatetimeIndex, horizon: int,
) -> list[Record | LiveWindow]:  # fmt: skip
    records: list[Record | LiveWindow] = []
    if backtest is not None and len(backtest):
        records.append(Record(LSTM, "backtest", backtest))
        if path is not None:
            records += path_records(LSTM, path, list(backtest["date"]), horizon)
    return records + live_records(LSTM, ledger, price_dates, horizon)


def _serve_baseline(
    stored: live.Ledger, kind: str, item: WatchItem, prices: pd.Series, config: ModelConfig,
    as_of: date, baselines: KeptBacktests, *, horizon: int,
    rebase_factor: float | None, volatility: pd.Series | None = None,
) -> Served:  # fmt: skip
    """A baseline refit on every price, its ledger (``stored``) put on the history's basis
    and scored, its forecasts served (the caller records and writes them with the ticker's
    state)."""
    model = fit_model(kind, prices, config)
    record, path = baselines.by_kind.get(kind, (None, None))
    ledger = live.align_basis(stored, prices, rebase_factor)
    ledger, _ = live.score_served(ledger, prices, as_of)
    return serve(
        kind, model, ledger, item=item, prices=prices, as_of=as_of, horizon=horizon,
        lineage=Lineage(kind, kind, None if record is None else record.frame, path),
        storage=None, volatility=volatility,
    )  # fmt: skip


def global_backtest(
    loaded: LoadedGlobal, item: WatchItem, prices: pd.Series, horizon: int,
    days: Sequence[date] = (),
) -> tuple[Record, pd.DataFrame | None, bool]:  # fmt: skip
    """A global model's backtest on one ticker, by the same code as every model: its
    lineage's backtest model (trained on no price of any ticker dated on or after the cut)
    scored on ``days`` (the serving lineage's hold-out days, as every model is) when none is
    before the cut, else on the ticker's days from the cut through the global lineage's
    retrain date.

    Returns:
        The one-step record, the multi-step path (horizon > 1), and whether it is on ``days``.

    Raises:
        InsufficientDataError: Too few of the ticker's prices before or after the cut.
        LeakageError: The backtest model trained on the first scored day or later.
    """
    champion = loaded.ref.champion
    model = for_ticker(loaded.backtest, item.symbol)
    same_days = bool(days) and pd.Timestamp(days[0]) >= pd.Timestamp(champion.cut)
    start, end = (
        (pd.Timestamp(days[0]), pd.Timestamp(days[-1]))
        if same_days
        else (pd.Timestamp(champion.cut), pd.Timestamp(champion.holdout_end))
    )
    known = prices[prices.index <= end]
    frame = evaluate(model, known, start).predictions
    if same_days:
        frame = frame[frame["date"].isin(set(days))].reset_index(drop=True)
        same_days = len(frame) == len(days)  # a day since removed from the prices: not the same
    frames = backtest_frames(model, known, frame, horizon)
    return Record(loaded.ref.kind, "backtest", frames.predictions), frames.path, same_days


def global_lineup_tag(global_models: Sequence[LoadedGlobal]) -> str:
    """A short digest of which global lineages the backtests are of (watchlist, kind,
    lineage and its backtest model's files): names their kept object."""
    lineages = sorted(
        (g.ref.watchlist, g.ref.kind, g.ref.champion.lineage, g.ref.champion.backtest_files)
        for g in global_models
    )
    return hashlib.sha256(repr(lineages).encode()).hexdigest()[:16]


def global_lineup_digest(
    prices: pd.Series, days: Sequence[date], horizon: int, global_models: Sequence[LoadedGlobal]
) -> str:
    """What the global models' backtests on a ticker are a function of: each lineage's
    backtest model, cut and hold-out, the days, the horizon and every price through the last
    day any of them scores."""
    champions = [g.ref.champion for g in global_models]
    ends = [pd.Timestamp(c.holdout_end) for c in champions] + [pd.Timestamp(d) for d in days[-1:]]
    holdouts = sorted((c.kind, str(c.cut), str(c.holdout_end)) for c in champions)
    settings = (global_lineup_tag(global_models), holdouts, horizon, [str(d) for d in days])
    return _digest(prices, max(ends), settings)


def compute_global_backtests(
    item: WatchItem, prices: pd.Series, days: Sequence[date], horizon: int,
    global_models: Sequence[LoadedGlobal],
) -> KeptBacktests:  # fmt: skip
    """Every global model's backtest on the ticker (:func:`global_backtest`), from scratch.
    One with too few of the ticker's days around its cut has none (it still serves); one
    whose backtest model trained on a scored day is ``failed`` (it does not serve)."""
    by_kind, failed, same_days = {}, set(), set()
    for loaded in global_models:
        kind = loaded.ref.kind
        try:
            record, path, same = global_backtest(loaded, item, prices, horizon, days)
        except LeakageError:
            failed.add(kind)
            continue
        except ValueError:  # InsufficientDataError: too few days around the cut
            continue
        by_kind[kind] = (record, path)
        if same:
            same_days.add(kind)
    digest = global_lineup_digest(prices, days, horizon, global_models)
    return KeptBacktests(by_kind, frozenset(failed), digest, frozenset(same_days))


def lineage_global_backtests(
    storage: Storage, item: WatchItem, lineage: str, prices: pd.Series, days: Sequence[date],
    horizon: int, global_models: Sequence[LoadedGlobal],
) -> tuple[KeptBacktests, list[str]]:  # fmt: skip
    """The global models' backtests on a lineage's hold-out days, computed once per lineage
    and combination of global lineages and kept beside the lineage
    (:func:`closecast.outputs.catalog.lineup_global_backtest_key`); recomputed, never
    rewritten, when what they depend on changed (:func:`global_lineup_digest`).

    Returns:
        The backtests, and the key written (once).
    """
    if not global_models:
        return KeptBacktests({}, frozenset(), ""), []
    key = catalog.lineup_global_backtest_key(item.symbol, lineage, global_lineup_tag(global_models))
    digest = global_lineup_digest(prices, days, horizon, global_models)
    return _kept(
        storage, key, digest,
        lambda: compute_global_backtests(item, prices, days, horizon, global_models),
    )  # fmt: skip


def _serve_global(
    stored: live.Ledger, loaded: LoadedGlobal, item: WatchItem, prices: pd.Series, as_of: date,
    backtest: tuple[Record, pd.DataFrame | None] | None, *, horizon: int,
    rebase_factor: float | None, volatility: pd.Series | None = None,
) -> Served:  # fmt: skip
    """A global model's ledger (``stored``) put on the history's basis and scored, and its
    forecasts served from the ticker's own prices, calibrated on its ``backtest`` on the
    ticker (None: it has none)."""
    champion = loaded.ref.champion
    record, path = backtest if backtest is not None else (None, None)
    ledger = live.align_basis(stored, prices, rebase_factor)
    ledger, _ = live.score_served(ledger, prices, as_of)
    return serve(
        loaded.ref.kind, for_ticker(loaded.model, item.symbol), ledger, item=item,
        prices=prices, as_of=as_of, horizon=horizon, storage=None, volatility=volatility,
        lineage=Lineage(champion.version, champion.lineage,
                        None if record is None else record.frame, path),
    )  # fmt: skip


def run_lineup(
    storage: Storage,
    item: WatchItem,
    prices: pd.Series,
    config: ModelConfig,
    as_of: date,
    *,
    lineage: str,
    lstm_backtest: pd.DataFrame | None,
    lstm_ledger: live.Ledger,
    record_live: bool,
    lstm_backtest_path: pd.DataFrame | None = None,
    horizon: int = 1,
    rebase_factor: float | None = None,
    holdout_days: Sequence[date] = (),
    global_models: Sequence[LoadedGlobal] = (),
    models: Collection[str] | None = None,
    volatility: pd.Series | None = None,
) -> Lineup:
    """Score every baseline beside the LSTM (backtest on the serving lineage's days, kept
    per lineage; live records, every step up to ``horizon``), serve each baseline's
    forecasts (with their intervals) and return the line-up with, unless this is a
    backfill, each baseline's ledger with them recorded (the caller writes them with the
    ticker's other state, :mod:`closecast.pipeline.commit`). Each baseline ledger is first
    put on the history's current basis (:func:`closecast.pipeline.live.align_basis`;
    ``rebase_factor``: the re-basing this run's fetch detected). Without an LSTM backtest the
    baselines are scored on ``holdout_days`` (a history too short for the LSTM), not kept.
    ``global_models`` (fit by the run's pooled step) are scored on the same days when their
    backtest model never trained on them, else on their own lineage's hold-out days (then
    left out of ``auto``'s comparison: :func:`global_backtest`), and served the same way.

    A baseline or global model that cannot be fit or serve honestly (too short a history;
    trained on a target date) is left out of the line-up; it never fails the ticker. So is
    one not in ``models`` (the run's line-up, ``RunSettings.models``; default every model).
    The backtests kept per lineage cover every baseline and every loaded global model all
    the same, so that what is stored does not depend on a run's line-up. ``volatility`` is
    the EWMA volatility of ``prices`` when the caller has it (every model's intervals are
    scaled by it: computed once per ticker).
    """
    if volatility is None:
        volatility = ewma_volatility(prices)
    wanted = set(models) if models is not None else None
    days = list(lstm_backtest["date"]) if lstm_backtest is not None else []
    rows = [
        score_row(item.symbol, record, serving=False)
        for record in _lstm_records(
            lstm_backtest, lstm_backtest_path, lstm_ledger, prices.index, horizon
        )
    ]
    # The serving lineage's hold-out days: the line-up's backtests on them are kept with it.
    kept = bool(days)
    backtests: dict[str, pd.DataFrame] = {LSTM: lstm_backtest} if days else {}
    baselines, keys = (
        lineage_baseline_backtests(storage, item.symbol, lineage, prices, days, config, horizon)
        if kept
        else (KeptBacktests({}, frozenset(), ""), [])
    )
    if not days and holdout_days:
        days = list(holdout_days)
        baselines = compute_baseline_backtests(prices, days, config, horizon)
    served: dict[str, list[ServedRow]] = {}
    # One object holds every line-up model's ledger: read once, written whole with the
    # ticker's state (a model that does not serve today keeps its rows as they were).
    stored = live.read_lineup_ledgers(storage, item.symbol)
    ledgers: dict[str, live.Ledger] = dict(stored.by_model) if record_live else {}
    for kind in BASELINE_KINDS:
        if wanted is not None and kind not in wanted:
            continue
        if kind in baselines.failed and kept:  # on a short history it serves untested
            continue
        try:
            result = _serve_baseline(stored.of(kind), kind, item, prices, config, as_of,
                                     baselines, horizon=horizon, rebase_factor=rebase_factor,
                                     volatility=volatility)  # fmt: skip
        except ValueError:  # InsufficientDataError: too short a history for this baseline
            continue
        record, path = baselines.by_kind.get(kind, (None, None))
        served[kind] = list(result.rows)
        if record_live:
            ledgers[kind] = live.record_all(result.ledger, result.rows)
        records: list[Record | LiveWindow] = [] if record is None else [record]
        if path is not None:
            records += path_records(kind, path, days, horizon)
        records += live_records(kind, result.ledger, prices.index, horizon)
        if record is not None:
            backtests[kind] = record.frame
        rows += [score_row(item.symbol, r, serving=False) for r in records]
    globals_, global_keys = KeptBacktests({}, frozenset(), ""), []
    if kept:
        globals_, global_keys = lineage_global_backtests(
            storage, item, lineage, prices, days, horizon, global_models
        )
    elif days:  # none for a one-day history
        globals_ = compute_global_backtests(item, prices, days, horizon, global_models)
    keys = [*keys, *global_keys]
    for loaded in global_models:
        kind = loaded.ref.kind
        if kind in globals_.failed or (wanted is not None and kind not in wanted):
            continue
        backtest = globals_.by_kind.get(kind)
        try:
            result = _serve_global(stored.of(kind), loaded, item, prices, as_of, backtest,
                                   horizon=horizon, rebase_factor=rebase_factor,
                                   volatility=volatility)  # fmt: skip
        except (ValueError, LeakageError):
            continue
        served[kind] = list(result.rows)
        if record_live:
            ledgers[kind] = live.record_all(result.ledger, result.rows)
        records = []
        if backtest is not None:
            record, path = backtest
            records.append(record)
            if kind in globals_.same_days:  # auto compares models on the same days only
                backtests[kind] = record.frame
            if path is not None:
                records += path_records(kind, path, list(record.frame["date"]), horizon)
        records += live_records(kind, result.ledger, prices.index, horizon)
        rows += [score_row(item.symbol, r, serving=False) for r in records]
    return Lineup(rows, backtests, served, tuple(keys), ledgers)


def choose_served(lineup: Lineup, choice: str, fallback: str = LSTM) -> Selection:
    """The model whose forecast is served: ``lstm`` (default), a baseline by name, or
    ``auto`` (:func:`lstm_model.selection.select_model` on the same backtest days).
    ``fallback`` serves when the choice cannot: the LSTM, or naive for a history too short
    for one (:mod:`closecast.pipeline.short_history`)."""
    if choice == LSTM:
        return Selection(LSTM, "")
    if choice != "auto":
        if choice in lineup.served:
            return Selection(choice, f"serving {choice} as configured")
        return Selection(
            fallback,
            f"{choice} could not be fit or is not in the run's models; serving {fallback}",
        )
    tests = {
        kind: significance(frame["actual"], frame["predicted"], frame["naive"])
        for kind, frame in lineup.backtests.items()
    }
    candidates = {kind: result for kind, result in tests.items() if result is not None}
    if not candidates:
        return Selection(fallback, f"auto: no backtest to compare models on; serving {fallback}")
    selection = select_model(candidates)
    if selection.kind != LSTM and selection.kind not in lineup.served:
        return Selection(
            fallback, f"{selection.reason}; {selection.kind} unavailable, serving {fallback}"
        )
    return selection


def mark_serving(rows: list[ModelScoreRow], kind: str) -> list[ModelScoreRow]:
    return [replace(row, serving=row.model == kind) for row in rows]
