"""Which tickers a run forecasts, and under which watchlist name its outputs are filed."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from closecast.inputs.watchlist import (
    WatchItem,
    WatchlistError,
    check_symbols,
    items_from_symbols,
    load_watchlist,
)
from closecast.outputs.catalog import (
    ADHOC_WATCHLIST_NAME,
    DEFAULT_WATCHLIST_NAME,
    check_watchlist_name,
)


@dataclass(frozen=True)
class RunTickers:
    """The run's tickers and the watchlist they are filed under.

    Attributes:
        name: The watchlist name in keys, run names and artifact keys.
        items: The tickers this run forecasts.
        members: Every ticker of the named watchlist (a partial rerun keeps the others'
            outputs; tickers no longer listed are dropped), or None for ad-hoc runs, whose
            outputs accumulate per ticker.
    """

    name: str
    items: tuple[WatchItem, ...]
    members: frozenset[str] | None

    @property
    def symbols(self) -> list[str]:
        return [item.symbol for item in self.items]


def name_from_path(path: str | None) -> str:
    """``stocks`` for ``deployments/watchlists/stocks.yaml``; ``default`` for the packaged."""
    if path is None:
        return DEFAULT_WATCHLIST_NAME
    stem = Path(path).stem.lower()
    return re.sub(r"[^a-z0-9_-]+", "-", stem).strip("-_") or DEFAULT_WATCHLIST_NAME


def select(watchlist: str | None, tickers: list[str] | None, name: str | None = None) -> RunTickers:
    """Resolve the run's tickers.

    Args:
        watchlist: A watchlist file (the packaged default when None and no tickers).
        tickers: Symbols: with a watchlist file, the subset of it to rerun; alone, an ad-hoc
            run filed under ``adhoc``.
        name: Overrides the watchlist name used in keys.

    Raises:
        WatchlistError: A bad file or symbol, or a ticker that is not in the watchlist.
        CatalogError: A name that cannot be part of a key.
    """
    if tickers is not None and watchlist is None:
        items = tuple(items_from_symbols(tickers))
        filed_as = name if name is not None else ADHOC_WATCHLIST_NAME  # '' is refused, not adhoc
        return RunTickers(check_watchlist_name(filed_as), items, None)
    listed = load_watchlist(watchlist)
    members = frozenset(item.symbol for item in listed)
    items = tuple(listed)
    if tickers is not None:
        wanted = check_symbols(tickers)
        unknown = [s for s in wanted if s not in members]
        if unknown:
            raise WatchlistError(
                f"{', '.join(unknown)} not in watchlist {watchlist} ({', '.join(sorted(members))})"
            )
        items = tuple(item for item in listed if item.symbol in wanted)
    if name is None:
        _check_nameable(watchlist)
    return RunTickers(
        check_watchlist_name(name if name is not None else name_from_path(watchlist)),
        items,
        members,
    )


def _check_nameable(path: str | None) -> None:
    """Refuse a file whose stem :func:`name_from_path` would fold into another name.

    Non-ASCII characters are dropped by that folding, so ``café ☕.yaml`` and ``caf.yaml``
    would share the outputs of ``caf``.

    Raises:
        WatchlistError: The stem holds a non-ASCII character; the message suggests
            ``--watchlist-name``.
    """
    if path is None:
        return
    stem = Path(path).stem
    odd = next((char for char in stem if not char.isascii()), None)
    if odd is not None:
        raise WatchlistError(
            f"{path}: the file name {stem!r} cannot name the outputs (non-ASCII character "
            f"{odd!r}, which would be dropped and could collide with another watchlist's "
            f"name {name_from_path(path)!r}); rename the file or pass --watchlist-name NAME"
        )
