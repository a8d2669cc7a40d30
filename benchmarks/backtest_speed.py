"""Backtest speed: tradeforge's `sma_cross` preset vs the same strategy in plain Backtrader.

Both run in fresh processes on the same one-minute candles (deterministic synthetic data, so anyone
can reproduce the figures offline): plain Backtrader with a default Cerebro and `PandasData`, and
tradeforge through `run_backtest` (feed, precomputation, run and result collection all counted).
The script checks both produce the same trades and final value, then prints bars/s, the speed
ratio and each process's peak memory.

    .venv/bin/python benchmarks/backtest_speed.py            # 100k and 1M candles
    .venv/bin/python benchmarks/backtest_speed.py --bars 100000
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import resource
import sys
import time
from typing import Any

FAST, SLOW, PERCENT, CASH, COMMISSION = 10, 30, 95.0, 10_000.0, 0.001


def make_candles(bars: int) -> Any:
    from tradeforge.feeds.synthetic import generate

    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return generate("BTC/USDT", "1m", start, bars, seed=11, start_price=30_000.0, annual_vol=0.6)


def run_plain(bars: int) -> dict[str, Any]:
    """The hand-written Backtrader script a user would otherwise write."""
    import backtrader as bt

    frame = make_candles(bars).to_frame()
    frame.index = frame.index.tz_convert(None)

    class SmaCross(bt.Strategy):
        params = (("fast", FAST), ("slow", SLOW))

        def __init__(self) -> None:
            self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))
            self.closed: list[tuple[float, float, float]] = []

        def next(self) -> None:
            if not self.position:
                if self.crossover > 0:
                    self.buy()
            elif self.crossover < 0:
                self.close()

        def notify_trade(self, trade: bt.Trade) -> None:
            if trade.isclosed:
                self.closed.append((trade.dtopen, trade.dtclose, trade.pnlcomm))

    started = time.perf_counter()
    cerebro = bt.Cerebro()
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.addstrategy(SmaCross)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=PERCENT)
    strategy = cerebro.run()[0]
    seconds = time.perf_counter() - started
    trades = [(bt.num2date(a).isoformat(), bt.num2date(b).isoformat(), pnl) for a, b, pnl in strategy.closed]
    return _report(seconds, cerebro.broker.getvalue(), trades)


def run_tradeforge(bars: int) -> dict[str, Any]:
    from tradeforge.config.schema import BotConfig
    from tradeforge.engine.backtest import run_backtest

    candles = make_candles(bars)
    config = BotConfig.model_validate(
        {
            "data": {"source": "sample", "symbols": ["BTC/USDT"], "timeframe": "1m"},
            "broker": {"cash": CASH, "commission": COMMISSION},
            "strategy": {"preset": "sma_cross", "params": {"sma_cross_fast": FAST, "sma_cross_slow": SLOW}},
        }
    )
    started = time.perf_counter()
    result = run_backtest(config, candles=[candles])
    seconds = time.perf_counter() - started
    trades = [
        (t.entry_time.replace(tzinfo=None).isoformat(), t.exit_time.replace(tzinfo=None).isoformat(), t.pnl)
        for t in result.trades
        if t.exit_time is not None
    ]
    return _report(seconds, result.final_value, trades)


def _report(seconds: float, final_value: float, trades: list[Any]) -> dict[str, Any]:
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "final_value": final_value, "trades": trades, "peak_mb": peak_mb}


def _child(target: str, bars: int, queue: Any) -> None:
    queue.put(globals()[target](bars))


def in_fresh_process(target: str, bars: int) -> dict[str, Any]:
    """Each run gets its own interpreter so peak memory and caches are not shared."""
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(target, bars, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, nargs="+", default=[100_000, 1_000_000])
    args = parser.parse_args(argv)
    ok = True
    print(
        f"{'bars':>9} {'plain bars/s':>13} {'tradeforge bars/s':>18} {'ratio':>6} "
        f"{'plain MB':>9} {'tf MB':>7} {'trades':>7}  identical"
    )
    for bars in args.bars:
        plain = in_fresh_process("run_plain", bars)
        ours = in_fresh_process("run_tradeforge", bars)
        same = plain["trades"] == ours["trades"] and plain["final_value"] == ours["final_value"]
        ok &= same
        print(
            f"{bars:>9,} {bars / plain['seconds']:>13,.0f} {bars / ours['seconds']:>18,.0f} "
            f"{plain['seconds'] / ours['seconds']:>5.2f}x {plain['peak_mb']:>9.0f} {ours['peak_mb']:>7.0f} "
            f"{len(ours['trades']):>7}  {'yes' if same else 'NO'}"
        )
        if not same:
            print(f"  final value plain {plain['final_value']!r} vs tradeforge {ours['final_value']!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
