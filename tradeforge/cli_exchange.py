"""Exchange commands of the `tradeforge` CLI: `download-data`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradeforge.resilience.errors import ConfigError, Problem

out = Console()
err = Console(stderr=True)
_FORMATS = ("parquet", "csv")


def download_data(
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated, e.g. BTC/USDT,ETH/USDT.")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle length, e.g. 1h.")],
    since: Annotated[str, typer.Option("--since", help="First candle (UTC), e.g. 2023-01-01.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Last candle (UTC); default: the last closed one.")
    ] = None,
    exchange: Annotated[str, typer.Option("--exchange", help="Exchange (binance).")] = "binance",
    fmt: Annotated[str, typer.Option("--format", help="parquet (the store) or csv (the store plus a CSV copy).")] = (
        "parquet"
    ),
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory (default: the config's).")] = None,
    configs: Annotated[
        list[Path] | None, typer.Option("--config", "-c", help="Bot config whose `exchange` section to use.")
    ] = None,
) -> None:
    """Fill the candle store with an exchange's candles: only missing ranges, resumable, gaps reported."""
    from tradeforge.cli import _parse_date
    from tradeforge.config.loader import load_config
    from tradeforge.config.schema import ExchangeConfig
    from tradeforge.engine.exchange import download_data as run_download

    problems = []
    if fmt not in _FORMATS:
        problems.append(Problem("--format", f"use one of {', '.join(_FORMATS)}", fmt))
    wanted = [s.strip() for s in symbols.split(",") if s.strip()]
    if not wanted:
        problems.append(Problem("--symbols", "give at least one symbol, e.g. BTC/USDT", symbols))
    if configs:
        config = load_config(configs)
        settings, data_dir = config.exchange, config.data_dir
    else:
        settings, data_dir = ExchangeConfig(), Path("user_data")
    if exchange != settings.name:
        problems.append(Problem("--exchange", f"supported: {settings.name}", exchange))
    start = _parse_date(since, "--since")
    end = _parse_date(until, "--until", end_of_day=True)
    if start and end and start >= end:
        problems.append(Problem("--since", "must be before --until", since))
    if problems:
        raise ConfigError(problems)
    assert start is not None
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(symbol: str, done: int, total: int) -> None:
            if symbol not in tasks:
                tasks[symbol] = bar.add_task(f"{symbol} {timeframe}", total=total or 1)
            bar.update(tasks[symbol], completed=done if total else 1, total=total or 1)

        reports = run_download(
            settings,
            datadir or data_dir,
            wanted,
            timeframe,
            start,
            end,
            fmt="csv" if fmt == "csv" else "parquet",
            progress=progress,
        )
    table = Table("symbol", "added", "stored from", "stored to", "candles", "gaps", title=f"{exchange} {timeframe}")
    for r in reports:
        gaps = f"{len(r.gaps)} ({sum(g.missing for g in r.gaps)} candles)" if r.gaps else "none"
        table.add_row(
            r.symbol,
            str(r.added),
            f"{r.start:%Y-%m-%d %H:%M}" if r.start else "-",
            f"{r.end:%Y-%m-%d %H:%M}" if r.end else "-",
            str(r.rows),
            gaps,
        )
    out.print(table)
    for r in reports:
        for gap in r.gaps[:10]:
            out.print(f"  {r.symbol}: {gap.missing} candles missing after {gap.after:%Y-%m-%d %H:%M} (exchange gap)")


def register(app: typer.Typer) -> None:
    """Add the exchange commands to the main app."""
    app.command("download-data")(download_data)
