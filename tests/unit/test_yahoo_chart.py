"""Reading one Yahoo chart answer: time zones, Yahoo's quirks, and answers that carry no usable data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from tradeforge.feeds.yahoo import adjusted, parse_chart
from tradeforge.resilience.errors import DataError


def answer(meta: dict, stamps: list[int], closes: list[float | None], **extra: object) -> dict:
    quote = {"open": closes, "high": closes, "low": closes, "close": closes, "volume": [100] * len(stamps)}
    return {"meta": meta, "timestamp": stamps, "indicators": {"quote": [quote]}, **extra}


def test_without_a_time_zone_name_the_gmt_offset_gives_the_trading_date():
    # 2024-01-04 00:00 in India (+05:30) is 2024-01-03 18:30 UTC.
    chart = parse_chart(answer({"gmtoffset": 19800}, [1704306600], [10.0]), "RELIANCE.NS", "1d")
    assert chart.stamps.tolist() == [int(dt.datetime(2024, 1, 4, tzinfo=dt.UTC).timestamp()) * 10**9]


def test_an_answer_without_any_time_zone_is_a_clear_error():
    with pytest.raises(DataError, match="no exchange time zone"):
        parse_chart(answer({}, [1704306600], [10.0]), "ODD", "1d")


def test_an_answer_without_timestamps_has_no_candles():
    chart = parse_chart(
        {"meta": {"exchangeTimezoneName": "America/New_York"}, "indicators": {"quote": [{}]}}, "X", "1h"
    )
    assert len(chart.stamps) == 0 and chart.dropped == 0


def test_the_latest_trade_row_off_the_minute_grid_is_not_a_candle():
    stamps = [1720013400, 1720017000, 1720018799]  # 09:30, 10:30 and the latest trade at 10:59:59 New York
    chart = parse_chart(answer({"exchangeTimezoneName": "America/New_York"}, stamps, [1.0, 2.0, 2.5]), "SPY", "1h")
    assert chart.stamps.tolist() == [s * 10**9 for s in stamps[:2]]


def test_adjust_none_multiplies_prices_and_divides_volume_before_each_split_only():
    events = {"splits": {"1": {"date": 1720017000, "numerator": 4, "denominator": 1, "splitRatio": "4:1"}}}
    result = answer({"exchangeTimezoneName": "America/New_York"}, [1720013400, 1720017000], [10.0, 10.0], events=events)
    raw = adjusted(parse_chart(result, "SPY", "1h"), "none")
    assert raw.close.tolist() == [40.0, 10.0] and raw.volume.tolist() == [25.0, 100.0]
    assert np.isclose(adjusted(parse_chart(result, "SPY", "1h"), "splits").close, [10.0, 10.0]).all()
