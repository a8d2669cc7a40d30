"""The fake Binance itself: real ccxt understands it, its shapes follow real Binance, its matching
engine and its signature checks behave like the exchange's."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.binance import FakeBinance
from fakes.support import HOUR, KEYS, T0, fake_exchange_config

from tradeforge.resilience.errors import Fatal
from tradeforge.resilience.exchange import ExchangeClient


def http(fake: FakeBinance, method: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(fake.url + path, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def recorded(shared_data: Path, method: str, description: str) -> Any:
    cases = json.loads((shared_data / "ccxt-static" / "response" / "binance.json").read_text())["methods"][method]
    return next(c["httpResponse"] for c in cases if c["description"] == description)


def keys(value: Any) -> set[str]:
    return set((value[0] if isinstance(value, list) else value).keys())


def test_shapes_carry_every_field_real_binance_sends(fake: FakeBinance, client: ExchangeClient, shared_data: Path):
    client.load_markets()
    placed = client.create_order("BTC/USDT", "limit", "buy", 0.01, 40000, "tf-shape-1")
    client.create_order("BTC/USDT", "market", "buy", 0.01, None, "tf-shape-2")
    order = fake.order("tf-shape-1")
    ours = {
        "createOrder": placed["info"],
        "fetchOrder": order.payload(),
        "fetchMyTrades": fake.trades[0].payload(),
        "fetchBalance": fake._account({}),
    }
    real = {
        "createOrder": recorded(shared_data, "createOrder", "spot +selfTradePrevention +iceberg"),
        "fetchOrder": recorded(shared_data, "fetchOrder", "Fetch spot closed order"),
        "fetchMyTrades": recorded(shared_data, "fetchMyTrades", "Spot private trade"),
        "fetchBalance": recorded(shared_data, "fetchBalance", "Spot balance"),
    }
    optional = {"icebergQty"}  # only on iceberg orders
    for method, shape in real.items():
        assert keys(shape) - optional <= keys(ours[method]), method
    candle = client.exchange.publicGetKlines({"symbol": "BTCUSDT", "interval": "1h", "limit": 1})[0]
    assert len(candle) == len(recorded(shared_data, "fetchOHLCV", "Spot OHLCV with since and limit")[0])
    ticker = client.exchange.publicGetTicker24hr({"symbol": "BTCUSDT"})
    assert keys(recorded(shared_data, "fetchTicker", "public spot ticker")) <= keys(ticker)


def test_klines_never_show_the_future_and_the_candle_in_progress_has_only_its_open(client: ExchangeClient):
    rows = client.fetch_ohlcv("BTC/USDT", "1h", T0 - 3 * HOUR, 10)
    assert [r[0] for r in rows] == [T0 - 3 * HOUR, T0 - 2 * HOUR, T0 - HOUR, T0]
    in_progress = rows[-1]
    assert in_progress[1] == in_progress[2] == in_progress[3] == in_progress[4] and in_progress[5] == 0


def test_klines_page_forward_from_start_time_and_back_from_now(client: ExchangeClient):
    assert len(client.fetch_ohlcv("BTC/USDT", "1h", T0 - 2000 * HOUR, 1000)) == 1000
    latest = client.fetch_ohlcv("BTC/USDT", "1h", None, 5)
    assert latest[-1][0] == T0 and len(latest) == 5


def test_signed_endpoints_reject_unsigned_requests_and_unknown_keys(fake: FakeBinance):
    status, body = http(fake, "GET", "/api/v3/account")
    assert (status, body["code"]) == (401, -2015)
    status, body = http(fake, "GET", "/api/v3/account?timestamp=1", {"X-MBX-APIKEY": fake.api_key})
    assert (status, body["code"]) == (400, -1102)
    status, body = http(fake, "GET", "/api/v3/account?timestamp=1&signature=00", {"X-MBX-APIKEY": fake.api_key})
    assert (status, body["code"]) == (400, -1022)
    assert http(fake, "GET", "/api/v3/time")[0] == 200  # public endpoints need nothing


def test_a_wrong_secret_is_fatal_and_says_what_to_check(fake: FakeBinance):
    wrong = ExchangeClient.from_config(
        fake_exchange_config(fake), type(KEYS)(KEYS.api_key, type(KEYS.api_key)("not-the-secret"))
    )
    with pytest.raises(Fatal, match="refused the API key"):
        wrong.fetch_balance()


def test_limit_order_rests_then_fills_when_the_price_path_crosses_it(fake: FakeBinance, client: ExchangeClient):
    client.load_markets()
    price = float(Decimal(client.fetch_ticker("BTC/USDT")["last"]) * Decimal("0.97")) // 1
    client.create_order("BTC/USDT", "limit", "buy", 0.01, price, "tf-rest-1")
    assert fake.order("tf-rest-1").status == "NEW"
    assert fake.balances["USDT"][1] == Decimal(str(price)) * Decimal("0.01")  # locked while it rests
    steps = 0
    while fake.order("tf-rest-1").status == "NEW" and steps < 500:
        fake.advance(HOUR)
        steps += 1
    order = client.fetch_order_by_client_id("BTC/USDT", "tf-rest-1")
    assert order is not None and order["status"] == "closed" and order["average"] == price
    assert fake.balances["USDT"][1] == 0 and fake.balances["BTC"][0] == Decimal("0.01") - Decimal("0.00001")


def test_partial_fills_come_in_chunks_and_cancel_releases_the_rest(fake: FakeBinance, client: ExchangeClient):
    client.load_markets()
    fake.partial_fill_fraction = Decimal("0.25")
    client.create_order("BTC/USDT", "limit", "buy", 0.02, 60000, "tf-part-1")  # marketable: fills a quarter now
    assert fake.order("tf-part-1").status == "PARTIALLY_FILLED"
    fake.advance(HOUR)
    assert fake.order("tf-part-1").executed == Decimal("0.01")
    canceled = client.cancel_order("BTC/USDT", "tf-part-1")
    assert canceled["status"] == "canceled" and canceled["filled"] == 0.01
    assert fake.balances["USDT"][1] == 0
    assert [t["amount"] for t in client.fetch_my_trades("BTC/USDT")] == [0.005, 0.005]


def test_duplicate_client_id_and_unknown_orders_answer_like_binance(fake: FakeBinance, client: ExchangeClient):
    client.load_markets()
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-dup-1")
    unsigned = http(fake, "GET", "/api/v3/order?symbol=BTCUSDT&origClientOrderId=nope")
    assert unsigned[0] == 401  # refused before anything else
    assert client.fetch_order_by_client_id("BTC/USDT", "nope") is None  # -2013 Order does not exist.
    from tradeforge.resilience.exchange import DuplicateClientOrderId

    with pytest.raises(DuplicateClientOrderId):
        client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-dup-1")
    assert len(fake.orders) == 1


def test_a_fill_while_the_bot_is_down_shows_in_trades_and_balances(fake: FakeBinance, client: ExchangeClient):
    client.load_markets()
    client.create_order("BTC/USDT", "limit", "buy", 0.01, 30000, "tf-down-1")
    fake.fill("tf-down-1", "0.004")  # nobody is watching
    order = client.fetch_order_by_client_id("BTC/USDT", "tf-down-1")
    assert order is not None and order["status"] == "open" and order["filled"] == 0.004
    assert client.fetch_balance()["BTC"]["total"] == pytest.approx(0.004 - 0.000004)


def test_stop_loss_triggers_when_the_low_reaches_it(fake: FakeBinance, client: ExchangeClient):
    client.load_markets()
    client.create_order("BTC/USDT", "market", "buy", 0.01, None, "tf-stop-0")
    entry = float(fake.order("tf-stop-0").quote / fake.order("tf-stop-0").qty)
    stop = round(entry * 0.98, 2)
    client.create_order("BTC/USDT", "stop_loss", "sell", 0.009, None, "tf-stop-1", {"stopPrice": stop})
    for _ in range(2000):
        if fake.order("tf-stop-1").status == "FILLED":
            break
        fake.advance(HOUR)
    fill = fake.trades[-1]
    assert fake.order("tf-stop-1").status == "FILLED" and fill.price <= Decimal(str(stop))
