"""closecast.outputs.artifacts without a browser: thumbnails, links for local and S3 storage, and
the
summary markdown (the browser test, tests/test_artifacts_in_browser.py, shows it renders)."""

from __future__ import annotations

import base64
import io
from datetime import date
from urllib.parse import parse_qs, urlsplit

import pytest
from matplotlib.figure import Figure
from PIL import Image

from closecast.outputs.artifacts import (
    PUBLIC_ENDPOINT_ENV,
    UiPlot,
    inline_png,
    plot_link,
    public_endpoint_from_env,
    summary_markdown,
    ui_plots,
)
from closecast.outputs.catalog import RunScope
from closecast.outputs.records import MetricsRow
from closecast.storage import open_storage
from closecast.storage.io import write_figure


def _figure(width_inches: float) -> Figure:
    figure = Figure(figsize=(width_inches, 3))
    figure.add_subplot().plot([1, 3, 2])
    return figure


def _decoded(uri: str) -> Image.Image:
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    return Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :])))


def test_inline_png_scales_wide_plots_down_and_shrinks_them(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    write_figure(storage, "wide.png", _figure(11))  # 1100 px at the pipeline's 100 dpi
    write_figure(storage, "small.png", _figure(4))
    wide_png = storage.read_bytes("wide.png")
    wide_uri = inline_png(wide_png)
    assert _decoded(wide_uri).size == (720, round(300 * 720 / 1100))
    assert len(wide_uri) < len(wide_png)  # smaller even as base64
    small = _decoded(inline_png(storage.read_bytes("small.png")))
    assert small.size == (400, 300)


def test_local_plots_are_inlined_without_a_link(tmp_path) -> None:
    storage = open_storage(str(tmp_path))
    write_figure(storage, "plots/AAPL.png", _figure(4))
    plots = ui_plots(storage, {"AAPL": "plots/AAPL.png", "GONE": "plots/GONE.png"})
    assert list(plots) == ["AAPL"]  # a ticker without a plot is left out
    linked_only = ui_plots(storage, {"AAPL": "plots/AAPL.png", "GONE": "plots/GONE.png"},
                           max_inline=0)  # fmt: skip
    assert list(linked_only) == ["AAPL"] and linked_only["AAPL"].inline is None
    assert plots["AAPL"].link is None and plot_link(storage, "plots/AAPL.png") is None
    assert _decoded(plots["AAPL"].inline).width == 400


def test_s3_links_are_signed_for_the_public_endpoint(s3_env, s3_bucket) -> None:
    storage = open_storage(f"s3://{s3_bucket}/pre")
    write_figure(storage, "plots/AAPL.png", _figure(4))

    internal = urlsplit(plot_link(storage, "plots/AAPL.png"))
    public = urlsplit(plot_link(storage, "plots/AAPL.png", public_endpoint="http://localhost:9000"))
    assert internal.netloc == urlsplit(s3_env).netloc
    assert public.netloc == "localhost:9000"
    assert public.path == internal.path == f"/{s3_bucket}/pre/plots/AAPL.png"
    signature = parse_qs(public.query)["X-Amz-Signature"]
    assert signature != parse_qs(internal.query)["X-Amz-Signature"]  # the host is signed


def test_public_endpoint_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.delenv(PUBLIC_ENDPOINT_ENV, raising=False)
    assert public_endpoint_from_env() is None
    monkeypatch.setenv(PUBLIC_ENDPOINT_ENV, " http://localhost:9000 ")
    assert public_endpoint_from_env() == "http://localhost:9000"


@pytest.mark.parametrize("link", [None, "https://s3.example/AAPL.png?X-Amz-Signature=abc"])
def test_summary_markdown_shows_every_plot_and_links_only_real_urls(link) -> None:
    rows = [
        MetricsRow(ticker="AAPL", asset_class="stock", status="ok", backtest_u2=0.8),
        MetricsRow(ticker="BAD", asset_class="stock", status="failed", error="unknown | ticker"),
    ]
    plots = {
        "AAPL": UiPlot("AAPL", "plots/AAPL.png", "data:image/png;base64,AAAA", link),
        "summary": UiPlot("summary", "plots/summary.png", "data:image/png;base64,BBBB", link),
    }
    text = summary_markdown(RunScope(date(2020, 12, 11), "stocks"), rows, plots)
    assert "2020-12-11, watchlist stocks" in text
    assert "| AAPL | ok | 0.800 |" in text
    assert "![AAPL plot](data:image/png;base64,AAAA)" in text
    assert "![summary](data:image/png;base64,BBBB)" in text
    assert "| BAD | failed |" in text and "unknown \\| ticker" in text
    assert "file://" not in text
    if link is None:
        assert "full-size" not in text and "| plot |" not in text
    else:
        assert text.count(f"]({link})") == 3  # the table row, and under each of the two plots


def test_the_summary_says_in_words_which_tickers_beat_naive() -> None:
    from closecast.outputs.artifacts import evidence_markdown
    from closecast.outputs.records import MetricsRow

    def row(ticker, backtest_p, live_p=None):
        return MetricsRow(
            ticker=ticker, asset_class="stock", status="ok", backtest_u2=0.9,
            backtest_dm_p=backtest_p, live_u2_lineage=1.1, live_dm_p_lineage=live_p,
        )  # fmt: skip

    lines = evidence_markdown([row("SINE", 0.001), row("AAPL", 0.4), row("BAD", 0.99)])
    backtest, live = lines
    assert "1 beat naive with evidence (p < 0.025): SINE (U2 0.900, p 0.001)" in backtest
    assert "1 show no evidence either way" in backtest and "AAPL" in backtest
    assert "1 are worse than naive with evidence (p > 0.975): BAD" in backtest
    assert "no ticker has enough scored days" in live
