"""`mode: live` end to end against the fake Binance: the bot's orders reach the exchange once each
with its client ids, every fill is recorded once, positions from fills equal the account, a restart
re-reads its history without sending anything again, and startup reconciliation stops a bot whose
account does not hold what its fills say."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.binance import API_KEY, API_SECRET, FakeBinance
from fakes.bots import bot_config, repository
from fakes.support import HOUR, T0

from tradeforge.brokers.reconcile import EVENT as RECONCILE_EVENT
from tradeforge.config.schema import BotConfig
from tradeforge.engine.live import CAPITAL_EVENT, MISSED_EVENT
from tradeforge.engine.runtime import RunOutcome, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.resilience.errors import ConfigError, Fatal


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEFORGE_BINANCE_API_KEY", API_KEY)
    monkeypatch.setenv("TRADEFORGE_BINANCE_API_SECRET", API_SECRET)


def live_config(fake: FakeBinance, root: Path, name: str, **exchange: Any) -> BotConfig:
    document = bot_config(fake, root, name).model_dump(mode="json")
    document["mode"] = "live"
    document["broker"]["cash"] = 5000
    document["exchange"] |= {"live_confirmed": True, "options": {"fetchCurrencies": False, "recvWindow": 1500}}
    document["exchange"] |= exchange
    return BotConfig.model_validate(document)


def run_lockstep(fake: FakeBinance, config: BotConfig, until_ms: int, say: Callable[[str], None] = print) -> RunOutcome:
    """Run the live bot, moving the fake's clock an hour only once the bot has decided on the last
    closed candle: a live bot sees its fills at the market time they happen."""
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    stop = threading.Event()
    started = threading.Event()
    failure: list[BaseException] = []

    def said(text: str) -> None:
        started.set() if "back-filled" in text else None
        say(text)

    def drive() -> None:
        try:
            started.wait(30)
            reader = repository(config)
            while not stop.is_set():
                cursor = reader.cursors().get(("BTC/USDT", "1h"))
                decided = (
                    cursor is not None and cursor.replace(tzinfo=dt.UTC).timestamp() * 1000 >= fake.now_ms() - HOUR
                )
                if decided and fake.now_ms() >= until_ms:
                    stop.set()
                elif decided:
                    fake.advance(HOUR)
                stop.wait(0.002)
        except BaseException as exc:  # pragma: no cover - reported by the test
            failure.append(exc)
            stop.set()

    driver = threading.Thread(target=drive, daemon=True)
    driver.start()
    try:
        outcome = run_bot(config, "bot.yaml", stop=stop, say=said)
    finally:
        stop.set()
        driver.join(10)
    assert not failure, failure
    return outcome


def position_from_fills(config: BotConfig) -> Decimal:
    """BTC the bot's fills say it holds (a buy's fee was taken in BTC, stored valued in USDT)."""
    repo = repository(config)
    side = {o.id: o.side for o in repo.orders()}
    held = Decimal(0)
    for fill in repo.fills():
        if side[fill.order_id] == "buy":
            held += fill.amount - fill.fee / fill.price
        else:
            held -= fill.amount
    return held


def test_a_live_bot_trades_on_the_exchange_once_per_intent_and_resumes_without_resending(
    fake: FakeBinance, tmp_path: Path
):
    config = live_config(fake, tmp_path, "live-bot")
    said: list[str] = []
    run_lockstep(fake, config, T0 + 160 * HOUR, said.append)
    repo = repository(config)
    orders = repo.orders()
    assert len(orders) >= 4, "the check needs trades to mean something"
    ours = [o for o in fake.orders if o.client_order_id.startswith(repo.prefix)]
    assert sorted(o.client_order_id for o in ours) == sorted(o.client_order_id for o in orders)
    assert len(repo.fills()) == len(fake.trades)
    assert position_from_fills(config) == fake.balances["BTC"][0] + fake.balances["BTC"][1]
    assert repo.events(CAPITAL_EVENT)[0].data == {
        "cash": "5000.0",
        "quote": "USDT",
        "account": "binance mainnet account 354937868",
    }
    assert summaries(repo)[0]["can_trade"] is True

    outcome = run_lockstep(fake, config, fake.now_ms() + 2 * HOUR, said.append)  # restart: re-read, then trade on
    assert outcome.adopted_orders == len(orders)
    sent = [r.params["newClientOrderId"] for r in fake.calls("POST", "/api/v3/order")]
    assert len(sent) == len(set(sent)), "no client order id was sent twice"
    assert sorted(sent) == sorted(o.client_order_id for o in repository(config).orders())
    assert any("LIVE TRADING on binance - REAL MONEY" in line for line in said)


def test_a_live_bot_whose_account_lacks_what_its_fills_bought_refuses_to_trade(fake: FakeBinance, tmp_path: Path):
    config = live_config(fake, tmp_path, "short-bot")
    run_lockstep(fake, config, T0 + 160 * HOUR)
    assert position_from_fills(config) > 0, "the bot must hold a position for this check"
    fake.set_balance("BTC", "0")  # somebody emptied the account while the bot was down
    fake.advance(HOUR)  # a new candle: the restarted bot re-reads its history, then reconciles before it
    with pytest.raises(Fatal, match="trading cannot start") as refused:
        run_bot(config, "bot.yaml", stop=threading.Event(), say=lambda s: None)
    assert "tradeforge reconcile --config bot.yaml --accept-exchange-state" in str(refused.value)
    assert summaries(repository(config))[-1]["can_trade"] is False


def test_a_live_bot_whose_keys_now_reach_another_account_is_refused_before_any_order(fake: FakeBinance, tmp_path: Path):
    config = live_config(fake, tmp_path, "moved-bot")
    run_lockstep(fake, config, T0 + 60 * HOUR)
    sent = len(fake.orders)
    fake.uid = 1000001  # the same name and config, keys of another Binance account
    fake.advance(HOUR)
    with pytest.raises(Fatal, match="has live history on binance mainnet account 354937868") as refused:
        run_bot(config, "bot.yaml", stop=threading.Event(), say=lambda s: None)
    assert "this config trades on binance mainnet account 1000001" in str(refused.value)
    assert len(fake.orders) == sent


def summaries(repo) -> list[dict]:
    """The start-up reconciliations' summaries, oldest first."""
    return [e.data for e in repo.events(RECONCILE_EVENT) if e.data.get("decision") == "summary"]


def test_live_mode_needs_explicit_confirmation(fake: FakeBinance, tmp_path: Path):
    config = live_config(fake, tmp_path, "unconfirmed", live_confirmed=False)
    with pytest.raises(ConfigError, match=r"exchange\.live_confirmed"):
        run_bot(config, "bot.yaml", stop=threading.Event(), say=lambda s: None)


@pytest.mark.parametrize("direction", ["short", "both"])
def test_live_mode_on_binance_spot_refuses_a_strategy_that_may_go_short(
    fake: FakeBinance, tmp_path: Path, direction: str
):
    document = live_config(fake, tmp_path, "shorting").model_dump(mode="json", by_alias=True)
    document["strategy"]["direction"] = direction
    with pytest.raises(ConfigError, match=r"strategy\.direction.*cannot hold a short position") as refused:
        run_bot(BotConfig.model_validate(document), "bot.yaml", stop=threading.Event(), say=lambda s: None)
    assert direction in str(refused.value)


def test_live_mode_without_keys_names_where_they_were_looked_for(
    fake: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("TRADEFORGE_BINANCE_API_SECRET")
    with pytest.raises(Fatal, match="API secret \\(env TRADEFORGE_BINANCE_API_SECRET"):
        run_bot(live_config(fake, tmp_path, "keyless"), "bot.yaml", stop=threading.Event(), say=lambda s: None)


def test_live_mode_with_a_wrong_key_stops_before_any_order(
    fake: FakeBinance, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TRADEFORGE_BINANCE_API_KEY", "not-the-key")
    config = live_config(fake, tmp_path, "wrong-key")
    upgrade(make_engine(f"sqlite:///{config.data_dir}/tradeforge.sqlite"))
    with pytest.raises(Fatal, match="refused the API key"):
        run_bot(config, "bot.yaml", stop=threading.Event(), say=lambda s: None)
    assert fake.calls("POST", "/api/v3/order") == []


def test_candles_missed_while_down_open_no_trade_and_a_later_restart_blocks_the_same_ones(
    fake: FakeBinance, tmp_path: Path
):
    config = live_config(fake, tmp_path, "late-bot")
    run_lockstep(fake, config, T0 + 60 * HOUR)
    last_decided = repository(config).cursors()[("BTC/USDT", "1h")].replace(tzinfo=dt.UTC)
    fake.advance(30 * HOUR)  # the bot is down while thirty candles close
    newest_closed = dt.datetime.fromtimestamp(fake.now_ms() / 1000, dt.UTC) - dt.timedelta(hours=1)
    said: list[str] = []
    run_lockstep(fake, config, fake.now_ms() + 2 * HOUR, said.append)
    [missed] = repository(config).events(MISSED_EVENT)
    first, last = (dt.datetime.fromtimestamp(missed.data[k] / 1e9, dt.UTC) for k in ("first", "last"))
    # The candle after the last decided one may have been cut short by a crash, the newest is current.
    assert (first, last) == (last_decided + 2 * dt.timedelta(hours=1), newest_closed - dt.timedelta(hours=1))
    assert any("no entries on them" in line for line in said)
    # A third start re-reads all of it with the same blocks: were they not the same, the strategy would ask
    # for other orders than it did and the re-read would stop with a Divergence.
    run_lockstep(fake, config, fake.now_ms() + HOUR)
    assert len(repository(config).events(MISSED_EVENT)) == 1  # no downtime this time: nothing new missed
