"""Every table and object closecast stores, and where (the one place that builds keys).

Two kinds of state live under a storage root:

* **Per-ticker state**, shared by every deployment that forecasts the ticker: the price
  history, the served-forecast ledger (the live record) and the model registry.
* **Run outputs**, one set per run date *and watchlist* (``run_date=D/watchlist=W``), so
  deployments of different watchlists on one storage never touch each other's outputs. Each
  run table is a Hive-partitioned dataset: pyarrow and DuckDB read ``metrics/`` as one table
  with ``run_date`` and ``watchlist`` columns.

A run output that is not listed in :data:`RUN_TABLES` cannot be written through this module,
so stale-object clean-up on reruns (which walks :data:`RUN_TABLES`) can never miss one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from closecast.outputs.records import (
    FinetuneScoreRow,
    ForecastRow,
    LiveScoreRow,
    MetricsRow,
    ModelScoreRow,
    PredictionRow,
)

_WATCHLIST_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_TICKER_PART = re.compile(r"(?:^|/)ticker=([^/]+)/")
_VERSION = re.compile(r"^v(\d{4,})$")

DEFAULT_WATCHLIST_NAME = "default"
ADHOC_WATCHLIST_NAME = "adhoc"


class CatalogError(ValueError):
    """A name that cannot be part of a storage key."""


def check_watchlist_name(name: str) -> str:
    """A watchlist name as used in keys: lowercase letters, digits, ``-`` and ``_``.

    Raises:
        CatalogError: The name has other characters (the message shows the rule).
    """
    if not isinstance(name, str) or not _WATCHLIST_NAME.match(name):
        raise CatalogError(
            f"watchlist name {name!r} must be 1-63 lowercase letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name


@dataclass(frozen=True)
class RunScope:
    """The outputs of one run date of one watchlist."""

    run_date: date
    watchlist: str

    def __post_init__(self) -> None:
        check_watchlist_name(self.watchlist)

    @property
    def partition(self) -> str:
        return f"run_date={self.run_date.isoformat()}/watchlist={self.watchlist}"

    @property
    def label(self) -> str:
        """How runs and artifacts of this scope are named: ``<date>-<watchlist>``."""
        return f"{self.run_date.isoformat()}-{self.watchlist}"


@dataclass(frozen=True)
class RunTable:
    """A run output: one object per scope, or (``per_ticker``) one per ticker of the scope."""

    name: str
    filename: str
    per_ticker: bool
    row_type: type | None = None  # the typed row of a Parquet table; None for other objects

    def prefix(self, scope: RunScope) -> str:
        return f"{self.name}/{scope.partition}/"

    def key(self, scope: RunScope, ticker: str | None = None) -> str:
        if self.per_ticker != (ticker is not None):
            wanted = "a ticker" if self.per_ticker else "no ticker"
            raise ValueError(f"{self.name}/{self.filename} takes {wanted}")
        if ticker is None:
            return f"{self.prefix(scope)}{self.filename}"
        return f"{self.prefix(scope)}ticker={ticker}/{self.filename}"


METRICS = RunTable("metrics", "metrics.parquet", per_ticker=False, row_type=MetricsRow)
FORECASTS = RunTable("forecasts", "forecasts.parquet", per_ticker=False, row_type=ForecastRow)
LIVE_SCORES = RunTable(
    "live_scores", "live_scores.parquet", per_ticker=False, row_type=LiveScoreRow
)
MODEL_SCORES = RunTable(
    "model_scores", "model_scores.parquet", per_ticker=False, row_type=ModelScoreRow
)
FINETUNE_SCORES = RunTable(
    "finetune_scores", "finetune_scores.parquet", per_ticker=False, row_type=FinetuneScoreRow
)
PREDICTIONS = RunTable(
    "predictions", "predictions.parquet", per_ticker=True, row_type=PredictionRow
)
TICKER_PLOTS = RunTable("plots", "forecast.png", per_ticker=True)
SUMMARY_PLOT = RunTable("plots", "summary.png", per_ticker=False)
MANIFEST = RunTable("runs", "manifest.json", per_ticker=False)

RUN_TABLES: tuple[RunTable, ...] = (
    METRICS,
    FORECASTS,
    LIVE_SCORES,
    MODEL_SCORES,
    FINETUNE_SCORES,
    PREDICTIONS,
    TICKER_PLOTS,
    SUMMARY_PLOT,
    MANIFEST,
)
"""Every run output. The manifest is written last and withdrawn first."""

RUN_PARQUET_TABLES: tuple[RunTable, ...] = (
    METRICS,
    FORECASTS,
    LIVE_SCORES,
    MODEL_SCORES,
    FINETUNE_SCORES,
)
"""The run-level tables holding one row (or a few) per ticker, merged per ticker on reruns."""


def run_prefixes(scope: RunScope) -> list[str]:
    """Every prefix that holds this scope's outputs (derived from :data:`RUN_TABLES`)."""
    return sorted({table.prefix(scope) for table in RUN_TABLES})


def ticker_of_key(key: str) -> str | None:
    """The ticker a key belongs to (its ``ticker=`` partition, or ``models/<T>/``), else None."""
    match = _TICKER_PART.search(key)
    if match:
        return match.group(1)
    parts = key.split("/")
    return parts[1] if parts[0] == "models" and len(parts) > 2 else None


# --- Per-ticker state -------------------------------------------------------------------


def prices_key(ticker: str) -> str:
    """The ticker's validated price history (one Parquet file, merged on every fetch)."""
    return f"prices/ticker={ticker}/prices.parquet"


def served_prefix(ticker: str) -> str:
    """Where the ticker's ledgers are: the LSTM's and the line-up's."""
    return f"served/ticker={ticker}/"


LINEUP_LEDGERS = "lineup_ledgers"
"""The name of the object holding every line-up model's ledger (all but the LSTM's)."""


def served_key(ticker: str, model: str = "lstm") -> str:
    """The object holding the ticker's ledger of served forecasts of one model (rows of
    :class:`ServedRow`): the LSTM's (it serves the forecasts table) is ``served.parquet``;
    every other model's (baselines, global models) share ``lineup_ledgers.parquet``, told
    apart by their ``model`` column, so a run reads and writes two ledger objects per
    ticker, not one per model (stores from before kept ``<model>.parquet``: read into it
    once, :func:`closecast.pipeline.live.read_lineup_ledgers`)."""
    if model != "lstm":
        return lineup_ledgers_key(ticker)
    return f"{served_prefix(ticker)}served.parquet"


def lineup_ledgers_key(ticker: str) -> str:
    """The object holding every line-up model's ledger of the ticker (all but the LSTM's)."""
    return f"{served_prefix(ticker)}{LINEUP_LEDGERS}.parquet"


def ticker_lease_key(ticker: str) -> str:
    """The lease held while a run fetches or models the ticker (``closecast.control.locks``)."""
    return f"leases/ticker={ticker}.json"


def scope_lease_key(scope: RunScope) -> str:
    """The lease held for a whole run of one date and watchlist."""
    return f"leases/{scope.partition}.json"


def models_prefix(ticker: str) -> str:
    return f"models/{ticker}/"


def model_prefix(ticker: str, version: str) -> str:
    return f"models/{ticker}/{version}"


def backtest_key(ticker: str, version: str) -> str:
    """The hold-out predictions of the backtest that a retrained version was chosen by."""
    return f"{model_prefix(ticker, version)}/backtest.parquet"


def lineup_backtest_key(ticker: str, lineage: str) -> str:
    """The baselines' backtests on a lineage's hold-out days, kept beside the lineage's own
    (computed once per lineage, not every run)."""
    return f"{model_prefix(ticker, lineage)}/lineup.parquet"


def lineup_global_backtest_key(ticker: str, lineage: str, global_lineages: str) -> str:
    """The global models' backtests on a lineage's hold-out days, kept beside the lineage's
    own: one object per combination of the global models' lineages (``global_lineages``, a
    short digest of them), so that a global retrain starts a new one and none is rewritten."""
    return f"{model_prefix(ticker, lineage)}/lineup-global-{global_lineages}.parquet"


def backtest_path_key(ticker: str, version: str) -> str:
    """The multi-step hold-out forecasts (long form: origin, step, date, ...) of a retrain."""
    return f"{model_prefix(ticker, version)}/backtest_path.parquet"


def champion_key(ticker: str) -> str:
    """The pointer to the version serving the ticker's forecasts."""
    return f"models/{ticker}/champion.json"


def version_number(name: str) -> int | None:
    """``12`` for ``v0012``; None for anything that is not a version name."""
    match = _VERSION.match(name)
    return int(match.group(1)) if match else None


def version_name(number: int) -> str:
    return f"v{number:04d}"


# --- Global models: one champion per watchlist and model ----------------------------------

GLOBAL_MODELS_DIR = "_global"
"""The folder under ``models/`` holding global models (no ticker symbol starts with ``_``)."""


def global_models_prefix(watchlist: str, kind: str) -> str:
    """Every version of one global model of a watchlist: ``models/_global/<W>/<kind>/``."""
    return f"models/{GLOBAL_MODELS_DIR}/{check_watchlist_name(watchlist)}/{kind}/"


def global_model_prefix(watchlist: str, kind: str, version: str) -> str:
    """One stored version of a watchlist's global model (its serving model under ``model/``
    and, for the version that started a lineage, its backtest model under ``backtest/``)."""
    return f"{global_models_prefix(watchlist, kind)}{version}"


def global_champion_key(watchlist: str, kind: str) -> str:
    """The pointer to the version of a watchlist's global model that serves."""
    return f"{global_models_prefix(watchlist, kind)}champion.json"


def global_lease_key(watchlist: str) -> str:
    """The lease held while a run fits a watchlist's global models (runs of other dates of
    the same watchlist would otherwise race on the champion pointer)."""
    return f"leases/global/watchlist={check_watchlist_name(watchlist)}.json"
