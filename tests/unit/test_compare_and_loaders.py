"""Ranking and Sharpe significance (`tradeforge compare`), and the loaders' reading of user files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeforge.analytics import metrics as m
from tradeforge.analytics.analysis import Analysis, analyze
from tradeforge.analytics.compare import _ranks, compare, sharpe_difference_test
from tradeforge.analytics.loaders import Performance, from_records, load_equity_csv, load_trades
from tradeforge.resilience.errors import DataError

HOUR = 3_600 * 10**9


def curve(name: str, values: np.ndarray, start_ns: int = 1_600_000_000 * 10**9) -> Analysis:
    ts = start_ns + np.arange(values.size, dtype=np.int64) * HOUR
    return analyze(Performance(name=name, source=f"{name}.json", timestamps=ts, values=values))


@pytest.fixture(scope="module")
def btc_close(shared_data: Path) -> np.ndarray:
    return pd.read_csv(shared_data / "binance_BTC-USDT_1h.csv")["close"].to_numpy(np.float64)


def test_ranks_put_the_best_first_share_ties_and_leave_undefined_unranked():
    assert _ranks([1.0, 3.0, 2.0], lower_is_better=False) == [3.0, 1.0, 2.0]
    assert _ranks([1.0, 3.0, 3.0, None], lower_is_better=False) == [3.0, 1.5, 1.5, None]
    assert _ranks([0.2, 0.1], lower_is_better=True) == [2.0, 1.0]


def test_identical_records_have_no_significant_sharpe_difference(btc_close: np.ndarray):
    a, b = curve("a", btc_close), curve("b", btc_close.copy())
    test = sharpe_difference_test(a, b, "a", "b")
    assert test.method == "jobson_korkie_memmel"
    assert test.z == pytest.approx(0.0, abs=1e-9) and test.p_value == pytest.approx(1.0)
    assert test.significant is False


def test_a_real_edge_over_the_same_market_is_significant(btc_close: np.ndarray):
    """BTC buy-and-hold against the same hours plus 0.05 % a bar: correlated, clearly better."""
    r = m.returns_from_equity(btc_close)
    better = btc_close[0] * np.concatenate(([1.0], np.cumprod(1 + r + 0.0005)))
    test = sharpe_difference_test(curve("better", better), curve("btc", btc_close), "better", "btc")
    assert test.significant is True and test.z is not None and test.z > 0


def test_records_over_different_periods_are_tested_as_independent(btc_close: np.ndarray):
    half = btc_close.size // 2
    early, late = curve("early", btc_close[:half]), curve("late", btc_close[half:], start_ns=2_000_000_000 * 10**9)
    test = sharpe_difference_test(early, late, "early", "late")
    assert test.method == "independent" and test.p_value is not None


def test_compare_orders_by_composite_score(btc_close: np.ndarray):
    r = m.returns_from_equity(btc_close)
    better = btc_close[0] * np.concatenate(([1.0], np.cumprod(1 + r + 0.0005)))
    worse = btc_close[0] * np.concatenate(([1.0], np.cumprod(1 + r - 0.0005)))
    analyses = [curve("btc", btc_close), curve("worse", worse), curve("better", better)]
    result = compare(analyses, ["sharpe", "max_drawdown"])
    assert [result.names[i] for i in result.order] == ["better", "btc", "worse"]
    assert result.scores[2] == 1.0 and result.scores[1] == 0.0
    with pytest.raises(ValueError, match="unknown metric"):
        compare(analyses, ["sharpness"])


# --------------------------------------------------------------------------- loaders


def test_equity_csv_accepts_epoch_milliseconds_and_offsets(tmp_path: Path):
    (tmp_path / "ms.csv").write_text("timestamp,equity\n1704067200000,100\n1704153600000,101.5\n")
    (tmp_path / "tz.csv").write_text("timestamp,equity\n2024-01-01T01:00:00+01:00,100\n2024-01-02T00:00:00Z,101.5\n")
    a, b = load_equity_csv(tmp_path / "ms.csv"), load_equity_csv(tmp_path / "tz.csv")
    assert a.timestamps is not None and b.timestamps is not None
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    assert a.values is not None and a.values.tolist() == [100.0, 101.5]
    assert a.trades_known is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("timestamp,equity\n", "no data rows"),
        ("timestamp,equity\n2024-01-01,100\n2024-01-01,101\n", "x.csv:3: timestamp is not after"),
        ("timestamp,equity\n2024-01-01,100\n2024-01-02,nan\n", "x.csv:3 equity: expected a finite number"),
        ("timestamp,equity\n2024-01-01,100\n2024-01-02\n", "x.csv:3: expected 2 columns"),
    ],
)
def test_equity_csv_errors_name_the_line(tmp_path: Path, text: str, message: str):
    (tmp_path / "x.csv").write_text(text)
    with pytest.raises(DataError, match=message):
        load_equity_csv(tmp_path / "x.csv")


def test_trades_file_takes_a_list_or_a_result_and_skips_open_trades(tmp_path: Path):
    (tmp_path / "t.json").write_text(
        '{"trades": [{"pnl": 2, "exit_time": "2024-01-03T00:00:00Z"}, {"pnl": -1, "exit_time": "2024-01-02T00:00:00Z"},'
        ' {"pnl": null, "exit_reason": "open"}]}'
    )
    perf = load_trades(tmp_path / "t.json")
    assert [t["pnl"] for t in perf.trades] == [-1.0, 2.0]  # in exit order
    (tmp_path / "bad.json").write_text('[{"pnl": 1, "entry_time": "2024-01-02", "exit_time": "2024-01-01"}]')
    with pytest.raises(DataError, match=r"trades\[0\]: exit_time .* is before entry_time"):
        load_trades(tmp_path / "bad.json")


def test_records_from_a_bot_are_validated_like_files():
    perf = from_records(
        "bot",
        "bot db",
        [{"pnl": 1.0, "exit_reason": "signal"}, {"pnl": None, "exit_reason": "open"}],
        [("2024-01-01T00:00:00+00:00", 100.0), ("2024-01-01T01:00:00+00:00", 101.0)],
        100.0,
    )
    assert len(perf.trades) == 1 and len(perf.open_trades) == 1
    with pytest.raises(DataError, match="equity"):
        from_records("bot", "bot db", [], [("2024-01-01T01:00:00Z", 1.0), ("2024-01-01T00:00:00Z", 1.0)])
