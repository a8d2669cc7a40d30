"""`tradeforge reconcile` as a user runs it against (the fake) Binance: exit 0 when the bot may trade,
1 when a person must decide, 2 on bad input, and `--accept-exchange-state` as the audited way out."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import ccxt
import pytest
from fakes.binance import API_KEY, API_SECRET, FakeBinance
from fakes.support import KEYS, fake_exchange_config, quick_retries

from tradeforge.brokers.ccxt import OrderGateway
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import OrderIntent, Repository
from tradeforge.resilience.exchange import ExchangeClient

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
PRICE = Decimal("46216.93")
NAME = "live-cli"


def write_config(root: Path, urls: dict[str, str], *, symbols: str = "[BTC/USDT]", mode: str = "live") -> Path:
    path = root / "bot.yaml"
    listed = ", ".join(f"{k}: '{v}'" for k, v in urls.items())
    path.write_text(
        f"name: {NAME}\nmode: {mode}\ndata_dir: {root}/user_data\n"
        f"data: {{source: binance, symbols: {symbols}, timeframe: 1h}}\n"
        f"exchange: {{urls: {{{listed}}}, options: {{fetchCurrencies: false}}, retries: 1, timeout_ms: 1000,"
        " reconcile_tolerance: 0.0001}\n"
        "strategy: {preset: sma_cross}\n"
    )
    return path


def tradeforge(*args: str, secret: str | None = API_SECRET) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFORGE_BINANCE_")}
    env |= {"COLUMNS": "200", "TRADEFORGE_BINANCE_API_KEY": API_KEY}
    if secret is not None:
        env["TRADEFORGE_BINANCE_API_SECRET"] = secret
    return subprocess.run([TRADEFORGE, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def bot(fake: FakeBinance, tmp_path: Path) -> OrderGateway:
    """The live bot's database (as `tradeforge run` left it) and its gateway to the fake."""
    (tmp_path / "user_data").mkdir()
    engine = make_engine(f"sqlite:///{tmp_path}/user_data/tradeforge.sqlite")
    upgrade(engine)
    repository = Repository.attach(engine, NAME, "", "live")
    client = quick_retries(ExchangeClient.from_config(fake_exchange_config(fake), KEYS, sleep=lambda s: None), 2)
    return OrderGateway(client, repository)


def test_fills_made_while_down_are_recorded_and_trading_can_start(fake: FakeBinance, bot: OrderGateway, tmp_path: Path):
    order = bot.place(
        OrderIntent(None, "BTC/USDT", "buy", "limit", "entry", Decimal("0.01"), price=Decimal(40000)), PRICE
    )
    fake.fill(order.client_order_id)
    config = write_config(tmp_path, fake.urls())
    done = tradeforge("reconcile", "--config", str(config), "--json", str(tmp_path / "report.json"))
    assert done.returncode == 0, done.stderr
    assert order.client_order_id in done.stdout and "trading can start" in done.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["can_trade"] is True
    assert report["updated"] == [{"client_order_id": order.client_order_id, "status": "filled", "filled": "0.01"}]
    assert report["positions"][0]["asset"] == "BTC" and report["positions"][0]["mismatch"] is False
    assert len(bot.repository.fills()) == 1


def test_a_shortfall_exits_1_until_a_person_accepts_the_exchange_state(
    fake: FakeBinance, bot: OrderGateway, tmp_path: Path
):
    bot.place(OrderIntent(None, "BTC/USDT", "buy", "market", "entry", Decimal("0.01")), PRICE)
    fake.set_balance("BTC", "0.002")
    config = write_config(tmp_path, fake.urls())
    short = tradeforge("reconcile", "--config", str(config))
    assert short.returncode == 1, short.stderr
    assert "trading stays stopped" in short.stdout and "--accept-exchange-state" in short.stdout
    accepted = tradeforge("reconcile", "--config", str(config), "--accept-exchange-state")
    assert accepted.returncode == 0, accepted.stderr
    assert "exchange balances accepted as the truth" in accepted.stdout
    [event] = bot.repository.events("reconcile_accept")
    assert event.data["offsets"] == {"BTC": "-0.00799"}
    assert len(bot.repository.orders()) == 1 and len(bot.repository.fills()) == 1  # history kept
    assert tradeforge("reconcile", "--config", str(config)).returncode == 0  # the decision holds


def test_an_unknown_symbol_exits_2_naming_it_before_anything_is_written(fake: FakeBinance, tmp_path: Path):
    config = write_config(tmp_path, fake.urls(), symbols="[BTC/USDT, NOPE/USDT]")
    done = tradeforge("reconcile", "--config", str(config))
    assert done.returncode == 2
    assert "data.symbols" in done.stderr and "NOPE/USDT" in done.stderr
    assert not (tmp_path / "user_data").exists()


def test_a_wrong_secret_exits_2_naming_where_it_comes_from_never_the_secret(fake: FakeBinance, tmp_path: Path):
    config = write_config(tmp_path, fake.urls())
    done = tradeforge("reconcile", "--config", str(config), secret="wrong-secret-value")
    assert done.returncode == 2
    assert "TRADEFORGE_BINANCE_API_SECRET" in done.stderr and "wrong-secret-value" not in done.stderr + done.stdout
    assert not (tmp_path / "user_data").exists()


def test_a_missing_secret_exits_2_naming_where_it_was_looked_for(fake: FakeBinance, tmp_path: Path):
    done = tradeforge("reconcile", "--config", str(write_config(tmp_path, fake.urls())), secret=None)
    assert done.returncode == 2
    assert "missing the API secret (env TRADEFORGE_BINANCE_API_SECRET or exchange.api_secret_file)" in done.stderr
    assert not (tmp_path / "user_data").exists() and fake.calls("GET", "/api/v3/account") == []


def test_an_unreachable_exchange_exits_2(tmp_path: Path):
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    urls = {  # every API family, so that nothing can leave loopback
        name: f"http://127.0.0.1:{port}/" + address.split("://", 1)[1].split("/", 1)[1]
        for name, address in ccxt.binance().urls["api"].items()
        if isinstance(address, str)
    }
    done = tradeforge("reconcile", "--config", str(write_config(tmp_path, urls)))
    assert done.returncode == 2 and "load markets" in done.stderr


def test_a_paper_bot_is_not_reconciled(fake: FakeBinance, tmp_path: Path):
    done = tradeforge("reconcile", "--config", str(write_config(tmp_path, fake.urls(), mode="paper")))
    assert done.returncode == 2 and "mode" in done.stderr


def test_a_running_bot_is_not_reconciled_behind_its_back(fake: FakeBinance, bot: OrderGateway, tmp_path: Path):
    owner = bot.repository.acquire_lock()
    try:
        done = tradeforge("reconcile", "--config", str(write_config(tmp_path, fake.urls())))
    finally:
        bot.repository.release_lock(owner)
    assert done.returncode == 2 and "already running" in done.stderr
    assert bot.repository.events("reconcile") == []
