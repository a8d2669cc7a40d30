"""Monte Carlo speed: 10,000 trade reshuffles of 1,000 trades, vectorised vs a plain Python loop.

Target (issue 7): the vectorised run in at most 0.5 s and 500 MB. The baseline is the loop a user
would write first (shuffle a list, walk it keeping the peak); it runs in the same process after the
vectorised one. Both report the median final equity and median max drawdown, which must agree (the
final equity exactly, since a reshuffle cannot change it; the drawdown within sampling noise).
Trades are deterministic Student-t returns so anyone can reproduce the figures offline.

    .venv/bin/python benchmarks/montecarlo_speed.py
    .venv/bin/python benchmarks/montecarlo_speed.py --method bootstrap --baseline-sims 2000
"""

from __future__ import annotations

import argparse
import math
import random
import resource
import statistics
import time
import tracemalloc

import numpy as np

from tradeforge.analytics.montecarlo import METHODS, simulate


def make_returns(n: int) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.clip(0.002 + 0.02 * rng.standard_t(4, n), -0.5, 0.5)


def vectorised(returns: np.ndarray, sims: int, method: str) -> tuple[float, float, float, float]:
    """Best-of-3 wall time, tracemalloc peak (MB), median final equity and median max drawdown."""
    times = []
    peak = 0.0
    result = None
    for attempt in range(3):
        if attempt == 0:
            tracemalloc.start()
        start = time.perf_counter()
        result = simulate(returns, method=method, simulations=sims, start_value=10_000.0, seed=1)  # type: ignore[arg-type]
        times.append(time.perf_counter() - start)
        if attempt == 0:
            peak = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
    assert result is not None
    return min(times), peak, float(np.median(result.final_equity)), float(np.median(result.max_drawdown))


def baseline(returns: np.ndarray, sims: int, method: str) -> tuple[float, float, float]:
    """The naive loop: one simulation at a time, one trade at a time, in pure Python."""
    rng = random.Random(1)
    values = returns.tolist()
    n = len(values)
    finals, drawdowns = [], []
    start = time.perf_counter()
    for _ in range(sims):
        if method == "trades":
            path = values[:]
            rng.shuffle(path)
        else:
            path = [values[rng.randrange(n)] for _ in range(n)]
        equity = peak = 10_000.0
        worst = 0.0
        for r in path:
            equity *= 1.0 + r
            peak = max(peak, equity)
            worst = min(worst, equity / peak - 1.0)
        finals.append(equity)
        drawdowns.append(worst)
    return time.perf_counter() - start, statistics.median(finals), statistics.median(drawdowns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sims", type=int, default=10_000)
    parser.add_argument("--trades", type=int, default=1_000)
    parser.add_argument("--method", choices=[m for m in METHODS if m != "block"], default="trades")
    parser.add_argument("--baseline-sims", type=int, default=None, help="run the loop on fewer sims and scale up")
    args = parser.parse_args()
    returns = make_returns(args.trades)

    seconds, peak_mb, final, dd = vectorised(returns, args.sims, args.method)
    print(
        f"vectorised: {args.sims:,} sims x {args.trades:,} trades ({args.method}) in {seconds:.3f} s, "
        f"peak traced memory {peak_mb:.0f} MB; median final {final:,.2f}, median max drawdown {dd:.4f}"
    )
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(f"process peak RSS so far (interpreter, numpy and the run): {rss_mb:.0f} MB")
    verdict = "meets" if seconds <= 0.5 and rss_mb <= 500 else "MISSES"
    print(f"target <= 0.5 s and <= 500 MB: {verdict}")

    base_sims = args.baseline_sims or args.sims
    base_seconds, base_final, base_dd = baseline(returns, base_sims, args.method)
    scaled = base_seconds * args.sims / base_sims
    note = "" if base_sims == args.sims else f" (ran {base_sims:,} sims in {base_seconds:.2f} s, scaled linearly)"
    print(
        f"python loop: {args.sims:,} sims in {scaled:.2f} s{note}; "
        f"median final {base_final:,.2f}, median max drawdown {base_dd:.4f}"
    )
    print(f"speed-up: {scaled / seconds:.1f}x")
    if args.method == "trades" and not math.isclose(final, base_final, rel_tol=1e-9):
        raise SystemExit("median final equity of the two reshuffles differs: a bug")


if __name__ == "__main__":
    main()
