"""Watchlists: which tickers a run forecasts, and the asset class of each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from closecast.calendars import ASSET_CLASSES, AssetClass

# Yahoo symbols: letters, digits and . - ^ = (BRK-B, ^GSPC, BTC-USD, EURUSD=X).
_SYMBOL = re.compile(r"^[A-Z0-9^][A-Z0-9.\-^=]{0,19}$")


class WatchlistError(ValueError):
    """A watchlist that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class WatchItem:
    """One ticker of a watchlist."""

    symbol: str
    asset_class: AssetClass


def _parse_item(entry: object, where: str) -> WatchItem:
    if not isinstance(entry, dict):
        raise WatchlistError(f"{where}: expected a mapping with 'symbol' and 'asset_class'")
    symbol = str(entry.get("symbol", "")).strip().upper()
    asset_class = str(entry.get("asset_class", "")).strip().lower()
    if not _SYMBOL.match(symbol):
        raise WatchlistError(f"{where}: {entry.get('symbol')!r} is not a ticker symbol")
    if asset_class not in ASSET_CLASSES:
        raise WatchlistError(
            f"{where} ({symbol}): asset_class {entry.get('asset_class')!r} is not one of "
            f"{', '.join(ASSET_CLASSES)}"
        )
    return WatchItem(symbol=symbol, asset_class=asset_class)  # type: ignore[arg-type]


def parse_watchlist(text: str, *, origin: str) -> list[WatchItem]:
    """Parse watchlist YAML (``tickers: [{symbol, asset_class}, ...]``).

    Args:
        text: The YAML document.
        origin: Where it came from, for error messages.

    Raises:
        WatchlistError: Malformed YAML, no tickers, a bad entry, or a duplicate symbol.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WatchlistError(f"{origin}: not valid YAML ({exc})") from exc
    entries = document.get("tickers") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise WatchlistError(f"{origin}: expected a non-empty list under 'tickers'")
    items = [_parse_item(entry, f"{origin}: tickers[{i}]") for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for item in items:
        if item.symbol in seen:
            raise WatchlistError(f"{origin}: {item.symbol} is listed more than once")
        seen.add(item.symbol)
    return items


def default_watchlist_text() -> str:
    """The YAML of the watchlist shipped with the package."""
    return resources.files("closecast").joinpath("default_watchlist.yaml").read_text("utf-8")


def load_watchlist(path: str | Path | None = None) -> list[WatchItem]:
    """Load a watchlist file, or the shipped default when ``path`` is None."""
    if path is None:
        return parse_watchlist(default_watchlist_text(), origin="default watchlist")
    path = Path(path)
    if not path.is_file():
        raise WatchlistError(f"{path}: no such watchlist file")
    return parse_watchlist(path.read_text("utf-8"), origin=str(path))


def guess_asset_class(symbol: str) -> AssetClass:
    """Asset class for a bare symbol: the default watchlist's, else crypto for ``*-USD``."""
    known = {item.symbol: item.asset_class for item in load_watchlist()}
    if symbol in known:
        return known[symbol]
    return "crypto" if symbol.endswith("-USD") else "stock"


def items_from_symbols(symbols: list[str]) -> list[WatchItem]:
    """A watchlist from bare symbols (``--tickers A,B``), asset classes guessed."""
    cleaned = [s.strip().upper() for s in symbols if s.strip()]
    entries = [{"symbol": s, "asset_class": guess_asset_class(s)} for s in cleaned]
    return parse_watchlist(yaml.safe_dump({"tickers": entries}), origin="--tickers")
