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

The artifacts stay **bounded at any watchlist size**: Prefect sends each artifact's content
in an event and refuses events over ``PREFECT_EVENTS_MAXIMUM_SIZE_BYTES`` (1.5 MB), which a
500-ticker summary with every row and plot exceeded. Up to ``2 * SUMMARY_EXTREMES`` tickers
are all listed, as before; beyond, the summary and the table artifact list the
``SUMMARY_EXTREMES`` best and worst by backtest U2 and the failed tickers (at most
``MAX_LISTED_FAILURES``), and link the run's full metrics table; plots are embedded only
while the markdown stays under ``MAX_SUMMARY_CHARS``.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from closecast.storage import DEFAULT_URL_EXPIRY, ObjectNotFoundError, Storage
from lstm_model.significance import EVIDENCE_ALPHA

if TYPE_CHECKING:
    from closecast.outputs.catalog import RunScope
    from closecast.outputs.records import MetricsRow

PUBLIC_ENDPOINT_ENV = "CLOSECAST_S3_PUBLIC_ENDPOINT"
THUMBNAIL_WIDTH = 720  # pixels: about the width of the UI's artifact column
MAX_INLINE_PLOTS = 25  # beyond this many, plots are linked rather than embedded
SUMMARY_EXTREMES = 10  # beyond twice this many tickers, the best and worst this many are listed
MAX_LISTED_FAILURES = 20  # failed tickers listed by name (the rest counted)
MAX_NAMES_PER_VERDICT = 10  # tickers named per Diebold-Mariano verdict (the rest counted)
MAX_SUMMARY_CHARS = 600_000  # plots are linked, not embedded, past this (Prefect: 1.5 MB)


@dataclass(frozen=True)
class SummarySelection:
    """Which tickers the run summary lists: all when few, else the best and worst.

    Attributes:
        best: Succeeded tickers with the lowest backtest U2 (all succeeded ones, in run
            order, when there are at most ``2 * n``).
        worst: The highest backtest U2 (or none), worst last; tickers without a score last.
        failed: Failed tickers listed by name.
        not_listed: Succeeded tickers between best and worst.
        failed_not_listed: Failed tickers counted but not named.
        total: Every ticker of the run.
    """

    best: list[MetricsRow]
    worst: list[MetricsRow]
    failed: list[MetricsRow]
    not_listed: int
    failed_not_listed: int
    total: int

    @property
    def rows(self) -> list[MetricsRow]:
        return [*self.best, *self.worst, *self.failed]

    @property
    def complete(self) -> bool:
        return not self.not_listed and not self.failed_not_listed


def select_summary(
    rows: Sequence[MetricsRow],
    n: int = SUMMARY_EXTREMES,
    max_failed: int = MAX_LISTED_FAILURES,
) -> SummarySelection:
    """The tickers a summary lists: every one when at most ``2 * n`` succeeded, else the
    ``n`` best and ``n`` worst by backtest U2; failed ones up to ``max_failed``."""
    ok = [row for row in rows if row.status == "ok"]
    failed = [row for row in rows if row.status != "ok"]
    if len(ok) <= 2 * n:
        best, worst = ok, []
    else:
        ranked = sorted(
            ok,
            key=lambda r: (r.backtest_u2 is None, r.backtest_u2 or 0.0, r.ticker),
        )
        best, worst = ranked[:n], ranked[-n:]
    return SummarySelection(
        best=best,
        worst=worst,
        failed=failed[:max_failed],
        not_listed=len(ok) - len(best) - len(worst),
        failed_not_listed=max(0, len(failed) - max_failed),
        total=len(rows),
    )


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
    a run's summary stays small in the Prefect database). The palette is chosen by fast
    octree (not median cut): half the time of the summary's thumbnails, and smaller."""
    from PIL import Image  # matplotlib's own image library

    with Image.open(io.BytesIO(png)) as image:
        thumbnail = image.convert("RGB")
    scaled = thumbnail.width > max_width
    if scaled:
        height = round(thumbnail.height * max_width / thumbnail.width)
        thumbnail = thumbnail.resize((max_width, height), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumbnail.quantize(256, method=Image.Quantize.FASTOCTREE).save(
        buffer, format="PNG", optimize=True
    )
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

    The first ``max_inline`` plots are embedded (one read each, no existence check first);
    a plot that cannot be read (a failed ticker wrote none) is left out.
    """
    plots = {}
    for index, (name, key) in enumerate(keys.items()):
        if index < max_inline:
            try:
                inline: str | None = inline_png(storage.read_bytes(key))
            except ObjectNotFoundError:
                continue
        elif storage.exists(key):
            inline = None
        else:
            continue
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


def _named(names: list[str], limit: int) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def evidence_markdown(
    rows: Sequence[MetricsRow],
    alpha: float = EVIDENCE_ALPHA,
    max_names: int = MAX_NAMES_PER_VERDICT,
) -> list[str]:
    """In words: which tickers show evidence of beating naive (one-sided Diebold-Mariano on
    squared errors, HLN-corrected), on the backtest and on the lineage's live record; at
    most ``max_names`` tickers are named per verdict (the lowest p-values first when better,
    the highest when worse), the others counted."""
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
                groups[verdict].append(row)
        if not any(groups.values()):
            lines.append(f"- **{label}**: no ticker has enough scored days for the test yet.")
            continue
        parts = []
        for verdict, members in groups.items():
            if not members:
                continue
            if len(members) > max_names:  # name the clearest cases
                members = sorted(members, key=p_of, reverse=verdict == "worse")
            names = [f"{r.ticker} (U2 {u2_of(r):.3f}, p {p_of(r):.2g})" for r in members]
            parts.append(f"{len(members)} {titles[verdict]}: {_named(names, max_names)}")
        lines.append(f"- **{label}**: " + "; ".join(parts) + ".")
    return lines


def summary_markdown(
    scope: RunScope,
    rows: Sequence[MetricsRow],
    plots: Mapping[str, UiPlot],
    *,
    full_table: str | None = None,
    max_chars: int = MAX_SUMMARY_CHARS,
) -> str:
    """The run summary shown on the flow run page: the metrics table, then the plots.

    Bounded at any watchlist size (see the module docstring): beyond ``2 *
    SUMMARY_EXTREMES`` tickers it lists the best and worst and the failed ones, and says
    where the full table is; plots are embedded only while the text stays under
    ``max_chars`` (then linked, or named by key).

    Args:
        scope: The run date and watchlist.
        rows: The run's metrics rows (all of them).
        plots: From :func:`ui_plots`: ``summary`` and one per listed ticker.
        full_table: A URL (or, for local storage, the key) of the run's full metrics table.
        max_chars: Embed no more plots past this length.
    """
    selection = select_summary(rows)
    listed = selection.rows
    linked = any(plot.link for plot in plots.values())  # a plot column only if it has links
    lines = [f"# closecast daily forecast, {scope.run_date}, watchlist {scope.watchlist}", ""]
    if not selection.complete:
        lines += [_selection_note(selection, full_table), ""]
    lines += [
        "| ticker | status | backtest U2 | live U2 (lineage) | served scored | live U2 20d "
        "| mode | why |" + (" plot |" if linked else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|" if linked else ""),
    ]
    for row in listed:
        if selection.not_listed and row is (selection.worst or [None])[0]:
            lines.append(
                f"| … | {selection.not_listed} more | | | | | | |" + (" |" if linked else "")
            )
        why = (row.mode_reason or row.error or "").replace("|", "\\|")
        plot = plots.get(row.ticker)
        full = f" [full-size]({plot.link}) |" if plot and plot.link else " |"
        lines.append(
            f"| {row.ticker} | {row.status} | {_fmt(row.backtest_u2, '.3f')} "
            f"| {_fmt(row.live_u2_lineage, '.3f')} | {_fmt(row.live_n_lineage, 'd')} "
            f"| {_fmt(row.live_u2_20d, '.3f')} | {row.mode or ''} | {why} |"
            + (full if linked else "")
        )
    if selection.failed_not_listed:
        lines.append(
            f"| … | {selection.failed_not_listed} more failed | | | | | | |"
            + (" |" if linked else "")
        )
    lines += ["", "## Better than naive, or luck?", "", *evidence_markdown(rows)]
    lines += [
        "",
        "U2 = RMSE / naive RMSE: below 1 beats 'tomorrow = today'. *Backtest*: the lineage's "
        "retrain procedure fit before a hold-out tail and scored on it. *Live*: forecasts "
        "served by earlier runs, scored on the prices that followed.",
    ]
    sections = [("All tickers", "summary", "summary")] if "summary" in plots else []
    sections += [(r.ticker, r.ticker, f"{r.ticker} plot") for r in listed if r.ticker in plots]
    size = sum(len(line) + 1 for line in lines)
    for heading, name, alt in sections:
        plot = plots[name]
        block = _image(plot, alt)
        if plot.inline and size + len(block) > max_chars:
            block = _image(replace(plot, inline=None), alt)  # too big to embed: link it
        lines += ["", f"## {heading}", "", block]
        size += len(block) + len(heading) + 8
    return "\n".join(lines)


def _selection_note(selection: SummarySelection, full_table: str | None) -> str:
    ok = selection.total - len(selection.failed) - selection.failed_not_listed
    shown = f"the {len(selection.best)} best and {len(selection.worst)} worst by backtest U2"
    if selection.failed:
        shown += f", and {len(selection.failed)} failed"
    where = "the run's metrics table"
    if full_table:
        where = (
            f"[the full metrics table]({full_table})"
            if "://" in full_table
            else f"the full metrics table `{full_table}`"
        )
    failed = len(selection.failed) + selection.failed_not_listed
    return (
        f"**{selection.total} tickers**: {ok} succeeded, {failed} failed. Shown: {shown}; "
        f"every ticker is in {where}."
    )


def table_artifact_rows(rows: Sequence[MetricsRow]) -> list[dict[str, Any]]:
    """The metrics table artifact: the rows :func:`select_summary` lists (every row for a
    small watchlist), JSON-ready."""
    return [
        {k: (v.isoformat() if isinstance(v, date) else v) for k, v in vars(row).items()}
        for row in select_summary(rows).rows
    ]
