"""Where every output lives under the storage root (Hive-style partitions)."""

from __future__ import annotations

from datetime import date

from closecast.price_store import prices_key

__all__ = ["prices_key"]


def predictions_key(run_date: date, ticker: str) -> str:
    return f"predictions/run_date={run_date.isoformat()}/ticker={ticker}/predictions.parquet"


def metrics_key(run_date: date) -> str:
    return f"metrics/run_date={run_date.isoformat()}/metrics.parquet"


def forecasts_key(run_date: date) -> str:
    return f"forecasts/run_date={run_date.isoformat()}/forecasts.parquet"


def ticker_plot_key(run_date: date, ticker: str) -> str:
    return f"plots/run_date={run_date.isoformat()}/{ticker}.png"


def summary_plot_key(run_date: date) -> str:
    return f"plots/run_date={run_date.isoformat()}/summary.png"


def manifest_key(run_date: date) -> str:
    return f"runs/run_date={run_date.isoformat()}/manifest.json"


def model_prefix(ticker: str, version: str) -> str:
    return f"models/{ticker}/{version}"


def champion_key(ticker: str) -> str:
    return f"models/{ticker}/champion.json"


def run_partitions(run_date: date) -> list[str]:
    """Prefixes that hold one run date's outputs (replaced whole on a rerun of that date)."""
    part = f"run_date={run_date.isoformat()}/"
    return [f"{table}/{part}" for table in ("predictions", "metrics", "forecasts", "plots", "runs")]
