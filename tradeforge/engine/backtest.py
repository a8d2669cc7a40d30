"""Backtests: config -> Cerebro (NumPy-fed, observers off) -> strategy -> result with metrics."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import backtrader as bt

from tradeforge.analytics.metrics import summary
from tradeforge.brokers.simulated import SimulatedBroker
from tradeforge.config.loader import redacted
from tradeforge.config.schema import BotConfig
from tradeforge.engine.data import load_candles
from tradeforge.engine.results import BacktestResult, in_market_mask
from tradeforge.engine.validation import validate
from tradeforge.feeds.arrays import ArrayFeed
from tradeforge.feeds.candles import Candles, Gap, find_gaps
from tradeforge.feeds.timeframes import TIMEFRAMES
from tradeforge.strategies.base import Strategy
from tradeforge.strategies.registry import Registry, ResolvedStrategy


@dataclass(frozen=True)
class BacktestOverrides:
    """Command-line values that beat the config for one run."""

    data: str | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    cash: float | None = None


def build_cerebro(
    config: BotConfig,
    candles: list[Candles],
    resolved: ResolvedStrategy,
    cash: float | None = None,
    **strategy_kwargs: Any,
) -> bt.Cerebro:
    """A Cerebro that matches a default one in results, minus the observers nobody reads."""
    cerebro = bt.Cerebro(stdstats=False)
    cerebro.broker = SimulatedBroker()
    for series in candles:
        cerebro.adddata(ArrayFeed(series))
    configure_broker(cerebro.broker, config, cash)
    cerebro.addstrategy(resolved.cls, **resolved.params, **strategy_kwargs)
    return cerebro


def configure_broker(broker: bt.brokers.BackBroker, config: BotConfig, cash: float | None = None) -> None:
    """Cash, commission, slippage and volume-limited fills, the same in backtest and paper mode."""
    broker.setcash(cash if cash is not None else config.broker.cash)
    broker.setcommission(commission=config.broker.commission)
    if config.broker.slippage:
        broker.set_slippage_perc(config.broker.slippage)
    if config.broker.max_fill_fraction_of_volume is not None:
        broker.set_filler(bt.broker.fillers.FixedBarPerc(perc=config.broker.max_fill_fraction_of_volume * 100))


def run_backtest(
    config: BotConfig,
    overrides: BacktestOverrides | None = None,
    registry: Registry | None = None,
    candles: list[Candles] | None = None,
) -> BacktestResult:
    """Run the config's strategy over historical candles and measure it."""
    overrides = overrides or BacktestOverrides()
    resolved = validate(config, registry, overrides.data, check_data=candles is None)
    if candles is None:
        candles = load_candles(config, data_override=overrides.data, start=overrides.start, end=overrides.end)
    cerebro = build_cerebro(config, candles, resolved, overrides.cash)
    strategy: Strategy = cerebro.run()[0]
    return collect_result(config, candles, resolved, strategy, cerebro.broker.startingcash)


def collect_result(
    config: BotConfig,
    candles: list[Candles],
    resolved: ResolvedStrategy,
    strategy: Strategy,
    start_value: float,
) -> BacktestResult:
    times, values = strategy.equity_curve()
    trades = strategy.closed_trades
    open_trades = strategy.open_trades()
    metrics = summary(values, times, trades, in_market_mask(times, trades + open_trades))
    return BacktestResult(
        config=redacted(config),
        strategy=resolved.label,
        symbols=[c.symbol for c in candles],
        timeframe=config.data.timeframe,
        start=min(c.start for c in candles),
        end=max(c.end for c in candles),
        start_value=float(start_value),
        final_value=float(strategy.broker.getvalue()),
        metrics={k: _finite(v) for k, v in metrics.items()},
        trades=trades,
        open_trades=open_trades,
        equity_times=times,
        equity_values=values,
        gaps={c.symbol: notable_gaps(c) for c in candles},
        data=[_provenance(c) for c in candles],
    )


def _provenance(candles: Candles) -> dict[str, Any]:
    """Which candles a result was computed on; a file as an absolute path, so a report finds it from elsewhere."""
    path = Path(candles.source)
    return {
        "symbol": candles.symbol,
        "source": str(path.resolve()) if path.is_file() else candles.source,
        "rows": len(candles),
        "start": candles.start.isoformat(),
        "end": candles.end.isoformat(),
    }


def notable_gaps(candles: Candles) -> list[Gap]:
    """Missing candles worth telling a user about: for daily or longer candles, a gap that only
    skips a weekend is how exchange-traded data looks, not a hole."""
    gaps = find_gaps(candles)
    if TIMEFRAMES[candles.timeframe] < 86_400:
        return gaps
    return [g for g in gaps if not _only_weekend(g)]


def _only_weekend(gap: Gap) -> bool:
    day = gap.after.date() + dt.timedelta(days=1)
    while day < gap.before.date():
        if day.weekday() < 5:
            return False
        day += dt.timedelta(days=1)
    return True


def _finite(value: Any) -> Any:
    """JSON has no inf/NaN: an undefined metric is null (documented in the README)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
