"""`tradeforge reconcile`: the way out when a live bot refuses to trade after start-up reconciliation.

Exit codes: 0 trading can start; 1 a person must decide (a position the account does not cover, an
order of ours that cannot be adopted); 2 bad input (config, keys, symbols, unreachable exchange or TWS/IB Gateway).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradeforge.brokers.reconcile import ReconcileReport
from tradeforge.persistence.audit import plain

out = Console()
EXIT_PERSON_MUST_DECIDE = 1


def reconcile_command(
    configs: Annotated[
        list[Path], typer.Option("--config", "-c", help="The live bot's config file; repeat to overlay.")
    ],
    accept_exchange_state: Annotated[
        bool,
        typer.Option(
            "--accept-exchange-state",
            help="Take the exchange's balances as the truth: record the offsets per asset (audited, history "
            "kept) so that the bot can start.",
        ),
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the report as JSON here.")] = None,
) -> None:
    """Reconcile a stopped live bot's database with its exchange account, and show what needs a person."""
    from tradeforge.config.loader import load_config
    from tradeforge.engine.reconciliation import reconcile_bot

    config = load_config(configs)
    report = reconcile_bot(config, " --config ".join(str(c) for c in configs), accept_exchange=accept_exchange_state)
    render(report)
    if accept_exchange_state and report.orders_need_a_person:
        out.print(
            "[yellow]the exchange state was not accepted: first sort out the orders above that need a person "
            "(cancel an open one on the exchange; record the fills of one the exchange filled with `tradeforge db "
            "record-fill`)[/]"
        )
    elif accept_exchange_state:
        out.print(f"exchange balances accepted as the truth (recorded at {report.accepted_at})")
    if json_out is not None:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    if not report.can_trade:
        raise typer.Exit(EXIT_PERSON_MUST_DECIDE)


def render(report: ReconcileReport) -> None:
    """The report as tables: orders and the decision on each, then positions against holdings."""
    orders = Table("order", "decision", "detail", title="orders")
    for state in report.updated:
        orders.add_row(state.client_order_id, "re-read", f"{state.status.value}, filled {plain(state.filled)}")
    for adopted in report.adopted:
        trade = f"{'new ' if adopted.new_trade else ''}trade {adopted.trade_id}"
        orders.add_row(adopted.client_order_id, "adopted", f"{adopted.role} in {trade}")
    for client_id in report.foreign:
        orders.add_row(escape(client_id), "foreign", "not this bot's: left alone")
    for client_id in report.unknown_ours:
        orders.add_row(client_id, "[red]needs a person[/]", escape(report.reasons[client_id]))
    for client_id, reason in report.unrecorded.items():
        orders.add_row(client_id, "[red]needs a person[/]", escape(reason))
    out.print(orders if orders.row_count else "no unfinished orders in the database, no open orders to sort")
    positions = Table(
        "asset", "from fills", "accepted offset", "account holds", "short by", "tolerance", title="positions"
    )
    mismatched = {p.asset for p in report.mismatches}
    for p in report.positions:
        positions.add_row(
            p.asset,
            plain(p.from_fills),
            plain(p.offset) if p.offset else "-",
            plain(p.balance),
            f"[red]{plain(p.shortfall)}[/]" if p.asset in mismatched else plain(p.shortfall),
            plain(report.tolerance),
        )
    out.print(positions)
    out.print(f"{report.healed_fills} fills recorded that the database had missed")
    if report.can_trade:
        out.print("[green]trading can start[/]")
    else:
        out.print(
            "[bold red]trading stays stopped until a person decides[/]: fix the account or cancel the orders "
            "listed, then run this again; or take the exchange's balances as the truth with "
            "`tradeforge reconcile --config <bot.yaml> --accept-exchange-state`"
        )


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
