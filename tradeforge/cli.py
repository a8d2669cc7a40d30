"""The `tradeforge` command line. Thin: parse, load config, call one service, render with rich."""

from __future__ import annotations

import datetime as dt
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradeforge import cli_exchange, cli_reconcile
from tradeforge.cli_analytics import backtest_report, report_format_for
from tradeforge.cli_analytics import register as register_analytics
from tradeforge.cli_db import db_app
from tradeforge.cli_notify import notifications
from tradeforge.cli_optimize import register as register_optimize
from tradeforge.config.catalog import list_templates, write_template
from tradeforge.config.loader import load_config, redacted
from tradeforge.config.schema import BotConfig
from tradeforge.resilience.errors import ConfigError, Problem, TradeforgeError

app = typer.Typer(
    name="tradeforge",
    help="Algorithmic trading bots composed from pluggable strategy mixins, running on Backtrader.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(
    db_app,
    name="db",
    help="Database: show its revision (`current`), migrate it (`upgrade`), check a bot's rows (`check`), record a "
    "fill the bot missed (`record-fill`).",
)
register_analytics(app)
cli_exchange.register(app)
cli_reconcile.register(app)
app.command()(notifications)
register_optimize(app)
out = Console()
err = Console(stderr=True, soft_wrap=True)
EXIT_BAD_INPUT = 2

ConfigOption = Annotated[
    list[Path],
    typer.Option("--config", "-c", help="Config file; repeat to overlay (later files win)."),
]


def _load(configs: list[Path], datadir: Path | None = None) -> BotConfig:
    config = load_config(configs)
    if datadir is not None:
        config = config.model_copy(update={"data_dir": datadir})
    return config


def _parse_date(value: str | None, option: str, *, end_of_day: bool = False) -> dt.datetime | None:
    """ISO date or time, UTC unless it says otherwise; a bare date used as an end means the whole day."""
    if value is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError([Problem(option, "not a date; use YYYY-MM-DD or an ISO-8601 time", value)]) from None
    moment = moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    if end_of_day and len(value) == 10:
        moment += dt.timedelta(days=1) - dt.timedelta(microseconds=1)
    return moment


@app.command()
def templates() -> None:
    """List the shipped config templates."""
    table = Table("template", "description")
    for template in list_templates():
        table.add_row(template.name, template.description)
    out.print(table)


@app.command("new-config")
def new_config(
    template: Annotated[str, typer.Option("--template", "-t", help="Template name (see `tradeforge templates`).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the config.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented config from a template."""
    path = write_template(template, output, force)
    out.print(f"wrote {path} from template {template!r}; check it with: tradeforge validate-config {path}")


@app.command("validate-config")
def validate_config(
    files: Annotated[list[Path] | None, typer.Argument(help="Config file(s), merged in order.")] = None,
    configs: ConfigOption = [],  # noqa: B006 - Typer reads the default, it is never mutated
) -> None:
    """Check a config (strategy, parameters, data files); print `valid` or every problem."""
    from tradeforge.engine.validation import validate_files

    paths = [*(files or []), *configs]
    if not paths:
        raise ConfigError([Problem("validate-config", "give a config file")])
    validate_files(paths)
    out.print("valid")


@app.command("show-config")
def show_config(
    files: Annotated[list[Path] | None, typer.Argument(help="Config file(s), merged in order.")] = None,
    configs: ConfigOption = [],  # noqa: B006
) -> None:
    """Print the merged config (overlays and env overrides applied, defaults filled, secrets redacted)."""
    config = _load([*(files or []), *configs])
    out.print(yaml.safe_dump(redacted(config), sort_keys=False, allow_unicode=True), end="", markup=False)


@app.command()
def strategies() -> None:
    """List every mixin and preset strategy with parameter defaults and optimization ranges."""
    from tradeforge.strategies.registry import KIND_ORDER, Registry, param_table

    registry = Registry.default()
    for kind in KIND_ORDER:
        table = Table("name", "parameter", "default", "bounds", "optimize", "description", title=f"{kind} mixins")
        for mixin in registry.mixins(kind):
            first = True
            for param, spec in mixin.param_specs.items():
                table.add_row(
                    mixin.name if first else "",
                    param,
                    repr(spec.default),
                    _bounds(spec),
                    spec.describe_range(),
                    escape(mixin.summary() if first else spec.doc),
                )
                first = False
            if first:
                table.add_row(mixin.name, "-", "", "", "", escape(mixin.summary()))
            table.add_section()
        out.print(table)
    table = Table("preset", "parameter", "default", "optimize", "description", title="preset strategies")
    for name, cls in registry.presets().items():
        first = True
        for param, spec in param_table(cls):
            table.add_row(
                name if first else "",
                param,
                repr(spec.default),
                spec.describe_range(),
                escape((cls.__doc__ or "").strip().splitlines()[0] if first else spec.doc),
            )
            first = False
        table.add_section()
    out.print(table)


def _bounds(spec: Any) -> str:
    if spec.choices:
        return "|".join(spec.choices)
    if spec.low is None and spec.high is None:
        return ""
    return f"{'' if spec.low is None else f'{spec.low:g}'}..{'' if spec.high is None else f'{spec.high:g}'}"


@app.command()
def backtest(
    configs: ConfigOption,
    data: Annotated[
        str | None, typer.Option("--data", help="Candle file (CSV/Parquet) instead of the config's.")
    ] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First candle (UTC), e.g. 2023-01-01.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last candle (UTC).")] = None,
    cash: Annotated[float | None, typer.Option("--cash", help="Starting cash instead of broker.cash.")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result file here.")] = None,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Also write a report: .html, .pdf, .xlsx or .json.")
    ] = None,
) -> None:
    """Run the bot's strategy over historical candles and print a summary."""
    from tradeforge.engine.backtest import BacktestOverrides, run_backtest

    config = _load(configs, datadir)
    overrides = BacktestOverrides(
        data=data,
        start=_parse_date(date_from, "--from"),
        end=_parse_date(date_to, "--to", end_of_day=True),
        cash=cash,
    )
    if cash is not None and cash <= 0:
        raise ConfigError([Problem("--cash", "must be greater than 0", cash)])
    if overrides.start and overrides.end and overrides.start >= overrides.end:
        raise ConfigError([Problem("--from", "must be before --to", date_from)])
    if report is not None:
        report_format_for(report)  # a bad file name fails before the backtest runs
    result = run_backtest(config, overrides)
    _render_result(result)
    if json_out is not None:
        result.write_json(json_out)
        out.print(f"result written to {json_out}")
    if report is not None:
        backtest_report(result.to_json(), report)


@app.command()
def run(
    configs: ConfigOption,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
) -> None:
    """Run the bot (paper mode): persist everything, resume exactly where it stopped."""
    import threading

    from tradeforge.engine.runtime import install_stop_signals, run_bot

    config = _load(configs, datadir)
    stop = threading.Event()

    def say(text: str) -> None:
        out.print(text, markup=False, highlight=False, soft_wrap=True)

    install_stop_signals(stop, say)
    say(f"{config.name}: {config.mode} mode, {', '.join(config.data.symbols)} {config.data.timeframe}")
    outcome = run_bot(config, " --config ".join(str(c) for c in configs), stop=stop, say=say)
    if outcome.adopted_orders:
        say(f"recovered: {outcome.adopted_orders} stored orders re-adopted, none placed twice")
    say("stopped on request" if outcome.stopped_early else "replay finished")
    _render_result(outcome.result)


@app.command()
def status(
    configs: ConfigOption,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
) -> None:
    """Show the bot's instance, open positions, open orders and today's PnL."""
    from tradeforge.engine.runtime import bot_status

    report = bot_status(_load(configs, datadir), " --config ".join(str(c) for c in configs))
    bot = report["bot"]
    out.print(
        f"[bold]{escape(bot['name'])}[/] {bot['mode']} - {bot['status']}"
        + (f", started {bot['started_at']}" if bot["started_at"] else "")
        + (f", stopped {bot['stopped_at']}" if bot["stopped_at"] else "")
    )
    positions = Table("trade", "symbol", "side", "size", "entry price", "opened", title="open positions")
    for t in report["open_trades"]:
        positions.add_row(
            str(t["id"]), t["symbol"], t["side"], f"{t['size']:.8g}", f"{t['entry_price']:.8g}", t["entry_time"] or ""
        )
    out.print(positions)
    orders = Table("client order id", "symbol", "side", "type", "amount", "price", "status", title="open orders")
    for o in report["open_orders"]:
        orders.add_row(
            o["client_order_id"], o["symbol"], o["side"], o["type"], o["amount"], o["price"] or "", o["status"]
        )
    out.print(orders)
    out.print(f"today's PnL: {report['pnl_today']:+,.2f}" if report["pnl_today"] is not None else "today's PnL: n/a")


@app.command()
def trades(
    configs: ConfigOption,
    open_only: Annotated[bool, typer.Option("--open", help="Only open trades.")] = False,
    closed_only: Annotated[bool, typer.Option("--closed", help="Only closed trades.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write them as JSON (result-file shape).")] = None,
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory instead of data_dir.")] = None,
) -> None:
    """List the bot's trades from its database."""
    import json

    from tradeforge.engine.runtime import bot_trades

    if open_only and closed_only:
        raise ConfigError([Problem("--open/--closed", "choose one of them, or neither for all trades")])
    rows = bot_trades(
        _load(configs, datadir),
        " --config ".join(str(c) for c in configs),
        "open" if open_only else "closed" if closed_only else None,
    )
    table = Table("id", "symbol", "side", "entry", "exit", "size", "entry price", "exit price", "pnl", "reason")
    for t in rows:
        table.add_row(
            str(t["id"]),
            t["symbol"],
            t["side"],
            t["entry_time"] or "",
            t["exit_time"] or "",
            f"{t['size']:.8g}",
            f"{t['entry_price']:.8g}",
            "" if t["exit_price"] is None else f"{t['exit_price']:.8g}",
            "" if t["pnl"] is None else f"{t['pnl']:+.2f}",
            t["exit_reason"] or "",
        )
    out.print(table)
    if json_out is not None:
        json_out.write_text(json.dumps([{k: v for k, v in t.items() if k != "id"} for t in rows], indent=1))
        out.print(f"{len(rows)} trades written to {json_out}")


def _render_result(result: Any) -> None:
    m = result.metrics

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{value * 100:,.2f} %"

    def num(value: float | None) -> str:
        return "n/a" if value is None else f"{value:,.2f}"

    table = Table(title=f"{result.config['name']}: {', '.join(result.symbols)} {result.timeframe}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    rows = [
        ("strategy", result.strategy.replace("+", " + ")),
        ("period", f"{result.start:%Y-%m-%d %H:%M} → {result.end:%Y-%m-%d %H:%M} UTC"),
        ("start value", num(result.start_value)),
        ("final value", num(result.final_value)),
        ("trades", str(m["n_trades"])),
        ("total return", pct(m["total_return"])),
        ("CAGR", pct(m["cagr"])),
        ("Sharpe", num(m["sharpe"])),
        ("Sortino", num(m["sortino"])),
        ("max drawdown", pct(m["max_drawdown"])),
        ("win rate", pct(m["win_rate"])),
        ("profit factor", num(m["profit_factor"])),
        ("exposure", pct(m["exposure"])),
    ]
    gaps = {symbol: found for symbol, found in result.gaps.items() if found}
    if gaps:
        rows.append(
            (
                "data gaps",
                ", ".join(f"{s}: {len(g)} ({sum(x.missing for x in g)} candles)" for s, g in gaps.items()),
            )
        )
    if result.open_trades:
        rows.append(("open at end", ", ".join(f"{t.symbol} {t.side}" for t in result.open_trades)))
    for label, value in rows:
        table.add_row(label, value)
    out.print(table)


def _report_error(exc: TradeforgeError) -> None:
    if isinstance(exc, ConfigError):
        err.print(f"[bold red]error:[/] {exc.args[0].splitlines()[0]}", highlight=False)
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
    else:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input exits 2 with a clear message; `--debug` shows tracebacks."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    args = [a for a in args if a != "--debug"]
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=args, prog_name="tradeforge")  # standalone: usage errors print and exit 2 themselves
    except TradeforgeError as exc:
        if debug:
            raise
        _report_error(exc)
        sys.exit(EXIT_BAD_INPUT)
    except Exception as exc:
        if debug:
            raise
        err.print(
            f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))} (--debug shows the traceback)"
        )
        sys.exit(1)
