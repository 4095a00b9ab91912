"""docs/reading.md, run as written: its Python snippets read a published dataset with DuckDB
and pyarrow, locally and from S3 (the loopback S3 server), with ``run_date`` a date and a
column added by a later run kept (null where older partitions lack it).

The dataset is built here in the published layout (``metrics/run_date=D/watchlist=W/
metrics.parquet``, the same for forecasts): two run dates, two watchlists, and a later date
whose metrics have one column more, as after an upgrade of closecast.
"""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

DOC = Path(__file__).resolve().parents[1] / "docs" / "reading.md"
EARLY, LATE = date(2020, 12, 10), date(2020, 12, 11)
WATCHLISTS = {"stocks": ["AAPL", "QQQ"], "crypto": ["BTC-USD"]}
N_ROWS = 2 * 3  # two dates, three tickers over the two watchlists


def _doc_snippets() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def _run_snippet(index: int, namespace: dict, replace: dict[str, str] | None = None) -> dict:
    code = _doc_snippets()[index]
    for old, new in (replace or {}).items():
        assert old in code, f"docs/reading.md snippet {index} no longer mentions {old!r}"
        code = code.replace(old, new)
    exec(compile(code, f"docs/reading.md[{index}]", "exec"), namespace)
    return namespace


def _published_objects() -> dict[str, bytes]:
    """Object key -> Parquet bytes, for the metrics and forecasts of both dates."""
    objects = {}
    for run_date in (EARLY, LATE):
        for watchlist, tickers in WATCHLISTS.items():
            metrics = {
                "ticker": tickers,
                "status": ["ok"] * len(tickers),
                "rmse": [1.0 + i for i in range(len(tickers))],
                "naive_rmse": [2.0] * len(tickers),
                "u2": [(1.0 + i) / 2.0 for i in range(len(tickers))],
            }
            if run_date == LATE:  # a column added by a newer closecast
                metrics["null_rows_dropped"] = [0] * len(tickers)
            forecasts = pa.table(
                {
                    "ticker": tickers,
                    "data_end": pa.array([run_date] * len(tickers), pa.date32()),
                    "forecast": [100.0] * len(tickers),
                }
            )
            part = f"run_date={run_date.isoformat()}/watchlist={watchlist}"
            objects[f"metrics/{part}/metrics.parquet"] = _parquet(pa.table(metrics))
            objects[f"forecasts/{part}/forecasts.parquet"] = _parquet(forecasts)
    return objects


def _parquet(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


@pytest.fixture
def local_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The dataset under ./closecast-data, the working directory the docs assume."""
    root = tmp_path / "closecast-data"
    for key, data in _published_objects().items():
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    monkeypatch.chdir(tmp_path)
    return root


def _check_metrics(table: pa.Table) -> None:
    assert table.num_rows == N_ROWS
    assert table.schema.field("run_date").type == pa.date32()
    assert table.schema.field("watchlist").type == pa.string()
    rows = table.to_pylist()
    assert {r["run_date"] for r in rows} == {EARLY, LATE}
    assert {(r["watchlist"], r["ticker"]) for r in rows} == {
        (w, t) for w, tickers in WATCHLISTS.items() for t in tickers
    }
    # The later column is kept: 0 on the later date, null where the earlier files lack it.
    assert [r["null_rows_dropped"] for r in rows if r["run_date"] == LATE] == [0, 0, 0]
    assert [r["null_rows_dropped"] for r in rows if r["run_date"] == EARLY] == [None] * 3


def test_duckdb_reads_local_metrics_as_the_docs_say(local_root: Path) -> None:
    namespace = _run_snippet(
        0, {}, replace={"run_date, watchlist, ticker, status, rmse, naive_rmse, u2": "*"}
    )
    result = namespace["metrics"]
    assert dict(zip(result.columns, map(str, result.types), strict=True))["run_date"] == "DATE"
    _check_metrics(result.to_arrow_table())


def test_duckdb_query_as_printed_in_the_docs(local_root: Path) -> None:
    frame = _run_snippet(0, {})["metrics"].df()
    assert list(frame.columns) == [
        "run_date", "watchlist", "ticker", "status", "rmse", "naive_rmse", "u2",
    ]  # fmt: skip
    assert frame["run_date"].tolist() == sorted(frame["run_date"].tolist())
    assert len(frame) == N_ROWS


def test_pyarrow_reads_local_metrics_and_filters_a_watchlist(local_root: Path) -> None:
    namespace = _run_snippet(2, _run_snippet(1, {}))
    _check_metrics(namespace["metrics"].to_table())
    stocks = namespace["table"]
    assert set(stocks.column("watchlist").to_pylist()) == {"stocks"}
    assert stocks.num_rows == 2 * len(WATCHLISTS["stocks"])

    forecasts = namespace["read_table"]("closecast-data/forecasts").to_table()
    assert forecasts.num_rows == N_ROWS
    assert forecasts.schema.field("run_date").type == pa.date32()


def test_pyarrow_and_duckdb_read_metrics_from_s3(s3_env, s3_bucket, s3_client, monkeypatch) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never look for an instance role
    for key, data in _published_objects().items():
        s3_client.put_object(Bucket=s3_bucket, Key=f"dev/{key}", Body=data)
    in_test_bucket = {"closecast/dev": f"{s3_bucket}/dev"}

    namespace = _run_snippet(3, _run_snippet(1, {}), replace=in_test_bucket)
    _check_metrics(namespace["metrics"].to_table())

    namespace = _run_snippet(4, namespace, replace=in_test_bucket)
    by_watchlist = namespace["by_watchlist"].order("watchlist").fetchall()
    assert by_watchlist == [("crypto", 0.5), ("stocks", 0.75)]
