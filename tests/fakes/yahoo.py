"""Yahoo Finance replayed at the HTTP boundary yfinance uses: a requests transport adapter that answers
the cookie, crumb, consent and `v8/finance/chart` requests from the recordings in tests/data/yahoo/.

A chart answer is the recording cut to the request (`period1` <= open < `period2`, and nothing after
the fake's clock), with the events in that range, as Yahoo does; a split after the fake's clock has not
happened yet, so the prices before it are served as traded. Candles still in progress are served
(Yahoo does), and while a session runs a 'latest trade' row off the minute grid is appended (Yahoo does
that too). Faults are injected per path: HTTP statuses with Yahoo's bodies, or a connection error.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from requests.adapters import BaseAdapter
from requests.structures import CaseInsensitiveDict

RECORDINGS = Path(__file__).resolve().parents[1] / "data" / "yahoo"
CRUMB = "Xq3k9Zr.fake"
NOT_FOUND = {
    "chart": {"result": None, "error": {"code": "Not Found", "description": "No data found, symbol may be delisted"}}
}
# Yahoo's limits on intraday history (days back from now, days per request) as the real API enforces them.
LIMITS = {"1m": (30, 7), "5m": (60, 60), "15m": (60, 60), "1h": (730, 730)}


@dataclass
class Fault:
    """One injected answer: an HTTP status with a body, or a connection error (status 0)."""

    status: int
    body: str = ""
    headers: dict[str, str] | None = None

    @classmethod
    def rate_limited(cls, retry_after: float | None = None) -> Fault:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return cls(429, "Edge: Too Many Requests", headers)

    @classmethod
    def server_error(cls, status: int = 500) -> Fault:
        body = json.dumps(
            {"finance": {"result": None, "error": {"code": "internal-error", "description": "Service unavailable"}}}
        )
        return cls(status, body)

    @classmethod
    def unreachable(cls) -> Fault:
        return cls(0)


class FakeYahoo(BaseAdapter):
    """Serves Yahoo's endpoints from recordings; `clock` is Yahoo's now; `as_of` picks a recording variant
    (e.g. "before_split" serves ORCL_1d_before_split.json), to replay what Yahoo served at another time."""

    def __init__(self, clock: Callable[[], dt.datetime], recordings: Path = RECORDINGS) -> None:
        super().__init__()
        self.clock = clock
        self.recordings = recordings
        self.as_of: dict[str, str] = {}
        self.calls: list[tuple[str, str, dict[str, str]]] = []
        self.offline = False
        self._faults: list[tuple[str, Fault]] = []

    def session(self) -> requests.Session:
        """A requests Session whose every request reaches this fake (what yfinance's `session=` takes)."""
        session = requests.Session()
        session.mount("https://", self)
        session.mount("http://", self)
        return session

    def inject(self, path_part: str, fault: Fault, times: int = 1) -> None:
        self._faults += [(path_part, fault)] * times

    def chart_calls(self, symbol: str | None = None) -> list[dict[str, str]]:
        return [
            q
            for _, path, q in self.calls
            if "/v8/finance/chart/" in path and (symbol is None or path.endswith(f"/{symbol}"))
        ]

    # --- the transport ---------------------------------------------------------------------------------

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        url = urlsplit(request.url or "")
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.calls.append((url.hostname or "", url.path, query))
        if self.offline:
            raise requests.exceptions.ConnectionError(f"Failed to resolve '{url.hostname}' (no network)")
        for i, (part, fault) in enumerate(self._faults):
            if part in url.path:
                del self._faults[i]
                if fault.status == 0:
                    raise requests.exceptions.ConnectionError(f"Connection reset by peer ({url.hostname})")
                return _response(request, fault.status, fault.body, fault.headers)
        if url.hostname == "fc.yahoo.com":
            # The real one answers 404 and sets an A3 cookie; the chart API works without it, and leaving it
            # out keeps yfinance's on-disk cookie cache empty, so every test starts from the same state.
            return _response(request, 404, "")
        if url.path == "/v1/test/getcrumb":
            return _response(request, 200, CRUMB, {"Content-Type": "text/plain"})
        if url.hostname and url.hostname.endswith(("guce.yahoo.com", "consent.yahoo.com")):
            return _response(request, 200, "<html><body>consent not required</body></html>")
        if url.path.startswith("/v8/finance/chart/"):
            return self._chart(request, url.path.rsplit("/", 1)[1], query)
        return _response(request, 404, "not found")

    def close(self) -> None:
        pass

    def _chart(self, request: requests.PreparedRequest, symbol: str, query: dict[str, str]) -> requests.Response:
        interval = query.get("interval", "1d")
        variant = self.as_of.get(symbol)
        if query.get("includePrePost") == "true" and (self.recordings / f"{symbol}_{interval}_prepost.json").is_file():
            variant = "prepost"  # what Yahoo serves with pre- and post-market trading
        path = self.recordings / f"{symbol}_{interval}{f'_{variant}' if variant else ''}.json"
        if not path.is_file():
            return _response(request, 404, json.dumps(NOT_FOUND))
        now = self.clock()
        start, end = int(query["period1"]), min(int(query["period2"]), int(now.timestamp()))
        if interval in LIMITS:
            back, per_request = LIMITS[interval]
            if start < now.timestamp() - back * 86400:
                return _unprocessable(
                    request, interval, start, end, f"The requested range must be within the last {back} days."
                )
            if end - start > per_request * 86400:
                return _unprocessable(
                    request,
                    interval,
                    start,
                    end,
                    f"Only {per_request} days worth of {interval} granularity data are allowed to be fetched "
                    "per request.",
                )
        body = json.loads(path.read_text())
        result = _as_of(body["chart"]["result"][0], int(now.timestamp()))
        return _response(
            request, 200, json.dumps({"chart": {"result": [_cut(result, start, end, interval)], "error": None}})
        )


def _as_of(result: dict[str, Any], now: int) -> dict[str, Any]:
    """The recording as Yahoo served it at `now`: a recording is adjusted for all its splits, and before a
    split has happened Yahoo's prices (and adjclose and dividends) before it are as traded, its volumes too."""
    future = [e for e in ((result.get("events") or {}).get("splits") or {}).values() if int(e["date"]) > now]
    if not future:
        return result
    result = json.loads(json.dumps(result))
    quote = result["indicators"]["quote"][0]
    adjclose = (result["indicators"].get("adjclose") or [{}])[0].get("adjclose")
    for split in future:
        ratio = float(split["numerator"]) / float(split["denominator"])
        for i, stamp in enumerate(result.get("timestamp") or []):
            if stamp >= int(split["date"]):
                continue
            for name in ("open", "high", "low", "close"):
                if quote[name][i] is not None:
                    quote[name][i] *= ratio
            if quote["volume"][i] is not None:
                quote["volume"][i] = int(quote["volume"][i] / ratio)
            if adjclose is not None and adjclose[i] is not None:
                adjclose[i] *= ratio
        for dividend in ((result.get("events") or {}).get("dividends") or {}).values():
            if int(dividend["date"]) < int(split["date"]):
                dividend["amount"] *= ratio
    return result


def _cut(result: dict[str, Any], start: int, end: int, interval: str) -> dict[str, Any]:
    stamps = result.get("timestamp") or []
    keep = [i for i, s in enumerate(stamps) if start <= s < end]
    quote = {k: [v[i] for i in keep] for k, v in result["indicators"]["quote"][0].items()}
    cut: dict[str, Any] = {
        "meta": dict(result["meta"]),
        "timestamp": [stamps[i] for i in keep],
        "indicators": {"quote": [quote]},
    }
    if "adjclose" in result["indicators"]:
        adj = result["indicators"]["adjclose"][0]["adjclose"]
        cut["indicators"]["adjclose"] = [{"adjclose": [adj[i] for i in keep]}]
    events = {
        kind: {k: e for k, e in items.items() if start <= int(e["date"]) < end}
        for kind, items in (result.get("events") or {}).items()
    }
    if any(events.values()):
        cut["events"] = {k: v for k, v in events.items() if v}
    if interval not in ("1d", "1wk") and keep and end % 60 and end - stamps[keep[-1]] < 3600:
        # During a session Yahoo appends the latest trade as a row of its own, stamped off the minute grid.
        cut["timestamp"].append(end)
        for column in quote.values():
            column.append(column[-1])
    if not keep:
        cut.pop("timestamp")
        cut["indicators"] = {"quote": [{}]}
    return cut


def _unprocessable(
    request: requests.PreparedRequest, interval: str, start: int, end: int, why: str
) -> requests.Response:
    description = f"{interval} data not available for startTime={start} and endTime={end}. {why}"
    return _response(
        request,
        422,
        json.dumps({"chart": {"result": None, "error": {"code": "Unprocessable Entity", "description": description}}}),
    )


def _response(
    request: requests.PreparedRequest, status: int, body: str, headers: dict[str, str] | None = None
) -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body.encode()
    response.headers = CaseInsensitiveDict({"Content-Type": "application/json;charset=utf-8", **(headers or {})})
    response.url = request.url or ""
    response.request = request
    response.encoding = "utf-8"
    return response
