"""The run summary as the Prefect UI shows it: a metrics table and the plots, visible in the
browser for local and S3 storage alike.

A browser showing the Prefect UI cannot open the plots by their storage URLs: it refuses
``file://`` links from a web page, and on the compose stack a presigned URL names the
endpoint the worker uses (``minio:9000``), which the browser's machine cannot resolve. So:

* every plot is shown **inline**, as a ``data:image/png;base64`` thumbnail, which the UI's
  markdown renderer displays (tested in a real browser: tests/test_artifacts_in_browser.py).
  It needs no server, never expires, and stays visible in the artifact's history;
* on S3, each thumbnail also links to the **full-size plot** through a presigned URL, signed
  for the endpoint the *browser* reaches, ``CLOSECAST_S3_PUBLIC_ENDPOINT``
  (e.g. ``http://localhost:9000``), when it differs from the one the worker uses.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from closecast.storage import DEFAULT_URL_EXPIRY, Storage
from lstm_model.significance import EVIDENCE_ALPHA

if TYPE_CHECKING:
    from closecast.catalog import RunScope
    from closecast.records import MetricsRow

PUBLIC_ENDPOINT_ENV = "CLOSECAST_S3_PUBLIC_ENDPOINT"
THUMBNAIL_WIDTH = 720  # pixels: about the width of the UI's artifact column
MAX_INLINE_PLOTS = 25  # beyond this many, plots are linked rather than embedded


@dataclass(frozen=True)
class UiPlot:
    """One plot as the UI shows it.

    Attributes:
        name: A ticker, or ``summary`` for the all-ticker plot.
        key: Its storage key.
        inline: A ``data:`` URI of a thumbnail, or None when not embedded.
        link: A URL a browser opens for the full-size plot, or None (local storage).
    """

    name: str
    key: str
    inline: str | None
    link: str | None


def public_endpoint_from_env() -> str | None:
    """The S3 endpoint browsers reach (``CLOSECAST_S3_PUBLIC_ENDPOINT``), if set."""
    return os.environ.get(PUBLIC_ENDPOINT_ENV, "").strip() or None


def plot_link(
    storage: Storage,
    key: str,
    *,
    public_endpoint: str | None = None,
    expires: timedelta = DEFAULT_URL_EXPIRY,
) -> str | None:
    """A URL from which a browser showing the Prefect UI can open ``key``.

    Args:
        storage: Where the plot is.
        key: The plot's key.
        public_endpoint: S3 only: the endpoint browsers reach, when it differs from the one
            ``storage`` uses (a container name such as ``http://minio:9000``). The URL is
            signed for it; no request is made.
        expires: How long a presigned URL stays valid (at most 7 days).

    Returns:
        A presigned HTTPS/HTTP URL on S3; None for local storage, whose ``file://`` URLs
        browsers do not open from a web page.
    """
    from closecast.storage.s3 import S3Storage

    if not isinstance(storage, S3Storage):
        return None
    return storage.url(key, expires=expires, endpoint=public_endpoint)


def inline_png(png: bytes, *, max_width: int = THUMBNAIL_WIDTH) -> str:
    """A ``data:image/png;base64,...`` URI of ``png``: scaled down to ``max_width`` pixels and
    stored with a 256-colour palette (a line chart loses nothing visible and shrinks ~3x, so
    a run's summary stays small in the Prefect database)."""
    from PIL import Image  # matplotlib's own image library

    with Image.open(io.BytesIO(png)) as image:
        thumbnail = image.convert("RGB")
    scaled = thumbnail.width > max_width
    if scaled:
        height = round(thumbnail.height * max_width / thumbnail.width)
        thumbnail = thumbnail.resize((max_width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumbnail.quantize(256).save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
    if not scaled and len(png) <= len(data):
        data = png  # already small: keep the original
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def ui_plots(
    storage: Storage,
    keys: Mapping[str, str],
    *,
    public_endpoint: str | None = None,
    max_inline: int = MAX_INLINE_PLOTS,
) -> dict[str, UiPlot]:
    """Read the plots ``keys`` (name -> key) and make each visible in the UI.

    The first ``max_inline`` plots are embedded; a plot that cannot be read (a failed
    ticker wrote none) is left out.
    """
    plots = {}
    for index, (name, key) in enumerate(keys.items()):
        if not storage.exists(key):
            continue
        inline = inline_png(storage.read_bytes(key)) if index < max_inline else None
        link = plot_link(storage, key, public_endpoint=public_endpoint)
        plots[name] = UiPlot(name=name, key=key, inline=inline, link=link)
    return plots


def _fmt(value: Any, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _image(plot: UiPlot, alt: str) -> str:
    # An image inside a link does not render in the UI (the markdown shows as text), so the
    # full-size link goes on a line of its own.
    lines = [f"![{alt}]({plot.inline})"] if plot.inline else []
    if plot.link:
        lines.append(f"[full-size {alt}]({plot.link})")
    elif not plot.inline:
        lines.append(f"{alt}: `{plot.key}`")
    return "\n\n".join(lines)


def _verdict(p_value: float | None, alpha: float) -> str | None:
    if p_value is None:
        return None
    if p_value < alpha:
        return "better"
    return "worse" if p_value > 1.0 - alpha else "unclear"


def evidence_markdown(rows: Sequence[MetricsRow], alpha: float = EVIDENCE_ALPHA) -> list[str]:
    """In words: which tickers show evidence of beating naive (one-sided Diebold-Mariano on
    squared errors, HLN-corrected), on the backtest and on the lineage's live record."""
    titles = {
        "better": f"beat naive with evidence (p < {alpha:g})",
        "unclear": "show no evidence either way (the difference from naive may be luck)",
        "worse": f"are worse than naive with evidence (p > {1 - alpha:g})",
    }
    lines = []
    for label, p_of, u2_of in (
        ("Backtest", lambda r: r.backtest_dm_p, lambda r: r.backtest_u2),
        ("Live record", lambda r: r.live_dm_p_lineage, lambda r: r.live_u2_lineage),
    ):
        groups: dict[str, list[str]] = {"better": [], "unclear": [], "worse": []}
        for row in rows:
            verdict = _verdict(p_of(row), alpha) if row.status == "ok" else None
            if verdict is not None:
                groups[verdict].append(f"{row.ticker} (U2 {u2_of(row):.3f}, p {p_of(row):.2g})")
        if not any(groups.values()):
            lines.append(f"- **{label}**: no ticker has enough scored days for the test yet.")
            continue
        parts = [f"{len(v)} {titles[k]}: {', '.join(v)}" for k, v in groups.items() if v]
        lines.append(f"- **{label}**: " + "; ".join(parts) + ".")
    return lines


def summary_markdown(
    scope: RunScope, rows: Sequence[MetricsRow], plots: Mapping[str, UiPlot]
) -> str:
    """The run summary shown on the flow run page: the metrics table, then the plots.

    Args:
        scope: The run date and watchlist.
        rows: The run's metrics rows.
        plots: From :func:`ui_plots`: ``summary`` and one per ticker.
    """
    linked = any(plot.link for plot in plots.values())  # a plot column only if it has links
    lines = [
        f"# closecast daily forecast, {scope.run_date}, watchlist {scope.watchlist}",
        "",
        "| ticker | status | backtest U2 | live U2 (lineage) | served scored | live U2 20d "
        "| mode | why |" + (" plot |" if linked else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if linked else ""),
    ]
    for row in rows:
        why = (row.mode_reason or row.error or "").replace("|", "\\|")
        plot = plots.get(row.ticker)
        full = f" [full-size]({plot.link}) |" if plot and plot.link else " |"
        lines.append(
            f"| {row.ticker} | {row.status} | {_fmt(row.backtest_u2, '.3f')} "
            f"| {_fmt(row.live_u2_lineage, '.3f')} | {_fmt(row.live_n_lineage, 'd')} "
            f"| {_fmt(row.live_u2_20d, '.3f')} | {row.mode or ''} | {why} |"
            + (full if linked else "")
        )
    lines += ["", "## Better than naive, or luck?", "", *evidence_markdown(rows)]
    lines += [
        "",
        "U2 = RMSE / naive RMSE: below 1 beats 'tomorrow = today'. *Backtest*: the lineage's "
        "retrain procedure fit before a hold-out tail and scored on it. *Live*: forecasts "
        "served by earlier runs, scored on the prices that followed.",
    ]
    if "summary" in plots:
        lines += ["", "## All tickers", "", _image(plots["summary"], "summary")]
    for row in rows:
        if row.ticker in plots:
            lines += ["", f"## {row.ticker}", "", _image(plots[row.ticker], f"{row.ticker} plot")]
    return "\n".join(lines)
