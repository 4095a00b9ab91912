"""The live record: forecasts that runs served, scored once the prices they named are known.

Every run first scores what earlier runs served for dates whose prices are now in the
history, and only then trains on those days (predict, score, learn). The ledger keeps one row
per target date per ticker (``served/ticker=T/served.parquet``); a rerun that serves the same
target again replaces the unscored row. A scored row is never rewritten.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

import pandas as pd

from closecast.outputs import catalog
from closecast.outputs.records import LiveScoreRow, ServedRow, rows_to_table, table_to_rows
from closecast.pipeline.evaluation import LeakageError
from closecast.pipeline.fetch import MIN_REBASE_ROWS, REBASE_TOLERANCE
from closecast.storage import ObjectNotFoundError, Storage
from closecast.storage.io import read_parquet, write_parquet
from lstm_model import metrics


def coverage(actual, lower, upper) -> float | None:
    """Share of rows whose actual fell inside its interval; rows without one are skipped."""
    inside = [
        lo <= a <= hi
        for a, lo, hi in zip(actual, lower, upper, strict=True)
        if a is not None and lo is not None and hi is not None
    ]
    return sum(inside) / len(inside) if inside else None


LSTM = "lstm"
"""The per-ticker LSTM's model name: its ledger is the ticker's own live record."""

TRAILING_WINDOWS: tuple[int, ...] = (20, 60)
"""Trailing windows of the live record, in trading days of the ticker's own history."""


@dataclass(frozen=True)
class Ledger:
    """A ticker's served forecasts, ordered by target date."""

    rows: tuple[ServedRow, ...]
    warning: str | None = None  # set when an unreadable ledger was set aside

    def scored(self, lineage: str | None = None, step: int | None = 1) -> list[ServedRow]:
        """Scored rows, of one lineage (None: any) and one step ahead (None: every step)."""
        return [
            row
            for row in self.rows
            if row.actual is not None
            and (lineage is None or row.lineage == lineage)
            and (step is None or row.step == step)
        ]


def read_ledger(storage: Storage, ticker: str, model: str = "lstm") -> Ledger:
    """The ticker's ledger of ``model`` (empty when it has none); a line-up model's is read
    from the object every line-up model shares (:func:`read_lineup_ledgers`).

    An unreadable ledger is copied aside (``served.parquet.unreadable-N``) and replaced by an
    empty one with a warning: the live record restarts rather than blocking the ticker.
    """
    if model != LSTM:
        return read_lineup_ledgers(storage, ticker).of(model)
    rows, warning = _read_rows(storage, catalog.served_key(ticker, model))
    return Ledger(rows=_by_target(rows or []), warning=warning)


def _by_target(rows: Sequence[ServedRow]) -> tuple[ServedRow, ...]:
    return tuple(sorted(rows, key=lambda r: r.target_date))


def _read_rows(storage: Storage, key: str) -> tuple[list[ServedRow] | None, str | None]:
    """A ledger object's rows (None: no object), or, when it is unreadable, none and the
    warning saying where it was set aside."""
    try:
        return table_to_rows(read_parquet(storage, key), ServedRow), None
    except ObjectNotFoundError:
        return None, None
    except Exception as exc:  # a corrupt file: pyarrow raises several error types
        aside = _set_aside(storage, key)
        return [], (
            f"{key} was unreadable ({type(exc).__name__}); moved to {aside}, live record restarted"
        )


@dataclass(frozen=True)
class LineupLedgers:
    """Every line-up model's ledger of a ticker, as one object holds them
    (:func:`closecast.outputs.catalog.lineup_ledgers_key`).

    Attributes:
        by_model: The ledgers, by model name.
        warning: Set when the object was unreadable (set aside; the records restart).
    """

    by_model: Mapping[str, Ledger]
    warning: str | None = None

    def of(self, model: str) -> Ledger:
        """``model``'s ledger (empty when it has none)."""
        return self.by_model.get(model) or Ledger(rows=(), warning=self.warning)


def read_lineup_ledgers(storage: Storage, ticker: str) -> LineupLedgers:
    """Every line-up model's ledger of the ticker: one read. A store written before the
    ledgers were kept together has one object per model: when the shared one is absent,
    the ticker's ledgers are listed (one request) and any such object read into it (the
    next commit writes them together; the old objects are left as they were)."""
    key = catalog.lineup_ledgers_key(ticker)
    rows, warning = _read_rows(storage, key)
    if rows is None:
        rows = _legacy_rows(storage, ticker)
    by_model = {
        model: Ledger(rows=_by_target([r for r in rows if r.model == model]))
        for model in dict.fromkeys(row.model for row in rows)
    }
    return LineupLedgers(by_model, warning)


def _legacy_rows(storage: Storage, ticker: str) -> list[ServedRow]:
    keep = {catalog.served_key(ticker), catalog.lineup_ledgers_key(ticker)}
    rows: list[ServedRow] = []
    for key in storage.list_keys(catalog.served_prefix(ticker)):
        if key in keep or not key.endswith(".parquet"):
            continue
        found, _ = _read_rows(storage, key)
        rows += found or []
    return rows


def write_lineup_ledgers(storage: Storage, ticker: str, ledgers: Mapping[str, Ledger]) -> str:
    """Store every line-up model's ledger of the ticker as one object (replacing it whole:
    pass every model's, the ones left unchanged too)."""
    key = catalog.lineup_ledgers_key(ticker)
    rows = [row for model in sorted(ledgers) for row in ledgers[model].rows]
    write_parquet(storage, key, rows_to_table(rows, ServedRow))
    return key


def _set_aside(storage: Storage, key: str) -> str:
    n = 1
    while storage.exists(f"{key}.unreadable-{n}"):
        n += 1
    aside = f"{key}.unreadable-{n}"
    storage.write_bytes(aside, storage.read_bytes(key))
    return aside


def write_ledger(storage: Storage, ticker: str, ledger: Ledger, model: str = "lstm") -> str:
    """Store the ticker's ledger of ``model``; a line-up model's replaces its rows in the
    object every line-up model shares (read, then written)."""
    if model != LSTM:
        ledgers = read_lineup_ledgers(storage, ticker).by_model
        return write_lineup_ledgers(storage, ticker, {**ledgers, model: ledger})
    key = catalog.served_key(ticker, model)
    write_parquet(storage, key, rows_to_table(ledger.rows, ServedRow))
    return key


def check_served_before_target(row: ServedRow) -> None:
    """The leakage guard of the live record: a served forecast is scored only on a date
    after every price its model trained on.

    Raises:
        LeakageError: The serving model was trained through the target date or later.
    """
    if row.trained_through >= row.target_date or row.data_end >= row.target_date:
        raise LeakageError(
            f"{row.ticker}: forecast for {row.target_date} came from model "
            f"{row.model_version} trained through {row.trained_through} (data to "
            f"{row.data_end}); it cannot be scored on {row.target_date}"
        )


PRICE_FIELDS: tuple[str, ...] = (
    *("forecast", "naive", "actual"),
    *("lower_80", "upper_80", "lower_95", "upper_95"),
)
"""The fields of a served row that are prices (and move with a re-basing of the history)."""


def _basis_ratios(ledger: Ledger, prices: pd.Series) -> dict[date, float]:
    """Per data end: the current price there over the naive price the row was served with
    (1 when the history was not re-based since; absent when that day has no price now)."""
    if prices.empty:
        return {}
    ends = sorted({row.data_end for row in ledger.rows})
    now = prices.reindex(pd.DatetimeIndex(ends))
    naive = {row.data_end: row.naive for row in ledger.rows}
    return {
        end: float(value) / naive[end]
        for end, value in zip(ends, now.to_numpy(dtype="float64"), strict=True)
        if pd.notna(value) and naive[end] > 0
    }


def _same(a: float, b: float) -> bool:
    return abs(a / b - 1.0) <= REBASE_TOLERANCE


def align_basis(ledger: Ledger, prices: pd.Series, known_factor: float | None = None) -> Ledger:
    """Put every served row on the current basis of the price history.

    A row's ``naive`` is the price on its ``data_end`` as stored when it was served. When
    the source has since re-based the history (a split, a dividend in ``adj_close``), the
    stored price there now differs from it by the re-basing factor, and every price of the
    row (forecast, naive, intervals, and the actual once scored) is multiplied by that
    factor, so a forecast made before a 4:1 split is scored against the re-based actual on
    one basis. ``basis_factor`` accumulates what was applied (``forecast / basis_factor``
    is what was served).

    Like :func:`closecast.pipeline.fetch.detect_rebase`, a factor counts as a re-basing
    only when at least :data:`~closecast.pipeline.fetch.MIN_REBASE_ROWS` data ends share it,
    or when it is the factor this run's fetch detected (``known_factor``): a single revised
    bar is a revision of that day, and the forecast served from it stays as served. The
    comparison is with the store itself, so the alignment is idempotent and also repairs a
    ledger that a run killed after re-basing the store left behind.

    Args:
        ledger: A model's ledger.
        prices: The ticker's history on its current basis (date-indexed).
        known_factor: The re-basing factor this run's fetch detected, if any.

    Returns:
        The ledger on the current basis; what was re-based is added to its ``warning``
        (which the metrics row carries).
    """
    ratios = _basis_ratios(ledger, prices)
    off = {end: r for end, r in ratios.items() if not _same(r, 1.0)}
    factors: dict[date, float] = {}
    for end, ratio in off.items():
        sharing = sum(_same(other, ratio) for other in off.values())
        if sharing >= MIN_REBASE_ROWS or (known_factor is not None and _same(ratio, known_factor)):
            factors[end] = ratio
    if not factors:
        return ledger
    rows = []
    for row in ledger.rows:
        factor = factors.get(row.data_end)
        if factor is not None:
            scaled = {
                name: None if getattr(row, name) is None else getattr(row, name) * factor
                for name in PRICE_FIELDS
            }
            row = dataclasses.replace(row, **scaled, basis_factor=row.basis_factor * factor)
        rows.append(row)
    ends = sorted(factors)
    distinct: list[float] = []
    for end in ends:
        if not any(_same(factors[end], seen) for seen in distinct):
            distinct.append(factors[end])
    first = ledger.rows[0]
    note = (
        f"{first.ticker}: {sum(row.data_end in factors for row in ledger.rows)} served "
        f"{first.model} forecast(s) made on data ending {ends[0]}..{ends[-1]} re-based "
        + ", ".join(f"x{f:.6g}" for f in distinct)
        + " to the history's current basis"
    )
    warning = "; ".join(filter(None, [ledger.warning, note]))
    return dataclasses.replace(ledger, rows=tuple(rows), warning=warning)


BACKTEST_PRICE_COLUMNS: tuple[str, ...] = (
    *("actual", "predicted", "naive"),
    *("lower_80", "upper_80", "lower_95", "upper_95"),
)
"""The price columns of a stored backtest (one-step or multi-step path)."""


def backtest_basis_factor(backtest: pd.DataFrame, prices: pd.Series) -> float | None:
    """The factor by which the history was re-based since ``backtest`` was stored, or None.

    A lineage's backtest (``models/T/<lineage>/backtest.parquet``) is a model version's
    file, never rewritten, so it keeps the basis it was made on. When the stored price of
    its days now differs from its ``actual`` by one factor on at least
    :data:`~closecast.pipeline.fetch.MIN_REBASE_ROWS` days and half of them (as in
    :func:`align_basis`: a single revised bar is a revision, not a re-basing), that is the
    factor the backtest is read with (:func:`align_backtest`).
    """
    if backtest is None or backtest.empty or prices.empty:
        return None
    now = prices.reindex(pd.DatetimeIndex(pd.to_datetime(backtest["date"])))
    ratios = [
        float(current) / float(then)
        for current, then in zip(
            now.to_numpy(dtype="float64"), backtest["actual"].to_numpy(dtype="float64"), strict=True
        )
        if pd.notna(current) and pd.notna(then) and then > 0
    ]
    off = sorted(r for r in ratios if not _same(r, 1.0))
    if not off:
        return None
    factor = off[len(off) // 2]
    sharing = sum(_same(r, factor) for r in off)
    return factor if sharing >= max(MIN_REBASE_ROWS, len(ratios) / 2) else None


def align_backtest(frame: pd.DataFrame | None, factor: float | None) -> pd.DataFrame | None:
    """``frame`` (a backtest, one-step or multi-step) with its prices multiplied by
    ``factor`` (:func:`backtest_basis_factor`); unchanged when there is none."""
    if frame is None or factor is None:
        return frame
    out = frame.copy()
    for column in BACKTEST_PRICE_COLUMNS:
        if column in out.columns:
            out[column] = out[column] * factor
    return out


def score_served(ledger: Ledger, prices: pd.Series, run_date: date) -> tuple[Ledger, int]:
    """Fill in the actual price of every served forecast whose target date is now known.

    Args:
        ledger: The ticker's ledger.
        prices: The ticker's validated history through the run date (date-indexed).
        run_date: This run's date, recorded as ``scored_on``.

    Returns:
        The updated ledger and how many served forecasts this call scored. A target date with
        no price although later prices exist (the market did not trade) is closed unscored.

    Raises:
        LeakageError: A served forecast came from a model trained on its own target date.
    """
    if prices.empty:
        return ledger, 0
    last = prices.index[-1].date()
    pending = [row.target_date for row in ledger.rows if row.scored_on is None]
    found = prices.reindex(pd.DatetimeIndex(pending)).dropna() if pending else prices.iloc[:0]
    by_date = {ts.date(): float(value) for ts, value in found.items()}
    scored = 0
    rows = []
    for row in ledger.rows:
        if row.scored_on is None and row.target_date <= last:
            check_served_before_target(row)
            actual = by_date.get(row.target_date)
            row = dataclasses.replace(row, actual=actual, scored_on=run_date)
            scored += actual is not None
        rows.append(row)
    return dataclasses.replace(ledger, rows=tuple(rows)), scored


def record_served(ledger: Ledger, served: ServedRow) -> Ledger:
    """Add a served forecast, replacing an unscored one for the same target date and step.

    Raises:
        ValueError: The target date was already scored (a run dated after it served it).
    """
    kept = []
    for row in ledger.rows:
        if (row.target_date, row.step) == (served.target_date, served.step):
            if row.scored_on is not None:
                raise ValueError(
                    f"{served.ticker}: the forecast for {served.target_date} was already "
                    f"scored on {row.scored_on}; a run as of {served.served_on} cannot serve it"
                )
            continue
        kept.append(row)
    kept.append(served)
    return dataclasses.replace(
        ledger, rows=tuple(sorted(kept, key=lambda r: (r.target_date, r.step)))
    )


def record_all(ledger: Ledger, served: Sequence[ServedRow]) -> Ledger:
    """:func:`record_served` for each of ``served`` (one run's forecasts, one per step)."""
    for row in served:
        ledger = record_served(ledger, row)
    return ledger


@dataclass(frozen=True)
class LiveStats:
    """Scores of a set of scored served forecasts."""

    n: int
    first: date | None = None
    last: date | None = None
    rmse: float | None = None
    naive_rmse: float | None = None
    u2: float | None = None
    mae: float | None = None
    directional_accuracy: float | None = None


def live_stats(rows: Sequence[ServedRow]) -> LiveStats:
    """RMSE, naive RMSE, U2, MAE and directional accuracy of scored served forecasts."""
    rows = [row for row in rows if row.actual is not None]
    if not rows:
        return LiveStats(n=0)
    scores = metrics.summarize(
        [r.actual for r in rows], [r.forecast for r in rows], [r.naive for r in rows]
    )
    return LiveStats(
        n=len(rows),
        first=rows[0].target_date,
        last=rows[-1].target_date,
        rmse=scores.rmse,
        naive_rmse=scores.naive_rmse,
        u2=scores.u2,
        mae=scores.mae,
        directional_accuracy=scores.directional_accuracy,
    )


def window_rows(
    ledger: Ledger, price_dates: pd.DatetimeIndex, window: int, step: int = 1
) -> list[ServedRow]:
    """Scored ``step``-ahead rows whose target date is among the last ``window`` dates of
    the history."""
    if len(price_dates) == 0:
        return []
    since = price_dates[-min(window, len(price_dates))].date()
    return [row for row in ledger.scored(step=step) if row.target_date >= since]


def live_score_rows(
    ledger: Ledger,
    *,
    ticker: str,
    price_dates: pd.DatetimeIndex,
    lineage: str,
    backtest_u2: float | None,
    horizon: int = 1,
) -> list[LiveScoreRow]:
    """The published live record of one ticker: trailing windows and the serving lineage,
    per step ahead up to ``horizon`` (each step scored against its own naive forecast, the
    last price known when it was made)."""
    rows = []
    for step in range(1, horizon + 1):
        rows += _live_score_rows(ledger, ticker, price_dates, lineage, backtest_u2, step)
    return rows


def _live_score_rows(
    ledger: Ledger,
    ticker: str,
    price_dates: pd.DatetimeIndex,
    lineage: str,
    backtest_u2: float | None,
    step: int,
) -> list[LiveScoreRow]:
    selections = {f"{w}d": window_rows(ledger, price_dates, w, step) for w in TRAILING_WINDOWS}
    selections["lineage"] = ledger.scored(lineage, step)
    rows = []
    for window, selected in selections.items():
        stats = live_stats(selected)
        coverage_80 = coverage(
            [r.actual for r in selected],
            [r.lower_80 for r in selected],
            [r.upper_80 for r in selected],
        )
        coverage_95 = coverage(
            [r.actual for r in selected],
            [r.lower_95 for r in selected],
            [r.upper_95 for r in selected],
        )
        rows.append(
            LiveScoreRow(
                ticker=ticker,
                window=window,
                lineage=lineage,
                first_target=stats.first,
                last_target=stats.last,
                n_scored=stats.n,
                rmse=stats.rmse,
                naive_rmse=stats.naive_rmse,
                u2=stats.u2,
                mae=stats.mae,
                directional_accuracy=stats.directional_accuracy,
                backtest_u2=backtest_u2 if step == 1 else None,
                coverage_80=coverage_80,
                coverage_95=coverage_95,
                step=step,
            )
        )
    return rows


def served_frame(ledger: Ledger) -> pd.DataFrame:
    """Every served forecast as ``target_date, actual, forecast, naive`` (actual NaN while
    pending), for plots."""
    rows = [row for row in ledger.rows if row.step == 1]
    nan = float("nan")
    frame = pd.DataFrame(
        {
            "target_date": pd.to_datetime([r.target_date for r in rows]),
            "actual": [nan if r.actual is None else r.actual for r in rows],
            "forecast": [r.forecast for r in rows],
            "naive": [r.naive for r in rows],
        }
    )
    for column in ("lower_80", "upper_80", "lower_95", "upper_95"):
        values = [getattr(r, column) for r in rows]
        if any(v is not None for v in values):
            frame[column] = [nan if v is None else v for v in values]
    return frame
