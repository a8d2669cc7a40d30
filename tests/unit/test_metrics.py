"""Specification of the backtest summary metrics: hand-computed examples, degenerate inputs, real data."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from tradeforge.analytics import metrics as m

DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
DAY = timedelta(days=1)
YEAR = timedelta(days=365.25)
T0 = datetime(2024, 1, 1, tzinfo=UTC)  # a Monday


def ns(*times: datetime) -> np.ndarray:
    return np.array([int(t.timestamp()) * 10**9 for t in times], dtype=np.int64)


def spaced(start: datetime, step: timedelta, n: int) -> np.ndarray:
    return ns(*(start + i * step for i in range(n)))


@dataclass
class Trade:
    pnl: float
    pnl_pct: float
    entry_time: datetime = T0
    exit_time: datetime = T0 + DAY


def trades(*pnls: float) -> list[Trade]:
    return [Trade(p, p / 1000) for p in pnls]


# --------------------------------------------------------------------------- equity curve


def test_returns_from_equity_are_simple_per_bar_returns():
    r = m.returns_from_equity(np.array([100.0, 110.0, 99.0]))
    np.testing.assert_allclose(r, [110 / 100 - 1, 99 / 110 - 1])


def test_returns_from_equity_of_one_point_is_empty_and_a_zero_base_gives_zero_not_inf():
    assert m.returns_from_equity(np.array([100.0])).size == 0
    np.testing.assert_array_equal(m.returns_from_equity(np.array([100.0, 0.0, 0.0])), [-1.0, 0.0])


def test_total_return_is_last_over_first_minus_one():
    assert m.total_return(np.array([100.0, 80.0, 120.0])) == pytest.approx(0.2)
    assert m.total_return(np.array([100.0])) == 0.0
    assert m.total_return(np.array([])) is None


def test_cagr_compounds_over_elapsed_years_of_365_25_days():
    # 100 -> 121 in two years: (1.21) ** (1/2) - 1 = 0.10
    assert m.cagr(np.array([100.0, 90.0, 121.0]), ns(T0, T0 + YEAR, T0 + 2 * YEAR)) == pytest.approx(0.10)
    # 100 -> 110 in half a year: 1.1 ** 2 - 1 = 0.21
    assert m.cagr(np.array([100.0, 110.0]), ns(T0, T0 + YEAR / 2)) == pytest.approx(0.21)


def test_cagr_is_undefined_under_one_day_or_one_point_and_minus_one_when_wiped_out():
    assert m.cagr(np.array([100.0, 101.0]), ns(T0, T0 + timedelta(hours=23))) is None
    assert m.cagr(np.array([100.0]), ns(T0)) is None
    assert m.cagr(np.array([100.0, 0.0]), ns(T0, T0 + YEAR)) == -1.0


def test_drawdown_series_is_distance_below_running_peak():
    dd = m.drawdown_series(np.array([100.0, 120.0, 90.0, 130.0, 117.0]))
    np.testing.assert_allclose(dd, [0.0, 0.0, 90 / 120 - 1, 0.0, 117 / 130 - 1])


def test_max_drawdown_is_deepest_negative_fraction():
    assert m.max_drawdown(np.array([100.0, 120.0, 90.0, 130.0, 117.0])) == pytest.approx(-0.25)


def test_max_drawdown_is_zero_for_monotone_constant_and_single_point_equity():
    assert m.max_drawdown(np.array([1.0, 2.0, 3.0])) == 0.0
    assert m.max_drawdown(np.full(5, 100.0)) == 0.0
    assert m.max_drawdown(np.array([100.0])) == 0.0
    assert m.max_drawdown(np.array([])) is None


def test_calmar_is_cagr_over_absolute_max_drawdown():
    # cagr over 2 years 100 -> 121 = 0.10; max drawdown 100 -> 80 = -0.20; calmar = 0.5
    assert m.calmar(np.array([100.0, 80.0, 121.0]), ns(T0, T0 + YEAR, T0 + 2 * YEAR)) == pytest.approx(0.5)


def test_calmar_is_undefined_without_drawdown():
    assert m.calmar(np.array([100.0, 110.0, 121.0]), ns(T0, T0 + YEAR, T0 + 2 * YEAR)) is None


# --------------------------------------------------------------------------- periods per year


def test_periods_per_year_for_24_7_hourly_and_daily_bars():
    assert m.periods_per_year(spaced(T0, timedelta(hours=1), 24 * 14)) == pytest.approx(8760)
    assert m.periods_per_year(spaced(T0, DAY, 30)) == pytest.approx(365)


def test_periods_per_year_for_weekday_only_daily_bars_is_252():
    weekdays = [T0 + i * DAY for i in range(60) if (T0 + i * DAY).weekday() < 5]
    assert m.periods_per_year(ns(*weekdays)) == 252


def test_periods_per_year_for_weekday_intraday_is_252_times_bars_per_session():
    # 09:30-16:00 in 5-minute bars = 78 bars a session; one half-day must not move the median
    bars = []
    for d in range(21):
        day = T0 + d * DAY
        if day.weekday() >= 5:
            continue
        n = 42 if d == 3 else 78
        bars += [day + timedelta(hours=9, minutes=30 + 5 * i) for i in range(n)]
    assert m.periods_per_year(ns(*bars)) == 252 * 78


def test_periods_per_year_honours_an_explicit_calendar():
    weekdays = [T0 + i * DAY for i in range(60) if (T0 + i * DAY).weekday() < 5]
    assert m.periods_per_year(ns(*weekdays), calendar="24/7") == pytest.approx(365)
    assert m.periods_per_year(spaced(T0, DAY, 30), calendar="trading") == 252
    with pytest.raises(ValueError, match="calendar"):
        m.periods_per_year(spaced(T0, DAY, 30), calendar="nyse")  # type: ignore[arg-type]


def test_periods_per_year_for_weekly_bars_is_year_over_week():
    assert m.periods_per_year(spaced(T0, 7 * DAY, 20)) == pytest.approx(365.25 / 7)


def test_periods_per_year_is_undefined_for_a_single_timestamp():
    assert m.periods_per_year(ns(T0)) is None
    assert m.periods_per_year(ns(T0, T0)) is None


def test_periods_per_year_accepts_datetime64_arrays():
    ts = np.arange(np.datetime64("2024-01-01T00:00"), np.datetime64("2024-01-08T00:00"), np.timedelta64(1, "h"))
    assert m.periods_per_year(ts) == pytest.approx(8760)


# --------------------------------------------------------------------------- return statistics


def test_annual_volatility_is_sample_std_times_sqrt_periods():
    # r = [0.01, 0.03]: mean 0.02, sample std = sqrt(2 * 0.01**2 / 1) = 0.01 * sqrt(2)
    assert m.annual_volatility(np.array([0.01, 0.03]), 4) == pytest.approx(0.01 * math.sqrt(2) * 2)
    assert m.annual_volatility(np.zeros(3), 4) == 0.0
    assert m.annual_volatility(np.array([0.01]), 4) is None


def test_sharpe_is_mean_over_sample_std_annualised():
    # 0.02 / (0.01 * sqrt(2)) * sqrt(4) = 2 * sqrt(2)
    assert m.sharpe(np.array([0.01, 0.03]), 4) == pytest.approx(2 * math.sqrt(2))


def test_sharpe_subtracts_the_annual_risk_free_rate_compounded_per_bar():
    # rf per bar = 1.01 ** 4 ** (1/4) - 1 = 0.01; excess [0, 0.02]: 0.01 / (0.01 * sqrt(2)) * 2 = sqrt(2)
    assert m.sharpe(np.array([0.01, 0.03]), 4, risk_free=1.01**4 - 1) == pytest.approx(math.sqrt(2))


def test_sharpe_is_undefined_for_flat_returns_or_fewer_than_two_points():
    assert m.sharpe(np.zeros(10), 252) is None
    assert m.sharpe(np.full(10, 0.001), 252) is None
    assert m.sharpe(np.array([0.01]), 252) is None
    # constant compounding growth: returns differ only by rounding noise
    assert m.sharpe(m.returns_from_equity(100 * 1.01 ** np.arange(50)), 252) is None


def test_sortino_uses_downside_deviation_over_all_bars():
    # r = [0.02, -0.01, 0.03, -0.02]: mean 0.005; downside = sqrt((0.01**2 + 0.02**2) / 4) = 0.005 * sqrt(5)
    # sortino = 0.005 / (0.005 * sqrt(5)) * sqrt(4) = 2 / sqrt(5)
    assert m.sortino(np.array([0.02, -0.01, 0.03, -0.02]), 4) == pytest.approx(2 / math.sqrt(5))


def test_sortino_is_undefined_without_any_losing_bar():
    assert m.sortino(np.array([0.01, 0.02, 0.0]), 252) is None
    assert m.sortino(np.zeros(5), 252) is None
    assert m.sortino(np.array([]), 252) is None


# --------------------------------------------------------------------------- trades and positions


def test_trade_metrics_on_a_mixed_book():
    book = trades(100.0, -50.0, 30.0, -20.0, 0.0)
    assert m.win_rate(book) == pytest.approx(2 / 5)  # break-even is not a win
    assert m.profit_factor(book) == pytest.approx(130 / 70)
    assert m.expectancy(book) == pytest.approx(60 / 5)


def test_trade_metrics_accept_mappings():
    book = [{"pnl": 10.0, "pnl_pct": 0.01}, {"pnl": -5.0, "pnl_pct": -0.005}]
    assert (m.win_rate(book), m.profit_factor(book), m.expectancy(book)) == pytest.approx((0.5, 2.0, 2.5))


def test_trade_metrics_with_no_trades_are_undefined():
    assert m.win_rate([]) is None
    assert m.profit_factor([]) is None
    assert m.expectancy([]) is None


def test_trade_metrics_with_all_losses():
    book = trades(-10.0, -30.0)
    assert m.win_rate(book) == 0.0
    assert m.profit_factor(book) == 0.0
    assert m.expectancy(book) == pytest.approx(-20.0)


def test_trade_metrics_with_all_wins_have_no_profit_factor():
    book = trades(10.0, 30.0)
    assert m.win_rate(book) == 1.0
    assert m.profit_factor(book) is None
    assert m.expectancy(book) == pytest.approx(20.0)


def test_exposure_is_fraction_of_bars_in_market():
    assert m.exposure(np.array([True, False, True, True])) == 0.75
    assert m.exposure(np.zeros(3, dtype=bool)) == 0.0
    assert m.exposure(np.array([], dtype=bool)) is None


# --------------------------------------------------------------------------- summary

SUMMARY_KEYS = [
    "total_return", "cagr", "sharpe", "sortino", "max_drawdown", "n_trades", "win_rate",
    "profit_factor", "exposure", "calmar", "annual_volatility", "expectancy",
]  # fmt: skip


def test_summary_has_the_documented_keys_in_order_as_plain_python_numbers():
    values = np.array([100.0, 80.0, 121.0])
    ts = ns(T0, T0 + YEAR, T0 + 2 * YEAR)
    s = m.summary(values, ts, trades(30.0, -9.0), np.array([False, True, True]), periods=4)
    assert list(s) == SUMMARY_KEYS
    assert all(v is None or type(v) in (float, int) for v in s.values())
    r = [80 / 100 - 1, 121 / 80 - 1]
    mean, sd = sum(r) / 2, math.sqrt(sum((x - sum(r) / 2) ** 2 for x in r))
    assert s == pytest.approx(
        {
            "total_return": 0.21,
            "cagr": 0.10,
            "sharpe": mean / sd * 2,
            "sortino": mean / math.sqrt(0.2**2 / 2) * 2,
            "max_drawdown": -0.2,
            "n_trades": 2,
            "win_rate": 0.5,
            "profit_factor": 30 / 9,
            "exposure": 2 / 3,
            "calmar": 0.5,
            "annual_volatility": sd * 2,
            "expectancy": 10.5,
        }
    )
    assert type(s["n_trades"]) is int


def test_summary_of_constant_equity_without_trades_never_divides_by_zero():
    s = m.summary(np.full(48, 1000.0), spaced(T0, timedelta(hours=1), 48), [], np.zeros(48, dtype=bool))
    assert s == {
        "total_return": 0.0,
        "cagr": 0.0,
        "sharpe": None,
        "sortino": None,
        "max_drawdown": 0.0,
        "n_trades": 0,
        "win_rate": None,
        "profit_factor": None,
        "exposure": 0.0,
        "calmar": None,
        "annual_volatility": 0.0,
        "expectancy": None,
    }


def test_summary_of_a_single_bar_is_mostly_undefined():
    s = m.summary(np.array([1000.0]), ns(T0), [], np.array([False]))
    assert s["total_return"] == 0.0 and s["max_drawdown"] == 0.0 and s["n_trades"] == 0
    assert all(s[k] is None for k in ("cagr", "sharpe", "sortino", "calmar", "annual_volatility"))


def test_summary_rejects_mismatched_equity_and_timestamps():
    with pytest.raises(ValueError, match="timestamps"):
        m.summary(np.array([1.0, 2.0]), ns(T0), [], np.array([True, True]))


# --------------------------------------------------------------------------- real data


def load_candles(name: str) -> tuple[np.ndarray, np.ndarray]:
    path = DATA_DIR / name
    if not path.exists():
        pytest.skip(f"real market data {path} is absent (see shared/data/README.md)")
    pd = pytest.importorskip("pandas")
    frame = pd.read_csv(path)
    ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"], utc=True)).as_unit("ns").asi8
    return np.asarray(ts, dtype=np.int64), frame["close"].to_numpy(dtype=np.float64)


def test_buy_and_hold_btc_1h_matches_brute_force():
    ts, close = load_candles("binance_BTC-USDT_1h.csv")
    values = 10_000.0 * close / close[0]  # buy and hold, fully invested, no fees
    assert m.periods_per_year(ts) == pytest.approx(8760)
    assert m.total_return(values) == pytest.approx(close[-1] / close[0] - 1, rel=1e-12)
    peak, worst = -math.inf, 0.0
    for v in values.tolist():
        peak = max(peak, v)
        worst = min(worst, v / peak - 1)
    assert m.max_drawdown(values) == pytest.approx(worst, rel=1e-12)
    s = m.summary(values, ts, [], np.ones(values.size, dtype=bool))
    assert list(s) == SUMMARY_KEYS and s["exposure"] == 1.0
    assert s["sharpe"] is not None and math.isfinite(s["sharpe"])


def test_yahoo_orcl_daily_is_252_periods_a_year():
    ts, _ = load_candles("yahoo_ORCL_1d.csv")
    assert m.periods_per_year(ts) == 252


def test_backtrader_5m_weekday_session_is_252_times_bars_per_day():
    ts, _ = load_candles("backtrader_2006-min-005_5m.csv")
    assert m.periods_per_year(ts) == 252 * 102  # 08:00-16:25 in 5-minute bars
