"""Per-ticker plots are optional at scale: a run of more tickers than ``ticker_plots``
draws none (drawing one costs about 0.2 s, the largest share of a warm day at 500 tickers),
while the summary plot always renders and the manifest stays true."""

from __future__ import annotations

import json
from datetime import date

import pytest

from closecast.outputs import catalog
from closecast.outputs.catalog import RunScope
from closecast.pipeline.settings import RunSettings
from closecast.storage import open_storage
from flows.daily_forecast import daily_forecast

DAY = date(2020, 12, 11)
TICKERS = ["QQQ", "GOOG"]
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"


def _run(root: str, **settings):
    return daily_forecast(
        RunSettings(
            tickers=TICKERS, source="sample", storage=root, as_of=DAY, preset="fast", epochs=1,
            models=MODELS, **settings,
        ),
        return_state=True,
    )  # fmt: skip


def _listed(storage, scope: RunScope) -> set[str]:
    manifest = json.loads(storage.read_bytes(catalog.MANIFEST.key(scope)))
    for obj in manifest["objects"]:
        assert storage.exists(obj["key"]), obj["key"]
    return {obj["key"] for obj in manifest["objects"]}


@pytest.mark.usefixtures("prefect_harness")
def test_a_run_larger_than_ticker_plots_draws_only_the_summary(tmp_path) -> None:
    root = str(tmp_path)
    storage = open_storage(root)
    scope = RunScope(DAY, "adhoc")
    plots = {catalog.TICKER_PLOTS.key(scope, t) for t in TICKERS}

    assert _run(root).is_completed()  # 2 tickers <= 50: every plot
    assert plots <= set(storage.list_keys(catalog.TICKER_PLOTS.prefix(scope)))
    assert plots <= _listed(storage, scope)

    assert _run(root, ticker_plots=1).is_completed()  # 2 tickers > 1: no ticker plot
    left = set(storage.list_keys(catalog.TICKER_PLOTS.prefix(scope)))
    assert left == {catalog.SUMMARY_PLOT.key(scope)}  # the rerun removed the old ones
    listed = _listed(storage, scope)
    assert not plots & listed and catalog.SUMMARY_PLOT.key(scope) in listed
    for ticker in TICKERS:  # everything else is still published
        assert catalog.PREDICTIONS.key(scope, ticker) in listed
