"""Optimization speed: `tradeforge optimize` with --jobs 1 and --jobs 2 against a plain Backtrader
`optstrategy` grid of the same size with maxcpus=1 and maxcpus=2, all in one run.

Everything runs on the same deterministic synthetic one-minute candles (reproducible offline), with the
`sma_cross` preset (95 % of equity, 0.1 % commission) and the same strategy in plain Backtrader
(`PandasData`, default Cerebro). tradeforge is timed as a user runs it: the `tradeforge optimize`
command in a fresh process (start-up, data loading, worker processes, the SQLite study and the final
report included). The space is fast 5..50, slow 55..200 step 5, so no trial is an invalid (cheap)
combination; trials whose parameters repeat an earlier trial are served from the study and counted
separately ("evaluated" = backtests actually run). Rates are given both ways: trials/min (the issue's
measure) and evaluated/min (the same work on both sides, whatever TPE happened to repeat).

Wall-clock ratios on a shared machine move with other people's jobs, so each tradeforge run also
reports its CPU time (the command and its workers), the median trial's wall and CPU seconds (wall well
above CPU: the machine was busy), the time until every worker had started a trial, and a projection
from CPU time alone for a machine with a free core per worker. Also each worker's peak RSS after its
first and its last trial (flat: no memory growth over the study) and the load average before and after.

    .venv/bin/python benchmarks/optimize_speed.py                        # 100 trials, 100k candles
    .venv/bin/python benchmarks/optimize_speed.py --trials 20 --bars 50000 --skip-plain
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import multiprocessing as mp
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import yaml

FAST, SLOW, PERCENT, CASH, COMMISSION = 10, 30, 95.0, 10_000.0, 0.001
ROOT = Path(__file__).resolve().parents[1]
# The `tradeforge` console script's two lines, plus a note of the CPU time of the command's own process
# (not its workers: forked ones leave through os._exit, so the hook runs in the parent only).
TRADEFORGE = """
import atexit, resource, sys
from pathlib import Path
note = Path(sys.argv.pop(1))
own = lambda: resource.getrusage(resource.RUSAGE_SELF)
atexit.register(lambda: note.write_text(str(own().ru_utime + own().ru_stime)))
sys.argv[0] = "tradeforge"
from tradeforge.cli import main
sys.exit(main())
"""


def make_candles(bars: int) -> Any:
    from tradeforge.feeds.synthetic import generate

    start = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    return generate("BTC/USDT", "1m", start, bars, seed=11, start_price=30_000.0, annual_vol=0.6)


def grid(trials: int) -> tuple[list[int], list[int]]:
    """`trials` (fast, slow) combinations as a product of two ranges, as optstrategy takes them."""
    a = max(d for d in range(1, math.isqrt(trials) + 1) if trials % d == 0)
    b = trials // a
    fast = [5 + round(i * 45 / max(a - 1, 1)) for i in range(a)]
    slow = [55 + round(i * 145 / max(b - 1, 1)) for i in range(b)]
    return fast, slow


def run_plain(bars: int, trials: int, cpus: int) -> dict[str, Any]:
    """The hand-written Backtrader grid a user would otherwise run."""
    import backtrader as bt

    frame = make_candles(bars).to_frame()
    frame.index = frame.index.tz_convert(None)
    fast, slow = grid(trials)
    load = os.getloadavg()[0]
    started = time.perf_counter()
    cerebro = bt.Cerebro(maxcpus=cpus)
    cerebro.adddata(bt.feeds.PandasData(dataname=frame))
    cerebro.optstrategy(PlainSmaCross, fast=fast, slow=slow)
    cerebro.broker.setcash(CASH)
    cerebro.broker.setcommission(commission=COMMISSION)
    cerebro.addsizer(bt.sizers.PercentSizer, percents=PERCENT)
    runs = cerebro.run()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "trials": len(runs), "evaluated": len(runs), "load": (load, os.getloadavg()[0])}


def _plain_strategy() -> type:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        params = (("fast", FAST), ("slow", SLOW))

        def __init__(self) -> None:
            self.crossover = bt.ind.CrossOver(bt.ind.SMA(period=self.p.fast), bt.ind.SMA(period=self.p.slow))

        def next(self) -> None:
            if not self.position:
                if self.crossover > 0:
                    self.buy()
            elif self.crossover < 0:
                self.close()

    return SmaCross


PlainSmaCross = _plain_strategy()
PlainSmaCross.__qualname__ = PlainSmaCross.__name__ = "PlainSmaCross"  # picklable for maxcpus > 1


def _child(bars: int, trials: int, cpus: int, queue: Any) -> None:
    queue.put(run_plain(bars, trials, cpus))


def plain_in_fresh_process(bars: int, trials: int, cpus: int) -> dict[str, Any]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(bars, trials, cpus, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def write_inputs(folder: Path, bars: int, trials: int) -> Path:
    data = folder / "BTC-USDT_1m.parquet"
    make_candles(bars).to_frame().to_parquet(data)
    config = folder / "bench.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "bench",
                "data_dir": str(folder),
                "data": {"source": "parquet", "path": str(data), "symbols": ["BTC/USDT"], "timeframe": "1m"},
                "broker": {"cash": CASH, "commission": COMMISSION},
                "strategy": {"preset": "sma_cross", "params": {"percent_equity_pct": PERCENT}},
                "optimize": {
                    "trials": trials,
                    "min_trades": 0,
                    "space": {
                        "sma_cross": {"fast": {"low": 5, "high": 50}, "slow": {"low": 55, "high": 200, "step": 5}},
                        "percent_equity": False,
                    },
                },
            }
        )
    )
    return config


def run_tradeforge(config: Path, folder: Path, jobs: int, seed: int) -> dict[str, Any]:
    import optuna

    from tradeforge.optimize.storage import open_storage

    study = f"jobs{jobs}"
    url = f"sqlite:///{(folder / f'{study}.sqlite').as_posix()}"
    note = folder / f"{study}.cpu"
    command = [sys.executable, "-c", TRADEFORGE, str(note), "optimize", "--config", str(config), "--jobs", str(jobs)]
    command += ["--study", study, "--storage", url, "--seed", str(seed)]
    load = os.getloadavg()[0]
    cpu_before = _children_cpu()
    launched = dt.datetime.now()  # Optuna stamps trials with naive local times
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=folder)
    seconds = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before  # the command and its worker processes, which it waits for
    trials = optuna.load_study(storage=open_storage(url), study_name=study).get_trials()
    evaluated = [t for t in trials if "duplicate_of" not in t.user_attrs]
    memory: dict[str, list[float]] = {}
    first_start: dict[str, dt.datetime] = {}
    for t in sorted(trials, key=lambda t: t.number):
        worker = t.user_attrs.get("worker", "?")
        if t.datetime_start is not None:
            first_start[worker] = min(first_start.get(worker, t.datetime_start), t.datetime_start)
        if "rss_mb" in t.user_attrs:
            memory.setdefault(worker, []).append(t.user_attrs["rss_mb"])
    hashes = [t.user_attrs.get("params_hash") for t in evaluated]
    median_cpu = _median(t.user_attrs.get("cpu_seconds") for t in evaluated)
    # With a free core per worker the command would take its own process's CPU time (start-up, preparing the
    # study, progress polls, the report: all counted as serial, which overstates it a little) plus one
    # worker's share of the workers' CPU time plus the end: trials are handed out one at a time, so the last
    # worker finishes up to a trial after the others ((jobs - 1) / jobs of a trial after the average). The
    # split measured on a shared machine also shows which worker other people's jobs slowed down.
    own = float(note.read_text())
    workers = 0.0 if jobs == 1 else (cpu - own) / jobs + median_cpu * (jobs - 1) / jobs
    split = "/".join(str(n) for n in sorted(Counter(t.user_attrs.get("worker") for t in evaluated).values()))
    return {
        "seconds": seconds,
        "trials": len(trials),
        "evaluated": len(evaluated),
        "repeats_run": len(hashes) - len(set(hashes)),
        "startup": (max(first_start.values()) - launched).total_seconds() if first_start else math.nan,
        "cpu": cpu,
        "own_cpu": own,
        "split": split,
        "idle_estimate": own + workers,
        "memory": memory,
        "median_trial": _median(t.user_attrs.get("seconds") for t in evaluated),
        "median_trial_cpu": median_cpu,
        "load": (load, os.getloadavg()[0]),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _median(values: Any) -> float:
    known = [v for v in values if v is not None]
    return statistics.median(known) if known else math.nan


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-plain", action="store_true", help="only the tradeforge runs")
    args = parser.parse_args(argv)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="tf-optbench-") as tmp:
        folder = Path(tmp)
        config = write_inputs(folder, args.bars, args.trials)
        for jobs in (1, 2):
            rows[f"tradeforge --jobs {jobs}"] = run_tradeforge(config, folder, jobs, args.seed)
            print(f"done: tradeforge --jobs {jobs}", file=sys.stderr, flush=True)
    if not args.skip_plain:
        for cpus in (1, 2):
            rows[f"plain optstrategy maxcpus={cpus}"] = plain_in_fresh_process(args.bars, args.trials, cpus)
            print(f"done: plain maxcpus={cpus}", file=sys.stderr, flush=True)
    print(f"{args.bars:,} one-minute candles, {args.trials} trials, sma_cross")
    print(
        f"{'variant':<30} {'trials':>6} {'evaluated':>9} {'seconds':>8} {'trials/min':>10} {'evaluated/min':>13} "
        f"{'start-up s':>10} {'CPU s':>7} {'median trial s (CPU)':>20} {'load avg before/after':>21}"
    )
    per_min: dict[str, float] = {}
    evaluated_per_min: dict[str, float] = {}
    for name, row in rows.items():
        per_min[name] = row["trials"] / row["seconds"] * 60
        evaluated_per_min[name] = row["evaluated"] / row["seconds"] * 60
        median = f"{row.get('median_trial', math.nan):.2f} ({row.get('median_trial_cpu', math.nan):.2f})"
        print(
            f"{name:<30} {row['trials']:>6} {row['evaluated']:>9} {row['seconds']:>8.1f} {per_min[name]:>10.2f} "
            f"{evaluated_per_min[name]:>13.2f} {row.get('startup', math.nan):>10.1f} {row.get('cpu', math.nan):>7.1f} "
            f"{median:>20} {row['load'][0]:>10.2f} / {row['load'][1]:.2f}"
        )
    j1, j2 = "tradeforge --jobs 1", "tradeforge --jobs 2"
    print(
        f"speed-up --jobs 2 / --jobs 1: {per_min[j2] / per_min[j1]:.2f}x in trials/min (target >= 1.8x), "
        f"{evaluated_per_min[j2] / evaluated_per_min[j1]:.2f}x in evaluated/min (backtests actually run)"
    )
    if not args.skip_plain:
        p1, p2 = "plain optstrategy maxcpus=1", "plain optstrategy maxcpus=2"
        for ours, plain, target in ((j1, p1, 4), (j2, p2, 2)):
            print(
                f"{ours} / {plain}: {per_min[ours] / per_min[plain]:.2f}x in trials/min (target >= {target}x), "
                f"{evaluated_per_min[ours] / evaluated_per_min[plain]:.2f}x in evaluated/min"
            )
    # Wall-clock ratios move with other people's jobs on a shared machine; CPU time barely does.
    estimate = {name: rows[name]["evaluated"] / rows[name]["idle_estimate"] * 60 for name in (j1, j2)}
    print(
        f"CPU-time projection for a machine with a free core per worker: --jobs 1 {estimate[j1]:.2f}, --jobs 2 "
        f"{estimate[j2]:.2f} evaluated/min, {estimate[j2] / estimate[j1]:.2f}x (a wall-clock run on a quiet machine "
        "is the measurement; this tells overhead from load)"
    )
    for name in (j1, j2):
        row = rows[name]
        print(
            f"{name}: CPU s {row['cpu']:.1f} of which the command's own process {row['own_cpu']:.1f}; "
            f"backtests per worker {row['split']}"
        )
    for name in (j1, j2):
        if rows[name]["repeats_run"]:
            print(f"{name}: {rows[name]['repeats_run']} parameter sets were backtested twice (twins running at once)")
        for worker, peaks in rows[name]["memory"].items():
            print(f"{name} worker {worker}: peak RSS {peaks[0]:.0f} MB after its first trial, {peaks[-1]:.0f} MB "
                  f"after its last ({len(peaks)} trials)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
