"""Regenerate the Yahoo chart-API recordings in this folder from real candles in ../shared/data.

There is no network here, so these are not captures: they are assembled in the exact shape of Yahoo's
`v8/finance/chart` answers (the fields yfinance 1.7.0's parser reads: chart.result[0].meta, timestamp,
indicators.quote[0], indicators.adjclose, events.splits/dividends, chart.error) around real prices.
The split and dividends in ORCL 2014 are placed for the tests, not Oracle's real corporate actions.
Run: .venv/bin/python tests/data/yahoo/make_recordings.py
"""

from __future__ import annotations

import csv
import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).parent
SHARED = HERE.parents[2].parent / "shared" / "data"
NY = ZoneInfo("America/New_York")


def rows(name: str) -> list[dict[str, str]]:
    with open(SHARED / name) as f:
        return list(csv.DictReader(f))


def meta(symbol: str, zone: str, gmtoffset: int, granularity: str, exchange: str, kind: str = "EQUITY") -> dict:
    return {
        "currency": "USD" if zone.startswith("America/New") else "JPY" if "Tokyo" in zone else "EUR",
        "symbol": symbol,
        "exchangeName": exchange,
        "fullExchangeName": exchange,
        "instrumentType": kind,
        "firstTradeDate": 511021800,
        "regularMarketTime": 0,
        "hasPrePostMarketData": kind == "EQUITY",
        "gmtoffset": gmtoffset,
        "timezone": "EST"
        if gmtoffset == -18000
        else "EDT"
        if gmtoffset == -14400
        else "JST"
        if gmtoffset == 32400
        else "GMT",
        "exchangeTimezoneName": zone,
        "exchangeDataDelayedBy": 0,
        "priceHint": 2,
        "dataGranularity": granularity,
        "range": "",
        "validRanges": ["1d", "5d", "1mo", "3mo", "6mo", "1y", "2y", "5y", "10y", "ytd", "max"],
    }


def chart(
    meta_: dict, stamps: list[int], quote: dict, adjclose: list | None = None, events: dict | None = None
) -> dict:
    result: dict = {"meta": meta_, "timestamp": stamps, "indicators": {"quote": [quote]}}
    if adjclose is not None:
        result["indicators"]["adjclose"] = [{"adjclose": adjclose}]
    if events:
        result["events"] = events
    return {"chart": {"result": [result], "error": None}}


def num(v: str) -> float:
    return round(float(v), 6)


def orcl() -> None:
    """ORCL daily 2014, stamped at 09:30 New York; a 2:1 split on 2014-09-02 and four dividends placed."""
    data = [r for r in rows("yahoo_ORCL_1d.csv") if r["timestamp"].startswith("2014")]
    split_day = dt.date(2014, 9, 2)
    dividend_days = {
        dt.date(2014, 1, 8): 0.12,
        dt.date(2014, 4, 8): 0.12,
        dt.date(2014, 7, 8): 0.12,
        dt.date(2014, 10, 7): 0.06,
    }
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    for r in data:
        day = dt.date.fromisoformat(r["timestamp"][:10])
        stamps.append(int(dt.datetime.combine(day, dt.time(9, 30), NY).timestamp()))
        factor = 2.0 if day < split_day else 1.0  # Yahoo serves prices adjusted for every split so far
        for k in ("open", "high", "low", "close"):
            q[k].append(round(num(r[k]) / factor, 6))
        q["volume"].append(int(float(r["volume"]) * factor))
    # Missing values as Yahoo serves them: a placeholder row of nulls, a candle without volume, and one
    # whose close is missing.
    stamps.insert(40, stamps[40] - 3600)
    for k in q:
        q[k].insert(40, None)
    q["volume"][60] = None
    q["close"][80] = None
    days = [dt.datetime.fromtimestamp(s, NY).date() for s in stamps]
    multipliers = [1.0] * len(stamps)
    events: dict = {"dividends": {}, "splits": {}}
    for i, day in enumerate(days):
        if day in dividend_days and q["close"][i] is not None:
            amount = dividend_days[day]
            previous = next(q["close"][j] for j in range(i - 1, -1, -1) if q["close"][j] is not None)
            for j in range(i):
                multipliers[j] *= 1 - amount / previous
            events["dividends"][str(stamps[i])] = {"amount": amount, "date": stamps[i]}
        if day == split_day:
            events["splits"][str(stamps[i])] = {
                "date": stamps[i],
                "numerator": 2.0,
                "denominator": 1.0,
                "splitRatio": "2:1",
            }
    adj = [None if c is None else round(c * m, 6) for c, m in zip(q["close"], multipliers, strict=True)]
    m = meta("ORCL", "America/New_York", -18000, "1d", "NYQ")
    (HERE / "ORCL_1d.json").write_text(json.dumps(chart(m, stamps, q, adj, events)))
    # The same symbol as Yahoo served it before the split: prices as traded, nothing after 2014-08-29.
    before = [i for i, day in enumerate(days) if day < split_day]
    q_before = {k: [v[i] for i in before] for k, v in q.items()}
    for k in ("open", "high", "low", "close"):
        q_before[k] = [None if v is None else round(v * 2.0, 6) for v in q_before[k]]
    q_before["volume"] = [None if v is None else v // 2 for v in q_before["volume"]]
    d_before = {k: v for k, v in events["dividends"].items() if int(k) < stamps[before[-1]] + 1}
    adj_before = []
    for i in before:
        c = q_before["close"][before.index(i)]
        mult = 1.0
        for k, e in d_before.items():
            if int(k) > stamps[i]:
                j = stamps.index(int(k))
                prev = next(
                    q_before["close"][before.index(x)]
                    for x in range(j - 1, -1, -1)
                    if q_before["close"][before.index(x)] is not None
                )
                mult *= 1 - e["amount"] * 2.0 / prev
        adj_before.append(None if c is None else round(c * mult, 6))
    d_before = {k: {"amount": e["amount"] * 2.0, "date": e["date"]} for k, e in d_before.items()}
    body = chart(m, [stamps[i] for i in before], q_before, adj_before, {"dividends": d_before})
    (HERE / "ORCL_1d_before_split.json").write_text(json.dumps(body))


def foreign_daily() -> None:
    """Daily candles of exchanges east and south of UTC: Tokyo stamps 00:00 JST (15:00 UTC the day
    before); Sao Paulo 00:00 local, once 23:00 the evening before (the DST slip yfinance corrects)."""
    data = [r for r in rows("yahoo_ORCL_1d.csv") if r["timestamp"].startswith("2014-03")][:10]
    for symbol, zone, offset, exchange, slip in (
        ("7203.T", "Asia/Tokyo", 32400, "JPX", None),
        ("PETR4.SA", "America/Sao_Paulo", -10800, "SAO", 3),
    ):
        stamps = []
        q = {"open": [], "high": [], "low": [], "close": [], "volume": []}
        for i, r in enumerate(data):
            day = dt.date.fromisoformat(r["timestamp"][:10])
            local = dt.datetime.combine(day, dt.time(), ZoneInfo(zone))
            if i == slip:
                local -= dt.timedelta(hours=1)
            stamps.append(int(local.timestamp()))
            for k in ("open", "high", "low", "close"):
                q[k].append(num(r[k]) * (50 if symbol == "7203.T" else 0.5))
            q["volume"].append(int(float(r["volume"])))
        body = chart(meta(symbol, zone, offset, "1d", exchange), stamps, q, list(q["close"]))
        (HERE / f"{symbol}_1d.json").write_text(json.dumps(body))


def spy_hourly() -> None:
    """NYSE 1h candles 2024-07-01..09 (an early close on 3 July, the 4 July holiday, a weekend), prices
    from the real 5-minute index candles aggregated by twelve."""
    five = rows("backtrader_2006-min-005_5m.csv")
    days = [dt.date(2024, 7, d) for d in (1, 2, 3, 5, 8, 9)]
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    cursor = 0
    for day in days:
        close = dt.time(13, 0) if day == dt.date(2024, 7, 3) else dt.time(16, 0)
        start = dt.datetime.combine(day, dt.time(9, 30), NY)
        end = dt.datetime.combine(day, close, NY)
        while start < end:
            n = min(12, int((end - start).total_seconds() // 300))
            chunk = five[cursor : cursor + n]
            cursor += n
            stamps.append(int(start.timestamp()))
            q["open"].append(num(chunk[0]["open"]) / 10)
            q["high"].append(max(num(c["high"]) for c in chunk) / 10)
            q["low"].append(min(num(c["low"]) for c in chunk) / 10)
            q["close"].append(num(chunk[-1]["close"]) / 10)
            q["volume"].append(1_000_000 + 1000 * len(stamps))
            start += dt.timedelta(hours=1)
    m = meta("SPY", "America/New_York", -14400, "1h", "PCX", "ETF")
    (HERE / "SPY_1h.json").write_text(json.dumps(chart(m, stamps, q)))


def msft_minutes() -> None:
    """MSFT 1m, the first ten minutes of twelve sessions from 2024-06-17: enough to need two requests
    (Yahoo serves 7 days of 1m candles per request)."""
    five = rows("backtrader_2006-min-005_5m.csv")
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    day, cursor = dt.date(2024, 6, 17), 0
    while len(stamps) < 120:
        if day.weekday() < 5 and day != dt.date(2024, 6, 19):  # Juneteenth
            for minute in range(10):
                r = five[cursor]
                cursor += 1
                stamps.append(int(dt.datetime.combine(day, dt.time(9, 30 + minute), NY).timestamp()))
                for k in ("open", "high", "low", "close"):
                    q[k].append(num(r[k]) / 10)
                q["volume"].append(10_000 + cursor)
        day += dt.timedelta(days=1)
    m = meta("MSFT", "America/New_York", -14400, "1m", "NMS")
    (HERE / "MSFT_1m.json").write_text(json.dumps(chart(m, stamps, q)))


def orcl_weekly() -> None:
    """ORCL weekly 2014 from the real daily candles, stamped like Yahoo at each week's first trading day
    (09:30 New York); split-adjusted like the daily recording (2:1 on 2014-09-02, the week of 1 September,
    whose Monday was Labor Day)."""
    data = [r for r in rows("yahoo_ORCL_1d.csv") if r["timestamp"].startswith("2014")]
    split_day = dt.date(2014, 9, 2)
    weeks: dict[dt.date, list[tuple[dt.date, dict[str, str]]]] = {}
    for r in data:
        day = dt.date.fromisoformat(r["timestamp"][:10])
        weeks.setdefault(day - dt.timedelta(days=day.weekday()), []).append((day, r))
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    for monday in sorted(weeks):
        days = weeks[monday]
        factor = 2.0 if days[-1][0] < split_day else 1.0
        stamps.append(int(dt.datetime.combine(days[0][0], dt.time(9, 30), NY).timestamp()))
        q["open"].append(round(num(days[0][1]["open"]) / factor, 6))
        q["high"].append(round(max(num(r["high"]) for _, r in days) / factor, 6))
        q["low"].append(round(min(num(r["low"]) for _, r in days) / factor, 6))
        q["close"].append(round(num(days[-1][1]["close"]) / factor, 6))
        q["volume"].append(int(sum(float(r["volume"]) for _, r in days) * factor))
    split_at = int(dt.datetime.combine(split_day, dt.time(9, 30), NY).timestamp())
    events = {"splits": {str(split_at): {"date": split_at, "numerator": 2.0, "denominator": 1.0, "splitRatio": "2:1"}}}
    m = meta("ORCL", "America/New_York", -18000, "1wk", "NYQ")
    (HERE / "ORCL_1wk.json").write_text(json.dumps(chart(m, stamps, q, list(q["close"]), events)))


def msft_minutes_prepost() -> None:
    """MSFT 1m as Yahoo serves it with includePrePost=true: the regular minutes of `msft_minutes` plus five
    pre-market minutes (09:20-09:24 New York) and five post-market ones (16:00-16:04) each session."""
    regular = json.loads((HERE / "MSFT_1m.json").read_text())["chart"]["result"][0]
    quote = regular["indicators"]["quote"][0]
    by_day: dict[dt.date, list[int]] = {}
    for i, t in enumerate(regular["timestamp"]):
        by_day.setdefault(dt.datetime.fromtimestamp(t, NY).date(), []).append(i)
    stamps, q = [], {k: [] for k in quote}
    for day, rows_ in sorted(by_day.items()):
        first, last = rows_[0], rows_[-1]
        extra_before = [(dt.time(9, 20 + m), first) for m in range(5)]
        extra_after = [(dt.time(16, m), last) for m in range(5)]
        for when, source in extra_before:
            stamps.append(int(dt.datetime.combine(day, when, NY).timestamp()))
            for k in q:
                q[k].append(quote[k][source] if k != "volume" else 500)
        for i in rows_:
            stamps.append(regular["timestamp"][i])
            for k in q:
                q[k].append(quote[k][i])
        for when, source in extra_after:
            stamps.append(int(dt.datetime.combine(day, when, NY).timestamp()))
            for k in q:
                q[k].append(quote[k][source] if k != "volume" else 700)
    m = meta("MSFT", "America/New_York", -14400, "1m", "NMS")
    (HERE / "MSFT_1m_prepost.json").write_text(json.dumps(chart(m, stamps, q)))


def eurusd_hourly() -> None:
    """EURUSD=X 1h over a weekend (no candles Saturday and Sunday), volume 0 as Yahoo serves FX."""
    eth = [r for r in rows("binance_ETH-USDT_1h.csv") if r["timestamp"] >= "2022-03-04"][: 24 * 7]
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    for r in eth:
        moment = dt.datetime.fromisoformat(r["timestamp"].replace("Z", "+00:00"))
        if moment.weekday() >= 5:
            continue
        stamps.append(int(moment.timestamp()))
        for k in ("open", "high", "low", "close"):
            q[k].append(round(num(r[k]) / 2500, 6))
        q["volume"].append(0)
    m = meta("EURUSD=X", "Europe/London", 0, "1h", "CCY", "CURRENCY")
    (HERE / "EURUSD=X_1h.json").write_text(json.dumps(chart(m, stamps, q)))


def aapl_split() -> None:
    """AAPL daily, July to September 2020, with a 4:1 split on 2020-08-31 (Apple's real one; the prices are
    ORCL's from June 2014 on, times 2.5, so that the sma_cross(2, 4) bot of the tests holds a position
    through the split). Served as Yahoo serves it after the split: every price on the new basis; the fake
    serves the older prices as traded while its clock is before the split."""
    import exchange_calendars as xc

    data = rows("yahoo_ORCL_1d.csv")
    first = next(i for i, r in enumerate(data) if r["timestamp"].startswith("2014-06-24"))
    days = [d.date() for d in xc.get_calendar("XNYS").sessions_in_range("2020-07-01", "2020-09-30")]
    split_day = dt.date(2020, 8, 31)
    stamps, q = [], {"open": [], "high": [], "low": [], "close": [], "volume": []}
    for day, r in zip(days, data[first : first + len(days)], strict=True):
        stamps.append(int(dt.datetime.combine(day, dt.time(9, 30), NY).timestamp()))
        for k in ("open", "high", "low", "close"):
            q[k].append(round(num(r[k]) * 2.5, 6))
        q["volume"].append(int(float(r["volume"])) * 4)
    split_at = int(dt.datetime.combine(split_day, dt.time(9, 30), NY).timestamp())
    events = {"splits": {str(split_at): {"date": split_at, "numerator": 4.0, "denominator": 1.0, "splitRatio": "4:1"}}}
    m = meta("AAPL", "America/New_York", -14400, "1d", "NMS")
    (HERE / "AAPL_1d.json").write_text(json.dumps(chart(m, stamps, q, list(q["close"]), events)))


def aapl_split_day_missing() -> None:
    """AAPL_1d.json without the candle of the split day (2020-08-31: the split is then first traded on 1
    September), and SHV, a short-treasury ETF whose daily candles over the same sessions do not move: a bot on
    both gets its SHV candle of 31 August while AAPL's next one is already the split's."""
    body = json.loads((HERE / "AAPL_1d.json").read_text())
    result = body["chart"]["result"][0]
    split_at = int(next(iter(result["events"]["splits"])))
    keep = [i for i, stamp in enumerate(result["timestamp"]) if stamp != split_at]
    assert len(keep) == len(result["timestamp"]) - 1, "the recording has a candle on the split day"
    quote = result["indicators"]["quote"][0]
    result["timestamp"] = [result["timestamp"][i] for i in keep]
    result["indicators"]["quote"][0] = {k: [v[i] for i in keep] for k, v in quote.items()}
    result["indicators"]["adjclose"][0]["adjclose"] = [result["indicators"]["adjclose"][0]["adjclose"][i] for i in keep]
    (HERE / "AAPL_1d_split_day_missing.json").write_text(json.dumps(body))
    stamps = json.loads((HERE / "AAPL_1d.json").read_text())["chart"]["result"][0]["timestamp"]
    q = {k: [110.25] * len(stamps) for k in ("open", "high", "low", "close")}
    q["volume"] = [2_000_000] * len(stamps)
    m = meta("SHV", "America/New_York", -14400, "1d", "PCX", "ETF")
    (HERE / "SHV_1d.json").write_text(json.dumps(chart(m, stamps, q, list(q["close"]))))


if __name__ == "__main__":
    orcl()
    foreign_daily()
    spy_hourly()
    msft_minutes()
    msft_minutes_prepost()
    orcl_weekly()
    eurusd_hourly()
    aapl_split()
    aapl_split_day_missing()
