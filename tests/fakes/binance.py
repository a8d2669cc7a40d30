"""A fake Binance spot REST server on loopback, for real `ccxt.binance` to talk to.

It serves the endpoints the feed, the download command and the broker use, with Binance's response
shapes (checked against ccxt's recorded responses in shared/data/ccxt-static), a small matching
engine over a scripted price path (candles), and per-test fault injection.

Time: the market clock (`/api/v3/time`, which candles exist, when orders match) is scripted: it
stands still unless a test calls `advance()`/`set_time()`, or runs at `speed` market seconds per wall
second. The request-timestamp check of signed endpoints follows the wall clock plus `skew_ms`, like
an honest exchange's clock against the client's, so a test can inject clock skew independently.

Requests are not signed by the fake, but signed endpoints check that they were: API key header,
`timestamp` inside `recvWindow`, and the HMAC-SHA256 signature with the test secret.
"""

from __future__ import annotations

import asyncio
import bisect
import hashlib
import hmac
import itertools
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

API_KEY = "fake-api-key"
API_SECRET = "fake-api-secret"
FEE_RATE = Decimal("0.001")
INTERVAL_MS = {
    "1m": 60_000,
    "3m": 180_000,
    "5m": 300_000,
    "15m": 900_000,
    "30m": 1_800_000,
    "1h": 3_600_000,
    "2h": 7_200_000,
    "4h": 14_400_000,
    "6h": 21_600_000,
    "8h": 28_800_000,
    "12h": 43_200_000,
    "1d": 86_400_000,
    "1w": 604_800_000,
}
SIGNED = {"/api/v3/order", "/api/v3/openOrders", "/api/v3/account", "/api/v3/myTrades", "/api/v3/allOrders"}


class BinanceError(Exception):
    """An error answer in Binance's shape: HTTP status plus {"code": ..., "msg": ...}."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class Fault:
    """What to do to one request instead of (or after) answering it normally."""

    status: int | None = None  # answer with this HTTP status
    body: dict[str, Any] | list[Any] | None = None
    retry_after: int | None = None  # seconds, as a Retry-After header
    hang: float | None = None  # sleep this long before answering (the client times out first)
    after: bool = False  # process the request first, then lose the response (status or hang)
    reset: bool = False  # drop the connection without an answer (connection reset)

    @classmethod
    def rate_limited(cls, retry_after: int = 1) -> Fault:
        return cls(
            429,
            {"code": -1003, "msg": "Too many requests; current limit is 1200 request weight per 1 MINUTE."},
            retry_after,
        )

    @classmethod
    def banned(cls, retry_after: int = 1) -> Fault:
        return cls(418, {"code": -1003, "msg": "Way too many requests; IP banned."}, retry_after)

    @classmethod
    def server_error(cls, status: int = 503) -> Fault:
        return cls(status, {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."})

    @classmethod
    def timeout(cls, seconds: float = 5.0) -> Fault:
        return cls(hang=seconds)

    @classmethod
    def lost_response(cls, hang: float | None = 5.0, status: int | None = None) -> Fault:
        """The exchange accepted the request, but the answer never reaches the client."""
        return cls(status=status, hang=None if status else hang, after=True)

    @classmethod
    def connection_reset(cls) -> Fault:
        """The connection drops before any answer (ccxt: NetworkError)."""
        return cls(reset=True)

    @classmethod
    def error(cls, status: int, code: int, msg: str) -> Fault:
        return cls(status, {"code": code, "msg": msg})


@dataclass
class Market:
    symbol: str  # ccxt form, BTC/USDT
    base: str
    quote: str
    tick_size: Decimal = Decimal("0.01")
    step_size: Decimal = Decimal("0.00001")
    min_qty: Decimal = Decimal("0.00001")
    min_notional: Decimal = Decimal("5")
    order_types: tuple[str, ...] = ("LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT")

    @property
    def id(self) -> str:
        return self.base + self.quote


@dataclass
class Order:
    order_id: int
    client_order_id: str
    symbol: str  # exchange id, BTCUSDT
    side: str  # BUY | SELL
    type: str  # MARKET | LIMIT | STOP_LOSS | STOP_LOSS_LIMIT
    qty: Decimal
    price: Decimal  # 0 for market
    stop_price: Decimal
    time: int
    status: str = "NEW"
    executed: Decimal = Decimal(0)
    quote: Decimal = Decimal(0)
    update_time: int = 0
    triggered: bool = False
    locked: Decimal = Decimal(0)  # balance still locked for the unfilled part
    max_fill_fraction: Decimal | None = None  # partial fills: at most this share of qty per match

    @property
    def open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")

    def payload(self) -> dict[str, Any]:
        """GET /api/v3/order shape."""
        return {
            "symbol": self.symbol,
            "orderId": self.order_id,
            "orderListId": -1,
            "clientOrderId": self.client_order_id,
            "price": _fmt(self.price),
            "origQty": _fmt(self.qty),
            "executedQty": _fmt(self.executed),
            "cummulativeQuoteQty": _fmt(self.quote),
            "status": self.status,
            "timeInForce": "GTC",
            "type": self.type,
            "side": self.side,
            "stopPrice": _fmt(self.stop_price),
            "icebergQty": "0.00000000",
            "time": self.time,
            "updateTime": self.update_time or self.time,
            "isWorking": self.type in ("MARKET", "LIMIT") or self.triggered,
            "workingTime": self.time,
            "origQuoteOrderQty": "0.00000000",
            "selfTradePreventionMode": "EXPIRE_MAKER",
        }


@dataclass
class Trade:
    id: int
    order_id: int
    symbol: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_buyer: bool
    is_maker: bool

    def payload(self) -> dict[str, Any]:
        """GET /api/v3/myTrades shape."""
        return {
            "symbol": self.symbol,
            "id": self.id,
            "orderId": self.order_id,
            "orderListId": -1,
            "price": _fmt(self.price),
            "qty": _fmt(self.qty),
            "quoteQty": _fmt(self.price * self.qty),
            "commission": _fmt(self.commission),
            "commissionAsset": self.commission_asset,
            "time": self.time,
            "isBuyer": self.is_buyer,
            "isMaker": self.is_maker,
            "isBestMatch": True,
        }


@dataclass
class Request:
    method: str
    path: str
    params: dict[str, str]
    market_time: int


@dataclass
class _Series:
    interval_ms: int
    rows: list[tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]] = field(default_factory=list)


def _fmt(value: Decimal) -> str:
    return f"{value:.8f}"


def _dec(text: str | None, name: str) -> Decimal:
    if text is None or text == "":
        raise BinanceError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    try:
        return Decimal(text)
    except ArithmeticError:
        raise BinanceError(
            400,
            -1100,
            f"Illegal characters found in parameter '{name}'; legal range is '^([0-9]{{1,20}})(\\.[0-9]{{1,20}})?$'.",
        ) from None


class FakeBinance:
    """The fake exchange. Start it with `start()` (or the pytest fixture); `urls()` points ccxt at it."""

    def __init__(
        self, *, start_ms: int = 0, speed: float = 0.0, api_key: str = API_KEY, secret: str = API_SECRET
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.skew_ms = 0
        self.wall_clock_time = False  # /api/v3/time answers the wall clock plus skew_ms (clock-sync tests)
        self.recv_window_default = 5000
        self.uid = 354937868  # the account's id in /api/v3/account
        self.markets: dict[str, Market] = {}
        self.series: dict[tuple[str, str], _Series] = {}
        self.balances: dict[str, list[Decimal]] = defaultdict(
            lambda: [Decimal(0), Decimal(0)]
        )  # asset -> [free, locked]
        self.orders: list[Order] = []
        self.trades: list[Trade] = []
        self.requests: list[Request] = []
        self.partial_fill_fraction: Decimal | None = None  # applies to orders placed while set
        self.on_order_request: Callable[[dict[str, str]], None] | None = None  # sees each POST /order first
        self.klines_overlap = 0  # answer klines from this many candles before startTime (duplicates)
        self._faults: dict[tuple[str, str], deque[Fault | None]] = defaultdict(deque)
        self._ids = itertools.count(1000)
        self._trade_ids = itertools.count(5000)
        self._lock = threading.RLock()
        self._base_ms = start_ms
        self._speed = speed
        self._wall0 = time.monotonic()
        self._matched_until: dict[str, int] = {}  # symbol -> open time of the last candle matched
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.arrivals: list[tuple[float, str]] = []  # (perf_counter, clientOrderId) of order placements

    # ---- lifecycle ------------------------------------------------------------------------------

    def start(self) -> FakeBinance:
        ready = threading.Event()

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            app = web.Application()
            app.router.add_route("*", "/{tail:.*}", self._handle)
            self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            ready.set()
            loop.run_forever()
            pending = asyncio.all_tasks(loop)  # requests still hanging on a fault
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

        self._thread = threading.Thread(target=serve, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Binance did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._runner is not None:
            # Close connections (and requests left hanging by faults) before the loop stops.
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def urls(self) -> dict[str, str]:
        """A mapping for ccxt's `urls['api']` sending every Binance API family to this server
        (only /api/v3 answers; anything else is a 404, never a request to the internet)."""
        import ccxt

        return {
            name: self.url + "/" + address.split("://", 1)[1].split("/", 1)[1]
            for name, address in ccxt.binance().urls["api"].items()
            if isinstance(address, str)
        }

    # ---- scripting --------------------------------------------------------------------------------

    def add_market(self, symbol: str, **limits: Decimal) -> Market:
        base, quote = symbol.split("/")
        market = Market(symbol, base, quote, **limits)
        self.markets[market.id] = market
        return market

    def add_candles(self, symbol: str, interval: str, rows: Iterable[Sequence[Any]]) -> None:
        """Candles (open ms, o, h, l, c, v) of the scripted price path; the market must exist."""
        market_id = symbol.replace("/", "")
        if market_id not in self.markets:
            self.add_market(symbol)
        series = self.series.setdefault((market_id, interval), _Series(INTERVAL_MS[interval]))
        series.rows.extend((int(r[0]), *(Decimal(str(v)) for v in r[1:6])) for r in rows)  # type: ignore[misc]
        series.rows.sort(key=lambda r: r[0])

    def remove_candles(self, symbol: str, interval: str, start_ms: int, end_ms: int) -> None:
        """Delete candles with open time in [start, end): an exchange outage (a gap in its history)."""
        series = self.series[(symbol.replace("/", ""), interval)]
        series.rows = [r for r in series.rows if not start_ms <= r[0] < end_ms]

    def set_balance(self, asset: str, free: Decimal | str | float) -> None:
        with self._lock:
            self.balances[asset] = [Decimal(str(free)), Decimal(0)]

    def now_ms(self) -> int:
        with self._lock:
            return int(self._base_ms + (time.monotonic() - self._wall0) * 1000 * self._speed)

    def set_time(self, ms: int, *, speed: float | None = None) -> None:
        with self._lock:
            self._base_ms, self._wall0 = ms, time.monotonic()
            if speed is not None:
                self._speed = speed
            self._match_all()

    def advance(self, ms: int) -> None:
        """Move the market clock forward; resting orders match against every candle passed."""
        self.set_time(self.now_ms() + ms)

    def inject(self, method: str, path: str, fault: Fault, times: int = 1, *, skip: int = 0) -> None:
        """After `skip` normal answers, the next `times` requests to `method path` (e.g. "POST",
        "/api/v3/order") meet `fault`."""
        with self._lock:
            self._faults[(method.upper(), path)].extend([None] * skip + [fault] * times)

    def calls(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.method == method and r.path == path]

    def order(self, client_order_id: str) -> Order:
        return next(o for o in self.orders if o.client_order_id == client_order_id)

    def place(
        self,
        symbol: str,
        side: str,
        type: str,
        qty: str,
        price: str = "0",
        client_order_id: str = "",
        stop_price: str = "0",
    ) -> Order:
        """An order placed by someone else on the account (a person, another bot): `foreign` orders."""
        with self._lock:
            params = {"symbol": symbol.replace("/", ""), "side": side, "type": type, "quantity": qty}
            if price != "0":
                params |= {"price": price, "timeInForce": "GTC"}
            if stop_price != "0":
                params["stopPrice"] = stop_price
            if client_order_id:
                params["newClientOrderId"] = client_order_id
            return self._new_order(params)

    def cancel(self, client_order_id: str) -> None:
        """Cancel an open order now, as a person on the exchange's website would."""
        with self._lock:
            self._cancel(self.order(client_order_id))

    def fill(self, client_order_id: str, qty: Decimal | str | None = None, price: Decimal | str | None = None) -> Trade:
        """Fill (part of) an open order now, e.g. while the bot is down."""
        with self._lock:
            order = self.order(client_order_id)
            if not order.open:
                raise ValueError(f"order {client_order_id} is {order.status}")
            amount = order.qty - order.executed if qty is None else Decimal(str(qty))
            at = Decimal(str(price)) if price is not None else (order.price or self._last_price(order.symbol))
            return self._execute(order, amount, at, maker=order.type != "MARKET")

    # ---- matching engine ------------------------------------------------------------------------

    def _current(self, market_id: str) -> tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal] | None:
        """The candle in progress at the market clock (of the shortest interval served)."""
        now = self.now_ms()
        best = None
        for (sym, _), series in self.series.items():
            if sym != market_id:
                continue
            for row in reversed(series.rows):
                if row[0] <= now:
                    if best is None or series.interval_ms < best[0]:
                        best = (series.interval_ms, row)
                    break
        return None if best is None else best[1]

    def _last_price(self, market_id: str) -> Decimal:
        current = self._current(market_id)
        if current is None:
            raise BinanceError(400, -1013, "Market is closed.")
        return current[1]  # the open of the candle in progress: the price "now"

    def _match_all(self) -> None:
        """Match open orders against every candle that opened since the last pass (each candle once;
        an order only against candles that opened after it was placed)."""
        now = self.now_ms()
        for market_id in list(self.markets):
            intervals = [s for (sym, _), s in self.series.items() if sym == market_id]
            if not intervals:
                continue
            series = min(intervals, key=lambda s: s.interval_ms)
            upto = bisect.bisect_right(series.rows, now, key=lambda r: r[0])
            since = self._matched_until.get(market_id)
            start = upto if since is None else bisect.bisect_right(series.rows, since, key=lambda r: r[0])
            if upto:
                self._matched_until[market_id] = max(since or 0, series.rows[upto - 1][0])
            orders = [o for o in self.orders if o.symbol == market_id and o.open]
            for row in series.rows[start:upto]:
                for order in orders:
                    if row[0] >= order.time and order.open:
                        self._match(order, row)

    def _match(self, order: Order, candle: tuple[int, Decimal, Decimal, Decimal, Decimal, Decimal]) -> None:
        _, open_, high, low, _, _ = candle
        buy = order.side == "BUY"
        if order.type in ("STOP_LOSS", "STOP_LOSS_LIMIT") and not order.triggered:
            if (buy and high >= order.stop_price) or (not buy and low <= order.stop_price):
                order.triggered = True
            else:
                return
        if order.type in ("MARKET", "STOP_LOSS"):
            price = open_ if order.type == "MARKET" else order.stop_price
            if order.type == "STOP_LOSS" and (
                (buy and open_ > order.stop_price) or (not buy and open_ < order.stop_price)
            ):
                price = open_  # gapped through the stop
            self._execute(order, self._chunk(order), price, maker=False)
        elif (buy and low <= order.price) or (not buy and high >= order.price):
            self._execute(order, self._chunk(order), order.price, maker=True)

    def _chunk(self, order: Order) -> Decimal:
        left = order.qty - order.executed
        if order.max_fill_fraction is None:
            return left
        step = self.markets[order.symbol].step_size
        return min(left, max(step, (order.qty * order.max_fill_fraction).quantize(step, ROUND_DOWN)))

    def _execute(self, order: Order, qty: Decimal, price: Decimal, *, maker: bool) -> Trade:
        market = self.markets[order.symbol]
        qty = min(qty, order.qty - order.executed)
        now = self.now_ms()
        cost = qty * price
        if order.side == "BUY":
            fee = (qty * FEE_RATE).quantize(Decimal("1e-8"), ROUND_DOWN)
            self._spend(market.quote, cost, order)
            self.balances[market.base][0] += qty - fee
            fee_asset = market.base
        else:
            fee = (cost * FEE_RATE).quantize(Decimal("1e-8"), ROUND_DOWN)
            self._spend(market.base, qty, order)
            self.balances[market.quote][0] += cost - fee
            fee_asset = market.quote
        order.executed += qty
        order.quote += cost
        order.update_time = now
        order.status = "FILLED" if order.executed >= order.qty else "PARTIALLY_FILLED"
        if order.status == "FILLED" and order.locked:
            self.balances[market.quote if order.side == "BUY" else market.base][1] -= order.locked
            self.balances[market.quote if order.side == "BUY" else market.base][0] += order.locked
            order.locked = Decimal(0)
        trade = Trade(
            next(self._trade_ids),
            order.order_id,
            order.symbol,
            price,
            qty,
            fee,
            fee_asset,
            now,
            order.side == "BUY",
            maker,
        )
        self.trades.append(trade)
        return trade

    def _spend(self, asset: str, amount: Decimal, order: Order) -> None:
        free_locked = self.balances[asset]
        from_locked = min(order.locked, amount)
        free_locked[1] -= from_locked
        order.locked -= from_locked
        free_locked[0] -= amount - from_locked

    def _new_order(self, params: dict[str, str]) -> Order:
        market = self.markets.get(params.get("symbol", ""))
        if market is None:
            raise BinanceError(400, -1121, "Invalid symbol.")
        side, type_ = params.get("side", ""), params.get("type", "")
        if side not in ("BUY", "SELL"):
            raise BinanceError(400, -1102, "Mandatory parameter 'side' was not sent, was empty/null, or malformed.")
        if type_ not in ("MARKET", "LIMIT", "STOP_LOSS", "STOP_LOSS_LIMIT") or type_ not in market.order_types:
            raise BinanceError(400, -1116, "Invalid orderType.")
        qty = _dec(params.get("quantity"), "quantity")
        price = _dec(params.get("price"), "price") if type_ in ("LIMIT", "STOP_LOSS_LIMIT") else Decimal(0)
        stop = _dec(params.get("stopPrice"), "stopPrice") if type_.startswith("STOP") else Decimal(0)
        if qty < market.min_qty or qty % market.step_size:
            raise BinanceError(400, -1013, "Filter failure: LOT_SIZE")
        if (price and price % market.tick_size) or (stop and stop % market.tick_size):
            raise BinanceError(400, -1013, "Filter failure: PRICE_FILTER")
        reference = price or stop or self._last_price(market.id)
        if qty * reference < market.min_notional:
            raise BinanceError(400, -1013, "Filter failure: NOTIONAL")
        client_id = params.get("newClientOrderId") or f"web_{next(self._ids)}"
        if any(o.client_order_id == client_id and o.open for o in self.orders):
            raise BinanceError(400, -2010, "Duplicate order sent.")
        buy = side == "BUY"
        needed = qty * reference * (1 + FEE_RATE) if buy else qty
        asset = market.quote if buy else market.base
        if self.balances[asset][0] < needed:
            raise BinanceError(400, -2010, "Account has insufficient balance for requested action.")
        now = self.now_ms()
        order = Order(
            next(self._ids),
            client_id,
            market.id,
            side,
            type_,
            qty,
            price,
            stop,
            now,
            max_fill_fraction=self.partial_fill_fraction,
        )
        if type_ != "MARKET":
            order.locked = qty * reference if buy else qty
            self.balances[asset][0] -= order.locked
            self.balances[asset][1] += order.locked
        self.orders.append(order)
        current = self._current(market.id)
        if type_ == "MARKET":
            self._execute(order, self._chunk(order), self._last_price(market.id), maker=False)
        elif type_ == "LIMIT" and current is not None:
            last = current[1]
            if (buy and last <= price) or (not buy and last >= price):
                self._execute(order, self._chunk(order), last, maker=False)
        return order

    def _cancel(self, order: Order) -> None:
        market = self.markets[order.symbol]
        if order.locked:
            asset = market.quote if order.side == "BUY" else market.base
            self.balances[asset][0] += order.locked
            self.balances[asset][1] -= order.locked
            order.locked = Decimal(0)
        order.status = "CANCELED"
        order.update_time = self.now_ms()

    # ---- HTTP -------------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        raw = request.query_string if request.method in ("GET", "DELETE") else body
        params = dict(parse_qsl(request.query_string)) | dict(parse_qsl(body))
        key = (request.method, request.path)
        with self._lock:
            self.requests.append(Request(request.method, request.path, params, self.now_ms()))
            fault = self._faults[key].popleft() if self._faults[key] else None
            if request.method == "POST" and request.path == "/api/v3/order":
                self.arrivals.append((time.perf_counter(), params.get("newClientOrderId", "")))
                if self.on_order_request is not None:
                    self.on_order_request(params)
        if fault is not None and fault.reset:
            if request.transport is not None:
                request.transport.abort()
            return web.Response()
        if fault is not None and not fault.after:
            return await self._apply(fault)
        try:
            with self._lock:
                if request.path in SIGNED:
                    self._check_signed(request, raw, params)
                payload = self._route(request.method, request.path, params)
            response = web.json_response(payload)
        except BinanceError as exc:
            response = web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
        if fault is not None:
            return await self._apply(fault)
        return response

    async def _apply(self, fault: Fault) -> web.StreamResponse:
        if fault.hang:
            await asyncio.sleep(fault.hang)
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.status is None:
            return web.json_response(
                {"code": -1007, "msg": "Timeout waiting for response from backend server."}, status=504
            )
        return web.json_response(fault.body if fault.body is not None else {}, status=fault.status, headers=headers)

    def _check_signed(self, request: web.Request, raw: str, params: dict[str, str]) -> None:
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise BinanceError(401, -2015, "Invalid API-key, IP, or permissions for action.")
        if "signature" not in params or "timestamp" not in params:
            raise BinanceError(
                400, -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        unsigned = raw.rsplit("&signature=", 1)[0]
        expected = hmac.new(self.secret.encode(), unsigned.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, params["signature"]):
            raise BinanceError(400, -1022, "Signature for this request is not valid.")
        server_ms = time.time() * 1000 + self.skew_ms
        window = int(params.get("recvWindow", self.recv_window_default))
        if abs(int(params["timestamp"]) - server_ms) > window:
            raise BinanceError(400, -1021, "Timestamp for this request is outside of the recvWindow.")

    def _route(self, method: str, path: str, params: dict[str, str]) -> Any:
        self._match_all()
        routes = {
            ("GET", "/api/v3/ping"): lambda p: {},
            ("GET", "/api/v3/time"): lambda p: {"serverTime": self._server_time()},
            ("GET", "/api/v3/exchangeInfo"): self._exchange_info,
            ("GET", "/api/v3/klines"): self._klines,
            ("GET", "/api/v3/ticker/24hr"): self._ticker,
            ("POST", "/api/v3/order"): self._post_order,
            ("GET", "/api/v3/order"): lambda p: self._find(p).payload(),
            ("DELETE", "/api/v3/order"): self._delete_order,
            ("GET", "/api/v3/openOrders"): self._open_orders,
            ("GET", "/api/v3/account"): self._account,
            ("GET", "/api/v3/myTrades"): self._my_trades,
        }
        handler = routes.get((method, path))
        if handler is None:
            raise BinanceError(404, -1000, f"fake Binance does not serve {method} {path}")
        return handler(params)

    def _server_time(self) -> int:
        return int(time.time() * 1000 + self.skew_ms) if self.wall_clock_time else self.now_ms()

    def _exchange_info(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
            ],
            "exchangeFilters": [],
            "symbols": [
                {
                    "symbol": m.id,
                    "status": "TRADING",
                    "baseAsset": m.base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": m.quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "baseCommissionPrecision": 8,
                    "quoteCommissionPrecision": 8,
                    "orderTypes": list(m.order_types),
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "quoteOrderQtyMarketAllowed": True,
                    "allowTrailingStop": True,
                    "cancelReplaceAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": _fmt(m.tick_size),
                            "maxPrice": "1000000.00000000",
                            "tickSize": _fmt(m.tick_size),
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": _fmt(m.min_qty),
                            "maxQty": "9000.00000000",
                            "stepSize": _fmt(m.step_size),
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": _fmt(m.min_notional),
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": "0.00000000",
                            "maxQty": "100.00000000",
                            "stepSize": "0.00000000",
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
                for m in self.markets.values()
            ],
        }

    def _klines(self, params: dict[str, str]) -> list[list[Any]]:
        market_id, interval = params.get("symbol", ""), params.get("interval", "")
        if market_id not in self.markets:
            raise BinanceError(400, -1121, "Invalid symbol.")
        series = self.series.get((market_id, interval))
        if series is None:
            raise BinanceError(400, -1120, "Invalid interval.")
        limit = min(int(params.get("limit", 500)), 1000)
        now = self.now_ms()
        start = int(params["startTime"]) - self.klines_overlap * series.interval_ms if "startTime" in params else None
        end = int(params["endTime"]) if "endTime" in params else None
        rows = [
            r for r in series.rows if r[0] <= now and (start is None or r[0] >= start) and (end is None or r[0] <= end)
        ]
        rows = rows[:limit] if start is not None else rows[-limit:]
        step = series.interval_ms
        result = []
        for t, o, h, low, c, v in rows:
            if t + step > now:  # the candle in progress: what has traded so far (here: its open only)
                h = low = c = o
                v = Decimal(0)
            result.append(
                [
                    t,
                    _fmt(o),
                    _fmt(h),
                    _fmt(low),
                    _fmt(c),
                    _fmt(v),
                    t + step - 1,
                    _fmt(v * c),
                    100,
                    _fmt(v / 2),
                    _fmt(v * c / 2),
                    "0",
                ]
            )
        return result

    def _ticker(self, params: dict[str, str]) -> dict[str, Any]:
        market_id = params.get("symbol", "")
        if market_id not in self.markets:
            raise BinanceError(400, -1121, "Invalid symbol.")
        last = self._last_price(market_id)
        now = self.now_ms()
        return {
            "symbol": market_id,
            "priceChange": "0.00000000",
            "priceChangePercent": "0.000",
            "weightedAvgPrice": _fmt(last),
            "prevClosePrice": _fmt(last),
            "lastPrice": _fmt(last),
            "lastQty": "0.00100000",
            "bidPrice": _fmt(last),
            "bidQty": "1.00000000",
            "askPrice": _fmt(last),
            "askQty": "1.00000000",
            "openPrice": _fmt(last),
            "highPrice": _fmt(last),
            "lowPrice": _fmt(last),
            "volume": "0.00000000",
            "quoteVolume": "0.00000000",
            "openTime": now - 86_400_000,
            "closeTime": now,
            "firstId": 1,
            "lastId": 2,
            "count": 1,
        }

    def _post_order(self, params: dict[str, str]) -> dict[str, Any]:
        order = self._new_order(params)
        payload = order.payload()
        del payload["time"], payload["updateTime"], payload["isWorking"], payload["stopPrice"], payload["icebergQty"]
        payload["transactTime"] = order.time
        if params.get("newOrderRespType", "FULL" if order.type in ("MARKET", "LIMIT") else "ACK") == "FULL":
            payload["fills"] = [
                {
                    "price": _fmt(t.price),
                    "qty": _fmt(t.qty),
                    "commission": _fmt(t.commission),
                    "commissionAsset": t.commission_asset,
                    "tradeId": t.id,
                }
                for t in self.trades
                if t.order_id == order.order_id
            ]
        return payload

    def _find(self, params: dict[str, str]) -> Order:
        market_id = params.get("symbol", "")
        if market_id not in self.markets:
            raise BinanceError(400, -1121, "Invalid symbol.")
        if "orderId" in params:
            found = [o for o in self.orders if o.symbol == market_id and str(o.order_id) == params["orderId"]]
        elif "origClientOrderId" in params:
            # the most recent order with that client id (ids of finished orders may be reused)
            found = [
                o for o in self.orders if o.symbol == market_id and o.client_order_id == params["origClientOrderId"]
            ]
        else:
            raise BinanceError(
                400, -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        if not found:
            raise BinanceError(400, -2013, "Order does not exist.")
        return found[-1]

    def _delete_order(self, params: dict[str, str]) -> dict[str, Any]:
        try:
            order = self._find(params)
        except BinanceError as exc:
            if exc.code == -2013:
                raise BinanceError(400, -2011, "Unknown order sent.") from None
            raise
        if not order.open:
            raise BinanceError(400, -2011, "Unknown order sent.")
        self._cancel(order)
        payload = order.payload()
        payload["origClientOrderId"] = order.client_order_id
        payload["transactTime"] = order.update_time
        for key in ("time", "updateTime", "isWorking", "workingTime", "icebergQty", "origQuoteOrderQty"):
            payload.pop(key)
        return payload

    def _open_orders(self, params: dict[str, str]) -> list[dict[str, Any]]:
        market_id = params.get("symbol")
        return [o.payload() for o in self.orders if o.open and (market_id is None or o.symbol == market_id)]

    def _account(self, params: dict[str, str]) -> dict[str, Any]:
        return {
            "makerCommission": 10,
            "takerCommission": 10,
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": "0.00100000",
                "taker": "0.00100000",
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": True,
            "canDeposit": True,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": self.now_ms(),
            "accountType": "SPOT",
            "balances": [
                {"asset": a, "free": _fmt(f), "locked": _fmt(lk)} for a, (f, lk) in sorted(self.balances.items())
            ],
            "permissions": ["SPOT"],
            "uid": self.uid,
        }

    def _my_trades(self, params: dict[str, str]) -> list[dict[str, Any]]:
        market_id = params.get("symbol", "")
        if market_id not in self.markets:
            raise BinanceError(400, -1121, "Invalid symbol.")
        rows = [t for t in self.trades if t.symbol == market_id]
        if "orderId" in params:
            rows = [t for t in rows if str(t.order_id) == params["orderId"]]
        if "startTime" in params:
            rows = [t for t in rows if t.time >= int(params["startTime"])]
        if "endTime" in params:
            rows = [t for t in rows if t.time <= int(params["endTime"])]
        if "fromId" in params:
            rows = [t for t in rows if t.id >= int(params["fromId"])]
        return [t.payload() for t in rows[: min(int(params.get("limit", 500)), 1000)]]


def candle_rows(csv_path: Any, limit: int | None = None) -> list[tuple[int, str, str, str, str, str]]:
    """(open ms, o, h, l, c, v) rows of a shared/data candle CSV, the text values kept exact."""
    import csv
    import datetime as dt

    rows = []
    with open(csv_path, newline="") as handle:
        for record in itertools.islice(csv.DictReader(handle), limit):
            stamp = dt.datetime.fromisoformat(record["timestamp"].replace("Z", "+00:00"))
            rows.append(
                (
                    int(stamp.timestamp() * 1000),
                    record["open"],
                    record["high"],
                    record["low"],
                    record["close"],
                    record["volume"],
                )
            )
    return rows


def shifted(rows: Sequence[Sequence[Any]], first_ms: int) -> list[tuple[Any, ...]]:
    """The same candles re-stamped to start at `first_ms` (gaps kept)."""
    offset = first_ms - int(rows[0][0])
    return [(int(r[0]) + offset, *r[1:]) for r in rows]
