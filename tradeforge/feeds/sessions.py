"""When a market trades: exchange sessions (holidays, early closes) from `exchange_calendars`, so a
polling feed knows when a candle closes and sleeps until the next open instead of polling a closed market.

Which calendar a Yahoo symbol follows is data (its suffix), not code: `CALENDAR_BY_SUFFIX`.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from types import MappingProxyType

import exchange_calendars as xcals
import pandas as pd

from tradeforge.resilience.errors import ConfigError, Problem

# Yahoo symbol suffix -> exchange_calendars code. FX (`EURUSD=X`) trades round the clock on weekdays,
# crypto (`BTC-USD`) every day; a plain ticker (`AAPL`) or a US index (`^GSPC`) follows the NYSE.
CALENDAR_BY_SUFFIX: Mapping[str, str] = MappingProxyType(
    {
        "=X": "24/5",
        "-USD": "24/7",
        "-EUR": "24/7",
        "-USDT": "24/7",
        ".L": "XLON",
        ".DE": "XETR",
        ".F": "XFRA",
        ".PA": "XPAR",
        ".AS": "XAMS",
        ".BR": "XBRU",
        ".MI": "XMIL",
        ".MC": "XMAD",
        ".SW": "XSWX",
        ".ST": "XSTO",
        ".OL": "XOSL",
        ".CO": "XCSE",
        ".HE": "XHEL",
        ".VI": "XWBO",
        ".T": "XTKS",
        ".HK": "XHKG",
        ".SS": "XSHG",
        ".KS": "XKRX",
        ".TW": "XTAI",
        ".SI": "XSES",
        ".AX": "XASX",
        ".NZ": "XNZE",
        ".TO": "XTSE",
        ".SA": "BVMF",
        ".MX": "XMEX",
        ".BO": "XBOM",
        ".JO": "XJSE",
    }
)
US_CALENDAR = "XNYS"
# Pre- and post-market trading around the regular session (US: 04:00-09:30 and 16:00-20:00 New York time;
# on an early-close day the post-market ends 4 hours after the early close).
EXTENDED_HOURS: Mapping[str, tuple[dt.timedelta, dt.timedelta]] = MappingProxyType(
    {
        "XNYS": (dt.timedelta(hours=5, minutes=30), dt.timedelta(hours=4)),
        "XNAS": (dt.timedelta(hours=5, minutes=30), dt.timedelta(hours=4)),
        "XASE": (dt.timedelta(hours=5, minutes=30), dt.timedelta(hours=4)),
    }
)
_US_INDICES = ("^GSPC", "^DJI", "^IXIC", "^RUT", "^VIX", "^NDX")


def calendar_code(symbol: str, override: str | None = None, where: str = "data.symbols") -> str:
    """The exchange_calendars code for a Yahoo symbol; an unknown suffix asks for `data.yahoo.calendar`."""
    if override:
        return override
    for suffix, code in CALENDAR_BY_SUFFIX.items():
        if symbol.upper().endswith(suffix):
            return code
    if "." not in symbol and "=" not in symbol and (not symbol.startswith("^") or symbol in _US_INDICES):
        return US_CALENDAR
    raise ConfigError(
        [
            Problem(
                where,
                "cannot tell which exchange calendar this symbol trades on; set data.yahoo.calendar to an "
                "exchange_calendars code such as XNYS, XLON, 24/5 or 24/7",
                symbol,
            )
        ]
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """exchange_calendars 4.13 reads `.values` of tz-aware data, which pandas 3.1 deprecates (lazily, on
    first use of each lookup); nothing we can act on, so it is not passed on to our users."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


@lru_cache(maxsize=32)
def _calendar(code: str) -> xcals.ExchangeCalendar:
    try:
        with _quiet():
            return xcals.get_calendar(code)
    except xcals.errors.InvalidCalendarName:
        raise ConfigError(
            [Problem("data.yahoo.calendar", "not an exchange_calendars code (e.g. XNYS, XLON, 24/5, 24/7)", code)]
        ) from None


_DAY = dt.timedelta(days=1)


def _ts(moment: dt.datetime) -> pd.Timestamp:
    return pd.Timestamp(moment).tz_convert("UTC") if moment.tzinfo else pd.Timestamp(moment, tz="UTC")


def _utc(ts: pd.Timestamp) -> dt.datetime:
    return ts.tz_convert("UTC").to_pydatetime()


class MarketSessions:
    """Open, close and next open of one exchange, in UTC; daily candles are labelled by session date."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.calendar = _calendar(code)

    def is_open(self, moment: dt.datetime) -> bool:
        with _quiet():
            return bool(self.calendar.is_open_on_minute(_ts(moment).floor("min")))

    def next_open(self, moment: dt.datetime) -> dt.datetime:
        """The first session open after `moment` (the open of the next session when already open)."""
        with _quiet():
            return _utc(self.calendar.next_open(_ts(moment)))

    def close_of(self, moment: dt.datetime) -> dt.datetime:
        """The close of the session trading at `moment` (or of the next session when closed)."""
        with _quiet():
            session = self.calendar.minute_to_session(_ts(moment).floor("min"), direction="next")
            return _utc(self.calendar.session_close(session))

    def candle_close(self, open_time: dt.datetime, step: dt.timedelta, daily: bool) -> dt.datetime:
        """When a candle opened at `open_time` closes: `step` later, but never after its session closes.
        A daily candle (labelled 00:00 UTC on its session date) closes with that session; a weekly one
        (labelled by its Monday) with the week's last session."""
        if daily:
            with _quiet():
                if step > _DAY:
                    last = open_time.date() + step - _DAY
                    session = self.calendar.date_to_session(last, direction="previous")
                else:
                    session = self.calendar.date_to_session(open_time.date(), direction="next")
                return _utc(self.calendar.session_close(session))
        return min(open_time + step, self.close_of(open_time))

    def next_candle_open(self, open_time: dt.datetime, step: dt.timedelta, daily: bool) -> dt.datetime:
        """The open of the candle after the one opened at `open_time`: the same session's next one, or
        the first of the next session (nights, weekends and holidays skipped)."""
        if daily and step > _DAY:
            return open_time + step  # weeks follow each other, holidays or not
        if daily:
            with _quiet():
                session = self.calendar.date_to_session(open_time.date() + _DAY, direction="next")
            return dt.datetime.combine(session.date(), dt.time(), dt.UTC)
        following = open_time + step
        if following < self.close_of(open_time) and self.is_open(following):
            return following
        return self.next_open(following - dt.timedelta(minutes=1))


class ExtendedSessions(MarketSessions):
    """A market's sessions with its pre- and post-market hours, for intraday candles of extended trading."""

    def __init__(self, code: str, where: str = "yahoo.prepost") -> None:
        if code not in EXTENDED_HOURS:
            raise ConfigError(
                [
                    Problem(
                        where,
                        f"pre- and post-market hours are known for {', '.join(EXTENDED_HOURS)} only, not {code}",
                        "true",
                    )
                ]
            )
        super().__init__(code)
        self.before, self.after = EXTENDED_HOURS[code]

    def _window(self, moment: dt.datetime) -> tuple[pd.Timestamp, dt.datetime, dt.datetime]:
        """The first session whose extended hours end after `moment`: (session, open, close)."""
        day = moment.date() - _DAY
        with _quiet():
            while True:
                session = self.calendar.date_to_session(day, direction="next")
                opens = _utc(self.calendar.session_open(session)) - self.before
                closes = _utc(self.calendar.session_close(session)) + self.after
                if closes > moment:
                    return session, opens, closes
                day = session.date() + _DAY

    def is_open(self, moment: dt.datetime) -> bool:
        _, opens, closes = self._window(moment)
        return opens <= moment < closes

    def next_open(self, moment: dt.datetime) -> dt.datetime:
        session, opens, _ = self._window(moment)
        if opens > moment:
            return opens
        with _quiet():
            return _utc(self.calendar.session_open(self.calendar.next_session(session))) - self.before

    def close_of(self, moment: dt.datetime) -> dt.datetime:
        return self._window(moment)[2]
