"""Objectives: built-in metrics are maximised (drawdown is negative, so the shallowest wins), SQN is
computed from closed trades, and a misspelt or unimportable objective is a config error."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from tradeforge.optimize.objectives import resolve, resolve_all, sqn
from tradeforge.resilience.errors import ConfigError


def trades(*pnls: float) -> list[SimpleNamespace]:
    return [SimpleNamespace(pnl=p) for p in pnls]


def test_sqn_is_root_n_times_mean_over_standard_deviation_of_trade_pnl() -> None:
    pnls = (10.0, -5.0, 20.0, 3.0)
    mean = sum(pnls) / 4
    sd = math.sqrt(sum((p - mean) ** 2 for p in pnls) / 3)
    assert sqn(trades(*pnls)) == pytest.approx(2 * mean / sd)
    assert sqn(trades(5.0)) is None and sqn(trades(1.0, 1.0)) is None


def test_metric_objectives_read_the_backtest_metrics_and_are_maximised() -> None:
    result = SimpleNamespace(metrics={"sharpe": 1.5, "max_drawdown": -0.2, "calmar": None}, trades=trades(1, 2, 3))
    assert resolve("sharpe").score(result) == 1.5
    drawdown = resolve("max_drawdown")
    assert drawdown.direction == "maximize" and drawdown.score(result) == -0.2
    assert resolve("calmar").score(result) is None
    assert resolve("sqn").score(result) == pytest.approx(sqn(result.trades))


def test_unknown_duplicate_and_unimportable_objectives_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="unknown objective; use one of sharpe"):
        resolve("sharpe_ratio")
    with pytest.raises(ConfigError, match="listed twice"):
        resolve_all(["sharpe", "sharpe"])
    with pytest.raises(ConfigError, match="cannot import"):
        resolve("no_such_module_xyz:score")
    with pytest.raises(ConfigError, match="not a function"):
        resolve("math:pi")
