"""Trading calendars: NYSE sessions for stocks/ETFs, every day for crypto."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from closecast.inputs.calendars import (
    bar_final_at,
    expected_last_date,
    is_trading_day,
    latest_trading_day,
    next_trading_day,
    previous_trading_day,
    trading_days_between,
)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2020, 11, 25), date(2020, 11, 27)),  # Thanksgiving 2020-11-26
        (date(2020, 12, 24), date(2020, 12, 28)),  # Christmas Friday, then the weekend
        (date(2020, 12, 11), date(2020, 12, 14)),  # Friday -> Monday
        (date(2020, 12, 12), date(2020, 12, 14)),  # from a Saturday
        (date(2001, 9, 10), date(2001, 9, 17)),  # markets closed after 9/11
    ],
)
def test_next_trading_day_for_stocks(day: date, expected: date):
    assert next_trading_day("stock", day) == expected
    assert next_trading_day("etf", day) == expected


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2020, 11, 27), date(2020, 11, 25)),
        (date(2020, 12, 28), date(2020, 12, 24)),
        (date(2020, 12, 14), date(2020, 12, 11)),
    ],
)
def test_previous_trading_day_for_stocks(day: date, expected: date):
    assert previous_trading_day("stock", day) == expected


def test_crypto_trades_every_day():
    assert next_trading_day("crypto", date(2020, 12, 11)) == date(2020, 12, 12)
    assert previous_trading_day("crypto", date(2020, 12, 14)) == date(2020, 12, 13)
    assert is_trading_day("crypto", date(2020, 12, 25))
    assert expected_last_date("crypto", date(2020, 12, 13)) == date(2020, 12, 13)
    assert trading_days_between("crypto", date(2020, 12, 11), date(2020, 12, 14)) == 3


def test_is_trading_day_and_latest():
    assert is_trading_day("stock", date(2020, 12, 11))
    assert not is_trading_day("stock", date(2020, 12, 12))
    assert not is_trading_day("stock", date(2020, 11, 26))
    assert latest_trading_day("stock", date(2020, 12, 13)) == date(2020, 12, 11)
    assert latest_trading_day("stock", date(2020, 12, 11)) == date(2020, 12, 11)


def test_expected_last_date_for_stocks():
    assert expected_last_date("stock", date(2020, 12, 11)) == date(2020, 12, 11)
    assert expected_last_date("stock", date(2020, 12, 13)) == date(2020, 12, 11)
    assert expected_last_date("etf", date(2020, 12, 25)) == date(2020, 12, 24)


def test_trading_days_between_counts_sessions_after_start_up_to_end():
    assert trading_days_between("stock", date(2020, 12, 4), date(2020, 12, 11)) == 5
    assert trading_days_between("stock", date(2020, 11, 25), date(2020, 11, 27)) == 1
    assert trading_days_between("stock", date(2020, 12, 11), date(2020, 12, 11)) == 0
    assert trading_days_between("stock", date(2020, 12, 11), date(2020, 12, 4)) == 0


def test_dates_outside_the_calendar_window_fall_back_to_weekdays():
    # 1950 is before the cached NYSE window; the fallback ignores holidays.
    assert next_trading_day("stock", date(1950, 1, 6)) == date(1950, 1, 9)
    assert previous_trading_day("stock", date(1950, 1, 9)) == date(1950, 1, 6)
    assert is_trading_day("stock", date(1950, 1, 2))
    assert not is_trading_day("stock", date(1950, 1, 7))
    assert trading_days_between("stock", date(1950, 1, 1), date(1950, 1, 10)) == 7
    far = date(2200, 1, 2)  # a Thursday
    assert next_trading_day("stock", far) == date(2200, 1, 3)


def test_bar_final_at():
    assert bar_final_at("crypto", date(2020, 12, 11)) == datetime(2020, 12, 12, tzinfo=UTC)
    # 16:00 New York (21:00 UTC in winter) + 30 minutes.
    assert bar_final_at("stock", date(2020, 12, 11)) == datetime(2020, 12, 11, 21, 30, tzinfo=UTC)
    # Early close at 13:00 New York.
    assert bar_final_at("stock", date(2020, 11, 27)) == datetime(2020, 11, 27, 18, 30, tzinfo=UTC)


def test_unknown_asset_class_is_rejected():
    with pytest.raises(ValueError, match="stock, etf, crypto"):
        next_trading_day("bond", date(2020, 12, 11))  # type: ignore[arg-type]
