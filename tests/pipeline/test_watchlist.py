"""Watchlist parsing: the shipped default, and clear errors naming the bad entry."""

from __future__ import annotations

import pytest

from closecast.inputs.tickers import InvalidTickerError, normalize_symbol
from closecast.inputs.watchlist import (
    MAX_WATCHLIST_BYTES,
    WatchlistError,
    items_from_symbols,
    load_watchlist,
    parse_watchlist,
)
from closecast.sources.base import normalize_ticker

# Nine levels of nine-fold aliases: 9**9 (387 million) strings if expanded.
BILLION_LAUGHS = "\n".join(
    [
        'l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
        *(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, 9)),
        "tickers:",
        "  - {symbol: AAPL, asset_class: stock, note: *l8}",
        "",
    ]
)


def test_default_watchlist_has_stocks_an_etf_and_bitcoin() -> None:
    classes = {item.symbol: item.asset_class for item in load_watchlist()}
    assert classes["BTC-USD"] == "crypto"
    assert "etf" in classes.values()
    assert list(classes.values()).count("stock") >= 2


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("tickers: []", "non-empty list"),
        ("- AAPL", "non-empty list under 'tickers'"),
        ("tickers: [{symbol: AAPL, asset_class: bond}]", "AAPL.*bond"),
        ("tickers: [{symbol: 'no spaces', asset_class: stock}]", "not a ticker symbol"),
        (
            "tickers: [{symbol: A, asset_class: stock}, {symbol: a, asset_class: stock}]",
            "A is listed more than once",
        ),
        ("tickers: [", "not valid YAML"),
        ("tickers: [{symbol: A..B, asset_class: stock}]", "'A..B': not a ticker symbol"),
        ("tickers: [{symbol: ſpy, asset_class: stock}]", "'ſpy'.*non-ASCII"),
        (
            "tickers: [{symbol: 1234, asset_class: stock}]",
            "symbol '1234' must be text, but YAML read it as a number, 1234; quote it",
        ),
        ("tickers: [{symbol: AAPL, asset_class: stock}]\nschedule: daily", "top-level.*'schedule'"),
        ("tickers: [{symbol: AAPL, asset_class: [stock]}]", "asset_class.*must be text"),
        ("tickers: [{asset_class: stock}]", "tickers\\[0\\]: missing 'symbol'"),
        ("tickers: [{symbol: AAPL, asset_clas: stock}]", "unknown field.*'asset_clas'"),
        ("tickers: [[AAPL]]", "tickers\\[0\\]: expected a symbol or a mapping"),
        ("tickers: [0700]", "symbol '0700' must be text.*quote it"),
        ("x: &a {symbol: AAPL}\ntickers: [*a]", "anchors and aliases"),
        ("[" * 5_000, "nested too deeply"),
    ],
)
def test_bad_watchlists_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(WatchlistError, match=message):
        parse_watchlist(text, origin="wl.yaml")


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(WatchlistError, match="no such watchlist file"):
        load_watchlist(tmp_path / "nope.yaml")


def test_bare_symbols_and_entries_without_a_class_get_the_guessed_class() -> None:
    text = "tickers: [qqq, ETH-USD, {symbol: MSFT}, {symbol: SPY, asset_class: etf}]"
    items = parse_watchlist(text + "\n", origin="wl.yaml")
    assert [(i.symbol, i.asset_class) for i in items] == [
        ("QQQ", "etf"),  # the packaged watchlist's class
        ("ETH-USD", "crypto"),
        ("MSFT", "stock"),
        ("SPY", "etf"),  # as written (the guess would be stock)
    ]


def test_symbols_get_asset_classes() -> None:
    items = items_from_symbols(["qqq", "ETH-USD", "MSFT"])
    assert [(i.symbol, i.asset_class) for i in items] == [
        ("QQQ", "etf"),
        ("ETH-USD", "crypto"),
        ("MSFT", "stock"),
    ]


def test_alias_bomb_is_refused_before_anything_expands(tmp_path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(BILLION_LAUGHS)
    with pytest.raises(WatchlistError, match="anchors and aliases") as caught:
        load_watchlist(path)
    assert str(path) in str(caught.value)
    assert "line 1" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"tickers:\n" + b"  # padding\n" * (MAX_WATCHLIST_BYTES // 10), "larger than 256 KiB"),
        (b"\xff\xfe\x00tickers", "not UTF-8 text"),
    ],
)
def test_unreadable_files_are_refused_naming_them(tmp_path, content: bytes, message: str) -> None:
    path = tmp_path / "wl.yaml"
    path.write_bytes(content)
    with pytest.raises(WatchlistError, match=message) as caught:
        load_watchlist(path)
    assert str(path) in str(caught.value)


def test_a_directory_is_not_a_watchlist(tmp_path) -> None:
    with pytest.raises(WatchlistError, match="not a regular file"):
        load_watchlist(tmp_path)


@pytest.mark.parametrize(
    ("symbols", "message"),
    [
        (["AAPL", "A..B"], "'A..B': not a ticker symbol"),
        (["ſpy"], "non-ASCII character 'ſ'"),
        (["aapl", "AAPL "], "AAPL is listed more than once"),
        ([" ", ""], "no ticker symbol given"),
    ],
)
def test_bad_symbols_from_the_command_line(symbols: list[str], message: str) -> None:
    with pytest.raises(WatchlistError, match=message):
        items_from_symbols(symbols)


ACCEPTED = {
    "aapl": "AAPL",
    " brk-b ": "BRK-B",
    "0700.hk": "0700.HK",
    "eurusd=x": "EURUSD=X",
    "^gspc": "^GSPC",
    "BTC-USD": "BTC-USD",
}
REJECTED = ["A..B", "ſpy", "AAPL\u0130", "Ａ", "A/B", "../x", "A-", "-A", "A^B", "^", "", "X" * 33]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED.items())
def test_one_rule_accepts_the_same_symbols_everywhere(raw: str, expected: str) -> None:
    assert normalize_symbol(raw) == expected
    assert normalize_ticker(raw) == expected
    assert items_from_symbols([raw])[0].symbol == expected
    text = f"tickers: [{{symbol: '{raw}', asset_class: stock}}]"
    assert parse_watchlist(text, origin="wl.yaml")[0].symbol == expected


@pytest.mark.parametrize("raw", REJECTED)
def test_one_rule_rejects_the_same_symbols_everywhere(raw: str) -> None:
    """What the watchlist refuses, the sources refuse too (and Unicode never folds to ASCII)."""
    with pytest.raises(InvalidTickerError) as caught:
        normalize_symbol(raw)
    assert repr(raw)[:40].rstrip("'") in str(caught.value)
    with pytest.raises(ValueError, match="invalid ticker"):
        normalize_ticker(raw)
    text = f"tickers: [{{symbol: '{raw}', asset_class: stock}}]"
    with pytest.raises(WatchlistError, match="not a ticker symbol"):
        parse_watchlist(text, origin="wl.yaml")
