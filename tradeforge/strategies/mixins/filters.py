"""Filter mixins: boolean masks over bars that veto entries (exits are never filtered)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from tradeforge.feeds.timeframes import TIMEFRAMES, timeframe_seconds
from tradeforge.strategies import indicators as ind
from tradeforge.strategies.mixins.kinds import Bars, FilterMixin
from tradeforge.strategies.params import Param

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NS = 1_000_000_000


def completed_higher_timeframe(bars: Bars, seconds: int) -> tuple[np.ndarray, np.ndarray]:
    """Closes of higher-timeframe candles built from `bars`, and for every base bar the index of the
    last higher-timeframe candle that had fully closed by the end of that base bar (-1 if none).

    Only completed candles are visible, so a filter never peeks at the rest of a 4h candle from
    inside it. Bins are aligned to the Unix epoch (UTC midnight for daily candles).
    """
    width = seconds * _NS
    bins = bars.timestamp // width
    starts = np.flatnonzero(np.diff(bins, prepend=bins[0] - 1))
    last_in_bin = np.append(starts[1:] - 1, len(bins) - 1)
    closes = bars.close[last_in_bin]
    bin_end = (bins[starts] + 1) * width
    bar_end = bars.timestamp + bars.timeframe_seconds * _NS
    visible = np.searchsorted(bin_end, bar_end, side="right") - 1
    return closes, visible


class TrendFilter(FilterMixin):
    """Trade with the higher-timeframe trend: longs only while the last completed `timeframe` candle
    closed above its SMA(`period`), shorts only while it closed below."""

    name: ClassVar[str] = "trend"
    param_specs: ClassVar[dict[str, Param]] = {
        "timeframe": Param("4h", choices=tuple(TIMEFRAMES), doc="higher timeframe, resampled from the feed"),
        "period": Param(50, low=1, high=1000, opt=(10, 200), step=5, doc="SMA period on that timeframe"),
    }

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return (int(params["period"]) + 2) * max(TIMEFRAMES[params["timeframe"]] // feed_seconds, 1)

    @classmethod
    def check_for_feed(cls, values: dict[str, Any], timeframe_seconds: int) -> list[tuple[str, str]]:
        if TIMEFRAMES[values["timeframe"]] < timeframe_seconds:
            return [("timeframe", "must not be shorter than the feed's timeframe (data.timeframe)")]
        return []

    def entry_mask(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        p = self.mixin_params(TrendFilter)
        seconds = timeframe_seconds(p["timeframe"])
        if seconds < bars.timeframe_seconds:
            raise ValueError(f"trend filter timeframe {p['timeframe']} is shorter than the feed's candles")
        closes, visible = completed_higher_timeframe(bars, seconds)
        sma = ind.sma(closes, p["period"])
        known = visible >= 0
        idx = np.maximum(visible, 0)
        with np.errstate(invalid="ignore"):
            up = known & (closes[idx] > sma[idx])
            down = known & (closes[idx] < sma[idx])
        return up, down


class VolatilityFilter(FilterMixin):
    """Enter only while ATR(period) as a percent of the close lies within [min_pct, max_pct]."""

    name: ClassVar[str] = "volatility"
    param_specs: ClassVar[dict[str, Param]] = {
        "period": Param(14, low=1, high=500, opt=(7, 50), step=1, doc="ATR period (bars)"),
        "min_pct": Param(0.0, low=0.0, high=100.0, opt=(0.0, 2.0), step=0.1, doc="lowest ATR, % of close"),
        "max_pct": Param(100.0, low=0.0, high=100.0, opt=(1.0, 20.0), step=0.5, doc="highest ATR, % of close"),
    }

    @classmethod
    def check_params(cls, values: dict[str, Any]) -> list[tuple[str, str]]:
        if values["min_pct"] > values["max_pct"]:
            return [("min_pct", f"must not exceed max_pct ({values['max_pct']})")]
        return []

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        return int(params["period"]) + 1

    def entry_mask(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        p = self.mixin_params(VolatilityFilter)
        atr_pct = ind.atr(bars.high, bars.low, bars.close, p["period"]) / bars.close * 100
        with np.errstate(invalid="ignore"):
            ok = (atr_pct >= p["min_pct"]) & (atr_pct <= p["max_pct"])
        return ok, ok


def parse_weekdays(text: str) -> set[int]:
    """'mon,tue' or 'mon-fri' -> {0, 1, ...}; raises ValueError naming the bad token."""
    days: set[int] = set()
    for token in (t.strip().lower() for t in text.split(",") if t.strip()):
        first, _, last = token.partition("-")
        for name in (first, last or first):
            if name not in WEEKDAYS:
                raise ValueError(f"unknown weekday {name!r}; use {', '.join(WEEKDAYS)}")
        a, b = WEEKDAYS.index(first), WEEKDAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return days


class SessionFilter(FilterMixin):
    """Enter only on candles that open within [start_hour, end_hour) UTC on the listed weekdays
    (e.g. `days: mon-fri`): the candle an entry fills on, i.e. the one after the signal's close.
    A window with start_hour > end_hour wraps past midnight."""

    name: ClassVar[str] = "session"
    param_specs: ClassVar[dict[str, Param]] = {
        "start_hour": Param(0, low=0, high=23, doc="first hour (UTC) entries are allowed"),
        "end_hour": Param(24, low=1, high=24, doc="hour (UTC) entries stop"),
        "days": Param("mon-sun", doc="weekdays, e.g. 'mon-fri' or 'mon,wed,fri'"),
    }

    @classmethod
    def check_params(cls, values: dict[str, Any]) -> list[tuple[str, str]]:
        try:
            if not parse_weekdays(str(values["days"])):
                return [("days", "names no weekday")]
        except ValueError as exc:
            return [("days", str(exc))]
        if values["start_hour"] == values["end_hour"]:
            return [("end_hour", "must differ from start_hour")]
        return []

    def entry_mask(self, bars: Bars) -> tuple[np.ndarray, np.ndarray]:
        p = self.mixin_params(SessionFilter)
        seconds = bars.timestamp // _NS + bars.timeframe_seconds  # the next candle's open: where entries fill
        hour = (seconds // 3600) % 24
        weekday = ((seconds // 86_400) + 3) % 7  # 1970-01-01 was a Thursday
        start, end = p["start_hour"], p["end_hour"]
        in_hours = (hour >= start) & (hour < end) if start < end else (hour >= start) | (hour < end)
        ok = in_hours & np.isin(weekday, sorted(parse_weekdays(str(p["days"]))))
        return ok, ok


FILTERS: tuple[type[FilterMixin], ...] = (TrendFilter, VolatilityFilter, SessionFilter)
