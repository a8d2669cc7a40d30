"""`tradeforge analyze`, `compare` and `report`: metrics, Monte Carlo, rankings and reports from result
files, equity CSVs, trade lists or a bot's database. Registered on the main app by :func:`register`."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from tradeforge.resilience.errors import ConfigError, Problem

if TYPE_CHECKING:
    from tradeforge.analytics.analysis import Analysis, MonteCarloSpec
    from tradeforge.analytics.loaders import Performance

out = Console()

REPORT_FORMATS = ("html", "pdf", "xlsx", "json")

PeriodsOption = Annotated[
    float | None,
    typer.Option("--periods-per-year", help="Bars per year; inferred from the timestamps when omitted."),
]
RiskFreeOption = Annotated[float, typer.Option("--risk-free", help="Annual risk-free rate, e.g. 0.03.")]
MonteCarloOption = Annotated[
    int | None, typer.Option("--monte-carlo", help="Run N Monte Carlo simulations (10,000 is typical).")
]
MethodOption = Annotated[
    str, typer.Option("--method", help="trades (reshuffle) | bootstrap (trades with replacement) | block (returns).")
]
SeedOption = Annotated[int | None, typer.Option("--seed", help="Random seed: the same seed gives the same result.")]
RuinOption = Annotated[
    float, typer.Option("--ruin-level", help="Ruin = equity at or below this fraction of the start (0.5 = half lost).")
]
BlockOption = Annotated[
    int | None, typer.Option("--block-size", help="Bars per block for --method block (default: n^(1/3)).")
]


def register(app: typer.Typer) -> None:
    """Add the analytics commands to the main CLI (one line in cli.py)."""
    app.command("analyze")(analyze)
    app.command("compare")(compare)
    app.command("report")(report)


# --------------------------------------------------------------------------- helpers


def _mc_spec(
    simulations: int | None, method: str, seed: int | None, ruin_level: float, block_size: int | None
) -> MonteCarloSpec | None:
    from tradeforge.analytics.analysis import MonteCarloSpec
    from tradeforge.analytics.montecarlo import METHODS

    problems = []
    if method not in METHODS:
        problems.append(Problem("--method", f"choose one of {', '.join(METHODS)}", method))
    if simulations is not None and simulations < 1:
        problems.append(Problem("--monte-carlo", "must be at least 1", simulations))
    if not 0 <= ruin_level < 1:
        problems.append(Problem("--ruin-level", "must be in [0, 1)", ruin_level))
    if block_size is not None and block_size < 1:
        problems.append(Problem("--block-size", "must be at least 1", block_size))
    if problems:
        raise ConfigError(problems)
    if simulations is None:
        return None
    return MonteCarloSpec(simulations, method, seed, ruin_level, block_size)  # type: ignore[arg-type]


def _check_periods(periods: float | None) -> None:
    if periods is not None and not periods > 0:
        raise ConfigError([Problem("--periods-per-year", "must be greater than 0", periods)])


def _bot_performance(configs: list[Path]) -> Performance:
    """A bot's trades and equity snapshots from its database, handed to analytics as plain data."""
    from tradeforge.analytics.loaders import from_records
    from tradeforge.config.loader import load_config
    from tradeforge.engine.runtime import bot_trades, open_repository

    config = load_config(configs)
    hint = " --config ".join(str(c) for c in configs)
    trades = bot_trades(config, hint, None)
    snapshots = open_repository(config, hint).equity()
    equity = [(s.time.isoformat(), float(s.equity)) for s in snapshots]
    perf = from_records(config.name, f"bot {config.name} ({hint})", trades, equity, float(config.broker.cash))
    perf.symbols = list(config.data.symbols)
    perf.timeframe = config.data.timeframe
    return perf


def _format(key: str, value: float | int | None) -> str:
    from tradeforge.analytics.reports.data import format_metric

    return format_metric(key, value)


def _print_analysis(analysis: Analysis) -> None:
    p = analysis.performance
    doc = analysis.to_json()
    title = f"{p.name}: {', '.join(p.symbols) or p.source}" + (f" {p.timeframe}" if p.timeframe else "")
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    if doc["start"]:
        table.add_row("period", f"{doc['start'][:16]} → {doc['end'][:16]} UTC")
    table.add_row("periods per year", _format("ppy", analysis.periods_per_year))
    for key, value in analysis.metrics.items():
        table.add_row(key, _format(key, value))
    out.print(table)
    if analysis.monte_carlo is not None:
        mc = analysis.monte_carlo.summary()
        mct = Table("Monte Carlo", "p5", "p25", "p50", "p75", "p95", title=_mc_title(mc))
        for key, label in (("final_equity", "final equity"), ("cagr", "CAGR"), ("max_drawdown", "max drawdown")):
            row = mc[key]
            pct = key != "final_equity"
            cells = [
                "n/a" if row is None or row[p] is None else (f"{row[p] * 100:,.2f} %" if pct else f"{row[p]:,.2f}")
                for p in ("p5", "p25", "p50", "p75", "p95")
            ]
            mct.add_row(label, *cells)
        out.print(mct)
        out.print(
            f"probability of profit {mc['probability_of_profit'] * 100:.1f} %, "
            f"probability of ruin (equity ≤ {mc['ruin_level'] * 100:g} % of start) "
            f"{mc['probability_of_ruin'] * 100:.1f} %"
        )


def _mc_title(mc: dict[str, Any]) -> str:
    return f"{mc['simulations']:,} simulations, method {mc['method']}, seed {mc['seed']}"


def write_json(path: Path, document: Any) -> None:
    """Atomically, with NaN refused: a reader never sees half a file or a non-JSON number."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=1, allow_nan=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# --------------------------------------------------------------------------- commands


def analyze(
    result: Annotated[Path | None, typer.Option("--result", help="A `backtest --json` result file.")] = None,
    equity: Annotated[Path | None, typer.Option("--equity", help="CSV with columns timestamp,equity.")] = None,
    trades: Annotated[Path | None, typer.Option("--trades", help="JSON list of closed trades (needs pnl).")] = None,
    configs: Annotated[
        list[Path] | None, typer.Option("--config", "-c", help="A bot's config: read its database.")
    ] = None,
    periods: PeriodsOption = None,
    risk_free: RiskFreeOption = 0.0,
    monte_carlo: MonteCarloOption = None,
    method: MethodOption = "trades",
    seed: SeedOption = None,
    ruin_level: RuinOption = 0.5,
    block_size: BlockOption = None,
    trials: Annotated[
        int, typer.Option("--trials", help="Strategies tried before this one, for the deflated Sharpe ratio.")
    ] = 1,
    start_value: Annotated[
        float | None, typer.Option("--start-value", help="Starting equity for --trades (default 10,000).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the analysis JSON here.")] = None,
) -> None:
    """Print every performance and risk metric (and a Monte Carlo summary) of one record."""
    from tradeforge.analytics.analysis import analyze as run_analysis
    from tradeforge.analytics.loaders import load_equity_csv, load_result, load_trades

    given = [name for name, v in (("--result", result), ("--equity", equity), ("--trades", trades)) if v]
    if configs:
        given.append("--config")
    if len(given) != 1:
        raise ConfigError(
            [Problem("analyze", "give exactly one of --result, --equity, --trades, --config", " ".join(given) or None)]
        )
    _check_periods(periods)
    if trials < 1:
        raise ConfigError([Problem("--trials", "must be at least 1", trials)])
    spec = _mc_spec(monte_carlo, method, seed, ruin_level, block_size)
    if result:
        perf = load_result(result)
    elif equity:
        perf = load_equity_csv(equity)
    elif trades:
        perf = load_trades(trades)
        if start_value is not None:
            if not start_value > 0:
                raise ConfigError([Problem("--start-value", "must be greater than 0", start_value)])
            perf.start_value = start_value
    else:
        perf = _bot_performance(configs or [])
    analysis = run_analysis(perf, periods=periods, risk_free=risk_free, monte_carlo=spec, n_trials=trials)
    _print_analysis(analysis)
    if json_out is not None:
        write_json(json_out, analysis.to_json())
        out.print(f"analysis written to {json_out}")


def compare(
    results: Annotated[list[Path], typer.Argument(help="Two or more result files.")],
    rank_by: Annotated[
        str, typer.Option("--rank-by", help="Comma-separated metrics for the composite score.")
    ] = "sharpe,calmar",
    periods: PeriodsOption = None,
    risk_free: RiskFreeOption = 0.0,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the comparison JSON here.")] = None,
) -> None:
    """Rank results side by side by a composite score; flag Sharpe differences that are noise."""
    from tradeforge.analytics import metrics as m
    from tradeforge.analytics.analysis import analyze as run_analysis
    from tradeforge.analytics.compare import compare as run_compare
    from tradeforge.analytics.loaders import load_result

    if len(results) < 2:
        raise ConfigError([Problem("compare", "give at least two result files", len(results))])
    keys = [k.strip() for k in rank_by.split(",") if k.strip()]
    unknown = [k for k in keys if k not in m.METRIC_NAMES]
    if unknown or not keys:
        raise ConfigError([Problem("--rank-by", f"choose from {', '.join(m.METRIC_NAMES)}", rank_by)])
    _check_periods(periods)
    performances = [load_result(path) for path in results]
    analyses = [run_analysis(p, periods=periods, risk_free=risk_free, n_trials=len(results)) for p in performances]
    comparison = run_compare(analyses, keys)
    shown = list(dict.fromkeys([*keys, "sharpe", "cagr", "max_drawdown", "n_trades"]))
    table = Table("rank", "result", "score", *shown, title=f"ranked by {', '.join(keys)}")
    for place, i in enumerate(comparison.order, start=1):
        metrics = comparison.analyses[i].metrics
        table.add_row(
            str(place),
            comparison.names[i],
            f"{comparison.scores[i]:.3f}",
            *(_format(k, metrics.get(k)) for k in shown),
        )
    out.print(table)
    for test in comparison.sharpe_tests:
        if test.p_value is None:
            out.print(f"Sharpe {test.a} vs {test.b}: cannot be tested (too few returns or no dispersion)")
        elif not test.significant:
            out.print(
                f"[yellow]not significant:[/] Sharpe of {test.a} vs {test.b} "
                f"(p = {test.p_value:.3f}, {test.method.replace('_', '-')}); the difference may be noise",
                highlight=False,
            )
    if json_out is not None:
        write_json(json_out, comparison.to_json())
        out.print(f"comparison written to {json_out}")


def report(
    result: Annotated[Path, typer.Argument(help="A `backtest --json` result file.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="html | pdf | xlsx | json")] = "html",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Where to write the report.")] = None,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help="Candle CSV to draw the trades on (default: the result's own candle file, when it is one CSV "
            "that still exists; otherwise fill prices only).",
        ),
    ] = None,
    monte_carlo: MonteCarloOption = 10_000,
    method: MethodOption = "trades",
    seed: SeedOption = None,
    ruin_level: RuinOption = 0.5,
    block_size: BlockOption = None,
    periods: PeriodsOption = None,
    risk_free: RiskFreeOption = 0.0,
) -> None:
    """Write a report (HTML, PDF, Excel or JSON) of a result file: metrics, charts, Monte Carlo."""
    from tradeforge.analytics.loaders import from_result_document, read_json

    if fmt not in REPORT_FORMATS:
        raise ConfigError([Problem("--format", f"choose one of {', '.join(REPORT_FORMATS)}", fmt)])
    if output is None:
        raise ConfigError([Problem("--output", "say where to write the report, e.g. -o report.html")])
    _check_periods(periods)
    spec = _mc_spec(monte_carlo if monte_carlo else None, method, seed, ruin_level, block_size)
    document = read_json(result)
    perf = from_result_document(document, result)
    written = build_report(perf, output, fmt, spec, prices or _candle_file(document), periods, risk_free)
    out.print(f"{fmt} report written to {written}")


def build_report(
    perf: Performance,
    output: Path,
    fmt: str,
    spec: MonteCarloSpec | None,
    prices: Path | None = None,
    periods: float | None = None,
    risk_free: float = 0.0,
) -> Path:
    """Analyse ``perf`` and write the report; Monte Carlo is skipped (and said so) without trades."""
    from tradeforge.analytics.analysis import analyze as run_analysis
    from tradeforge.analytics.reports import load_prices, write_report

    if spec is not None and spec.method != "block" and not perf.trades:
        out.print("no closed trades: the report has no Monte Carlo section")
        spec = None
    analysis = run_analysis(perf, periods=periods, risk_free=risk_free, monte_carlo=spec)
    candles = load_prices(prices) if prices is not None else None
    write_report(analysis, output, fmt, candles)
    return output


def _candle_file(document: Any) -> Path | None:
    """The one candle CSV a result was computed on (its `data[].source`), if it is still there."""
    sources = [d.get("source") for d in document.get("data") or [] if isinstance(d, dict)]
    if len(sources) != 1 or not isinstance(sources[0], str):
        return None
    path = Path(sources[0])
    return path if path.suffix.lower() == ".csv" and path.is_file() else None


def report_format_for(path: Path) -> str:
    """`backtest --report out.html`: the format is the file's extension."""
    suffix = path.suffix.lower().lstrip(".")
    if suffix not in REPORT_FORMATS:
        raise ConfigError([Problem("--report", f"the file name must end in .{', .'.join(REPORT_FORMATS)}", str(path))])
    return suffix


def backtest_report(result_document: dict[str, Any], output: Path) -> None:
    """The report `tradeforge backtest --report FILE` writes (Monte Carlo: 10,000 reshuffles, seed 0),
    with the candles drawn under the trades when the backtest read one CSV file."""
    from tradeforge.analytics.analysis import MonteCarloSpec
    from tradeforge.analytics.loaders import from_result_document

    fmt = report_format_for(output)
    perf = from_result_document(result_document, output)
    build_report(perf, output, fmt, MonteCarloSpec(10_000, "trades", 0), _candle_file(result_document))
    out.print(f"{fmt} report written to {output}")
