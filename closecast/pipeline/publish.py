"""The run's shared outputs: run-level tables, summary plot and manifest, per watchlist.

What a reader may rely on: a scope's manifest (``runs/run_date=D/watchlist=W/manifest.json``)
is withdrawn before a run of that scope writes anything and written last, after every object
it lists is stored; so a manifest that exists lists objects exactly as stored (sizes and
sha256 of the bytes the run wrote, or read, under the lease that kept other runs off them:
:class:`closecast.storage.recording.RecordingStorage`; what no task of the run wrote or read
is read back). Objects are immutable once listed, except by a later run of the
same scope, which withdraws the manifest first. Per-ticker state the run read or changed
(prices, ledger, champion pointer) is listed apart, as ``state``, with its digest at the time:
later runs change it by design.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from matplotlib.figure import Figure

from closecast.outputs import catalog
from closecast.outputs.artifacts import select_summary
from closecast.outputs.catalog import RunScope, RunTable
from closecast.outputs.plots import ScoreboardRow, plot_scoreboard
from closecast.outputs.records import MetricsRow, rows_to_table, table_to_rows
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.concurrent import concurrently
from closecast.storage.io import read_json, read_parquet, write_figure, write_json, write_parquet
from closecast.storage.recording import ObjectEntry, RecordingStorage


@dataclass(frozen=True)
class RunRows:
    """The rows a run publishes, per run-level table."""

    tables: dict[str, list[Any]]  # RunTable.name -> rows of its row type

    def of(self, table: RunTable) -> list[Any]:
        return self.tables.get(table.name, [])


@dataclass(frozen=True)
class RetiredEntry:
    """An object ``closecast gc`` removed from a scope, as the manifest listed it."""

    key: str
    size: int
    sha256: str
    retired_on: str  # ISO date of the collection


@dataclass(frozen=True)
class TickerStatus:
    """A ticker's outcome as a manifest records it."""

    status: str
    error: str | None = None


@dataclass(frozen=True)
class Manifest:
    """``runs/run_date=D/watchlist=W/manifest.json``: what a scope's run published.

    Attributes:
        run_date: The run date.
        watchlist: The watchlist the outputs are filed under.
        published_at: When the manifest was written (UTC, ISO 8601, seconds).
        parameters: The run's settings, whole (``RunSettings.recorded()``).
        run_tickers: The tickers this run forecast.
        tickers: Every ticker of the scope (a partial rerun keeps the others') and its status.
        objects: Every object of the scope, as stored (run outputs and model versions).
        state: Per-ticker state the runs read or changed, with its digest at the time.
        retired: Objects the scope once listed that retention has removed since.
    """

    run_date: date
    watchlist: str
    published_at: str
    parameters: dict[str, Any]
    run_tickers: tuple[str, ...]
    tickers: dict[str, TickerStatus]
    objects: tuple[ObjectEntry, ...]
    state: tuple[ObjectEntry, ...]
    retired: tuple[RetiredEntry, ...] = ()

    def listed(self) -> set[str]:
        """The keys of the objects the manifest lists."""
        return {entry.key for entry in self.objects}

    def retire(self, keys: set[str], on: date) -> Manifest:
        """This manifest with the objects ``keys`` moved from ``objects`` to ``retired``."""
        going = [entry for entry in self.objects if entry.key in keys]
        return replace(
            self,
            objects=tuple(entry for entry in self.objects if entry.key not in keys),
            retired=(
                *self.retired,
                *(RetiredEntry(**asdict(e), retired_on=on.isoformat()) for e in going),
            ),
        )

    def to_json(self) -> dict[str, Any]:
        """The manifest's JSON document."""
        return {
            "run_date": self.run_date.isoformat(),
            "watchlist": self.watchlist,
            "published_at": self.published_at,
            "parameters": self.parameters,
            "run_tickers": list(self.run_tickers),
            "tickers": {ticker: asdict(status) for ticker, status in self.tickers.items()},
            "objects": [asdict(entry) for entry in self.objects],
            "state": [asdict(entry) for entry in self.state],
            "retired": [asdict(entry) for entry in self.retired],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        """Read a manifest's JSON document.

        Raises:
            ValueError: A document that is not a manifest (a missing or mistyped field).
        """
        try:
            return cls(
                run_date=date.fromisoformat(data["run_date"]),
                watchlist=str(data["watchlist"]),
                published_at=str(data["published_at"]),
                parameters=dict(data.get("parameters") or {}),
                run_tickers=tuple(data.get("run_tickers") or ()),
                tickers={t: TickerStatus(**s) for t, s in (data.get("tickers") or {}).items()},
                objects=tuple(ObjectEntry(**entry) for entry in data.get("objects") or ()),
                state=tuple(ObjectEntry(**entry) for entry in data.get("state") or ()),
                retired=tuple(RetiredEntry(**entry) for entry in data.get("retired") or ()),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a manifest: {type(exc).__name__}: {exc}") from None


def read_manifest(storage: Storage, scope: RunScope) -> Manifest:
    """The scope's manifest.

    Raises:
        ObjectNotFoundError: The scope has none (being written, withdrawn, or never run).
        ValueError: It is not a readable manifest.
    """
    data = read_json(storage, catalog.MANIFEST.key(scope))
    if not isinstance(data, dict):
        raise ValueError(f"{catalog.MANIFEST.key(scope)}: not a manifest (a JSON object)")
    return Manifest.from_json(data)


def describe_object(storage: Storage, key: str) -> ObjectEntry:
    """Size and sha256 of an object as stored (read back, not as we meant to write it)."""
    return ObjectEntry.of(key, storage.read_bytes(key))


def _described(
    storage: RecordingStorage, keys: Iterable[str], known: Mapping[str, ObjectEntry | None]
) -> list[ObjectEntry]:
    """Each existing key described as stored: as recorded when the run wrote or read it
    (``known``: by the tickers' tasks; ``storage``: by this publication), else read back,
    concurrently. Absent keys are skipped."""

    def describe(key: str) -> ObjectEntry | None:
        if key in known:
            return known[key]
        if storage.knows(key):
            return storage.seen(key)
        try:
            return describe_object(storage, key)
        except ObjectNotFoundError:
            return None

    return [entry for entry in concurrently(describe, keys) if entry is not None]


def withdraw_manifest(storage: Storage, scope: RunScope) -> Manifest | None:
    """Remove the scope's manifest before a run rewrites any of its objects.

    Returns:
        The withdrawn manifest (None when there was none or it was unreadable), so the
        publication can carry over what it said of tickers this run leaves alone.
    """
    try:
        previous: Manifest | None = read_manifest(storage, scope)
    except ObjectNotFoundError:
        return None
    except ValueError:
        previous = None
    storage.delete(catalog.MANIFEST.key(scope))
    return previous


def _kept(ticker: str, run_tickers: set[str], members: set[str] | None) -> bool:
    """Whether a ticker's earlier rows of this scope survive this run."""
    return ticker not in run_tickers and (members is None or ticker in members)


def merge_rows(
    storage: Storage,
    table: RunTable,
    scope: RunScope,
    new_rows: Sequence[Any],
    run_tickers: set[str],
    members: set[str] | None,
) -> list[Any]:
    """This run's rows, plus the earlier rows of tickers the run left alone (a partial
    rerun), minus tickers that left the watchlist."""
    try:
        earlier = table_to_rows(read_parquet(storage, table.key(scope)), table.row_type)
    except ObjectNotFoundError:
        earlier = []
    kept = [row for row in earlier if _kept(row.ticker, run_tickers, members)]
    return [*new_rows, *kept]


def _remove_stale_objects(
    storage: Storage,
    scope: RunScope,
    keep: set[str],
    run_tickers: set[str],
    members: set[str] | None,
) -> None:
    """Delete per-ticker objects of this scope that this run replaced or dropped."""
    stale = [
        key
        for table in catalog.RUN_TABLES
        if table.per_ticker
        for key in storage.list_keys(table.prefix(scope))
        if key not in keep
        and (ticker := catalog.ticker_of_key(key)) is not None
        and not _kept(ticker, run_tickers, members)
    ]
    concurrently(storage.delete, stale)


def _carried_over(entries: Iterable[ObjectEntry], tickers: set[str]) -> list[ObjectEntry]:
    """Entries an earlier manifest recorded for tickers this run left alone, as they were
    then."""
    return [entry for entry in entries if catalog.ticker_of_key(entry.key) in tickers]


def publish_run(
    storage: Storage,
    scope: RunScope,
    rows: RunRows,
    ticker_keys: Iterable[str],
    state_keys: Iterable[str],
    *,
    run_tickers: Sequence[str],
    members: set[str] | None,
    previous: Manifest | None,
    parameters: dict[str, Any],
    known: Mapping[str, ObjectEntry | None] | None = None,
) -> Manifest:
    """Write the scope's run-level tables, summary plot and, last, its manifest.

    The manifest lists each object and state object with its size and sha256 as the run
    wrote or read it, under the lease that kept other runs off it (``known``, recorded by
    the tickers' tasks, and what this publication writes); only the others are read back.

    Args:
        storage: Where to publish.
        scope: The run date and watchlist.
        rows: This run's rows per run-level table.
        ticker_keys: Immutable objects the tickers wrote (run objects, model versions).
        state_keys: Per-ticker state the tickers read or changed.
        run_tickers: The tickers this run forecast.
        members: Every ticker of the watchlist (rows of others are dropped), or None for an
            ad-hoc scope whose rows accumulate.
        previous: The manifest withdrawn at the start of the run.
        parameters: The run's parameters, recorded in the manifest.
        known: Per key of ``ticker_keys`` and ``state_keys``, its entry as the tickers'
            tasks wrote or read it (None: no object there); keys not in it are read back.

    Returns:
        The manifest.
    """
    storage = RecordingStorage(storage)
    known = known or {}
    run_set = set(run_tickers)
    keys = list(dict.fromkeys(ticker_keys))

    def write_table(table: RunTable) -> list[Any]:  # each run table once per run
        merged = merge_rows(storage, table, scope, rows.of(table), run_set, members)
        write_parquet(storage, table.key(scope), rows_to_table(merged, table.row_type))
        return merged

    tables = catalog.RUN_PARQUET_TABLES
    merged = dict(zip([t.name for t in tables], concurrently(write_table, tables), strict=True))
    keys += [table.key(scope) for table in tables]

    metric_rows: list[MetricsRow] = merged[catalog.METRICS.name]
    summary_key = catalog.SUMMARY_PLOT.key(scope)
    write_figure(storage, summary_key, summary_figure(scope, metric_rows))
    keys.append(summary_key)

    _remove_stale_objects(storage, scope, set(keys), run_set, members)
    kept_tickers = {row.ticker for row in metric_rows} - run_set
    for table in catalog.RUN_TABLES:
        if table.per_ticker:
            keys += [
                k
                for k in storage.list_keys(table.prefix(scope))
                if catalog.ticker_of_key(k) in kept_tickers
            ]
    earlier_objects = previous.objects if previous else ()
    keys += [  # their model versions (their run objects were listed from storage above)
        entry.key
        for entry in _carried_over(earlier_objects, kept_tickers)
        if entry.key.startswith("models/")
    ]
    keys = list(dict.fromkeys(keys))
    manifest = Manifest(
        run_date=scope.run_date,
        watchlist=scope.watchlist,
        published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        parameters=parameters,
        run_tickers=tuple(run_tickers),
        tickers={row.ticker: TickerStatus(row.status, row.error) for row in metric_rows},
        objects=tuple(_described(storage, keys, known)),
        state=(
            *_described(storage, dict.fromkeys(state_keys), known),
            *_carried_over(previous.state if previous else (), kept_tickers),
        ),
        retired=tuple(  # what gc removed stays on record unless this run wrote it again
            entry for entry in (previous.retired if previous else ()) if entry.key not in keys
        ),
    )
    write_json(storage, catalog.MANIFEST.key(scope), manifest.to_json())
    return manifest


def verify_manifest(storage: Storage, scope: RunScope) -> list[str]:
    """Check a scope's manifest against storage: every listed object present, with the listed
    size and sha256. Returns the problems found (empty when the manifest is true or absent:
    a missing manifest means the scope is being (re)written or was never complete).
    """
    try:
        manifest = read_manifest(storage, scope)
    except ObjectNotFoundError:
        return []
    problems = []
    for listed in manifest.objects:
        try:
            actual = describe_object(storage, listed.key)
        except ObjectNotFoundError:
            problems.append(f"{listed.key}: listed but missing")
            continue
        if actual != listed:
            problems.append(f"{listed.key}: differs from the manifest (size or sha256)")
    return problems


SCOREBOARD_EXTREMES = 25
"""Beyond twice this many tickers, the summary plot shows the best and worst this many."""


def summary_figure(scope: RunScope, metric_rows: Sequence[MetricsRow]) -> Figure:
    """The all-ticker scoreboard; bounded at any watchlist size (a row per ticker up to
    ``2 * SCOREBOARD_EXTREMES``, then the best and worst by backtest U2; every ticker is in
    the metrics table)."""
    selection = select_summary(metric_rows, n=SCOREBOARD_EXTREMES, max_failed=0)
    title = f"{scope.watchlist}, {scope.run_date}: U2 (below 1 beats tomorrow = today)"
    if selection.not_listed:
        title += (
            f"; the {len(selection.best)} best and {len(selection.worst)} worst of "
            f"{len(selection.best) + len(selection.worst) + selection.not_listed} by backtest U2"
        )
    return plot_scoreboard(scoreboard_rows(selection.best + selection.worst), title=title)


def scoreboard_rows(metric_rows: Sequence[MetricsRow]) -> list[ScoreboardRow]:
    """What the summary plot shows per successful ticker: backtest and live U2 with their
    Diebold-Mariano intervals."""
    rows = []
    for r in metric_rows:
        if r.status != "ok" or r.backtest_u2 is None:
            continue
        rows.append(
            ScoreboardRow(
                ticker=r.ticker,
                backtest_u2=r.backtest_u2,
                backtest_u2_low=_or(r.backtest_u2_low, r.backtest_u2),
                backtest_u2_high=_or(r.backtest_u2_high, r.backtest_u2),
                backtest_p=r.backtest_dm_p,
                backtest_n=r.backtest_n or 0,
                live_u2=r.live_u2_lineage,
                live_u2_low=_or(r.live_u2_low_lineage, r.live_u2_lineage),
                live_u2_high=_or(r.live_u2_high_lineage, r.live_u2_lineage),
                live_p=r.live_dm_p_lineage,
                live_n=r.live_n_lineage or 0,
                coverage_80=r.backtest_coverage_80,
                coverage_95=r.backtest_coverage_95,
                live_coverage_80=r.live_coverage_80_lineage,
                live_coverage_95=r.live_coverage_95_lineage,
            )
        )
    return rows


def _or(value: float | None, default: float | None) -> float | None:
    """``value``, or ``default`` when the test had too few days for an interval."""
    return default if value is None else value
