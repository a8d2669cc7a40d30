"""Candle timeframes by name: one table so every part of tradeforge agrees on what '4h' means."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

_MINUTE = 60
_HOUR = 60 * _MINUTE
_DAY = 24 * _HOUR

TIMEFRAMES: Mapping[str, int] = MappingProxyType(
    {
        "1m": _MINUTE,
        "3m": 3 * _MINUTE,
        "5m": 5 * _MINUTE,
        "15m": 15 * _MINUTE,
        "30m": 30 * _MINUTE,
        "1h": _HOUR,
        "2h": 2 * _HOUR,
        "4h": 4 * _HOUR,
        "6h": 6 * _HOUR,
        "8h": 8 * _HOUR,
        "12h": 12 * _HOUR,
        "1d": _DAY,
        "1w": 7 * _DAY,
    }
)
"""Timeframe name -> length in seconds, shortest first."""


def timeframe_seconds(tf: str) -> int:
    """Length of a timeframe in seconds; a typo fails here with the list of valid names."""
    try:
        return TIMEFRAMES[tf]
    except KeyError:
        raise ValueError(f"unknown timeframe {tf!r}; valid timeframes: {', '.join(TIMEFRAMES)}") from None


def pandas_freq(tf: str) -> str:
    """The pandas frequency string for a timeframe ('1m' -> '1min', '1d' -> '1D', '1w' -> '7D').

    Weeks map to '7D' rather than 'W' so that weekly bins stay aligned to the epoch like all others.
    """
    seconds = timeframe_seconds(tf)
    if seconds % _DAY == 0:
        return f"{seconds // _DAY}D"
    if seconds % _HOUR == 0:
        return f"{seconds // _HOUR}h"
    return f"{seconds // _MINUTE}min"
