"""`tradeforge db record-fill` as a person runs it, on SQLite and on PostgreSQL: a fill the venue made
while the bot was down and no longer lists (IB: executions of the current day only) goes in through
the repository as a venue's report would, audited; everything that cannot be true is refused (exit 2,
naming what was wrong) before anything is written."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import OrderStatus, TradeStatus
from tradeforge.persistence.repository import ADOPTED, OrderIntent, Repository

TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))
CREATED = dt.datetime(2024, 5, 1, 10, 0, tzinfo=dt.UTC)  # when the bot committed its orders
NAME = "ib-bot"


class Bot:
    """A stopped live bot's config and its database, as `tradeforge run` left it."""

    def __init__(self, root: Path, db_url: str, *, source: str = "ibkr", mode: str = "live") -> None:
        symbol = "AAPL" if source == "ibkr" else "BTC/USDT"
        self.symbol = symbol
        self.config = root / "bot.yaml"
        document: dict[str, Any] = {
            "name": NAME,
            "mode": mode,
            "data_dir": str(root / "user_data"),
            "data": {"source": source, "symbols": [symbol], "timeframe": "1h"},
            "strategy": {"preset": "sma_cross"},
            "persistence": {"db_url": db_url},
        }
        self.config.write_text(yaml.safe_dump(document), encoding="utf-8")
        self.engine = make_engine(db_url)
        upgrade(self.engine)
        self.repository = Repository.attach(self.engine, NAME, "", mode, clock=lambda: CREATED)

    def order_the_venue_filled_unseen(self, amount: str, *, side: str = "buy", trade_id: int | None = None) -> str:
        """An order sent and then left `unknown`: IB says it filled, the executions are not listed."""
        role = "entry" if trade_id is None else "exit"
        intent = OrderIntent(trade_id, self.symbol, side, "limit", role, Decimal(amount), price=Decimal(180))
        client_id = self.repository.record_intent(intent).client_order_id
        self.repository.mark_order(client_id, OrderStatus.OPEN, venue_order_id="9001")
        self.repository.mark_order(client_id, OrderStatus.UNKNOWN)
        return client_id

    def state(self) -> tuple[Any, ...]:
        """Everything record-fill may change: orders, fills, trades and operator events."""
        repository = self.repository
        return (
            [(o.client_order_id, o.status, Decimal(o.filled), o.updated_at) for o in repository.orders()],
            [(f.venue_trade_id, Decimal(f.amount)) for f in repository.fills()],
            [(t.id, t.status, Decimal(t.amount)) for t in repository.trades()],
            len(repository.events("operator_fill")),
        )

    def record_fill(
        self, order: str, *pairs: str, yes: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`tradeforge db record-fill` for `order`: these options (pairs of option and value) over defaults."""
        options = {"--trade-id": "0000e0d5.01", "--amount": "4", "--price": "179.5", "--fee": "1"}
        options["--time"] = "2024-05-01T14:30:00Z"
        options |= dict(zip(pairs[::2], pairs[1::2], strict=True))
        given = [item for option in options.items() for item in option]
        return tradeforge(
            "db",
            "record-fill",
            "--config",
            str(self.config),
            "--order",
            order,
            *given,
            *(["--yes"] if yes else []),
            input=input,
        )


def tradeforge(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TRADEFORGE, *args],
        capture_output=True,
        text=True,
        input="" if input is None else input,  # an unexpected prompt ends at once instead of waiting
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


def said(result: subprocess.CompletedProcess[str]) -> str:
    return " ".join((result.stdout + result.stderr).split())


def refused(result: subprocess.CompletedProcess[str], *messages: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "fill not recorded" in said(result) or "already running" in said(result), result.stderr
    for message in messages:
        assert message in said(result), result.stderr


@pytest.fixture
def bot(db_url: str, tmp_path: Path) -> Iterator[Bot]:
    made = Bot(tmp_path, db_url)
    yield made
    made.repository.close()
    made.engine.dispose()


# --- recording ---------------------------------------------------------------------------------------------------


def test_missing_fills_complete_the_order_derive_the_trade_are_audited_and_db_check_is_clean(bot: Bot) -> None:
    entry = bot.order_the_venue_filled_unseen("10")
    first = bot.record_fill(entry, "--trade-id", "0000e0d5.01", "--amount", "4", "--price", "179.5")
    assert first.returncode == 0, first.stderr
    assert f"order {entry} now has 4 of 10 filled, status partially_filled" in said(first)
    # A time with another offset is stored in UTC.
    second = bot.record_fill(
        entry,
        *("--trade-id", "0000e0d6.01", "--amount", "6", "--price", "180", "--fee", "1.5"),
        *("--fee-currency", "usd", "--time", "2024-05-01T16:31:00+02:00"),
    )
    assert second.returncode == 0, second.stderr
    assert f"order {entry} now has 10 of 10 filled, status filled" in said(second)
    assert f"next: tradeforge reconcile --config {bot.config}" in said(second)

    order = bot.repository.order(entry)
    assert order is not None and order.status == OrderStatus.FILLED and order.filled == 10
    assert order.average_price == Decimal("179.8") and order.fees == Decimal("2.5")
    fills = bot.repository.fills()
    assert [(f.venue_trade_id, f.amount, f.fee_currency, f.time) for f in fills] == [
        ("0000e0d5.01", 4, None, dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.UTC)),
        ("0000e0d6.01", 6, "USD", dt.datetime(2024, 5, 1, 14, 31, tzinfo=dt.UTC)),
    ]
    [trade] = bot.repository.trades()
    assert trade.status == TradeStatus.OPEN and trade.amount == 10 and trade.entry_price == Decimal("179.8")
    assert trade.opened_at == dt.datetime(2024, 5, 1, 14, 30, tzinfo=dt.UTC)

    # The exit the bot sent before it went down filled too: the trade closes with its PnL.
    exit_ = bot.order_the_venue_filled_unseen("10", side="sell", trade_id=trade.id)
    closed = bot.record_fill(exit_, *("--trade-id", "0000e0d7.01", "--amount", "10", "--price", "190", "--fee", "2"))
    assert closed.returncode == 0, closed.stderr
    [trade] = bot.repository.trades()
    assert trade.status == TradeStatus.CLOSED and trade.amount == 0
    assert trade.pnl == Decimal("97.5")  # 10 * 190 - (4 * 179.5 + 6 * 180) - fees (1 + 1.5 + 2)

    events = bot.repository.events("operator_fill")
    assert len(events) == 3
    data = events[1].data or {}
    assert data["by"].count("@") == 1 and data["by"] in events[1].message
    assert {key: data[key] for key in ("client_order_id", "venue_trade_id", "amount", "price", "fee")} == {
        "client_order_id": entry,
        "venue_trade_id": "0000e0d6.01",
        "amount": "6",
        "price": "180",
        "fee": "1.5",
    }
    assert data["fee_currency"] == "USD" and data["time"] == "2024-05-01T14:31:00+00:00"
    assert (data["status_before"], data["status_after"], data["filled_after"]) == ("partially_filled", "filled", "10")
    assert bot.repository.instance().lock_owner is None, "the run lock is released"
    check = tradeforge("db", "check", "--config", str(bot.config))
    assert check.returncode == 0, check.stderr
    assert "2 orders, 3 fills, no inconsistencies" in check.stdout


def test_a_binance_fee_defaults_to_the_quote_currency_and_a_rerun_exits_0_changing_nothing(
    db_url: str, tmp_path: Path
) -> None:
    bot = Bot(tmp_path, db_url, source="binance")
    try:
        order = bot.order_the_venue_filled_unseen("0.01")
        args = ("--trade-id", "28457", "--amount", "0.01", "--price", "64000.5", "--fee", "0.064")
        assert bot.record_fill(order, *args).returncode == 0
        [fill] = bot.repository.fills()
        assert fill.fee_currency == "USDT"
        before = bot.state()
        again = bot.record_fill(order, *args)
        assert again.returncode == 0, again.stderr
        assert f"fill 28457 of order {order} is recorded already: nothing changed" in said(again)
        assert bot.state() == before
    finally:
        bot.repository.close()
        bot.engine.dispose()


def test_no_at_the_prompt_writes_nothing_and_yes_records(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    before = bot.state()
    declined = bot.record_fill(order, yes=False, input="n\n")
    assert declined.returncode == 1, declined.stderr
    shown = said(declined)
    assert f"order {order}: entry buy 10 AAPL limit" in shown and "now unknown, 0 of 10 filled" in shown
    assert "fill trade id 0000e0d5.01: 4 @ 179.5, fee 1, at 2024-05-01T14:30:00+00:00" in shown
    assert "after partially_filled, 4 of 10 filled" in shown
    assert "record this fill? [y/N]" in shown and "nothing recorded" in shown
    assert bot.state() == before
    accepted = bot.record_fill(order, yes=False, input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert [f.venue_trade_id for f in bot.repository.fills()] == ["0000e0d5.01"]


# --- refusals: exit 2, naming what was wrong, nothing written ------------------------------------------------------


def test_a_running_bot_is_refused(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    running = Repository.attach(bot.engine, NAME, "", "live")
    owner = running.acquire_lock()
    try:
        before = bot.state()
        refused(bot.record_fill(order), f"bot {NAME!r} is already running", "stop it first")
        assert bot.state() == before
    finally:
        running.release_lock(owner)
        running.close()


def test_bad_values_are_refused_all_at_once_before_the_database_is_read(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    before = bot.state()
    every = bot.record_fill(
        order, *("--amount", "0", "--price", "-180", "--fee", "-0.01", "--time", "2024-05-01T14:30:00")
    )
    refused(
        every,
        "--amount: must be more than 0 (got '0')",
        "--price: must be more than 0 (got '-180')",
        "--fee: must be 0 or more (got '-0.01')",
        "--time: has no timezone: add Z for UTC",
    )
    refused(bot.record_fill(order, "--amount", "lots"), "--amount: is not a number (got 'lots')")
    refused(bot.record_fill(order, "--price", "NaN"), "--price: must be more than 0")
    refused(bot.record_fill(order, "--time", "yesterday"), "--time: is not an ISO 8601 time")
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat()
    refused(bot.record_fill(order, "--time", future), "--time: is in the future")
    assert bot.state() == before


def test_an_order_that_is_not_this_bots_is_refused(bot: Bot) -> None:
    other = Repository.attach(bot.engine, "other-bot", "", "live", clock=lambda: CREATED)
    theirs = other.record_intent(OrderIntent(None, "AAPL", "buy", "limit", "entry", Decimal(10), Decimal(180)))
    other.close()
    prefix = bot.repository.prefix
    before = bot.state()
    refused(
        bot.record_fill(theirs.client_order_id),
        f"--order: is not this bot's (its orders' client ids start with {prefix}-) (got '{theirs.client_order_id}')",
    )
    refused(bot.record_fill(f"{prefix}-7-1"), f"--order: is not in this bot's database (got '{prefix}-7-1')")
    assert bot.state() == before and other.fills() == []


def test_a_filled_order_or_a_fill_beyond_the_amount_is_refused_saying_by_how_much(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    assert bot.record_fill(order, "--amount", "4").returncode == 0
    before = bot.state()
    refused(
        bot.record_fill(order, "--trade-id", "0000e0d6.01", "--amount", "6.5"),
        f"--amount: would fill order {order} 0.5 more than its amount 10 (4 recorded already, at most 6 missing)",
    )
    assert bot.state() == before
    assert bot.record_fill(order, "--trade-id", "0000e0d6.01", "--amount", "6").returncode == 0
    before = bot.state()
    refused(
        bot.record_fill(order, "--trade-id", "0000e0d7.01", "--amount", "1"),
        f"--order: is filled already (10 of 10 recorded) (got '{order}')",
    )
    assert bot.state() == before


def test_a_trade_id_recorded_with_other_values_is_refused_naming_what_is_stored(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    assert bot.record_fill(order, "--amount", "4").returncode == 0
    second = bot.order_the_venue_filled_unseen("3")
    before = bot.state()
    refused(
        bot.record_fill(order, "--amount", "5"),
        "--trade-id: is already recorded for this order (4 @ 179.5, fee 1, at 2024-05-01T14:30:00+00:00), unlike "
        "what was given: nothing changed (got '0000e0d5.01')",
    )
    refused(bot.record_fill(second, "--amount", "3"), f"is already recorded for order {order} (4 @ 179.5")
    assert bot.state() == before


def test_a_time_before_the_order_was_created_is_refused_unless_the_order_was_adopted(bot: Bot) -> None:
    order = bot.order_the_venue_filled_unseen("10")
    before = bot.state()
    refused(
        bot.record_fill(order, "--time", "2024-05-01T11:59:59+02:00"),
        f"--time: is before order {order} was created (2024-05-01T10:00:00+00:00) (got '2024-05-01T09:59:59+00:00')",
    )
    assert bot.state() == before
    # An adopted order's row is as old as its adoption: the venue may have filled it before.
    from tradeforge.persistence.adoption import adopt_order

    adopted = f"{bot.repository.prefix}-5-1"
    adopt_order(
        bot.repository,
        adopted,
        **dict(symbol="AAPL", side="buy", type="limit", amount=Decimal(2), price=Decimal(180), stop_price=None),
        venue_order_id="9002",
    )
    stored = bot.repository.order(adopted)
    assert stored is not None and stored.reason == ADOPTED
    early = (stored.created_at - dt.timedelta(days=1)).isoformat()
    done = bot.record_fill(adopted, *("--trade-id", "0000e0d8.01", "--amount", "2", "--time", early))
    assert done.returncode == 0, done.stderr


def test_a_paper_bot_is_refused(db_url: str, tmp_path: Path) -> None:
    bot = Bot(tmp_path, db_url, mode="paper")
    try:
        bot.repository.record_intent(OrderIntent(None, "AAPL", "buy", "market", "entry", Decimal(1)))
        result = bot.record_fill(f"{bot.repository.prefix}-1-1")
        assert result.returncode == 2 and "mode: record-fill records a live bot's venue fills" in said(result)
        assert bot.repository.fills() == []
    finally:
        bot.repository.close()
        bot.engine.dispose()
