"""The run summary stays bounded at any watchlist size: Prefect refuses an artifact event
over PREFECT_EVENTS_MAXIMUM_SIZE_BYTES (a 500-ticker summary of every row and plot was
1.5 MB), so past twice SUMMARY_EXTREMES tickers the summary, the table artifact and the
summary plot list the best and worst tickers and the failed ones, and link the full table."""

from __future__ import annotations

import json
from datetime import date

import pytest
from matplotlib.figure import Figure

from closecast.outputs.artifacts import (
    MAX_LISTED_FAILURES,
    SUMMARY_EXTREMES,
    UiPlot,
    inline_png,
    select_summary,
    summary_markdown,
    table_artifact_rows,
)
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow
from closecast.pipeline.publish import SCOREBOARD_EXTREMES, summary_figure
from closecast.storage import open_storage
from closecast.storage.io import write_figure

SCOPE = RunScope(date(2020, 12, 14), "big")


def _rows(n_ok: int, n_failed: int = 0) -> list[MetricsRow]:
    """Succeeded tickers with distinct U2s in a shuffled order, then failed ones, each row
    as full as the pipeline writes them (long reasons, every score)."""
    rows = []
    for i in range(n_ok):
        u2 = 0.5 + ((i * 7919) % n_ok) / n_ok  # a permutation of 0.5 .. 1.5
        rows.append(
            MetricsRow(
                ticker=f"T{i:05d}",
                asset_class="stock",
                status="ok",
                mode="finetune",
                mode_reason="lineage v0001 retrained 3 days ago; live U2 0.98 over 25 "
                "served vs backtest 0.97; champion v0004 fine-tuned on 1 unseen day(s)",
                backtest_u2=u2,
                backtest_dm_p=0.01 if u2 < 0.8 else 0.5,
                live_u2_lineage=u2 + 0.01,
                live_dm_p_lineage=0.3,
                live_n_lineage=25,
                live_u2_20d=u2,
            )
        )
    rows += [
        MetricsRow(
            ticker=f"F{i:05d}",
            asset_class="stock",
            status="failed",
            error="model: PriceValidationError: too short a history " * 3,
        )
        for i in range(n_failed)
    ]
    return rows


@pytest.fixture(scope="module")
def thumbnail(tmp_path_factory) -> str:
    """A real inline thumbnail of a pipeline-sized (11 x 7.5 in) figure."""
    storage = open_storage(str(tmp_path_factory.mktemp("plots")))
    figure = Figure(figsize=(11, 7.5))
    for k, ax in enumerate(figure.subplots(2, 1)):
        ax.plot(range(300), [((i * 37 + k) % 101) / 7 for i in range(300)])
    write_figure(storage, "p.png", figure)
    return inline_png(storage.read_bytes("p.png"))


def _plots(rows: list[MetricsRow], inline: str) -> dict[str, UiPlot]:
    names = [r.ticker for r in rows if r.status == "ok"] + ["summary"]
    return {n: UiPlot(n, f"plots/{n}.png", inline, f"https://s3.example/{n}.png") for n in names}


def _event_limit() -> int:
    from prefect.settings import get_current_settings

    return get_current_settings().server.events.maximum_size_bytes


@pytest.mark.parametrize(("n_ok", "n_failed"), [(500, 0), (5000, 300)])
def test_the_summary_and_table_stay_far_below_prefects_event_limit(
    n_ok, n_failed, thumbnail
) -> None:
    rows = _rows(n_ok, n_failed)
    text = summary_markdown(
        SCOPE, rows, _plots(rows, thumbnail), full_table="https://s3.example/metrics.parquet"
    )
    table = json.dumps(table_artifact_rows(rows))
    limit = _event_limit()
    assert len(text.encode()) < limit / 2 and len(table.encode()) < limit / 4
    # ...and the same bound whatever the size: 10x the tickers, about the same text.
    assert len(text) < 1_000_000
    assert f"**{n_ok + n_failed} tickers**: {n_ok} succeeded, {n_failed} failed" in text
    assert "[the full metrics table](https://s3.example/metrics.parquet)" in text


def test_the_best_and_the_worst_are_listed_and_the_rest_counted(thumbnail) -> None:
    rows = _rows(500, 30)
    ranked = sorted((r for r in rows if r.status == "ok"), key=lambda r: r.backtest_u2)
    selection = select_summary(rows)
    assert [r.ticker for r in selection.best] == [r.ticker for r in ranked[:SUMMARY_EXTREMES]]
    assert [r.ticker for r in selection.worst] == [r.ticker for r in ranked[-SUMMARY_EXTREMES:]]
    assert len(selection.failed) == MAX_LISTED_FAILURES
    assert selection.not_listed == 500 - 2 * SUMMARY_EXTREMES
    assert selection.failed_not_listed == 30 - MAX_LISTED_FAILURES

    text = summary_markdown(SCOPE, rows, _plots(rows, thumbnail), full_table="metrics/x.parquet")
    table_rows = [line for line in text.splitlines() if line.startswith("| T")]
    assert len(table_rows) == 2 * SUMMARY_EXTREMES
    assert f"| … | {500 - 2 * SUMMARY_EXTREMES} more |" in text
    assert ranked[0].ticker in text and ranked[-1].ticker in text
    assert ranked[250].ticker not in text.split("## Better")[0]  # the middle is not listed
    assert "the full metrics table `metrics/x.parquet`" in text  # local storage: the key
    assert "| … | 10 more failed |" in text
    better = sum(r.backtest_dm_p < 0.025 for r in ranked)
    assert f"{better} beat naive with evidence" in text
    assert f"and {better - 10} more" in text  # names per verdict are counted past 10
    assert {r["ticker"] for r in table_artifact_rows(rows)} == {r.ticker for r in selection.rows}


def test_a_small_watchlist_is_listed_whole_in_run_order(thumbnail) -> None:
    rows = _rows(2 * SUMMARY_EXTREMES, 1)
    text = summary_markdown(SCOPE, rows, _plots(rows, thumbnail))
    listed = [line.split(" | ")[0][2:] for line in text.splitlines() if line.startswith("| ")]
    assert listed[1:] == [r.ticker for r in rows]  # after the header line
    assert "more |" not in text and "tickers**" not in text
    assert len(table_artifact_rows(rows)) == len(rows)


def test_plots_past_the_size_budget_are_linked_not_embedded(thumbnail) -> None:
    rows = _rows(12)
    text = summary_markdown(SCOPE, rows, _plots(rows, thumbnail), max_chars=3 * len(thumbnail))
    embedded = text.count("data:image/png;base64,")
    assert 1 <= embedded <= 3
    assert text.count("[full-size") >= len(rows) + 1  # every plot still reachable


def test_the_summary_plot_is_bounded_too() -> None:
    small = summary_figure(SCOPE, _rows(2 * SCOREBOARD_EXTREMES))
    big = summary_figure(SCOPE, _rows(5000))
    assert big.get_size_inches()[1] == pytest.approx(small.get_size_inches()[1])
    assert f"the {SCOREBOARD_EXTREMES} best and {SCOREBOARD_EXTREMES} worst of 5000" in (
        big._suptitle.get_text()
    )
