"""The one rule for ticker symbols, used by watchlists, sources and storage keys alike."""

from __future__ import annotations

import itertools
import re
import reprlib
import string

MAX_SYMBOL_LENGTH = 32

# Yahoo symbols: ASCII letters and digits in runs joined by single separators . - _ =,
# with an optional leading ^ for indices (AAPL, BRK-B, 0700.HK, BTC-USD, EURUSD=X, ^GSPC).
_SYMBOL = re.compile(r"^\^?[A-Z0-9]+(?:[.\-_=][A-Z0-9]+)*$")
_SEPARATORS = ".-_=^"

_SHORT = reprlib.Repr()
_SHORT.maxstring = _SHORT.maxother = 60  # a megabyte of junk must not become the message


class InvalidTickerError(ValueError):
    """A string that is not a ticker symbol; the message names it and says why.

    Attributes:
        symbol: The rejected input, as given.
        reason: Why it was rejected.
    """

    def __init__(self, symbol: object, reason: str) -> None:
        """Build the error for ``symbol`` rejected because of ``reason``."""
        super().__init__(
            f"invalid ticker {_SHORT.repr(symbol)}: not a ticker symbol ({reason}); use ASCII "
            "letters and digits joined by single . - _ = and an optional leading ^ "
            "(e.g. AAPL, BRK-B, BTC-USD, ^GSPC)"
        )
        self.symbol = symbol
        self.reason = reason

    def __reduce__(self) -> tuple[type[InvalidTickerError], tuple[object, str]]:
        """Pickle by symbol and reason (errors cross process boundaries)."""
        return (type(self), (self.symbol, self.reason))


def normalize_symbol(raw: object) -> str:
    """Check ``raw`` against the ticker rule and return it upper-cased.

    Only ASCII is accepted, and checked *before* upper-casing: Unicode case mapping would
    otherwise turn look-alikes into real symbols (``"ſpy".upper() == "SPY"``).

    Args:
        raw: The symbol as written by the user (surrounding ASCII blanks are ignored).

    Returns:
        The upper-cased symbol.

    Raises:
        InvalidTickerError: ``raw`` is not a string, is empty or too long, holds a
            non-ASCII or other disallowed character, or misplaces its separators.
    """
    if not isinstance(raw, str):
        raise InvalidTickerError(raw, f"not text but {type(raw).__name__}")
    text = raw.strip(string.whitespace)
    if not text:
        raise InvalidTickerError(raw, "empty")
    if len(text) > MAX_SYMBOL_LENGTH:
        raise InvalidTickerError(raw, f"longer than {MAX_SYMBOL_LENGTH} characters")
    if not text.isascii():
        odd = next(char for char in text if not char.isascii())
        raise InvalidTickerError(raw, f"non-ASCII character {odd!r} (U+{ord(odd):04X})")
    symbol = text.upper()
    if not _SYMBOL.match(symbol):
        raise InvalidTickerError(raw, _why_not(symbol))
    return symbol


def _why_not(symbol: str) -> str:
    """The first way ``symbol`` (ASCII, upper-cased) breaks the rule, for the message."""
    allowed = set(string.ascii_uppercase + string.digits + _SEPARATORS)
    bad = next((char for char in symbol if char not in allowed), None)
    if bad is not None:
        return f"character {bad!r} is not allowed"
    if "^" in symbol[1:]:
        return "'^' may only start a symbol"
    for first, second in itertools.pairwise(symbol):
        if first in _SEPARATORS and second in _SEPARATORS:
            return f"two separators in a row ({first}{second})"
    return "it must start and end with a letter or digit"
