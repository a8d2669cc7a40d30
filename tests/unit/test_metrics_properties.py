"""Edge cases as properties: every metric returns a documented value (a finite number or None) and
never raises or divides by zero, whatever the curve or trade book; plus hand-computed examples of
the metrics added for `tradeforge analyze`."""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeforge.analytics import metrics as m

HOUR = 3_600 * 10**9
DAY = 24 * HOUR
PPY = 8760.0

values_st = st.lists(st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=0, max_size=60)
pnl_st = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)


def hours(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * HOUR + 1_704_067_200 * 10**9


def book(*pnls: float) -> list[dict[str, float]]:
    return [{"pnl": p} for p in pnls]


def assert_documented(metrics: dict[str, float | int | None]) -> None:
    assert tuple(metrics) == m.METRIC_NAMES
    for key, value in metrics.items():
        assert value is None or (isinstance(value, int | float) and math.isfinite(value)), (key, value)


@settings(max_examples=150, deadline=None)
@given(values=values_st, pnls=st.lists(pnl_st, max_size=30))
def test_every_metric_is_a_finite_number_or_none_for_any_curve_and_book(values: list[float], pnls: list[float]):
    v = np.array(values)
    assert_documented(m.all_metrics(v, hours(v.size), book(*pnls), in_market=np.ones(v.size, bool)))


@settings(max_examples=60, deadline=None)
@given(level=st.floats(min_value=1.0, max_value=1e6), n=st.integers(min_value=0, max_value=50))
def test_constant_equity_has_no_risk_and_no_risk_adjusted_ratio(level: float, n: int):
    out = m.all_metrics(np.full(n, level), hours(n), [])
    assert_documented(out)
    if n == 0:
        assert out["total_return"] is None and out["max_drawdown"] is None
        return
    assert out["total_return"] == 0.0
    assert out["max_drawdown"] == 0.0 and out["max_drawdown_duration"] == 0.0 and out["ulcer_index"] == 0.0
    for undefined in ("sharpe", "sortino", "omega", "tail_ratio", "calmar", "recovery_factor"):
        assert out[undefined] is None, undefined
    for undefined in ("var_95_cornish_fisher", "cvar_99_cornish_fisher", "probabilistic_sharpe_ratio"):
        assert out[undefined] is None, undefined
    if n >= 3:  # two or more returns, all exactly zero
        assert out["annual_volatility"] == 0.0
        assert out["var_95_historical"] == 0.0 and out["cvar_99_historical"] == 0.0
        assert out["var_99_parametric"] == 0.0 and out["cvar_95_parametric"] == 0.0


@settings(max_examples=60, deadline=None)
@given(growth=st.floats(min_value=-0.05, max_value=0.05).filter(lambda g: abs(g) > 1e-6), n=st.integers(3, 40))
def test_zero_volatility_growth_has_no_sharpe(growth: float, n: int):
    v = 100.0 * (1 + growth) ** np.arange(n)
    r = np.full(n - 1, growth)
    assert m.sharpe(r, PPY) is None
    assert m.probabilistic_sharpe_ratio(r) is None
    assert m.value_at_risk(r, 0.95, "cornish_fisher") is None
    assert m.value_at_risk(r, 0.95, "parametric") == pytest.approx(growth)
    assert_documented(m.all_metrics(v, hours(n), []))


@given(pnl=pnl_st)
def test_a_single_trade(pnl: float):
    one = book(pnl)
    assert m.sqn(one) is None  # no dispersion from one trade
    assert m.best_trade(one) == m.worst_trade(one) == m.average_trade(one) == pnl
    assert m.payoff_ratio(one) is None
    if pnl > 0:
        assert (m.win_rate(one), m.profit_factor(one), m.kelly_fraction(one)) == (1.0, None, 1.0)
        assert (m.longest_winning_streak(one), m.longest_losing_streak(one)) == (1, 0)
    elif pnl < 0:
        assert (m.win_rate(one), m.profit_factor(one), m.kelly_fraction(one)) == (0.0, 0.0, None)
        assert (m.longest_winning_streak(one), m.longest_losing_streak(one)) == (0, 1)
    else:
        assert (m.win_rate(one), m.profit_factor(one), m.kelly_fraction(one)) == (0.0, None, None)


@given(losses=st.lists(st.floats(min_value=-1e4, max_value=-1e-6), min_size=1, max_size=40))
def test_all_losses(losses: list[float]):
    trades = book(*losses)
    assert m.win_rate(trades) == 0.0
    assert m.profit_factor(trades) == 0.0
    assert m.payoff_ratio(trades) is None and m.kelly_fraction(trades) is None
    assert m.longest_losing_streak(trades) == len(losses) and m.longest_winning_streak(trades) == 0
    expectancy = m.expectancy(trades)
    assert expectancy is not None and expectancy < 0
    best = m.best_trade(trades)
    assert best is not None and best < 0


@settings(max_examples=80, deadline=None)
@given(
    returns=st.lists(st.floats(min_value=-0.5, max_value=0.5), min_size=5, max_size=60),
    holes=st.lists(st.integers(min_value=0, max_value=59), max_size=10),
)
def test_nan_returns_are_dropped_not_counted_as_zero(returns: list[float], holes: list[int]):
    clean = np.array(returns)
    dirty = clean.copy()
    for i in holes:
        dirty = np.insert(dirty, min(i, dirty.size), np.nan)
    for fn in (
        lambda r: m.sharpe(r, PPY),
        lambda r: m.sortino(r, PPY),
        lambda r: m.annual_volatility(r, PPY),
        m.omega,
        m.tail_ratio,
        m.probabilistic_sharpe_ratio,
        lambda r: m.value_at_risk(r, 0.95, "historical"),
        lambda r: m.conditional_value_at_risk(r, 0.99, "cornish_fisher"),
    ):
        assert fn(dirty) == fn(clean)


def test_nan_equity_points_are_dropped_with_their_timestamps():
    v = np.array([100.0, np.nan, 120.0, 90.0])
    out = m.all_metrics(v, hours(4), [])
    assert out["total_return"] == pytest.approx(-0.1)
    assert out["max_drawdown"] == pytest.approx(-0.25)
    assert_documented(out)


def test_trades_with_a_missing_pnl_are_not_counted():
    assert m.win_rate([{"pnl": None}, {"pnl": 5.0}]) == 1.0


# --------------------------------------------------------------------------- hand-computed examples


def test_max_drawdown_duration_is_the_longest_peak_to_recovery_time_in_days():
    #            peak at day 1 ........ recovered day 4;  peak day 5 .. never recovered (to day 7)
    v = np.array([100.0, 110.0, 100.0, 105.0, 110.0, 120.0, 119.0, 118.0])
    ts = np.arange(8, dtype=np.int64) * DAY
    assert m.max_drawdown_duration(v, ts) == 3.0
    assert m.max_drawdown_duration(np.array([1.0, 2.0, 3.0]), ts[:3]) == 0.0


def test_ulcer_index_is_root_mean_square_drawdown():
    v = np.array([100.0, 80.0, 100.0, 50.0])
    assert m.ulcer_index(v) == pytest.approx(math.sqrt((0 + 0.2**2 + 0 + 0.5**2) / 4))


def test_recovery_factor_is_total_return_over_max_drawdown():
    assert m.recovery_factor(np.array([100.0, 80.0, 150.0])) == pytest.approx(0.5 / 0.2)


def test_omega_is_gains_over_losses_around_the_threshold():
    assert m.omega(np.array([0.02, -0.01, 0.03, -0.02])) == pytest.approx(0.05 / 0.03)
    assert m.omega(np.array([0.02, -0.01]), threshold=0.01) == pytest.approx(0.01 / 0.02)


def test_cornish_fisher_equals_parametric_for_zero_skew_and_kurtosis_terms():
    z = NormalDist().inv_cdf(0.05)
    assert m._cornish_fisher_z(z, 0.0, 0.0) == z
    # A left-skewed, fat-tailed sample has a deeper Cornish-Fisher VaR than the normal one,
    # closer to the historical quantile.
    rng = np.random.default_rng(5)
    r = 0.01 * rng.standard_normal(2000) - 0.01 * (rng.exponential(1, 2000) - 1)
    historical = m.value_at_risk(r, 0.99, "historical")
    cf, normal = m.value_at_risk(r, 0.99, "cornish_fisher"), m.value_at_risk(r, 0.99, "parametric")
    assert cf is not None and normal is not None and historical is not None and cf < normal
    assert abs(cf - historical) < abs(normal - historical)
    cvar_cf = m.conditional_value_at_risk(r, 0.99, "cornish_fisher")
    assert cvar_cf is not None and cvar_cf < cf


def test_parametric_cvar_is_the_normal_expected_shortfall():
    r = np.array([0.01, -0.02, 0.015, 0.0, -0.005, 0.02])
    mu, sd = r.mean(), r.std(ddof=1)
    expected = mu - sd * NormalDist().pdf(NormalDist().inv_cdf(0.05)) / 0.05
    assert m.conditional_value_at_risk(r, 0.95, "parametric") == pytest.approx(expected)


def test_deflated_sharpe_is_lower_than_probabilistic_and_falls_with_more_trials():
    rng = np.random.default_rng(3)
    r = rng.normal(0.001, 0.01, 500)
    psr = m.probabilistic_sharpe_ratio(r)
    dsr_10, dsr_1000 = m.deflated_sharpe_ratio(r, 10), m.deflated_sharpe_ratio(r, 1000)
    assert psr is not None and dsr_10 is not None and dsr_1000 is not None
    assert psr > dsr_10 > dsr_1000
    assert m.deflated_sharpe_ratio(r, 1) is None


def test_kelly_sqn_payoff_and_streaks_on_a_mixed_book():
    trades = book(10.0, 20.0, -5.0, -5.0, -5.0, 30.0)
    assert m.payoff_ratio(trades) == pytest.approx(20.0 / 5.0)
    assert m.kelly_fraction(trades) == pytest.approx(0.5 - 0.5 / 4.0)
    pnl = np.array([10.0, 20.0, -5.0, -5.0, -5.0, 30.0])
    assert m.sqn(trades) == pytest.approx(math.sqrt(6) * pnl.mean() / pnl.std(ddof=1))
    assert (m.longest_winning_streak(trades), m.longest_losing_streak(trades)) == (2, 3)


def test_in_market_mask_covers_entry_up_to_exit_and_open_trades_to_the_end():
    ts = np.arange(6, dtype=np.int64)
    mask = m.in_market_mask(ts, [1, 4], [3, None])
    assert mask.tolist() == [False, True, True, False, True, True]
