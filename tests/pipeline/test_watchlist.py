"""Watchlist parsing: the shipped default, and clear errors naming the bad entry."""

from __future__ import annotations

import pytest

from closecast.watchlist import (
    WatchlistError,
    items_from_symbols,
    load_watchlist,
    parse_watchlist,
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
    ],
)
def test_bad_watchlists_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(WatchlistError, match=message):
        parse_watchlist(text, origin="wl.yaml")


def test_missing_file_is_named(tmp_path) -> None:
    with pytest.raises(WatchlistError, match="no such watchlist file"):
        load_watchlist(tmp_path / "nope.yaml")


def test_symbols_get_asset_classes() -> None:
    items = items_from_symbols(["qqq", "ETH-USD", "MSFT"])
    assert [(i.symbol, i.asset_class) for i in items] == [
        ("QQQ", "etf"),
        ("ETH-USD", "crypto"),
        ("MSFT", "stock"),
    ]
