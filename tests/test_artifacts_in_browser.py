"""The run summary's plots are visible in the Prefect UI, for local and S3 storage.

A real Prefect server with its UI on loopback (started by ``closecast.control.stack``), a real flow
run that publishes the summary artifact through ``closecast.outputs.artifacts``, and Debian's
Chromium, driven by Playwright, opening the artifact page as a user would: every plot image
must have loaded (``naturalWidth > 0``). On S3 the full-size links are signed for the public
endpoint, and the browser downloads the plot through one.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import pytest
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterId
from prefect.logging.handlers import APILogWorker
from prefect.settings import PREFECT_API_URL, temporary_settings

from closecast.control import stack
from closecast.outputs.artifacts import summary_markdown, ui_plots
from closecast.outputs.catalog import RunScope
from closecast.outputs.plots import plot_predictions, plot_summary
from closecast.outputs.records import MetricsRow
from closecast.storage import Storage, open_storage
from closecast.storage.io import write_figure

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PROJECT_ROOT = Path(__file__).resolve().parents[1]
RUN_DATE = date(2020, 12, 11)
TICKERS = ("AAPL", "BTC-USD")

pytestmark = [
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium; "
        ".ci/run installs it)",
    ),
    pytest.mark.slow,  # a browser and the Prefect UI
]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_ui(tmp_path_factory, migrated_prefect_home) -> Iterator[stack.StackConfig]:
    """A Prefect server with its UI on a free loopback port, stopped after the module; its
    database starts migrated (a copy of the session's)."""
    config = stack.StackConfig.from_environment(
        project_root=PROJECT_ROOT,
        state_dir=tmp_path_factory.mktemp("prefect-ui"),
        port=_free_port(),
        ui=True,
    )
    migrated_prefect_home(config.prefect_home)
    try:
        stack.start_server(config, timeout=240)
        yield config
    finally:
        stack.stop(config)


def _publish_plots(storage: Storage) -> dict[str, str]:
    """Real plots of the run, written where the pipeline writes them; name -> key."""
    keys = {}
    dates = pd.bdate_range("2020-11-02", periods=30)
    for i, ticker in enumerate(TICKERS):
        actual = 100 * (i + 1) + np.cumsum(np.random.default_rng(i).normal(size=len(dates)))
        frame = pd.DataFrame(
            {"date": dates, "actual": actual, "predicted": actual + 0.5, "naive": actual - 0.3}
        )
        keys[ticker] = f"plots/run_date={RUN_DATE}/{ticker}.png"
        figure = plot_predictions(frame, title=f"{ticker}: LSTM vs actual", train_end=None)
        write_figure(storage, keys[ticker], figure)
    metrics = pd.DataFrame({"ticker": TICKERS, "rmse": [1.0, 2.0], "naive_rmse": [1.2, 1.9]})
    keys["summary"] = f"plots/run_date={RUN_DATE}/summary.png"
    write_figure(storage, keys["summary"], plot_summary(metrics))
    return keys


ROWS = [
    MetricsRow(ticker="AAPL", asset_class="stock", status="ok", backtest_u2=0.83),
    MetricsRow(ticker="BTC-USD", asset_class="crypto", status="ok", backtest_u2=1.05),
]


@flow(name="artifact-in-browser")
def publish_summary(storage_root: str, keys: dict[str, str], public_endpoint: str | None):
    """What tasks/publishing.py does, in a flow of its own."""
    storage = open_storage(storage_root)
    plots = ui_plots(storage, keys, public_endpoint=public_endpoint)
    return create_markdown_artifact(
        summary_markdown(RunScope(RUN_DATE, "browser"), ROWS, plots),
        key="closecast-summary-browser-test",
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    """One Chromium for the module, its pages in one context: started once, not per test,
    and the second test's page reuses the UI's scripts the first one loaded."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium.new_context()
        finally:
            chromium.close()


def _publish_and_open(
    config: stack.StackConfig,
    browser: BrowserContext,
    storage_root: str,
    keys: dict[str, str],
    public: str | None,
) -> dict:
    # Playwright's sync API keeps an event loop running in this thread while the browser is
    # open: the flow run and the API read run in a thread of their own, as on a fresh thread.
    with ThreadPoolExecutor(max_workers=1) as thread:
        artifact = thread.submit(_publish, config, storage_root, keys, public).result()
    assert artifact.flow_run_id is not None  # published by the flow run
    assert artifact.data.count("data:image/png;base64,") == len(keys)

    page = browser.new_page()
    try:
        page.goto(f"{config.ui_url}/artifacts/artifact/{artifact.id}", timeout=120_000)
        page.wait_for_function(
            f"Array.from(document.images).filter(i => i.alt.includes('plot')"
            f" || i.alt === 'summary').length >= {len(keys)}",
            timeout=120_000,
        )
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=60_000)
        images = page.evaluate(
            "Array.from(document.images)"
            ".filter(i => i.alt.includes('plot') || i.alt === 'summary')"
            ".map(i => ({alt: i.alt, width: i.naturalWidth}))"
        )
        links = page.evaluate(
            "Array.from(document.querySelectorAll('a'))"
            ".filter(a => a.textContent.startsWith('full-size'))"
            ".map(a => ({text: a.textContent, href: a.href}))"
        )
        downloads = []
        for link in links:
            response = page.request.get(link["href"])
            downloads.append((response.status, response.headers["content-type"]))
    finally:
        page.close()
    return {"images": images, "links": links, "downloads": downloads}


def _publish(
    config: stack.StackConfig, storage_root: str, keys: dict[str, str], public: str | None
):
    """Run the publishing flow against the UI's server; its artifact as the API returns it."""
    with temporary_settings({PREFECT_API_URL: config.api_url}):
        artifact_id = publish_summary(storage_root, keys, public)
        artifact = asyncio.run(_read_artifact(artifact_id))
        APILogWorker.drain_all(timeout=30)  # the run's logs, before the server stops
    return artifact


async def _read_artifact(artifact_id):
    async with get_client() as client:
        (artifact,) = await client.read_artifacts(
            artifact_filter=ArtifactFilter(id=ArtifactFilterId(any_=[artifact_id]))
        )
        return artifact


def test_local_plots_show_inline_in_the_prefect_ui(prefect_ui, browser, tmp_path) -> None:
    storage_root = str(tmp_path / "closecast-data")
    keys = _publish_plots(open_storage(storage_root))

    seen = _publish_and_open(prefect_ui, browser, storage_root, keys, public=None)

    assert sorted(i["alt"] for i in seen["images"]) == ["AAPL plot", "BTC-USD plot", "summary"]
    assert all(i["width"] > 0 for i in seen["images"]), seen["images"]
    assert seen["links"] == []  # no file:// link, which a browser refuses from a web page


def test_s3_plots_show_inline_and_link_through_the_public_endpoint(
    prefect_ui, browser, s3_env, s3_bucket
) -> None:
    storage_root = f"s3://{s3_bucket}/ui"
    keys = _publish_plots(open_storage(storage_root))
    # The worker reaches S3 at 127.0.0.1; the browser is told another name for the same
    # server, as with the compose stack (worker: minio:9000, browser: localhost:9000).
    internal = urlsplit(s3_env)
    public = f"http://localhost:{internal.port}"

    seen = _publish_and_open(prefect_ui, browser, storage_root, keys, public=public)

    assert len(seen["images"]) == len(keys)
    assert all(i["width"] > 0 for i in seen["images"]), seen["images"]
    # One full-size link under each plot and one per ticker in the table.
    assert len(seen["links"]) == len(keys) + len(TICKERS)
    for link in seen["links"]:
        assert urlsplit(link["href"]).netloc == f"localhost:{internal.port}", link
        assert "X-Amz-Signature=" in link["href"]
    assert all(status == 200 and kind == "image/png" for status, kind in seen["downloads"]), seen[
        "downloads"
    ]
