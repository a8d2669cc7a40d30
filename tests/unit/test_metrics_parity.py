"""Our metrics equal empyrical-reloaded's and quantstats' to 1e-9 relative on real market data,
wherever those libraries define the same quantity. Deliberate differences (README, "Where we
differ") are checked as the documented relation, so a silent drift in either side fails."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeforge.analytics import metrics as m

empyrical = pytest.importorskip("empyrical")
qs_stats = pytest.importorskip("quantstats.stats")

REL = 1e-9


@dataclass
class Series:
    name: str
    values: np.ndarray
    timestamps: np.ndarray  # int64 ns
    ppy: float

    @property
    def returns(self) -> np.ndarray:
        return m.returns_from_equity(self.values)

    @property
    def pd_returns(self) -> pd.Series:
        return pd.Series(self.returns, index=pd.to_datetime(self.timestamps[1:], utc=True))


SERIES = {
    "btc_hourly": ("binance_BTC-USDT_1h.csv", 8760.0),
    "eth_hourly": ("binance_ETH-USDT_1h.csv", 8760.0),
    "orcl_daily": ("yahoo_ORCL_1d.csv", 252.0),
}


@pytest.fixture(params=list(SERIES), scope="module")
def series(request: pytest.FixtureRequest, shared_data: Path) -> Series:
    """Close prices of a real market as a buy-and-hold equity curve."""
    file, ppy = SERIES[request.param]
    frame = pd.read_csv(shared_data / file)
    ts = (
        pd.to_datetime(frame["timestamp"], utc=True)
        .dt.tz_localize(None)
        .to_numpy()
        .astype("datetime64[ns]")
        .view(np.int64)
    )
    assert m.periods_per_year(ts) == ppy  # the inference the CLI relies on agrees with the test's choice
    return Series(request.param, frame["close"].to_numpy(np.float64), ts, ppy)


def close(ours: float | None, theirs: float) -> None:
    assert ours is not None
    assert ours == pytest.approx(float(theirs), rel=REL)


@pytest.fixture(autouse=True)
def _quiet() -> None:
    warnings.filterwarnings("ignore", category=RuntimeWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning)


# --------------------------------------------------------------------------- empyrical-reloaded


def test_sharpe_matches_empyrical(series: Series) -> None:
    close(m.sharpe(series.returns, series.ppy), empyrical.sharpe_ratio(series.returns, annualization=series.ppy))


def test_sharpe_with_risk_free_matches_empyrical_given_the_same_per_bar_rate(series: Series) -> None:
    per_bar = (1 + 0.03) ** (1 / series.ppy) - 1
    theirs = empyrical.sharpe_ratio(series.returns, risk_free=per_bar, annualization=series.ppy)
    close(m.sharpe(series.returns, series.ppy, risk_free=0.03), theirs)


def test_sortino_matches_empyrical(series: Series) -> None:
    close(m.sortino(series.returns, series.ppy), empyrical.sortino_ratio(series.returns, annualization=series.ppy))


def test_annual_volatility_matches_empyrical(series: Series) -> None:
    theirs = empyrical.annual_volatility(series.returns, annualization=series.ppy)
    close(m.annual_volatility(series.returns, series.ppy), theirs)


def test_max_drawdown_matches_empyrical(series: Series) -> None:
    close(m.max_drawdown(series.values), empyrical.max_drawdown(series.returns))


def test_omega_matches_empyrical(series: Series) -> None:
    close(m.omega(series.returns), empyrical.omega_ratio(series.returns, annualization=series.ppy))


def test_tail_ratio_matches_empyrical(series: Series) -> None:
    close(m.tail_ratio(series.returns), empyrical.tail_ratio(series.returns))


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_historical_var_and_cvar_match_empyrical(series: Series, level: float) -> None:
    close(m.value_at_risk(series.returns, level, "historical"), empyrical.value_at_risk(series.returns, 1 - level))
    theirs = empyrical.conditional_value_at_risk(series.returns, 1 - level)
    close(m.conditional_value_at_risk(series.returns, level, "historical"), theirs)


def test_cagr_differs_from_empyrical_only_by_elapsed_time_versus_bar_count(series: Series) -> None:
    """Documented difference: our years are elapsed days / 365.25, empyrical's are returns / ppy."""
    ours = m.cagr(series.values, series.timestamps)
    their_years = series.returns.size / series.ppy
    our_years = (series.timestamps[-1] - series.timestamps[0]) / (365.25 * m.NS_PER_DAY)
    theirs = empyrical.annual_return(series.returns, annualization=series.ppy)
    close(ours, (1 + theirs) ** (their_years / our_years) - 1)


# --------------------------------------------------------------------------- quantstats


def test_sharpe_sortino_volatility_match_quantstats(series: Series) -> None:
    r, ppy = series.pd_returns, series.ppy
    close(m.sharpe(series.returns, ppy), qs_stats.sharpe(r, periods=ppy))
    close(m.sortino(series.returns, ppy), qs_stats.sortino(r, periods=ppy))
    close(m.annual_volatility(series.returns, ppy), qs_stats.volatility(r, periods=ppy))


def test_max_drawdown_omega_tail_ratio_match_quantstats(series: Series) -> None:
    r = series.pd_returns
    close(m.max_drawdown(series.values), qs_stats.max_drawdown(r))
    close(m.omega(series.returns), qs_stats.omega(r, periods=series.ppy))
    close(m.tail_ratio(series.returns), qs_stats.tail_ratio(r))


@pytest.mark.parametrize("level", [0.95, 0.99])
def test_parametric_var_and_cvar_match_quantstats(series: Series, level: float) -> None:
    r = series.pd_returns
    close(m.value_at_risk(series.returns, level, "parametric"), qs_stats.value_at_risk(r, confidence=level))
    theirs = qs_stats.conditional_value_at_risk(r, confidence=level, method="parametric")
    close(m.conditional_value_at_risk(series.returns, level, "parametric"), theirs)


def test_historical_cvar_matches_quantstats(series: Series) -> None:
    theirs = qs_stats.conditional_value_at_risk(series.pd_returns, confidence=0.95, method="historical")
    close(m.conditional_value_at_risk(series.returns, 0.95, "historical"), theirs)


def test_probabilistic_sharpe_ratio_matches_quantstats(series: Series) -> None:
    theirs = qs_stats.probabilistic_sharpe_ratio(series.pd_returns, periods=series.ppy)
    close(m.probabilistic_sharpe_ratio(series.returns), theirs)


def test_ulcer_index_differs_from_quantstats_only_by_its_divisor(series: Series) -> None:
    """Documented difference: Martin's mean over all bars; quantstats divides by (returns - 1)."""
    ours = m.ulcer_index(series.values)
    assert ours is not None
    n_bars, n_returns = series.values.size, series.returns.size
    close(ours * np.sqrt(n_bars / (n_returns - 1)), qs_stats.ulcer_index(series.pd_returns))


def test_recovery_factor_differs_from_quantstats_by_compounding(series: Series) -> None:
    """Documented difference: compounded total return; quantstats sums simple returns."""
    mdd = m.max_drawdown(series.values)
    assert mdd is not None
    close(m.recovery_factor(series.values), m.total_return(series.values) / abs(mdd))  # type: ignore[operator]
    close(float(series.returns.sum()) / abs(mdd), qs_stats.recovery_factor(series.pd_returns))


# --------------------------------------------------------------------------- trade statistics


@dataclass
class Trade:
    pnl: float


def test_trade_statistics_match_quantstats_on_real_daily_moves(shared_data: Path) -> None:
    """Each ORCL day as one trade (pnl = that day's return, flat days dropped since quantstats
    ignores zeros where we count a break-even trade): win rate, profit factor, payoff, Kelly, streaks."""
    frame = pd.read_csv(shared_data / "yahoo_YHOO_1d.csv")
    r = m.returns_from_equity(frame["close"].to_numpy(np.float64))
    index = pd.to_datetime(frame["timestamp"], utc=True)[1:]
    keep = r != 0
    pnl = pd.Series(r[keep], index=index[keep])
    book = [Trade(float(x)) for x in pnl]
    close(m.win_rate(book), qs_stats.win_rate(pnl))
    close(m.profit_factor(book), qs_stats.profit_factor(pnl))
    close(m.payoff_ratio(book), qs_stats.payoff_ratio(pnl))
    close(m.kelly_fraction(book), qs_stats.kelly_criterion(pnl))
    assert m.longest_winning_streak(book) == qs_stats.consecutive_wins(pnl)
    assert m.longest_losing_streak(book) == qs_stats.consecutive_losses(pnl)
