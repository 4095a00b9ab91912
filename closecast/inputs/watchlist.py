"""Watchlists: which tickers a run forecasts, and the asset class of each."""

from __future__ import annotations

import reprlib
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import yaml

from closecast.control.choices import serve_choices
from closecast.inputs.calendars import ASSET_CLASSES, AssetClass
from closecast.inputs.tickers import InvalidTickerError, normalize_symbol

MAX_WATCHLIST_BYTES = 256 * 1024
"""Largest watchlist file read (thousands of tickers); anything bigger is refused unread."""

WATCHLIST_FIELDS = ("tickers",)
"""The top-level keys of a watchlist file."""

ENTRY_FIELDS = ("symbol", "asset_class", "serve")

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60


class WatchlistError(ValueError):
    """A watchlist that cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class WatchItem:
    """One ticker of a watchlist."""

    symbol: str
    asset_class: AssetClass
    serve: str | None = None  # which model serves this ticker; None: the run's setting


class _AnchorRefused(yaml.YAMLError):
    """An anchor or alias in a watchlist (see :class:`_WatchlistLoader`)."""

    def __init__(self, mark: yaml.Mark | None) -> None:
        super().__init__(f"line {mark.line + 1}" if mark is not None else "")


@dataclass(frozen=True)
class _NotText:
    """A scalar YAML did not read as text (``0700`` is the octal number 448, ``ON`` is true).

    Every watchlist value is text, so the loader keeps what was written beside what YAML made
    of it, for a message that shows both.
    """

    written: str
    value: object


class _WatchlistLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases (``&a``, ``*a``, ``<<: *a``).

    Aliases let a few hundred bytes expand into billions of nodes ("billion laughs");
    a watchlist never needs them, so the first one stops parsing before anything grows.
    Numbers and booleans are loaded as :class:`_NotText`.
    """

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _AnchorRefused(event.start_mark)
        return super().compose_node(parent, index)


def _construct_not_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> _NotText:
    value = yaml.SafeLoader.yaml_constructors[node.tag](loader, node)
    return _NotText(written=str(node.value), value=value)


for _tag in ("int", "float", "bool"):
    _WatchlistLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _construct_not_text)


def _load_yaml(text: str, origin: str) -> object:
    try:
        return yaml.load(text, Loader=_WatchlistLoader)  # a SafeLoader subclass
    except _AnchorRefused as exc:
        raise WatchlistError(
            f"{origin}: YAML anchors and aliases (&name, *name) are not allowed in a "
            f"watchlist ({exc}); write each entry out"
        ) from None
    except RecursionError:
        raise WatchlistError(f"{origin}: not valid YAML (nested too deeply)") from None
    except yaml.YAMLError as exc:  # PyYAML's messages span lines: keep errors on one
        raise WatchlistError(f"{origin}: not valid YAML ({' '.join(str(exc).split())})") from None


def _written(value: object) -> object:
    """What the user wrote, for messages (a key YAML read as a number shows as written)."""
    return value.written if isinstance(value, _NotText) else value


def _text_field(entry: dict[object, object], name: str, where: str) -> str:
    value = entry.get(name)
    if value is None:
        raise WatchlistError(f"{where}: missing {name!r}")
    if isinstance(value, _NotText):
        kind = "a boolean" if isinstance(value.value, bool) else "a number"
        raise WatchlistError(
            f"{where}: {name} {_SHORT.repr(value.written)} must be text, but YAML read it as "
            f"{kind}, {_SHORT.repr(value.value)}; quote it: {name}: {_SHORT.repr(value.written)}"
        )
    if not isinstance(value, str):
        raise WatchlistError(
            f"{where}: {name} {_SHORT.repr(value)} must be text, not {type(value).__name__} "
            "(quote it, e.g. '0700.HK')"
        )
    return value


def _parse_item(entry: object, where: str, guess: Callable[[str], AssetClass]) -> WatchItem:
    if isinstance(entry, str | _NotText):  # a bare symbol
        entry = {"symbol": entry}
    if not isinstance(entry, dict):
        raise WatchlistError(
            f"{where}: expected a symbol or a mapping with 'symbol' (and 'asset_class', 'serve')"
        )
    unknown = [key for key in entry if key not in ENTRY_FIELDS]
    if unknown:
        raise WatchlistError(
            f"{where}: unknown field(s) {', '.join(_SHORT.repr(_written(k)) for k in unknown)}; "
            f"an entry has {', '.join(ENTRY_FIELDS)}"
        )
    raw_symbol = _text_field(entry, "symbol", where)
    try:
        symbol = normalize_symbol(raw_symbol)
    except InvalidTickerError as exc:
        raise WatchlistError(f"{where}: {exc}") from None
    if entry.get("asset_class") is None:
        return WatchItem(symbol, guess(symbol), _serve(entry, where, symbol))
    raw_class = _text_field(entry, "asset_class", f"{where} ({symbol})")
    asset_class = raw_class.strip().lower()
    if asset_class not in ASSET_CLASSES:
        raise WatchlistError(
            f"{where} ({symbol}): asset_class {_SHORT.repr(raw_class)} is not one of "
            f"{', '.join(ASSET_CLASSES)}"
        )
    return WatchItem(symbol, asset_class, _serve(entry, where, symbol))  # type: ignore[arg-type]


def _serve(entry: dict[object, object], where: str, symbol: str) -> str | None:
    if "serve" not in entry:
        return None
    serve = _text_field(entry, "serve", where).strip().lower()
    if serve not in serve_choices():
        raise WatchlistError(
            f"{where} ({symbol}): serve {_SHORT.repr(entry['serve'])} is not one of "
            f"{', '.join(serve_choices())}"
        )
    return serve


def _check_unique(items: list[WatchItem], origin: str) -> list[WatchItem]:
    seen: set[str] = set()
    for item in items:
        if item.symbol in seen:
            raise WatchlistError(f"{origin}: {item.symbol} is listed more than once")
        seen.add(item.symbol)
    return items


def parse_watchlist(text: str, *, origin: str) -> list[WatchItem]:
    """Parse watchlist YAML (``tickers: [{symbol, asset_class}, ...]``).

    Symbols follow the one rule of :func:`closecast.inputs.tickers.normalize_symbol`. An entry
    may be a bare symbol, and ``asset_class`` may be left out: it is then guessed as for
    ``--tickers`` (:func:`guess_asset_class`).

    Args:
        text: The YAML document.
        origin: Where it came from, for error messages.

    Raises:
        WatchlistError: Malformed YAML, anchors or aliases, no tickers, a bad entry
            (unknown field, bad symbol or asset class), or a duplicate symbol.
    """
    document = _load_yaml(text, origin)
    if isinstance(document, dict):
        unknown = [key for key in document if key not in WATCHLIST_FIELDS]
        if unknown:
            raise WatchlistError(
                f"{origin}: unknown top-level key(s) "
                f"{', '.join(_SHORT.repr(_written(k)) for k in unknown)}; a watchlist has only "
                f"{', '.join(map(repr, WATCHLIST_FIELDS))}"
            )
    entries = document.get("tickers") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise WatchlistError(f"{origin}: expected a non-empty list under 'tickers'")
    known: dict[str, AssetClass] = {}

    def guess(symbol: str) -> AssetClass:
        if not known:  # the default watchlist's classes, read once and only if needed
            known.update(default_asset_classes())
        return guess_asset_class(symbol, known)

    items = [
        _parse_item(entry, f"{origin}: tickers[{i}]", guess) for i, entry in enumerate(entries)
    ]
    return _check_unique(items, origin)


def default_watchlist_text() -> str:
    """The YAML of the watchlist shipped with the package."""
    return resources.files("closecast").joinpath("default_watchlist.yaml").read_text("utf-8")


def read_watchlist_text(path: Path) -> str:
    """Read a watchlist file as text, refusing what cannot be one before parsing it.

    Raises:
        WatchlistError: Missing, not a regular file, unreadable, larger than
            :data:`MAX_WATCHLIST_BYTES`, or not UTF-8.
    """
    if not path.exists():
        raise WatchlistError(f"{path}: no such watchlist file")
    if not path.is_file():
        raise WatchlistError(f"{path}: not a regular file")
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_WATCHLIST_BYTES + 1)
    except OSError as exc:
        raise WatchlistError(f"{path}: cannot read the watchlist ({exc.strerror})") from None
    if len(data) > MAX_WATCHLIST_BYTES:
        raise WatchlistError(
            f"{path}: larger than {MAX_WATCHLIST_BYTES // 1024} KiB; a watchlist is a short "
            "list of tickers"
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise WatchlistError(f"{path}: not UTF-8 text (byte {exc.start})") from None


def load_watchlist(path: str | Path | None = None) -> list[WatchItem]:
    """Load a watchlist file, or the shipped default when ``path`` is None.

    Raises:
        WatchlistError: See :func:`read_watchlist_text` and :func:`parse_watchlist`.
    """
    if path is None:
        return parse_watchlist(default_watchlist_text(), origin="default watchlist")
    path = Path(path)
    return parse_watchlist(read_watchlist_text(path), origin=str(path))


def guess_asset_class(symbol: str, known: dict[str, AssetClass] | None = None) -> AssetClass:
    """Asset class for a bare symbol: the default watchlist's, else crypto for ``*-USD``.

    Args:
        symbol: A normalised symbol.
        known: The default watchlist's classes (:func:`default_asset_classes`), when the
            caller guesses many symbols; read here when None.
    """
    known = default_asset_classes() if known is None else known
    if symbol in known:
        return known[symbol]
    return "crypto" if symbol.endswith("-USD") else "stock"


def default_asset_classes() -> dict[str, AssetClass]:
    """The asset class of each symbol of the shipped default watchlist."""
    return {item.symbol: item.asset_class for item in load_watchlist()}


def split_tickers(text: str | None) -> list[str] | None:
    """The symbols of a ``--tickers A,B`` value, as given (None when the option is absent).

    An empty value is kept as an empty list, not None: ``--tickers ''`` must be refused, not
    read as "no --tickers" (which would run the whole default watchlist).
    """
    return None if text is None else text.split(",")


def check_symbols(symbols: list[str], origin: str = "--tickers") -> list[str]:
    """Normalize ``--tickers`` symbols, refusing an empty list and every empty symbol.

    Raises:
        WatchlistError: No symbol (``''``, ``' , '``), an empty symbol beside others (a
            stray comma: ``'AAPL,'``), or a symbol breaking the ticker rule.
    """
    if not any(raw.strip() for raw in symbols):
        raise WatchlistError(f"{origin}: no ticker symbol given")
    empty = [i + 1 for i, raw in enumerate(symbols) if not raw.strip()]
    if empty:
        raise WatchlistError(
            f"{origin}: empty symbol at position {', '.join(map(str, empty))} of "
            f"{_SHORT.repr(','.join(symbols))} (a stray comma?); list symbols as A,B"
        )
    try:
        return [normalize_symbol(raw) for raw in symbols]
    except InvalidTickerError as exc:
        raise WatchlistError(f"{origin}: {exc}") from None


def items_from_symbols(symbols: list[str]) -> list[WatchItem]:
    """A watchlist from bare symbols (``--tickers A,B``), asset classes guessed.

    Raises:
        WatchlistError: No symbol, an empty symbol, a symbol breaking the ticker rule, or a
            duplicate.
    """
    cleaned = check_symbols(symbols)
    known = default_asset_classes()  # read once: parsing it per symbol was ~3 ms each
    items = [WatchItem(symbol=s, asset_class=guess_asset_class(s, known)) for s in cleaned]
    return _check_unique(items, "--tickers")
