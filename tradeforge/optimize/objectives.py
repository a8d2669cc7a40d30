"""What a study maximises: a named backtest metric, or `module:function` of the backtest result.

Every built-in objective is maximised. `max_drawdown` is a negative fraction (-0.2 = 20 % below the
peak), so maximising it means the shallowest drawdown. A custom function is maximised unless it has
an attribute `direction = "minimize"`; it gets the engine's BacktestResult and returns a float or
None (None rejects the trial)."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from tradeforge.resilience.errors import ConfigError, Problem

Direction = Literal["maximize", "minimize"]
METRIC_OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "profit_factor", "max_drawdown", "cagr")


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction
    score: Callable[[Any], float | None]  # BacktestResult -> value, None when undefined


def sqn(trades: list[Any]) -> float | None:
    """System quality number: sqrt(n) * mean(pnl) / std(pnl) over closed trades (Van Tharp)."""
    pnls = np.asarray([float(t.pnl) for t in trades], dtype=np.float64)
    if pnls.size < 2:
        return None
    sd = float(np.std(pnls, ddof=1))
    if sd <= 1e-12:
        return None
    return math.sqrt(pnls.size) * float(np.mean(pnls)) / sd


def _metric(name: str) -> Callable[[Any], float | None]:
    def score(result: Any) -> float | None:
        value = result.metrics.get(name)
        return None if value is None else float(value)

    return score


def resolve(name: str, where: str = "--objective") -> Objective:
    """The objective `name` stands for; ConfigError naming the choices when there is none."""
    if name in METRIC_OBJECTIVES:
        return Objective(name, "maximize", _metric(name))
    if name == "sqn":
        return Objective(name, "maximize", lambda result: sqn(result.trades))
    module_name, _, attr = name.partition(":")
    if not module_name or not attr:
        known = ", ".join((*METRIC_OBJECTIVES, "sqn"))
        raise ConfigError([Problem(where, f"unknown objective; use one of {known} or 'module:function'", name)])
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([Problem(where, f"cannot import the objective function: {exc}", name)]) from None
    if not callable(function):
        raise ConfigError([Problem(where, "not a function", name)])
    direction: Any = getattr(function, "direction", "maximize")
    if direction not in ("maximize", "minimize"):
        raise ConfigError([Problem(where, f"direction attribute must be maximize or minimize, not {direction!r}")])
    return Objective(name, direction, function)


def resolve_all(names: list[str], where: str = "--objective") -> list[Objective]:
    if not names:
        raise ConfigError([Problem(where, "give at least one objective")])
    if len(set(names)) != len(names):
        raise ConfigError([Problem(where, "an objective is listed twice", names)])
    return [resolve(name, where) for name in names]
