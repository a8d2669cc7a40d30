"""Exchange commands of the `tradeforge` CLI: `download-data`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Table

from tradeforge.resilience.errors import ConfigError, Problem

if TYPE_CHECKING:
    from tradeforge.config.schema import BotConfig

out = Console()
err = Console(stderr=True)
_FORMATS = ("parquet", "csv")


@dataclass
class _Request:
    """What both sources of `download-data` read the same way; `problems` collects what is wrong with it."""

    symbols: list[str]
    start: dt.datetime
    end: dt.datetime | None
    config: BotConfig | None
    problems: list[Problem]

    @property
    def data_dir(self) -> Path:
        return self.config.data_dir if self.config else Path("user_data")

    @classmethod
    def parse(
        cls, symbols: str, since: str, until: str | None, fmt: str, configs: list[Path] | None, example: str
    ) -> _Request:
        from tradeforge.cli import _parse_date
        from tradeforge.config.loader import load_config

        problems = []
        if fmt not in _FORMATS:
            problems.append(Problem("--format", f"use one of {', '.join(_FORMATS)}", fmt))
        wanted = [s.strip() for s in symbols.split(",") if s.strip()]
        if not wanted:
            problems.append(Problem("--symbols", f"give at least one symbol, e.g. {example}", symbols))
        start = _parse_date(since, "--since")
        end = _parse_date(until, "--until", end_of_day=True)
        if start and end and start >= end:
            problems.append(Problem("--since", "must be before --until", since))
        assert start is not None
        return cls(wanted, start, end, load_config(configs) if configs else None, problems)


@contextmanager
def _progress_bar(timeframe: str) -> Iterator[Callable[[str, int, int], None]]:
    """A progress bar per symbol on stderr, fed by the download's `progress(symbol, done, total)`."""
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(symbol: str, done: int, total: int) -> None:
            if symbol not in tasks:
                tasks[symbol] = bar.add_task(f"{symbol} {timeframe}", total=total or 1)
            bar.update(tasks[symbol], completed=done if total else 1, total=total or 1)

        yield progress


def download_data(
    symbols: Annotated[str, typer.Option("--symbols", help="Comma-separated, e.g. BTC/USDT,ETH/USDT.")],
    timeframe: Annotated[str, typer.Option("--timeframe", help="Candle length, e.g. 1h.")],
    since: Annotated[str, typer.Option("--since", help="First candle (UTC), e.g. 2023-01-01.")],
    until: Annotated[
        str | None, typer.Option("--until", help="Last candle (UTC); default: the last closed one.")
    ] = None,
    exchange: Annotated[str, typer.Option("--exchange", help="Exchange (binance).")] = "binance",
    source: Annotated[
        str | None, typer.Option("--source", help="binance or yahoo (default: --exchange, i.e. binance).")
    ] = None,
    adjust: Annotated[
        str | None, typer.Option("--adjust", help="yahoo: none, splits or all (default: the config's yahoo.adjust).")
    ] = None,
    prepost: Annotated[
        bool | None,
        typer.Option(
            "--prepost/--no-prepost",
            help="yahoo: intraday candles of pre- and post-market trading too (default: the config's yahoo.prepost).",
        ),
    ] = None,
    fmt: Annotated[str, typer.Option("--format", help="parquet (the store) or csv (the store plus a CSV copy).")] = (
        "parquet"
    ),
    datadir: Annotated[Path | None, typer.Option("--datadir", help="Data directory (default: the config's).")] = None,
    configs: Annotated[
        list[Path] | None,
        typer.Option("--config", "-c", help="Bot config whose `exchange` (or `yahoo`) section to use."),
    ] = None,
) -> None:
    """Fill the candle store with an exchange's candles: only missing ranges, resumable, gaps reported."""
    if source == "yahoo":
        return _download_yahoo(symbols, timeframe, since, until, adjust, prepost, fmt, datadir, configs)
    from tradeforge.config.schema import ExchangeConfig
    from tradeforge.engine.exchange import download_data as run_download

    request = _Request.parse(symbols, since, until, fmt, configs, example="BTC/USDT")
    problems = request.problems
    settings = request.config.exchange if request.config else ExchangeConfig()
    if exchange != settings.name:
        problems.append(Problem("--exchange", f"supported: {settings.name}", exchange))
    if source not in (None, settings.name):
        problems.append(Problem("--source", f"supported: {settings.name}, yahoo", source))
    if adjust is not None:
        problems.append(Problem("--adjust", "only for --source yahoo", adjust))
    if prepost is not None:
        problems.append(Problem("--prepost", "only for --source yahoo", str(prepost).lower()))
    if problems:
        raise ConfigError(problems)
    with _progress_bar(timeframe) as progress:
        reports = run_download(
            settings,
            datadir or request.data_dir,
            request.symbols,
            timeframe,
            request.start,
            request.end,
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


def _download_yahoo(
    symbols: str,
    timeframe: str,
    since: str,
    until: str | None,
    adjust: str | None,
    prepost: bool | None,
    fmt: str,
    datadir: Path | None,
    configs: list[Path] | None,
) -> None:
    """`download-data --source yahoo`: Yahoo Finance candles into `<datadir>/yahoo[-adjust]/`."""
    from tradeforge.config.schema import YahooConfig
    from tradeforge.engine.yahoo import download_yahoo
    from tradeforge.feeds.yahoo import ADJUST_MODES, check_request, store_folder

    request = _Request.parse(symbols, since, until, fmt, configs, example="AAPL,MSFT,EURUSD=X")
    problems = request.problems
    settings = request.config.yahoo if request.config else YahooConfig()
    if adjust is not None and adjust not in ADJUST_MODES:
        problems.append(Problem("--adjust", f"use one of {', '.join(ADJUST_MODES)}", adjust))
    elif adjust is not None:
        settings = settings.model_copy(update={"adjust": adjust})
    if prepost is not None:
        settings = settings.model_copy(update={"prepost": prepost})
    try:  # the timeframe and Yahoo's history limit, reported together with the problems above
        now = dt.datetime.now(dt.UTC)
        check_request(
            request.symbols or ["-"], timeframe, request.start, now, settings.adjust, prepost=settings.prepost
        )
    except ConfigError as exc:
        problems += [p for p in exc.problems if p.where != "--adjust" or adjust is None or adjust in ADJUST_MODES]
    if problems:
        raise ConfigError(problems)
    with _progress_bar(timeframe) as progress:
        reports = download_yahoo(
            settings,
            datadir or request.data_dir,
            request.symbols,
            timeframe,
            request.start,
            request.end,
            fmt="csv" if fmt == "csv" else "parquet",
            progress=progress,
        )
    title = f"yahoo {timeframe} (adjust: {settings.adjust}, folder {store_folder(settings.adjust, settings.prepost)})"
    table = Table("symbol", "added", "stored from", "stored to", "candles", "dropped", "splits", title=title)
    for r in reports:
        table.add_row(
            r.symbol,
            str(r.added) + (" (re-adjusted)" if r.refetched else ""),
            f"{r.start:%Y-%m-%d %H:%M}" if r.start else "-",
            f"{r.end:%Y-%m-%d %H:%M}" if r.end else "-",
            str(r.rows),
            str(r.dropped),
            ", ".join(f"{at:%Y-%m-%d} ×{ratio:g}" for at, ratio in r.splits) or "-",
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    """Add the exchange commands to the main app."""
    app.command("download-data")(download_data)
