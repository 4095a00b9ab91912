"""A ticker with a short history (a recent listing) is served by the best baseline with
intervals up to the LSTM's minimum, a listing too young to test any model by naive; then the
LSTM takes over through the normal retrain path. A real run of the flow on a csv:DIR source,
then the day the LSTM takes over through the per-ticker pipeline of a flow run, in-process (a
flow run costs about 2 CPU-s more, for nothing that day's checks read)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pytest

from closecast.inputs.watchlist import WatchItem
from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline import live
from closecast.pipeline.fetch import fetch_and_store
from closecast.pipeline.lineup import BASELINE_KINDS
from closecast.pipeline.settings import RunSettings
from closecast.pipeline.ticker import forecast_tickers
from closecast.sources import get_source
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast
from lstm_model.config import get_preset
from lstm_model.data import minimum_history

SAMPLE_GOOG = Path(__file__).parents[2] / "closecast" / "sample_data" / "GOOG.csv"
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"


def listing(directory: Path, name: str, rows: int) -> list[str]:
    """``name``.csv: GOOG's last ``rows`` rows, as if it had listed then; returns the dates."""
    header, *lines = SAMPLE_GOOG.read_text().strip().splitlines()
    directory.mkdir(exist_ok=True)
    (directory / f"{name}.csv").write_text("\n".join([header, *lines[-rows:]]) + "\n")
    return [line.split(",")[0] for line in lines[-rows:]]


def metrics(root: str, day: str) -> pd.DataFrame:
    key = catalog.METRICS.key(RunScope(pd.Timestamp(day).date(), "adhoc"))
    return pd.read_parquet(Path(root) / key).set_index("ticker")


@pytest.mark.usefixtures("prefect_harness")
def test_a_short_history_is_served_by_a_baseline_until_the_lstm_can_take_over(tmp_path) -> None:
    need, _ = minimum_history(get_preset("fast").look_back, get_preset("fast").test_size)
    assert need > 70  # fast: 10 + 20 windows + 50 test = 80
    root, exports = str(tmp_path / "store"), tmp_path / "exports"
    dates = listing(exports, "NEW", need + 5)
    listing(exports, "TINY", need + 5 - 67)  # 3 days old on the first day, 18 on the second
    short_day, long_day = dates[69], dates[-1]  # NEW: 70 rows, then need + 5

    common = dict(source=f"csv:{exports}", storage=root, preset="fast", epochs=1, models=MODELS)
    first = RunSettings(tickers=["NEW", "TINY"], as_of=short_day, **common)
    state = daily_forecast(first, return_state=True)
    assert state.is_completed(), state.message
    rows = metrics(root, short_day)
    tiny = rows.loc["TINY"]
    assert (tiny["status"], tiny["mode"], tiny["served_model"]) == ("ok", "baseline", "naive")
    assert tiny["mode_reason"] == (
        f"history 3 days: LSTM needs {need} (look-back 10 + 20 training windows + test 50); "
        "serving naive (too short a history to test any model)"
    )
    assert pd.isna(tiny["backtest_n"])
    forecasts = pd.read_parquet(
        Path(root) / catalog.FORECASTS.key(RunScope(pd.Timestamp(short_day).date(), "adhoc"))
    ).set_index("ticker")
    # Tomorrow = today, without intervals: no residual to calibrate them on yet.
    assert forecasts.loc["TINY", "forecast"] == forecasts.loc["TINY", "naive"]
    assert forecasts.loc["TINY", ["lower_80", "upper_80", "lower_95", "upper_95"]].isna().all()
    new = rows.loc["NEW"]
    assert (new["status"], new["mode"]) == ("ok", "baseline")
    assert new["served_model"] in BASELINE_KINDS
    assert new["mode_reason"].startswith(
        f"history 70 days: LSTM needs {need} (look-back 10 + 20 training windows + test 50); "
        f"serving {new['served_model']}"
    )
    assert new["backtest_n"] == 35  # scored on its second half, fit on its first
    forecast = forecasts.loc["NEW"]
    assert forecast["model"] == new["served_model"]
    assert forecast["lower_95"] < forecast["lower_80"] < forecast["upper_80"] < forecast["upper_95"]
    assert not (Path(root) / catalog.champion_key("NEW")).exists()

    # History accrued: the LSTM is trained (no champion yet) and serves; TINY's untested
    # forecast of the first day is scored, and 18 days let its baselines be tested.
    later = RunSettings(tickers=["NEW", "TINY"], as_of=pd.Timestamp(long_day).date(), **common)
    items = [WatchItem("NEW", "stock"), WatchItem("TINY", "stock")]
    storage, source = open_storage(root), get_source(later.source)
    fetched = {i.symbol: fetch_and_store(i, later.as_of, storage, source) for i in items}
    outcomes = forecast_tickers(
        items, RunScope(later.as_of, "adhoc"), later, fetched, draw_plots=False
    )
    new, tiny = (pd.Series(asdict(outcome.metrics)) for outcome in outcomes)
    assert new["status"] == "ok", new["error"]
    assert (new["mode"], new["served_model"], new["lineage"]) == ("retrain", "lstm", "v0001")
    assert "no champion" in new["mode_reason"]
    assert (tiny["status"], tiny["mode"]) == ("ok", "baseline"), tiny["error"]
    assert tiny["mode_reason"].startswith("history 18 days:")
    assert tiny["backtest_n"] == 9
    (first,) = [
        row
        for row in live.read_lineup_ledgers(storage, "TINY").of("naive").rows
        if row.served_on == pd.Timestamp(short_day).date()
    ]
    prices = pd.read_csv(exports / "TINY.csv", index_col="Date")["Adj Close"]
    assert first.forecast == first.naive == prices[short_day]
    assert first.actual == prices[dates[70]]
