"""Monte Carlo: reproducible with a seed, sane against the record it resamples, bounded in memory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeforge.analytics import metrics as m
from tradeforge.analytics import montecarlo as mc

START = 10_000.0


def real_trade_pnls(shared_data: Path, n: int = 400) -> np.ndarray:
    """Daily ORCL moves as the pnl of 1,000-unit trades: real, fat-tailed, mostly small."""
    close = pd.read_csv(shared_data / "yahoo_ORCL_1d.csv")["close"].to_numpy(np.float64)
    return m.returns_from_equity(close)[-n:] * 1_000.0


@pytest.fixture
def returns(shared_data: Path) -> np.ndarray:
    return mc.trade_returns(real_trade_pnls(shared_data), START)


@pytest.mark.parametrize("method", mc.METHODS)
def test_same_seed_same_simulations_and_another_seed_differs(returns: np.ndarray, method: mc.Method):
    a = mc.simulate(returns, method=method, simulations=500, start_value=START, seed=11)
    b = mc.simulate(returns, method=method, simulations=500, start_value=START, seed=11)
    c = mc.simulate(returns, method=method, simulations=500, start_value=START, seed=12)
    np.testing.assert_array_equal(a.max_drawdown, b.max_drawdown)
    assert a.summary() == b.summary()
    assert not np.array_equal(a.max_drawdown, c.max_drawdown)


def test_reshuffled_trades_keep_the_original_final_equity_median_and_all(shared_data: Path):
    pnls = real_trade_pnls(shared_data)
    result = mc.simulate(mc.trade_returns(pnls, START), method="trades", simulations=2_000, start_value=START, seed=1)
    original = START + pnls.sum()
    assert np.median(result.final_equity) == pytest.approx(original, rel=1e-9)
    np.testing.assert_allclose(result.final_equity, original, rtol=1e-9)
    assert result.original_final == pytest.approx(original, rel=1e-9)
    # The order changes the path: drawdowns spread around the original's, never above zero.
    assert result.max_drawdown.max() <= 0
    assert result.max_drawdown.std() > 0
    assert result.max_drawdown.min() <= result.original_max_drawdown <= result.max_drawdown.max()


def test_chunking_does_not_change_the_result(returns: np.ndarray, monkeypatch: pytest.MonkeyPatch):
    whole = mc.simulate(returns, method="bootstrap", simulations=300, start_value=START, seed=5)
    monkeypatch.setattr(mc, "CHUNK_ELEMENTS", returns.size * 7)  # 7 simulations per chunk
    chunked = mc.simulate(returns, method="bootstrap", simulations=300, start_value=START, seed=5)
    np.testing.assert_array_equal(whole.final_equity, chunked.final_equity)


def test_simulated_drawdowns_match_the_metric_on_each_path():
    r = np.array([0.1, -0.2, 0.05, -0.1, 0.3])
    result = mc.simulate(r, method="trades", simulations=50, start_value=100.0, seed=3)
    # Rebuild every permutation's path is impossible from the summary, but the original's is not:
    path = 100.0 * np.concatenate(([1.0], np.cumprod(1 + r)))
    assert result.original_max_drawdown == pytest.approx(m.max_drawdown(path))
    assert result.original_final == pytest.approx(path[-1])


def test_bootstrap_median_final_is_near_the_expected_compounded_growth(returns: np.ndarray):
    result = mc.simulate(returns, method="bootstrap", simulations=20_000, start_value=START, seed=2)
    expected = START * np.exp(returns.size * np.mean(np.log1p(returns)))
    assert np.median(result.final_equity) == pytest.approx(expected, rel=0.02)


def test_block_bootstrap_uses_blocks_of_consecutive_returns():
    r = np.arange(1, 101) / 10_000  # strictly increasing returns reveal the blocks
    result = mc.simulate(r, method="block", simulations=10, start_value=1.0, seed=0, block_size=10)
    assert result.block_size == 10 and result.steps == 100
    assert mc.block_size_default(1000) == 10


def test_ruin_and_profit_probabilities():
    losing = np.full(50, -0.02)  # every path loses 1 - 0.98**50 = 64 %
    result = mc.simulate(losing, method="bootstrap", simulations=100, start_value=1.0, seed=0, ruin_level=0.5)
    assert result.summary()["probability_of_ruin"] == 1.0
    assert result.summary()["probability_of_profit"] == 0.0
    winning = mc.simulate(-losing, method="trades", simulations=100, start_value=1.0, seed=0)
    assert winning.summary()["probability_of_ruin"] == 0.0
    assert winning.summary()["probability_of_profit"] == 1.0


def test_a_wiped_out_trade_is_ruin_not_nan():
    result = mc.simulate(np.array([0.1, -1.0, 0.2]), method="trades", simulations=20, start_value=1.0, seed=0)
    assert np.all(result.final_equity == 0.0)
    assert np.all(result.max_drawdown == -1.0)
    assert result.summary()["probability_of_ruin"] == 1.0


def test_summary_has_percentiles_of_final_equity_cagr_and_drawdown(returns: np.ndarray):
    s = mc.simulate(returns, method="trades", simulations=200, start_value=START, seed=1, years=1.5).summary()
    for key in ("final_equity", "cagr", "max_drawdown"):
        assert list(s[key]) == ["p5", "p25", "p50", "p75", "p95"]
        values = list(s[key].values())
        assert values == sorted(values)
    assert s["simulations"] == 200 and s["method"] == "trades" and s["seed"] == 1
    assert mc.simulate(returns, method="trades", simulations=10, seed=1).summary()["cagr"] is None  # no span


def test_bad_input_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="nothing to resample"):
        mc.simulate(np.array([]), method="trades")
    with pytest.raises(ValueError, match="method"):
        mc.simulate(np.array([0.1]), method="shuffle")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already ruined"):
        mc.trade_returns(np.array([-100.0, 5.0]), 100.0)


def test_ten_thousand_simulations_of_a_thousand_trades_stay_under_500_mb():
    import tracemalloc

    r = np.random.default_rng(0).normal(0.001, 0.02, 1_000)
    tracemalloc.start()
    try:
        mc.simulate(r, method="trades", simulations=10_000, seed=0)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 500 * 2**20


def test_monte_carlo_of_a_record_says_what_each_method_needs(tmp_path: Path):
    from tradeforge.analytics.analysis import MonteCarloSpec, run_monte_carlo
    from tradeforge.analytics.loaders import Performance
    from tradeforge.resilience.errors import DataError

    no_trades = Performance("x", "x.json", np.array([0, 1], dtype=np.int64), np.array([1.0, 2.0]))
    with pytest.raises(DataError, match=r"x\.json: Monte Carlo --method trades needs closed trades"):
        run_monte_carlo(no_trades, MonteCarloSpec(10, "trades"))
    with pytest.raises(DataError, match="--method block needs an equity curve of at least 3 points"):
        run_monte_carlo(no_trades, MonteCarloSpec(10, "block"))
    ruined = Performance("y", "y.json", None, None, trades=[{"pnl": -20_000.0}, {"pnl": 5.0}])
    with pytest.raises(DataError, match="already ruined"):
        run_monte_carlo(ruined, MonteCarloSpec(10, "bootstrap"))


@settings(max_examples=60, deadline=None)
@given(pnls=st.lists(st.floats(min_value=-50, max_value=50), min_size=1, max_size=40), seed=st.integers(0, 2**32))
def test_any_reshuffle_keeps_the_final_equity_and_bounds_the_drawdown(pnls: list[float], seed: int):
    pnl = np.array(pnls)
    result = mc.simulate(
        mc.trade_returns(pnl, 1_000.0), method="trades", simulations=50, start_value=1_000.0, seed=seed
    )
    assert np.median(result.final_equity) == pytest.approx(1_000.0 + pnl.sum(), rel=1e-9)
    assert np.all((result.max_drawdown <= 0) & (result.max_drawdown >= -1))
    assert np.all(result.fan[0] <= result.fan[-1])  # p5 under p95 at every step
