"""Which exchange calendar a Yahoo symbol follows, and when its candles close (exchange_calendars data)."""

from __future__ import annotations

import datetime as dt

import pytest

from tradeforge.feeds.sessions import MarketSessions, calendar_code
from tradeforge.resilience.errors import ConfigError

UTC = dt.UTC
HOUR = dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("symbol", "code"),
    [
        ("AAPL", "XNYS"),
        ("^GSPC", "XNYS"),
        ("VOD.L", "XLON"),
        ("7203.T", "XTKS"),
        ("EURUSD=X", "24/5"),
        ("BTC-USD", "24/7"),
    ],
)
def test_the_calendar_follows_the_symbols_suffix(symbol, code):
    assert calendar_code(symbol) == code


def test_an_unknown_suffix_asks_for_the_calendar_setting_and_an_override_wins():
    with pytest.raises(ConfigError, match=r"data\.yahoo\.calendar"):
        calendar_code("CL=F")
    assert calendar_code("CL=F", "CMES") == "CMES"
    with pytest.raises(ConfigError, match="not an exchange_calendars code"):
        MarketSessions("NOPE")


def test_a_candle_closes_with_its_session_when_that_comes_first():
    nyse = MarketSessions("XNYS")
    last_hour = dt.datetime(2024, 7, 2, 19, 30, tzinfo=UTC)  # 15:30 New York
    assert nyse.candle_close(last_hour, HOUR, daily=False) == dt.datetime(2024, 7, 2, 20, tzinfo=UTC)
    early = dt.datetime(2024, 7, 3, 16, 30, tzinfo=UTC)  # 12:30 on the day before Independence Day
    assert nyse.candle_close(early, HOUR, daily=False) == dt.datetime(2024, 7, 3, 17, tzinfo=UTC)
    assert nyse.candle_close(dt.datetime(2024, 7, 3, tzinfo=UTC), HOUR, daily=True) == dt.datetime(
        2024, 7, 3, 17, tzinfo=UTC
    )


def test_the_next_candle_skips_nights_holidays_and_weekends():
    nyse = MarketSessions("XNYS")
    early = dt.datetime(2024, 7, 3, 16, 30, tzinfo=UTC)
    assert nyse.next_candle_open(early, HOUR, daily=False) == dt.datetime(2024, 7, 5, 13, 30, tzinfo=UTC)
    friday = dt.datetime(2024, 7, 5, tzinfo=UTC)
    assert nyse.next_candle_open(friday, 24 * HOUR, daily=True) == dt.datetime(2024, 7, 8, tzinfo=UTC)
    assert not nyse.is_open(dt.datetime(2024, 7, 4, 15, tzinfo=UTC))
    assert nyse.next_open(dt.datetime(2024, 7, 4, 15, tzinfo=UTC)) == dt.datetime(2024, 7, 5, 13, 30, tzinfo=UTC)


def test_fx_trades_round_the_clock_on_weekdays_only():
    fx = MarketSessions("24/5")
    assert fx.is_open(dt.datetime(2024, 7, 4, 3, tzinfo=UTC))  # a US holiday does not close FX
    assert not fx.is_open(dt.datetime(2024, 7, 6, 12, tzinfo=UTC))
    friday_late = dt.datetime(2024, 7, 5, 23, tzinfo=UTC)
    assert fx.next_candle_open(friday_late, HOUR, daily=False) == dt.datetime(2024, 7, 8, tzinfo=UTC)
