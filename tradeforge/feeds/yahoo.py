"""Yahoo Finance candles: the chart API through yfinance's HTTP client, parsed into our Candles.

We use yfinance (>= 1.5.2: it accepts a plain requests Session again, and curl_cffi >= 0.16 sessions) for
what Yahoo keeps changing (browser-like session, cookie, crumb, consent page) and
read the `v8/finance/chart` JSON ourselves, because `Ticker.history()` hides the HTTP status (a rate
limit or an outage looks like an unknown symbol), raises only under a process-wide setting, caches
responses in-process and makes an extra request per symbol for its time zone.

Candles are stamped in UTC at their open; a daily candle is labelled 00:00 UTC on its trading date in
the exchange's time zone (as in shared/data). Prices come as Yahoo serves them (split-adjusted) or
re-adjusted by `adjust`: `none` (as traded), `splits`, `all` (splits and dividends).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pybreaker

from tradeforge.feeds.candles import VALUE_COLUMNS, Candles, to_ns
from tradeforge.feeds.polled import PolledFeed
from tradeforge.feeds.sessions import MarketSessions
from tradeforge.feeds.splits import Split, SplitLog, rebase_lines
from tradeforge.feeds.store import CandleStore
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.resilience.errors import ConfigError, DataError, Problem, Temporary
from tradeforge.resilience.exchange import CircuitOpen, RateLimited, RetryPolicy

Adjust = Literal["none", "splits", "all"]
ADJUST_MODES: tuple[Adjust, ...] = ("none", "splits", "all")
CHART_URL = "https://query2.finance.yahoo.com/v8/finance/chart/{symbol}"
_S = 1_000_000_000  # ns per second
_DAY = dt.timedelta(days=1)


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.feeds.yahoo")


@dataclass(frozen=True)
class YahooInterval:
    """How Yahoo serves one of our timeframes, and how far back (days; None: all history)."""

    timeframe: str
    interval: str  # the chart API's `interval`
    max_days_back: int | None
    max_days_per_request: int | None


# How far back Yahoo serves intraday candles, as yfinance 1.7 has it (scrapers/history.py, `min_lookbacks`:
# 1m 30 days, 2m-30m 60 days, 1h 730 days; daily unlimited). Per request, Yahoo refuses more than 7 days of
# 1m candles ("Only 7 days worth of 1m granularity data are allowed to be fetched per request", HTTP 422);
# 1h is split into 365-day requests to stay well inside what it answers. 30m is fetched as 15m and
# aggregated, as yfinance does, because Yahoo answers 30m requests with 60m candles.
INTERVALS: dict[str, YahooInterval] = {
    "1m": YahooInterval("1m", "1m", 30, 7),
    "5m": YahooInterval("5m", "5m", 60, 60),
    "15m": YahooInterval("15m", "15m", 60, 60),
    "30m": YahooInterval("30m", "15m", 60, 60),
    "1h": YahooInterval("1h", "1h", 730, 365),
    "1d": YahooInterval("1d", "1d", None, None),
    "1w": YahooInterval("1w", "1wk", None, None),
}
# Candles labelled by trading date (00:00 UTC of the local date; a week by its Monday), by our and Yahoo's name.
_DATED = frozenset({"1d", "1w", "1wk"})
_TIMEFRAME_OF_INTERVAL = {"1wk": "1w"}
# A stored series counts as starting at `since` when its first candle is at most this much later: markets
# close for a few days at most (weekends, holidays), so asking again would find nothing new.
_COVERED_BEFORE = dt.timedelta(days=7)
# A request must start a little inside the limit: Yahoo counts it from its own clock.
_LIMIT_MARGIN = dt.timedelta(hours=1)


def _step(timeframe: str) -> dt.timedelta:
    return dt.timedelta(seconds=timeframe_seconds(timeframe))


# --- the HTTP boundary ---------------------------------------------------------------------------------


class UnknownSymbol(DataError):
    """Yahoo has no such symbol (HTTP 404 "No data found, symbol may be delisted")."""

    def __init__(self, symbol: str, reason: str) -> None:
        super().__init__(f"Yahoo Finance does not know {symbol}: {reason}")
        self.symbol = symbol


def _is_network_error(exc: BaseException) -> bool:
    """requests' or curl_cffi's connection/timeout errors, whichever backend the session is."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    names = {cls.__name__ for cls in type(exc).__mro__}
    return bool(names & {"ConnectionError", "Timeout", "RequestException", "ChunkedEncodingError", "CurlError"})


class YahooClient:
    """Chart requests through yfinance's client, answers classified and Temporary ones retried.

    `session` is a requests or curl_cffi Session (yfinance's own browser-like session by default);
    tests pass a requests Session whose transport replays recorded Yahoo answers."""

    def __init__(
        self,
        session: Any = None,
        retry: RetryPolicy | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        timeout: float = 30.0,
        breaker: pybreaker.CircuitBreaker | None = None,
    ) -> None:
        from yfinance.data import YfData

        self.breaker = breaker
        self.session = session
        self.retry = retry or RetryPolicy()
        self.sleep = sleep
        self.timeout = timeout
        self.calls = 0
        self._yf_data = YfData
        self._bound: Any = None

    def _data(self) -> Any:
        # yfinance keeps one client per process and swaps in the last session given; a crumb is only
        # valid with the cookie it was minted under, so it is dropped when our session is swapped in.
        data = self._yf_data(session=self.session) if self.session is not None else self._yf_data()
        if self.session is not None and self._bound is not self.session:
            data._crumb, data._cookie = None, None
            self._bound = self.session
        return data

    def _once(self, symbol: str, params: dict[str, Any]) -> dict[str, Any]:
        from yfinance.exceptions import YFRateLimitError

        self.calls += 1
        what = f"Yahoo Finance chart {symbol} {params.get('interval')}"
        try:
            response = self._data().get(CHART_URL.format(symbol=symbol), params=params, timeout=self.timeout)
        except YFRateLimitError:
            raise RateLimited(f"{what}: rate limited by Yahoo (HTTP 429 Too Many Requests)", None) from None
        except Exception as exc:
            if _is_network_error(exc):
                raise Temporary(f"{what}: cannot reach Yahoo Finance ({type(exc).__name__}: {exc})") from exc
            raise
        status = int(response.status_code)
        if status == 429:
            raise RateLimited(f"{what}: rate limited by Yahoo (HTTP 429)", _retry_after(response))
        if status >= 500:
            raise Temporary(f"{what}: Yahoo answered HTTP {status}")
        try:
            body = response.json()
        except ValueError:
            if status >= 400:  # a refusal without Yahoo's JSON: asking again would get the same
                raise DataError(f"{what}: Yahoo refused the request (HTTP {status})") from None
            # A 200 without JSON is Yahoo's "Will be right back" page: it is down for a while.
            raise Temporary(f"{what}: Yahoo answered HTTP {status} without chart data") from None
        chart = body.get("chart") if isinstance(body, dict) else None
        error = (chart or {}).get("error")
        if error:
            reason = f"{error.get('code', '')}: {error.get('description', '')}".strip(": ")
            if status == 404 or error.get("code") == "Not Found":
                raise UnknownSymbol(symbol, reason)
            raise DataError(f"{what}: Yahoo refused the request (HTTP {status}): {reason}")
        results = (chart or {}).get("result") or []
        if status >= 400 or not results:
            raise DataError(f"{what}: Yahoo answered HTTP {status} with no chart result")
        return dict(results[0])

    def chart(
        self, symbol: str, interval: str, start: dt.datetime, end: dt.datetime, prepost: bool = False
    ) -> dict[str, Any]:
        """One chart result (`meta`, `timestamp`, `indicators`, `events`) for [start, end); with
        `prepost`, intraday candles of the pre- and post-market sessions too."""
        params = {
            "period1": int(start.timestamp()),
            "period2": int(end.timestamp()),
            "interval": interval,
            "includePrePost": "true" if prepost else "false",
            "events": "div,splits",
        }
        what = f"Yahoo chart {symbol} {interval}"
        retrying = self.retry.retrying(what, self.sleep)
        if self.breaker is None:
            return retrying(self._once, symbol, params)
        try:  # a request that failed after all its retries counts once toward opening the circuit
            return self.breaker.call(retrying, self._once, symbol, params)
        except pybreaker.CircuitBreakerError:
            raise CircuitOpen(
                f"{what}: not tried, the Yahoo Finance circuit is open after {self.breaker.fail_max} failed "
                f"requests; the next try is in up to {self.breaker.reset_timeout:g} s"
            ) from None


def _retry_after(response: Any) -> float | None:
    try:
        value = response.headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


# --- parsing -------------------------------------------------------------------------------------------


@dataclass
class Chart:
    """One parsed chart answer: candles as Yahoo serves them (split-adjusted) plus what re-adjusts them."""

    symbol: str
    timeframe: str
    timezone: dt.tzinfo
    delay: dt.timedelta  # Yahoo's data delay for the exchange
    stamps: np.ndarray  # int64 ns, UTC open time (daily: 00:00 UTC of the local trading date)
    values: dict[str, np.ndarray]
    adjclose: np.ndarray | None
    splits: list[tuple[int, float]]  # (ns of the first candle at the new basis, numerator/denominator)
    dividends: list[tuple[int, float]]
    dropped: int = 0  # candles Yahoo served with missing or inconsistent values


def _zone(meta: dict[str, Any], symbol: str) -> ZoneInfo | dt.timezone:
    name = meta.get("exchangeTimezoneName")
    try:
        return ZoneInfo(str(name)) if name else _offset_zone(meta, symbol)
    except (ZoneInfoNotFoundError, ValueError):
        return _offset_zone(meta, symbol)


def _offset_zone(meta: dict[str, Any], symbol: str) -> dt.timezone:
    if "gmtoffset" not in meta:
        raise DataError(f"Yahoo's answer for {symbol} has no exchange time zone (meta.exchangeTimezoneName)")
    return dt.timezone(dt.timedelta(seconds=int(meta["gmtoffset"])))


def _daily_labels(seconds: np.ndarray, zone: ZoneInfo | dt.timezone) -> np.ndarray:
    """00:00 UTC of each candle's local trading date. Yahoo sometimes stamps a daily candle at 22:00 or
    23:00 the evening before (a DST slip, yfinance's utils.fix_Yahoo_dst_issue): that means the next day."""
    labels = np.empty(len(seconds), dtype=np.int64)
    for i, s in enumerate(seconds):
        local = dt.datetime.fromtimestamp(int(s), zone)
        day = local.date() + (_DAY if local.minute == 0 and local.hour in (22, 23) else dt.timedelta())
        labels[i] = int(dt.datetime.combine(day, dt.time(), dt.UTC).timestamp()) * _S
    return labels


def _mondays(labels: np.ndarray) -> np.ndarray:
    """Weekly labels on the Monday of their week: Yahoo stamps a week at its first trading day."""
    days = labels // (86400 * _S)  # 1970-01-01 was a Thursday: day number + 3 is 0 on Mondays (mod 7)
    return (days - (days + 3) % 7) * 86400 * _S


def _column(values: Sequence[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.full(n, np.nan)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def parse_chart(result: dict[str, Any], symbol: str, timeframe: str) -> Chart:
    """Yahoo's chart result as candles. Rows with a missing price, non-positive prices or a high/low that
    does not contain the open and close are dropped (counted); a missing volume is 0. Intraday rows whose
    stamp is not on a whole minute are Yahoo's 'latest trade' row, not a candle, and are skipped."""
    meta = result.get("meta") or {}
    zone = _zone(meta, symbol)
    seconds = np.array(result.get("timestamp") or [], dtype=np.int64)
    n = len(seconds)
    quote = ((result.get("indicators") or {}).get("quote") or [{}])[0] or {}
    values = {name: _column(quote.get(name), n) for name in VALUE_COLUMNS}
    adj_block = (result.get("indicators") or {}).get("adjclose")
    adjclose = _column((adj_block[0] or {}).get("adjclose"), n) if adj_block else None
    daily = timeframe in _DATED
    keep = np.ones(n, dtype=bool) if daily else (seconds % 60 == 0)
    stamps = _daily_labels(seconds, zone) if daily else seconds * _S
    if timeframe in ("1w", "1wk"):
        stamps = _mondays(stamps)
    o, h, low, c = (values[k] for k in ("open", "high", "low", "close"))
    blank = np.isnan(o) & np.isnan(h) & np.isnan(low) & np.isnan(c)
    with np.errstate(invalid="ignore"):
        bad = (
            np.isnan(o) | np.isnan(h) | np.isnan(low) | np.isnan(c)
            | (np.fmin(np.fmin(o, h), np.fmin(low, c)) <= 0)
            | (h < np.fmax(o, c)) | (low > np.fmin(o, c))
        )  # fmt: skip
    dropped = int(np.sum(keep & bad & ~blank))  # all-empty rows are Yahoo's placeholders, not bad data
    keep &= ~bad
    if adjclose is not None:
        keep &= ~np.isnan(adjclose) | np.isnan(c)
    stamps, order = _dedupe(stamps[keep])
    picked = np.flatnonzero(keep)[order]
    values = {k: v[picked] for k, v in values.items()}
    values["volume"] = np.nan_to_num(values["volume"], nan=0.0)
    events = result.get("events") or {}
    splits = [
        (_event_ns(e, zone, timeframe), float(e["numerator"]) / float(e["denominator"]))
        for e in (events.get("splits") or {}).values()
        if e.get("numerator") and e.get("denominator")
    ]
    dividends = [(_event_ns(e, zone, timeframe), float(e["amount"])) for e in (events.get("dividends") or {}).values()]
    delay = dt.timedelta(minutes=int(meta.get("exchangeDataDelayedBy") or 0))
    return Chart(
        symbol,
        timeframe,
        zone,
        delay,
        stamps,
        values,
        adjclose[picked] if adjclose is not None else None,
        sorted(splits),
        sorted(dividends),
        dropped,
    )


def _dedupe(stamps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique stamps and, for each, the position of its last occurrence."""
    order = np.argsort(stamps, kind="stable")
    ordered = stamps[order]
    last = np.r_[ordered[1:] != ordered[:-1], True] if len(ordered) else np.zeros(0, dtype=bool)
    return ordered[last], order[last]


def _event_ns(event: dict[str, Any], zone: ZoneInfo | dt.timezone, timeframe: str) -> int:
    """When an event takes effect, on the candles' time scale: a weekly series takes it from the week
    it falls in (Yahoo's weekly candles are on the new basis from that week)."""
    seconds = np.array([int(event["date"])], dtype=np.int64)
    if timeframe not in _DATED:
        return int(seconds[0]) * _S
    labels = _daily_labels(seconds, zone)
    return int((_mondays(labels) if timeframe in ("1w", "1wk") else labels)[0])


def adjusted(chart: Chart, adjust: Adjust) -> Candles:
    """The chart's candles under an adjustment mode.

    Yahoo serves prices and volumes already adjusted for every split up to now, and `adjclose` (daily
    only) adjusted for dividends too. `none` undoes the splits after each candle (price × ratio, volume ÷
    ratio); `all` scales open/high/low/close by adjclose/close, as yfinance's auto_adjust does."""
    values = {k: v.copy() for k, v in chart.values.items()}
    if adjust == "none":
        _undo_splits(chart.stamps, values, chart.splits)
    elif adjust == "all":
        if chart.adjclose is None:
            raise DataError(f"Yahoo served no adjclose for {chart.symbol} {chart.timeframe}; use adjust: splits")
        factor = np.where(np.isnan(chart.adjclose), 1.0, chart.adjclose / values["close"])
        for name in ("open", "high", "low", "close"):
            values[name] *= factor
    timeframe = _TIMEFRAME_OF_INTERVAL.get(chart.timeframe, chart.timeframe)
    return Candles(chart.symbol, timeframe, chart.stamps, **values, source=f"yahoo {chart.symbol}")


def _undo_splits(stamps: np.ndarray, values: dict[str, np.ndarray], splits: Sequence[tuple[int, float]]) -> None:
    """Prices and volumes before each split back on the basis they traded on (in place)."""
    for at, ratio in splits:
        before = stamps < at
        for name in ("open", "high", "low", "close"):
            values[name][before] *= ratio
        values["volume"][before] /= ratio


def as_timeframe(candles: Candles, timeframe: str) -> Candles:
    """30m candles from the 15m ones fetched in their place (Yahoo's 30m answers hold 60m candles)."""
    return candles if candles.timeframe == timeframe else candles.resample(timeframe)


# --- download ------------------------------------------------------------------------------------------


@dataclass
class YahooReport:
    """What one symbol's download did."""

    symbol: str
    added: int = 0
    requests: int = 0
    dropped: int = 0
    refetched: bool = False  # a split/dividend since the last download re-adjusted the stored history
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    rows: int = 0
    splits: list[tuple[dt.datetime, float]] = field(default_factory=list)


def store_folder(adjust: Adjust, prepost: bool = False) -> str:
    """Candle-store folder per adjustment and trading hours, so differently adjusted prices, or series with
    and without pre/post-market candles, never mix in one file."""
    return ("yahoo" if adjust == "splits" else f"yahoo-{adjust}") + ("-prepost" if prepost else "")


def check_request(
    symbols: Sequence[str],
    timeframe: str,
    since: dt.datetime,
    now: dt.datetime,
    adjust: Adjust,
    where: tuple[str, str, str, str, str] = ("--symbols", "--timeframe", "--since", "--adjust", "--prepost"),
    prepost: bool = False,
) -> YahooInterval:
    """Timeframe, history limit, adjustment and extended hours checked before any request, all problems at once."""
    problems = []
    if prepost and timeframe in _DATED:
        problems.append(Problem(where[4], "pre- and post-market candles exist for intraday timeframes only", timeframe))
    spec = INTERVALS.get(timeframe)
    if spec is None:
        problems.append(Problem(where[1], f"Yahoo serves these timeframes: {', '.join(INTERVALS)}", timeframe))
    elif spec.max_days_back is not None:
        oldest = now - dt.timedelta(days=spec.max_days_back) + _LIMIT_MARGIN
        if since < oldest:
            problems.append(
                Problem(
                    where[2],
                    f"Yahoo keeps {timeframe} candles for the last {spec.max_days_back} days only"
                    f"{f' ({spec.max_days_per_request} days per request)' if spec.max_days_per_request else ''}; "
                    f"start on or after {oldest:%Y-%m-%d %H:%M} UTC, or use a longer timeframe (1h: 730 days, "
                    "1d: all history)",
                    f"{since:%Y-%m-%d}",
                )
            )
    if adjust not in ADJUST_MODES:
        problems.append(Problem(where[3], f"use one of {', '.join(ADJUST_MODES)}", adjust))
    elif adjust == "all" and timeframe not in _DATED:
        problems.append(
            Problem(where[3], "Yahoo adjusts daily and weekly candles only for dividends; use splits or none", adjust)
        )
    if not symbols:
        problems.append(Problem(where[0], "give at least one symbol, e.g. AAPL", ""))
    if problems:
        raise ConfigError(problems)
    assert spec is not None
    return spec


def _windows(start: dt.datetime, end: dt.datetime, days: int | None) -> Iterator[tuple[dt.datetime, dt.datetime]]:
    if days is None:
        yield start, end
        return
    while start < end:
        stop = min(end, start + dt.timedelta(days=days))
        yield start, stop
        start = stop


def _is_closed(stamps: np.ndarray, timeframe: str, now: dt.datetime, zone: dt.tzinfo) -> np.ndarray:
    """Candles over by `now`: intraday once open + length has passed; a daily one once its local date is
    over, a weekly one once its local week is (Monday on)."""
    now_ns = to_ns(now)
    if timeframe not in _DATED:
        return stamps + int(_step(timeframe).total_seconds()) * _S <= now_ns
    today = to_ns(dt.datetime.combine(now.astimezone(zone).date(), dt.time(), dt.UTC))
    return stamps + int(_step(timeframe).total_seconds()) * _S <= today


def fetch(
    client: YahooClient,
    symbol: str,
    spec: YahooInterval,
    start: dt.datetime,
    now: dt.datetime,
    prepost: bool = False,
) -> tuple[Chart, int]:
    """Every candle from `start` to now, in requests within Yahoo's per-request limit; (chart, requests).
    Always up to now, so that every split and dividend after the first candle is known."""
    if spec.max_days_back is not None:
        start = max(start, now - dt.timedelta(days=spec.max_days_back) + _LIMIT_MARGIN)
    if spec.interval in _DATED:
        start -= _DAY  # east of UTC, Yahoo stamps a trading date the evening before in UTC (Tokyo: 15:00)
    start = min(start, now - _step(spec.timeframe))  # nothing can be new yet: still ask, for the events
    charts = []
    for lo, hi in _windows(start, now, spec.max_days_per_request):
        charts.append(parse_chart(client.chart(symbol, spec.interval, lo, hi, prepost), symbol, spec.interval))
    return _concat(charts, spec.interval), len(charts)


def _concat(charts: list[Chart], timeframe: str) -> Chart:
    first = charts[0]
    stamps, order = _dedupe(np.concatenate([c.stamps for c in charts]))
    values = {k: np.concatenate([c.values[k] for c in charts])[order] for k in VALUE_COLUMNS}
    adj = None if first.adjclose is None else np.concatenate([c.adjclose for c in charts if c.adjclose is not None])
    return Chart(
        first.symbol,
        timeframe,
        first.timezone,
        first.delay,
        stamps,
        values,
        adj[order] if adj is not None and len(adj) == len(order) else None,
        sorted(set().union(*(c.splits for c in charts))),
        sorted(set().union(*(c.dividends for c in charts))),
        sum(c.dropped for c in charts),
    )


def download(
    client: YahooClient,
    store: CandleStore,
    symbols: Sequence[str],
    timeframe: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    adjust: Adjust = "splits",
    prepost: bool = False,
    now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    progress: Callable[[str, int, int], None] | None = None,
) -> list[YahooReport]:
    """Fetch every closed candle of [since, until] the store lacks, for each symbol, then store them all.

    Incremental: a stored series is extended from its last candle (and before its first when `since` is
    more than a week earlier). When a split (or, for `all`, a dividend) happened after the stored candles, they were
    adjusted on an old basis, so the whole range is fetched again and replaces them. Nothing is written
    until every symbol has been fetched: an error (network, unknown symbol) leaves the store as it was."""
    moment = now()
    spec = check_request(symbols, timeframe, since, moment, adjust, prepost=prepost)
    folder = store_folder(adjust, prepost)
    step = _step(timeframe)
    pending: list[tuple[Candles, YahooReport]] = []
    unknown: list[Problem] = []
    for symbol in symbols:
        if progress:
            progress(symbol, 0, 1)
        report = YahooReport(symbol)
        stored = store.load(folder, symbol, timeframe) if store.exists(folder, symbol, timeframe) else None
        start = since
        if stored is not None and len(stored) and since >= stored.start - _COVERED_BEFORE:
            start = max(since, stored.end + step)
        try:
            chart, report.requests = fetch(client, symbol, spec, start, moment, prepost)
            if stored is not None and len(stored) and _rebased_since(chart, adjust, to_ns(stored.end)):
                report.refetched = True
                start = min(since, stored.start)
                chart, more = fetch(client, symbol, spec, start, moment, prepost)
                report.requests += more
        except UnknownSymbol as exc:
            unknown.append(Problem("--symbols", str(exc), symbol))
            continue
        candles = as_timeframe(adjusted(chart, adjust), timeframe)
        closed = _is_closed(candles.timestamp, timeframe, moment, chart.timezone)
        window = candles._take(np.flatnonzero(closed)).between(since if not report.refetched else None, until)
        known = stored.timestamp if stored is not None else np.empty(0, dtype=np.int64)
        report.added = int(np.sum(~np.isin(window.timestamp, known)))
        report.dropped = chart.dropped
        report.splits = [(dt.datetime.fromtimestamp(at / _S, dt.UTC), r) for at, r in chart.splits]
        pending.append((window, report))
        if progress:
            progress(symbol, 1, 1)
    if unknown:
        raise ConfigError(unknown)
    for candles, report in pending:
        if len(candles):
            store.save(folder, candles)
        if store.exists(folder, report.symbol, timeframe):
            kept = store.load(folder, report.symbol, timeframe).between(since, until)
            report.rows = len(kept)
            if len(kept):
                report.start, report.end = kept.start, kept.end
    return [report for _, report in pending]


def _rebased_since(chart: Chart, adjust: Adjust, after_ns: int) -> bool:
    """Did an event after `after_ns` change how the candles before it are adjusted?"""
    if adjust == "none":
        return False  # prices as traded never change
    events = chart.splits + (chart.dividends if adjust == "all" else [])
    return any(at > after_ns for at, _ in events)


# --- the polling feed ----------------------------------------------------------------------------------


class YahooFeed(PolledFeed):
    """Backtrader pulls candles one at a time: first `history`, then Yahoo's delayed candles as they close.

    A candle is closed once its session-aware close (open + length, or the session's close if earlier)
    plus Yahoo's data delay plus `grace` has passed on `clock`. Between closes the feed sleeps; while the
    market is closed (nights, weekends, holidays, after an early close) it makes no request and wakes
    for the first candle of the next session. Every new candle goes to `on_closed` (the runtime appends
    it to the bot's own candle history) before Backtrader sees it, as with the Binance feed.

    A split Yahoo reports after the last candle the bot holds goes to `splits` (stored beside the
    history) before the candles that follow it. When Backtrader receives the first candle on the new
    basis (live, or re-read after a restart), the earlier candles of its lines are re-based (unless
    `adjust: none`: candles as traded) and the split is due (`due_split`): the runtime converts the
    position and orders when that candle is the feed's current one, before the broker matches it."""

    def __init__(
        self,
        client: YahooClient,
        history: Candles,
        *,
        sessions: MarketSessions,
        adjust: Adjust,
        prepost: bool = False,
        on_closed: Callable[[Candles], object],
        poll_interval: float,
        grace: float,
        stop: threading.Event | None = None,
        clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
        sleep: Callable[[float], object] | None = None,
        max_sleep: float = 900.0,
        splits: SplitLog | None = None,
    ) -> None:
        super().__init__(history, _rows(history), stop)
        self.splits = splits or SplitLog()
        self._due: tuple[float, Split] | None = None  # (Backtrader date of its candle, the split)
        self.client = client
        self.symbol = history.symbol
        self.timeframe = history.timeframe
        self.spec = INTERVALS[history.timeframe]
        self.sessions = sessions
        self.adjust = adjust
        self.prepost = prepost
        self.on_closed = on_closed
        self.poll_interval = poll_interval
        self.grace = dt.timedelta(seconds=grace)
        self.clock = clock
        self.sleep = sleep or self.stop_event.wait
        self.max_sleep = max_sleep
        self.step = _step(history.timeframe)
        self.daily = history.timeframe in _DATED
        self.delay = dt.timedelta()
        self._last_open: dt.datetime | None = history.end if len(history) else None
        self.requests = 0

    # --- fetching ------------------------------------------------------------------------------------

    def closes_at(self, open_time: dt.datetime) -> dt.datetime:
        """When the candle opened at `open_time` is served closed: its session-aware close plus delays."""
        return self.sessions.candle_close(open_time, self.step, self.daily) + self.delay + self.grace

    def next_due(self) -> dt.datetime | None:
        """When the next candle is expected, or None before the feed has any candle."""
        if self._last_open is None:
            return None
        return self.closes_at(self.sessions.next_candle_open(self._last_open, self.step, self.daily))

    def backfill(self, warmup: int) -> int:
        """Fetch what closed since the history ends (or about the last `warmup` candles when there is none)."""
        now = self.clock()
        if self._last_open is not None:
            return self._fetch_closed(self._last_open + self.step, now, None)
        sessions_per_day = 1.0 if self.sessions.code == "24/7" else 5 / 7
        hours_per_session = 24.0 if self.sessions.code.startswith("24/") else 6.5
        per_day = 1 if self.daily else max(1, hours_per_session * 3600 // self.step.total_seconds())
        days = int(warmup / per_day / sessions_per_day * max(1, self.step.days)) + 5
        if self.spec.max_days_back is not None:
            days = min(days, self.spec.max_days_back - 1)
        return self._fetch_closed(now - dt.timedelta(days=days), now, warmup)

    def _fetch_closed(self, since: dt.datetime, now: dt.datetime, keep_last: int | None) -> int:
        chart, requests = fetch(self.client, self.symbol, self.spec, since, now, self.prepost)
        self.requests += requests
        self.delay = chart.delay
        last_ns = to_ns(self._last_open) if self._last_open is not None else None
        candles = adjusted(chart, self.adjust)
        unseen = [(at, ratio) for at, ratio in chart.splits if last_ns is not None and at > last_ns]
        if unseen and self.adjust != "none":
            # Yahoo serves every candle on today's basis; until the bot reaches the split, it keeps the basis
            # of the candles it holds (the split is applied when it gets there, see _delivered_row).
            values = {name: getattr(candles, name).copy() for name in VALUE_COLUMNS}
            _undo_splits(candles.timestamp, values, unseen)
            candles = Candles(candles.symbol, candles.timeframe, candles.timestamp, **values, source=candles.source)
        candles = as_timeframe(candles, self.timeframe)
        fresh = [
            i
            for i, ns in enumerate(candles.timestamp)
            if (last_ns is None or ns > last_ns) and self.closes_at(_at(ns)) <= now
        ]
        if keep_last is not None:
            fresh = fresh[-keep_last:]
        if not fresh:
            return 0
        page = candles._take(np.array(fresh))
        if last_ns is not None:
            self._note_splits(chart, page, last_ns)
        self.on_closed(page)
        self._pending.extend(_rows(page))
        self._last_open = page.end
        return len(page)

    def _note_splits(self, chart: Chart, page: Candles, last_ns: int) -> None:
        """Store the splits that take effect after the bot's last candle, at the first candle of `page` on
        the new basis (a split whose first such candle is not closed yet is noted when it is). Noted with Yahoo's
        date of the split, so that noting it again at another candle replaces the first note (SplitLog.add)."""
        for at, ratio in chart.splits:
            if at <= last_ns:
                continue  # the candles the bot holds were served on this basis already
            after = page.timestamp[page.timestamp >= at]
            if not len(after):
                continue
            self.splits.add(Split(int(after[0]), ratio, at))

    def _delivered_row(self, row: tuple[float, ...]) -> None:
        for split in self.splits.splits:
            if split.candle_ns == int(row[0]):
                self._due = (float(self.lines.datetime[0]), split)

    def due_split(self) -> Split | None:
        """The split whose first candle is the feed's current one, once (None otherwise), with the history
        before that candle re-based then (not when it is loaded: with several symbols, Backtrader may load
        a candle a step before it makes it current, and until then the position is in old shares)."""
        if self._due is None or self.lines.datetime[0] != self._due[0]:
            return None
        split, self._due = self._due[1], None
        if self.adjust != "none":
            rebase_lines(self.lines, split.ratio)
        return split

    def _poll(self) -> None:
        """Sleep until the next candle is due (no request while the market is closed), then fetch it and
        anything closed before it; retry every `poll_interval` while Yahoo has not published it yet."""
        now = self.clock()
        due = self.next_due()
        if due is None and not self.sessions.is_open(now):  # no candle yet: wait for the market to open
            due = self.closes_at(self.sessions.next_open(now))
        if due is not None and now < due:
            self.sleep(min((due - now).total_seconds(), self.max_sleep))
            return
        try:
            since = self._last_open + self.step if self._last_open is not None else now - dt.timedelta(days=5)
            if self._fetch_closed(since, now, None):
                return
        except Temporary as exc:
            _logger().warning("%s %s: Yahoo unreachable, will catch up later: %s", self.symbol, self.timeframe, exc)
        self.sleep(self.poll_interval)

    # --- Backtrader ----------------------------------------------------------------------------------

    def delivered(self) -> Candles:
        """Every candle Backtrader received, as Candles (for the run's result)."""
        rows = np.array(self._delivered, dtype=np.float64).reshape(-1, 6)
        stamps = np.array([int(r[0]) for r in self._delivered], dtype=np.int64)
        values = dict(zip(VALUE_COLUMNS, rows[:, 1:].T, strict=True))
        return Candles(
            self.symbol, self.timeframe, stamps, **values, source=f"yahoo {self.symbol} {self.timeframe} live"
        )


def _at(ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ns) // _S, dt.UTC)


def _rows(candles: Candles) -> list[tuple[float, ...]]:
    """(open ns, o, h, l, c, v) tuples of candles."""
    columns = (candles.timestamp, candles.open, candles.high, candles.low, candles.close, candles.volume)
    return list(zip(*columns, strict=True))
