"""`mode: live` on IBKR end to end through `run_bot` against the fake TWS (real ib_async types): the bot's
orders reach IB once each with their client id in `orderRef`, its stop and target rest at IB in one OCA
group, every execution is recorded once with its commission (charged in cash, never in shares), a
restart re-adopts without resending, and start-up reconciliation stops on an order IB holds that the
bot cannot account for. Every IB call is made on the thread that connected (the fake refuses any other, as
ib_async's event loop would). Plus the refusals of `check_live` for an IBKR config."""

from __future__ import annotations

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fakes.ib import FakeIB
from fakes.ib_support import MINUTE, ORIGIN, intent, make_fake, place

from tradeforge.brokers.ibkr import IbkrVenue
from tradeforge.brokers.reconcile import EVENT as RECONCILE_EVENT
from tradeforge.config.schema import BotConfig
from tradeforge.engine.live import CAPITAL_EVENT
from tradeforge.engine.reconciliation import reconcile_bot
from tradeforge.engine.runtime import RunOutcome, open_repository, run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.errors import ConfigError, Fatal
from tradeforge.resilience.ibkr import IbConnection

WARMUP = 40
TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The bot's database: SQLite in its data_dir, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tradeforge.sqlite"
    return str(request.getfixturevalue("postgres_schema_url"))


def live_config(
    root: Path, db_url: str, name: str = "ib-live", symbols: list[str] | None = None, **ibkr: Any
) -> BotConfig:
    return BotConfig.model_validate(
        {
            "name": name,
            "mode": "live",
            "data_dir": str(root / "user_data"),
            "persistence": {"db_url": db_url},
            "data": {"source": "ibkr", "symbols": symbols or ["AAPL"], "timeframe": "1m"},
            "broker": {"cash": 50_000},
            "ibkr": {
                "client_id": 3,
                "account": "DU1234567",
                "live_confirmed": True,
                "warmup_candles": WARMUP,
                "poll_interval": 1.0,
                **ibkr,
            },
            "strategy": {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "exits": {"stop_loss": {"pct": 0.01}, "take_profit": {"pct": 0.03}},
                "sizing": {"name": "percent_equity", "pct": 90},
            },
        }
    )


def run_until(fake: FakeIB, config: BotConfig, until: dt.datetime, said: list[str] | None = None) -> RunOutcome:
    engine = make_engine(str(config.persistence.db_url))
    upgrade(engine)
    engine.dispose()
    stop = threading.Event()
    fake.alarms.append((until, stop))
    return run_bot(
        config,
        "bot.yaml",
        stop=stop,
        say=(said.append if said is not None else lambda text: None),
        ibkr={"factory": lambda: fake, "clock": lambda: fake.now},
    )


def repository(config: BotConfig) -> Repository:
    """The bot's stored history, read as a person would."""
    return Repository.attach(make_engine(str(config.persistence.db_url)), config.name, "", "live")


def held_from_fills(config: BotConfig) -> Decimal:
    """Shares the bot's fills add up to: every share bought is held (IB charges commissions in cash)."""
    repo = repository(config)
    side = {o.id: o.side for o in repo.orders()}
    return sum((f.amount if side[f.order_id] == "buy" else -f.amount for f in repo.fills()), Decimal(0))


def ib_position(fake: FakeIB) -> Decimal:
    return sum((Decimal(str(p.position)) for p in fake.positions() if p.contract.symbol == "AAPL"), Decimal(0))


def summaries(config: BotConfig) -> list[dict[str, Any]]:
    events = repository(config).events(RECONCILE_EVENT)
    return [e.data for e in events if e.data and e.data.get("decision") == "summary"]


def test_a_live_ibkr_bot_trades_through_ib_once_per_intent_and_resumes_without_resending(tmp_path: Path, db_url: str):
    fake = make_fake()
    config = live_config(tmp_path, db_url)
    said: list[str] = []
    cash_before = fake.cash
    run_until(fake, config, ORIGIN + 600 * MINUTE, said)

    repo = repository(config)
    orders = {o.client_order_id: o for o in repo.orders()}
    assert len(orders) >= 6, "the check needs trades to mean something"
    refs = [o.orderRef for o in fake.placed]
    assert sorted(refs) == sorted(orders) and len(refs) == len(set(refs))
    assert all(o.account == "DU1234567" for o in fake.placed)
    # Stop and target rest at IB, one OCA group per trade (IB cancels the other when one fills).
    stops = [o for o in fake.placed if o.orderType == "STP"]
    targets = [o for o in fake.placed if o.orderType == "LMT"]
    assert stops and targets
    for order in stops + targets:
        assert orders[order.orderRef].role == "protective"
        assert order.ocaGroup == order.orderRef.rsplit("-", 1)[0] and order.ocaType == 2
    assert {o.ocaGroup for o in stops} == {o.ocaGroup for o in targets}
    # Every execution recorded once, with its commission in the contract's currency.
    executions = {f.execution.execId: f for f in fake.executions()}
    fills = repo.fills()
    assert sorted(f.venue_trade_id for f in fills) == sorted(executions)
    for fill in fills:
        report = executions[fill.venue_trade_id].commissionReport
        assert (fill.fee, fill.fee_currency) == (Decimal(str(report.commission)), "USD")
        assert fill.fee > 0
    # Commissions never reduce the shares: the fills add up to IB's position, and IB's cash moved by
    # exactly what the fills and their commissions say.
    assert held_from_fills(config) == ib_position(fake)
    side = {o.id: o.side for o in repo.orders()}
    flows = sum(((-1 if side[f.order_id] == "buy" else 1) * f.amount * f.price - f.fee for f in fills), Decimal(0))
    assert Decimal(str(fake.cash)) - Decimal(str(cash_before)) == pytest.approx(flows, abs=Decimal("0.01"))
    assert repo.events(CAPITAL_EVENT)[0].data == {
        "cash": "50000.0",
        "quote": "USD",
        "account": "ibkr account DU1234567",
    }
    assert any(
        "LIVE TRADING on IBKR - account DU1234567 via TWS/IB Gateway at 127.0.0.1:7497 (usually TWS paper)" in line
        for line in said
    )
    assert summaries(config)[0]["can_trade"] is True

    fake.sleep(300)  # down for 5 bars
    outcome = run_until(fake, config, ORIGIN + 660 * MINUTE, said)
    assert outcome.adopted_orders == len(orders)
    refs = [o.orderRef for o in fake.placed]
    assert len(refs) == len(set(refs)), "no orderRef was sent twice"
    assert sorted(refs) == sorted(o.client_order_id for o in repository(config).orders())
    assert held_from_fills(config) == ib_position(fake)
    assert summaries(config)[-1]["can_trade"] is True
    assert not fake.connected


def test_an_order_at_ib_with_the_bots_prefix_that_it_cannot_account_for_stops_trading(tmp_path: Path, db_url: str):
    fake = make_fake()
    config = live_config(tmp_path, db_url)
    run_until(fake, config, ORIGIN + 420 * MINUTE)
    prefix = repository(config).prefix
    assert len(repository(config).orders()) >= 3
    stray = fake.add_foreign_order(fake.contracts[0].contract, "BUY", 1, 50)
    stray.orderRef = f"{prefix}-1-99"  # names trade 1, which has far fewer orders: not adoptable
    placed = len(fake.placed)
    with pytest.raises(Fatal, match="trading cannot start") as refused:
        run_until(fake, config, ORIGIN + 440 * MINUTE)
    assert f"order {prefix}-1-99 is open on the exchange with this bot's prefix: needs a person" in str(refused.value)
    assert "tradeforge reconcile --config bot.yaml --accept-exchange-state" in str(refused.value)
    assert len(fake.placed) == placed  # nothing new was sent
    assert summaries(config)[-1]["can_trade"] is False
    assert not fake.connected

    report = reconcile_bot(config, "bot.yaml", ibkr_factory=lambda: fake)  # `tradeforge reconcile` says the same
    assert report.unknown_ours == [f"{prefix}-1-99"] and not report.can_trade
    assert not fake.connected


def test_reconcile_accepts_ibs_positions_after_shares_were_sold_by_hand(tmp_path: Path, db_url: str):
    fake = make_fake()
    config = live_config(tmp_path, db_url)
    until = ORIGIN + 330 * MINUTE
    while True:  # stop the bot while it holds shares
        run_until(fake, config, until)
        if held_from_fills(config) > 0:
            break
        until += 5 * MINUTE
    fake.cancel_all_by_hand()  # in TWS, a person cancels the bot's resting exits and sells its shares
    held = held_from_fills(config)
    fake.add_foreign_order(fake.contracts[0].contract, "SELL", float(held), 1)
    fake.sleep(3)
    assert ib_position(fake) == 0

    report = reconcile_bot(config, "bot.yaml", ibkr_factory=lambda: fake)
    assert not report.can_trade and [(p.asset, p.from_fills, p.balance) for p in report.mismatches] == [
        ("AAPL", held, Decimal(0))
    ]
    accepted = reconcile_bot(config, "bot.yaml", accept_exchange=True, by="tester", ibkr_factory=lambda: fake)
    assert accepted.can_trade and accepted.accepted_at is not None
    run_until(fake, config, fake.now + 10 * MINUTE)  # starts: reconciliation applies the accepted offset
    assert summaries(config)[-1]["can_trade"] is True


def bought_before(fake: FakeIB, config: BotConfig, amount: str) -> None:
    """The bot's history holds a market buy of `amount` AAPL, filled at IB (placed as the live broker does)."""
    upgrade(make_engine(str(config.persistence.db_url)))
    connection = IbConnection(config.ibkr, lambda: fake)
    connection.connect()
    venue = IbkrVenue(connection, open_repository(config, "bot.yaml"), {"AAPL": connection.resolve("AAPL")})
    venue.sync("AAPL", place(venue, intent(amount=amount)))
    connection.disconnect()


def test_ibkr_reconcile_tolerance_lets_a_bot_trade_with_a_difference_within_it(tmp_path: Path, db_url: str):
    fake = make_fake()
    strict = live_config(tmp_path, db_url)
    bought_before(fake, strict, "10")
    fake.add_foreign_order(fake.contracts[0].contract, "SELL", 1, 1)  # one share sold by hand in TWS
    fake.sleep(3)
    assert not reconcile_bot(strict, "bot.yaml", ibkr_factory=lambda: fake).can_trade  # default: 1e-08

    tolerant = live_config(tmp_path, db_url, reconcile_tolerance=1)
    report = reconcile_bot(tolerant, "bot.yaml", ibkr_factory=lambda: fake)
    assert report.can_trade and report.tolerance == 1 and report.positions[0].shortfall == 1
    before = len(summaries(tolerant))
    run_until(fake, tolerant, fake.now + 2 * MINUTE)  # the bot's own start-up reconciliation uses it too
    [at_start] = summaries(tolerant)[before:]
    assert at_start["can_trade"] is True and at_start["tolerance"] == "1"


def test_a_live_bot_pointed_at_another_ib_account_is_refused_before_any_order(tmp_path: Path, db_url: str):
    fake = make_fake()
    run_until(fake, live_config(tmp_path, db_url), ORIGIN + 330 * MINUTE)
    placed = len(fake.placed)
    elsewhere = live_config(tmp_path, db_url, account="U7654321")  # the live login, same bot name
    with pytest.raises(Fatal, match="has live history on ibkr account DU1234567") as refused:
        run_until(fake, elsewhere, fake.now + 2 * MINUTE)
    assert "this config trades on ibkr account U7654321" in str(refused.value)
    assert "new `name:`" in str(refused.value)
    assert len(fake.placed) == placed
    assert len(repository(elsewhere).events(CAPITAL_EVENT)) == 1


def test_live_on_ibkr_needs_its_own_confirmation_and_one_currency_but_no_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    db_url = f"sqlite:///{tmp_path}/tradeforge.sqlite"  # nothing is stored
    monkeypatch.delenv("TRADEFORGE_BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("TRADEFORGE_BINANCE_API_SECRET", raising=False)
    fake = make_fake()
    with pytest.raises(ConfigError) as unconfirmed:
        run_until(fake, live_config(tmp_path, db_url, live_confirmed=False), ORIGIN + 400 * MINUTE)
    message = str(unconfirmed.value)
    assert "ibkr.live_confirmed" in message and "set ibkr.live_confirmed: true" in message
    assert "exchange.live_confirmed" not in message and "API" not in message
    mixed = live_config(
        tmp_path,
        db_url,
        symbols=["AAPL", "SAP"],
        contracts={"SAP": {"symbol": "SAP", "exchange": "IBIS", "currency": "EUR"}},
    )
    with pytest.raises(ConfigError, match=r"ibkr\.contracts: a live bot trades contracts of one currency.*EUR, USD"):
        run_until(fake, mixed, ORIGIN + 400 * MINUTE)
    assert fake.connections == 0 and not fake.placed  # refused before TWS was contacted


def closed_port() -> int:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(tmp_path: Path, *args: str, ibkr: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "bot.yaml"
    config.write_text(
        f"name: ib-live-cli\nmode: live\ndata_dir: {tmp_path}/user_data\n"
        "data: {source: ibkr, symbols: [AAPL], timeframe: 1m}\n"
        f"ibkr: {{host: 127.0.0.1, connect_timeout: 3, {ibkr}}}\n"
        "strategy: {entry: {name: sma_cross, fast: 5, slow: 20}}\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFORGE_BINANCE_")} | {"COLUMNS": "200"}
    subprocess.run([TRADEFORGE, "db", "upgrade", "--config", str(config)], check=True, env=env, capture_output=True)
    return subprocess.run(
        [TRADEFORGE, *args, "--config", str(config)], capture_output=True, text=True, env=env, timeout=120
    )


def test_cli_run_without_confirmation_and_reconcile_without_tws_exit_2_naming_what_to_fix(tmp_path: Path):
    port = closed_port()
    unconfirmed = cli(tmp_path, "run", ibkr=f"port: {port}")
    assert unconfirmed.returncode == 2, unconfirmed.stderr
    assert "ibkr.live_confirmed" in unconfirmed.stderr and "Traceback" not in unconfirmed.stderr
    unreachable = cli(tmp_path, "reconcile", ibkr=f"port: {port}, live_confirmed: true")
    assert unreachable.returncode == 2, unreachable.stderr
    assert f"cannot connect to TWS/IB Gateway at 127.0.0.1:{port}" in unreachable.stderr
    assert "Traceback" not in unreachable.stderr
