"""Restart reconciliation on IBKR (DESIGN protocol step 3): a bot restarted after TWS filled and
canceled its orders while it was down records each execution once, adopts nothing foreign, marks an
intent that never reached IB lost, and compares its fills with IB's positions."""

from __future__ import annotations

from decimal import Decimal

from fakes.ib import FakeIB
from fakes.ib_support import ibkr_settings, intent, place

from tradeforge.brokers.ibkr import IbkrVenue, reconcile
from tradeforge.persistence.models import OrderStatus
from tradeforge.persistence.repository import Repository
from tradeforge.resilience.ibkr import IbConnection


def restarted_venue(fake: FakeIB, repository: Repository) -> IbkrVenue:
    """A new process: a new connection (same client id) and the same database."""
    connection = IbConnection(ibkr_settings(), lambda: fake)
    connection.connect()
    contracts = {name: connection.resolve(name) for name in ("AAPL", "EURUSD")}
    return IbkrVenue(connection, repository, contracts, lookup_wait=1.0, not_found=3, window=5.0)


def test_restart_after_fill_during_downtime_records_fill_once(fake: FakeIB, venue: IbkrVenue, repository: Repository):
    bought = place(venue, intent(amount="10"))
    venue.sync("AAPL", bought)
    price = fake.price()
    resting = place(venue, intent("sell", "10", "limit", price=f"{price + 1:.2f}", trade_id=1, role="exit"))
    never_sent = repository.record_intent(venue.check(intent(amount="5"), Decimal(100))).client_order_id
    fake.disconnect()  # the bot crashes: between commit and send for `never_sent`
    fake.sleep(1800)  # the target fills while it is down
    foreign = fake.add_foreign_order(venue.contracts["AAPL"].contract, "BUY", 1, 10)

    report = reconcile(restarted_venue(fake, repository))
    states = {s.client_order_id: s for s in report.updated}
    assert states[resting].status == OrderStatus.FILLED and states[resting].new_fills == 1
    assert states[never_sent].status == OrderStatus.LOST and not fake.placed[2:]  # looked up, never sent
    assert report.foreign == [f"ib-{foreign.permId}"] and not report.unknown_ours
    assert report.can_trade and [(p.asset, p.from_fills, p.balance) for p in report.positions] == [
        ("AAPL", Decimal(0), Decimal(0)),
        ("EURUSD", Decimal(0), Decimal(0)),  # every contract is checked, traded or not
    ]
    assert len(repository.fills()) == 2
    again = reconcile(restarted_venue(fake, repository))  # a second restart changes nothing
    assert not again.updated and len(repository.fills()) == 2


def test_a_position_ib_does_not_hold_stops_trading_until_a_person_decides(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    bought = place(venue, intent(amount="10"))
    venue.sync("AAPL", bought)
    manual = fake.add_foreign_order(venue.contracts["AAPL"].contract, "SELL", 10, 1)  # sold by hand in TWS
    fake.sleep(2)
    report = reconcile(restarted_venue(fake, repository))
    assert manual.permId and not report.can_trade
    [mismatch] = report.mismatches
    assert (mismatch.asset, mismatch.from_fills, mismatch.balance) == ("AAPL", Decimal(10), Decimal(0))
    assert "AAPL: fills say 10, the account holds 0" in report.summary()


def test_a_short_bought_back_while_the_bot_was_down_stops_trading(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    sold = place(venue, intent("sell", "10"))  # a short strategy's entry
    venue.sync("AAPL", sold)
    fake.add_foreign_order(venue.contracts["AAPL"].contract, "BUY", 10, 1_000)  # bought back by hand in TWS
    fake.sleep(2)
    report = reconcile(restarted_venue(fake, repository))
    assert not report.can_trade
    [mismatch] = report.mismatches
    assert (mismatch.asset, mismatch.from_fills, mismatch.balance, mismatch.shortfall) == (
        "AAPL",
        Decimal(-10),
        Decimal(0),
        Decimal(10),
    )
    assert "AAPL: fills say -10, the account holds 0 (off by 10" in report.summary()


def test_a_short_bigger_than_the_fills_say_stops_trading_and_an_exact_one_does_not(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    sold = place(venue, intent("sell", "10"))
    venue.sync("AAPL", sold)
    assert reconcile(restarted_venue(fake, repository)).can_trade  # the short IB holds is the bot's
    fake.add_foreign_order(venue.contracts["AAPL"].contract, "SELL", 5, 1)  # sold short by hand: -15
    fake.sleep(2)
    report = reconcile(restarted_venue(fake, repository))
    assert not report.can_trade
    assert [(p.expected, p.balance, p.shortfall) for p in report.mismatches] == [
        (Decimal(-10), Decimal(-15), Decimal(5))
    ]


def test_an_order_filled_on_an_earlier_day_while_the_bot_was_down_is_never_taken_for_canceled(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    bought = place(venue, intent(amount="10"))
    venue.sync("AAPL", bought)
    resting = place(venue, intent("sell", "10", "limit", price=f"{fake.price() + 1:.2f}", trade_id=1, role="exit"))
    perm_id = repository.order(resting).venue_order_id
    fake.disconnect()  # the bot is down ...
    fake.sleep(1800)  # ... while the target fills ...
    fake.new_day()  # ... and IB's execution list starts a new day before it is back

    report = reconcile(restarted_venue(fake, repository))
    assert not report.can_trade and list(report.unrecorded) == [resting]
    assert repository.order(resting).status == OrderStatus.UNKNOWN and len(repository.fills()) == 1
    line = next(line for line in report.summary().splitlines() if f"order {resting}: needs a person" in line)
    assert f"IB order {perm_id} is Filled with 10 filled, but the database holds 0" in line
    assert "record them from TWS's trade log or the account statement" in line
    again = reconcile(restarted_venue(fake, repository))  # never healed into a terminal state
    assert not again.can_trade and list(again.unrecorded) == [resting]
    assert again.to_dict()["unrecorded"][0]["client_order_id"] == resting


def test_an_older_revision_of_a_recorded_correction_is_never_recorded_as_a_new_fill(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.commission_delay, fake.partial_fill = 3600, 30  # the original's report comes only after the correction
    client_id = place(venue, intent(type="limit", price=f"{fake.price() + 5:.2f}"))
    venue.cancel("AAPL", client_id)  # 30 executed first; not final while its commission report is out
    [original] = fake.executions()
    corrected = fake.correct_execution(original.execution.execId, original.execution.price + 0.01, 1.25)
    assert venue.sync("AAPL", client_id).status == OrderStatus.CANCELED  # the correction (.02) is recorded
    fake.send_commission_reports()
    fake.withhold_execution(corrected.execution.execId)  # a later session sees the original (.01) only

    reconcile(restarted_venue(fake, repository))
    [fill] = repository.fills()
    assert fill.venue_trade_id == corrected.execution.execId and repository.order(client_id).filled == Decimal(30)


def test_a_short_the_account_holds_in_a_contract_the_bot_never_traded_stops_trading(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    fake.add_foreign_order(venue.contracts["AAPL"].contract, "SELL", 100, 1)  # a person's short, before any fill
    fake.sleep(2)
    report = reconcile(restarted_venue(fake, repository))
    assert not report.can_trade  # the bot's first buy would close it, and its exit re-open it
    [mismatch] = report.mismatches
    assert (mismatch.asset, mismatch.from_fills, mismatch.balance) == ("AAPL", Decimal(0), Decimal(-100))


def test_an_oca_partner_canceled_while_the_bot_was_down_ends_when_first_seen_not_before_its_fill(
    fake: FakeIB, venue: IbkrVenue, repository: Repository
):
    bought = place(venue, intent(amount="10"))
    venue.sync("AAPL", bought)
    price = fake.price()
    stop = place(venue, intent("sell", "10", "stop", stop=f"{price - 20:.2f}", trade_id=1, role="protective"))
    target = place(venue, intent("sell", "10", "limit", price=f"{price + 1:.2f}", trade_id=1, role="protective"))
    fake.disconnect()  # the bot is down while the target fills and IB cancels the stop (one OCA group)
    fake.sleep(1800)
    back = fake.now

    report = reconcile(restarted_venue(fake, repository))
    assert report.can_trade
    assert repository.order(target).status == OrderStatus.FILLED
    assert repository.order(stop).status == OrderStatus.CANCELED
    # ib_async's completed orders carry no status log: the cancel's end is IB's time when first seen,
    # never missing (a missing end would reach the strategy before the target's fill).
    [target_fill] = [f for f in repository.fills() if f.order_id == repository.order(target).id]
    ended_ms = repository.order(stop).raw["ended_ms"]
    assert ended_ms >= round(back.timestamp() * 1000) > target_fill.time.timestamp() * 1000
    reconcile(restarted_venue(fake, repository))
    assert repository.order(stop).raw["ended_ms"] == ended_ms  # kept once known
