"""docs/reading.md, run as written on the outputs of real runs: every Python snippet and the
SQL query of the page read what ``closecast run`` published, with DuckDB and pyarrow, locally
and from S3 (the loopback S3 server), with ``run_date`` a date and a column that only the
later files have kept (null where the older files lack it).

The dataset is made by the real CLI: watchlist ``stocks`` (QQQ) on two days, the second one
scoring the first one's forecast, and watchlist ``crypto`` (BTC-USD) on the second day, with
the fast preset and one epoch. The earliest metrics file is then rewritten without one column,
as a closecast from before that column was added would have left it.

The same runs check what ``closecast run`` tells a newcomer at its end: where every kind of
output went, and how to see the run in the Prefect UI.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "reading.md"
EARLY, LATE = date(2020, 12, 10), date(2020, 12, 11)
RUNS = (("stocks", EARLY), ("stocks", LATE), ("crypto", LATE))
WATCHLISTS = {"stocks": ("QQQ", "etf"), "crypto": ("BTC-USD", "crypto")}
# The line-up without global_lstm: these tests do not look at it, and fitting it is most of a
# tiny flow run's time (measured: 25-40 s with it, 12-15 s without, 2 tickers, preset fast).
MODELS = "lstm,naive,drift,seasonal_naive,global_ar"
ADDED_LATER = "null_rows_dropped"  # a validation counter: "the metrics gained validation counts"

# Each Python snippet of the page, by a line only it holds: every one must be run below.
SNIPPETS = {
    "duckdb_metrics": "metrics = duckdb.sql(",
    "duckdb_other_tables": "forecasts = duckdb.sql(",
    "read_table": "def read_table(",
    "pyarrow_local": 'metrics = read_table("closecast-data/metrics")',
    "pyarrow_s3": "s3 = fs.S3FileSystem(",
    "duckdb_on_pyarrow": "by_watchlist = duckdb.sql(",
}


def _blocks(language: str) -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.DOTALL)


def _snippet(name: str) -> str:
    found = [code for code in _blocks("python") if SNIPPETS[name] in code]
    assert len(found) == 1, f"docs/reading.md: {len(found)} Python snippets hold {SNIPPETS[name]!r}"
    return found[0]


def _run_snippet(
    name: str, namespace: dict, replace: dict[str, str] | None = None, select_all: bool = False
) -> dict:
    code = _snippet(name)
    if select_all:  # every column, to check all of them, not only those the page prints
        code, n = re.subn(r"SELECT .*? FROM", "SELECT * FROM", code, count=1, flags=re.DOTALL)
        assert n == 1, f"docs/reading.md snippet {name} holds no SELECT ... FROM"
    for old, new in (replace or {}).items():
        assert old in code, f"docs/reading.md snippet {name} no longer mentions {old!r}"
        code = code.replace(old, new)
    exec(compile(code, f"docs/reading.md[{name}]", "exec"), namespace)
    return namespace


@dataclass(frozen=True)
class Published:
    root: Path  # closecast-data
    printed: dict[tuple[str, date], str]  # what each run printed on stdout


@pytest.fixture(scope="module")
def published_runs(tmp_path_factory, prefect_harness) -> Published:
    """``closecast-data`` as the real CLI left it after the three runs (see module docstring)."""
    from closecast.cli import main

    base = tmp_path_factory.mktemp("reading")
    root = base / "closecast-data"
    for name, (symbol, asset_class) in WATCHLISTS.items():
        (base / f"{name}.yaml").write_text(
            f"tickers:\n  - {{symbol: {symbol}, asset_class: {asset_class}}}\n", encoding="utf-8"
        )
    printed = {}
    for name, day in RUNS:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            code = main(
                ["run", "--watchlist", str(base / f"{name}.yaml"), "--as-of", day.isoformat(),
                 "--preset", "fast", "--epochs", "1", "--storage", str(root), "--models", MODELS,
                 "--ticker-plots", "0"]  # the page reads tables; the summary plot still renders
            )  # fmt: skip
        assert code == 0, f"closecast run {name} {day} exited {code}"
        printed[(name, day)] = out.getvalue()
    earliest = root / f"metrics/run_date={EARLY}/watchlist=stocks/metrics.parquet"
    older = pq.read_table(earliest)
    assert ADDED_LATER in older.column_names
    pq.write_table(older.drop_columns([ADDED_LATER]), earliest)
    return Published(root, printed)


@pytest.fixture(scope="module")
def published(published_runs: Published) -> Path:
    return published_runs.root


@pytest.fixture
def local_root(published: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The published dataset under ./closecast-data, the working directory the docs assume."""
    monkeypatch.chdir(published.parent)
    return published


def _metrics_files(root: Path) -> dict[tuple[date, str], pa.Table]:
    """(run_date, watchlist) -> that run's metrics file as written, read without the docs."""
    keys = {
        (day, name): f"metrics/run_date={day}/watchlist={name}/metrics.parquet"
        for name, day in RUNS
    }
    return {run: pq.read_table(root / key) for run, key in keys.items()}


def _check_metrics(table: pa.Table, root: Path) -> None:
    """Every published row, typed partitions, and the later column kept, null where absent."""
    files = _metrics_files(root)
    assert table.num_rows == sum(t.num_rows for t in files.values()) == len(RUNS)
    assert table.schema.field("run_date").type == pa.date32()
    assert table.schema.field("watchlist").type == pa.string()
    rows = {(r["run_date"], r["watchlist"], r["ticker"]): r for r in table.to_pylist()}
    for (day, name), written in files.items():
        for expected in written.to_pylist():
            row = rows[(day, name, expected["ticker"])]
            assert row["status"] == "ok", row["error"]
            assert row["backtest_u2"] == expected["backtest_u2"]
            assert row["live_n_lineage"] == expected["live_n_lineage"]
            if ADDED_LATER in written.column_names:
                assert row[ADDED_LATER] == expected[ADDED_LATER] is not None
            else:
                assert row[ADDED_LATER] is None


def test_every_snippet_of_the_page_is_run_here() -> None:
    for code in _blocks("python"):
        claimed = [name for name, marker in SNIPPETS.items() if marker in code]
        assert len(claimed) == 1, f"docs/reading.md snippet run by no test here:\n{code}"


def test_duckdb_query_as_printed_in_the_docs(local_root: Path) -> None:
    result = _run_snippet("duckdb_metrics", {})["metrics"]
    types = dict(zip(result.columns, map(str, result.types), strict=True))
    assert types["run_date"] == "DATE"
    assert result.columns[:4] == ["run_date", "watchlist", "ticker", "status"]
    assert {"backtest_u2", "live_u2_lineage"} <= set(result.columns)
    frame = result.df()
    assert list(zip(frame["run_date"].dt.date, frame["ticker"], strict=True)) == [
        (EARLY, "QQQ"), (LATE, "BTC-USD"), (LATE, "QQQ"),
    ]  # fmt: skip
    # The later stocks run scored the forecast the earlier one served: a live column filled.
    later_qqq = frame[(frame["ticker"] == "QQQ") & (frame["run_date"].dt.date == LATE)]
    assert later_qqq["live_n_lineage"].tolist() == [1]


def test_duckdb_reads_every_table_as_the_docs_say(local_root: Path) -> None:
    namespace = _run_snippet("duckdb_metrics", {}, select_all=True)
    _check_metrics(namespace["metrics"].to_arrow_table(), local_root)
    namespace = _run_snippet("duckdb_other_tables", namespace)
    forecasts = namespace["forecasts"].df()
    assert sorted(zip(forecasts["watchlist"], forecasts["ticker"], strict=True)) == sorted(
        (name, WATCHLISTS[name][0]) for name, _ in RUNS
    )
    live = namespace["live_scores"].df()
    assert set(live["window"]) == {"20d", "60d", "lineage"}
    predictions = namespace["predictions"].df()
    assert set(predictions["ticker"]) == {"QQQ", "BTC-USD"}
    assert predictions["actual"].notna().all()
    served = namespace["served"].df()
    # QQQ's forecast for the second day was served on the first and scored on the second.
    scored = served[served["actual"].notna()]
    assert scored["ticker"].tolist() == ["QQQ"]
    assert scored["served_on"].dt.date.tolist() == [EARLY]
    assert scored["scored_on"].dt.date.tolist() == [LATE]


def test_the_httpfs_query_reads_the_same_metrics(local_root: Path) -> None:
    import duckdb

    (sql,) = _blocks("sql")
    select = sql[sql.index("SELECT") :]
    assert "'s3://closecast/dev/" in select
    table = duckdb.sql(select.replace("'s3://closecast/dev/", "'closecast-data/")).to_arrow_table()
    _check_metrics(table, local_root)


def test_pyarrow_reads_local_metrics_and_filters_a_watchlist(local_root: Path) -> None:
    namespace = _run_snippet("pyarrow_local", _run_snippet("read_table", {}))
    _check_metrics(namespace["metrics"].to_table(), local_root)
    stocks = namespace["table"]
    assert set(stocks.column("watchlist").to_pylist()) == {"stocks"}
    assert stocks.column("run_date").to_pylist() and stocks.num_rows == 2

    forecasts = namespace["read_table"]("closecast-data/forecasts").to_table()
    assert forecasts.num_rows == len(RUNS)
    assert forecasts.schema.field("run_date").type == pa.date32()


def test_pyarrow_and_duckdb_read_metrics_from_s3(
    published: Path, s3_env, s3_bucket, s3_client, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never look for an instance role
    for path in published.rglob("*.parquet"):
        key = f"dev/{path.relative_to(published).as_posix()}"
        s3_client.put_object(Bucket=s3_bucket, Key=key, Body=path.read_bytes())
    in_test_bucket = {"closecast/dev": f"{s3_bucket}/dev"}

    namespace = _run_snippet("pyarrow_s3", _run_snippet("read_table", {}), replace=in_test_bucket)
    _check_metrics(namespace["metrics"].to_table(), published)

    namespace = _run_snippet("duckdb_on_pyarrow", namespace, replace=in_test_bucket)
    by_watchlist = dict(namespace["by_watchlist"].fetchall())
    expected = {}
    for (_, name), table in _metrics_files(published).items():
        expected.setdefault(name, []).extend(table.column("backtest_u2").to_pylist())
    assert by_watchlist == pytest.approx({k: sum(v) / len(v) for k, v in expected.items()})


def test_run_names_every_kind_of_output_it_left(published_runs: Published) -> None:
    """The closing message names each top-level folder of the store (the run's tables and
    plots, and the per-ticker prices, live record and models), and where to read about them."""
    printed = published_runs.printed[("crypto", LATE)]
    closing = printed[printed.index("Outputs under") :]
    folders = {  # each holding some object (not only a local storage's hidden lock files)
        path.name
        for path in published_runs.root.iterdir()
        if any(not f.name.startswith(".") for f in path.rglob("*") if f.is_file())
    }
    assert {"prices", "served", "models", "metrics", "forecasts"} <= folders
    assert [f for f in sorted(folders) if not re.search(rf"^ +{f}/", closing, re.M)] == []
    assert "T = BTC-USD" in closing
    assert "docs/reading.md" in closing


def test_run_says_where_to_see_it_in_the_ui(published_runs: Published) -> None:
    """Under a Prefect server (here the test harness's), the link names this very run."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    printed = published_runs.printed[("stocks", LATE)]
    link = re.search(r"In the Prefect UI: (http\S+)/runs/flow-run/([0-9a-f-]{36})", printed)
    assert link, printed[-800:]
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(link.group(2)))
    assert run.name == f"daily-forecast-{LATE}-stocks-sample"


def test_the_progress_artifact_sits_on_the_daily_flow_run(published_runs: Published) -> None:
    """README: ``closecast-progress-<watchlist>`` is on the run ``daily-forecast-<date>-...``
    (the per-ticker task runs are its own: no child flow run)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["closecast-progress-stocks"])
            )
        )
        runs = [client.read_flow_run(a.flow_run_id) for a in artifacts]
    names = {run.name for run in runs}
    assert {
        f"daily-forecast-{EARLY}-stocks-sample",
        f"daily-forecast-{LATE}-stocks-sample",
    } <= names
    assert all(run.parent_task_run_id is None for run in runs)
