"""Rank several analysed results side by side, and say which Sharpe differences are noise.

Composite score: for each ranking metric, a result scores ``(N - rank) / (N - 1)`` (1 for the
best, 0 for the worst or an undefined metric; ties share their mean rank); the composite is the
mean over the metrics. Sharpe differences are tested pairwise: Jobson-Korkie with Memmel's
correction on the returns of the bars both results share (at least 30), otherwise as independent
estimates with the Mertens variance of each annualised Sharpe ratio.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from statistics import NormalDist
from typing import Any

import numpy as np

from tradeforge.analytics import metrics as m
from tradeforge.analytics.analysis import Analysis

__all__ = ["LOWER_IS_BETTER", "Comparison", "SharpeTest", "compare", "sharpe_difference_test"]

LOWER_IS_BETTER = frozenset(
    {"annual_volatility", "ulcer_index", "max_drawdown_duration", "longest_losing_streak", "n_trades"}
)
MIN_SHARED_BARS = 30
SIGNIFICANCE = 0.05
_NORMAL = NormalDist()


@dataclass(frozen=True)
class SharpeTest:
    a: str
    b: str
    sharpe_a: float | None
    sharpe_b: float | None
    z: float | None
    p_value: float | None
    method: str  # "jobson_korkie_memmel", "independent" or "undefined"

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < SIGNIFICANCE

    def to_json(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "sharpe_a": self.sharpe_a,
            "sharpe_b": self.sharpe_b,
            "z": self.z,
            "p_value": self.p_value,
            "method": self.method,
            "significant": self.significant,
        }


@dataclass
class Comparison:
    rank_by: list[str]
    names: list[str]
    analyses: list[Analysis]
    ranks: dict[str, list[float | None]]  # per metric, per result (1 = best)
    scores: list[float]
    order: list[int]  # result indices, best composite first
    sharpe_tests: list[SharpeTest]

    def to_json(self) -> dict[str, Any]:
        """README: "tradeforge compare"."""
        return {
            "schema": "tradeforge.comparison/1",
            "rank_by": self.rank_by,
            "results": [
                {
                    "rank": place + 1,
                    "name": self.names[i],
                    "source": self.analyses[i].performance.source,
                    "score": self.scores[i],
                    "ranks": {k: self.ranks[k][i] for k in self.rank_by},
                    "metrics": self.analyses[i].metrics,
                }
                for place, i in enumerate(self.order)
            ],
            "sharpe_tests": [t.to_json() for t in self.sharpe_tests],
        }


def _ranks(values: list[float | int | None], lower_is_better: bool) -> list[float | None]:
    """Rank 1 = best; ties get their mean rank; None stays unranked."""
    known = [(v if lower_is_better else -v, i) for i, v in enumerate(values) if v is not None]
    known.sort()
    out: list[float | None] = [None] * len(values)
    pos = 0
    while pos < len(known):
        end = pos
        while end + 1 < len(known) and known[end + 1][0] == known[pos][0]:
            end += 1
        for k in range(pos, end + 1):
            out[known[k][1]] = (pos + end) / 2 + 1
        pos = end + 1
    return out


def _returns_by_time(a: Analysis) -> tuple[np.ndarray, np.ndarray]:
    p = a.performance
    if p.values is None or p.timestamps is None or p.values.size < 2:
        return np.empty(0, np.int64), np.empty(0)
    return p.timestamps[1:], m.returns_from_equity(p.values)


def sharpe_difference_test(a: Analysis, b: Analysis, name_a: str, name_b: str) -> SharpeTest:
    """Two-sided test of H0: equal Sharpe ratios (see the module docstring)."""
    sa, sb = a.metrics.get("sharpe"), b.metrics.get("sharpe")
    sa_f = None if sa is None else float(sa)
    sb_f = None if sb is None else float(sb)
    ta, ra = _returns_by_time(a)
    tb, rb = _returns_by_time(b)
    shared, ia, ib = np.intersect1d(ta, tb, assume_unique=True, return_indices=True)
    if shared.size >= MIN_SHARED_BARS:
        z = _jobson_korkie_memmel(ra[ia], rb[ib])
        method = "jobson_korkie_memmel"
    else:
        z = _independent(a, b)
        method = "independent"
    if z is None:
        return SharpeTest(name_a, name_b, sa_f, sb_f, None, None, "undefined")
    return SharpeTest(name_a, name_b, sa_f, sb_f, z, 2 * (1 - _NORMAL.cdf(abs(z))), method)


def _jobson_korkie_memmel(r1: np.ndarray, r2: np.ndarray) -> float | None:
    t = r1.size
    mu1, mu2 = float(r1.mean()), float(r2.mean())
    cov = np.cov(r1, r2, ddof=1)
    v1, v2, c12 = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    if v1 <= 0 or v2 <= 0:
        return None
    s1, s2 = math.sqrt(v1), math.sqrt(v2)
    theta = (
        2 * v1 * v2
        - 2 * s1 * s2 * c12
        + 0.5 * mu1**2 * v2
        + 0.5 * mu2**2 * v1
        - mu1 * mu2 / (2 * s1 * s2) * (c12**2 + v1 * v2)
    ) / t
    numerator = s2 * mu1 - s1 * mu2
    if theta <= 1e-30:
        # Perfectly correlated records: the same Sharpe is no difference at all; another is undefined.
        return 0.0 if abs(numerator) <= 1e-15 else None
    return numerator / math.sqrt(theta)


def _independent(a: Analysis, b: Analysis) -> float | None:
    parts = []
    for x in (a, b):
        _, r = _returns_by_time(x)
        variance = m.sharpe_ratio_variance(r)
        sr = x.metrics.get("sharpe")
        if variance is None or sr is None or not x.periods_per_year:
            return None
        parts.append((float(sr), variance * x.periods_per_year))  # annualised SR: variance scales with ppy
    (s1, v1), (s2, v2) = parts
    return (s1 - s2) / math.sqrt(v1 + v2)


def compare(analyses: list[Analysis], rank_by: list[str], names: list[str] | None = None) -> Comparison:
    """Rank ``analyses`` by the composite of ``rank_by`` metrics (names from METRIC_NAMES)."""
    unknown = [k for k in rank_by if k not in m.METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(m.METRIC_NAMES)}")
    if not rank_by:
        raise ValueError("give at least one metric to rank by")
    labels = names or _unique_names(analyses)
    n = len(analyses)
    ranks = {k: _ranks([a.metrics.get(k) for a in analyses], k in LOWER_IS_BETTER) for k in rank_by}
    scores = [float(np.mean([_score(ranks[k][i], n) for k in rank_by])) for i in range(n)]
    order = sorted(range(n), key=lambda i: (-scores[i], i))
    tests = [sharpe_difference_test(analyses[i], analyses[j], labels[i], labels[j]) for i, j in combinations(order, 2)]
    return Comparison(list(rank_by), labels, analyses, ranks, scores, order, tests)


def _score(rank: float | None, n: int) -> float:
    if rank is None:
        return 0.0
    return 1.0 if n == 1 else (n - rank) / (n - 1)


def _unique_names(analyses: list[Analysis]) -> list[str]:
    names = [a.performance.name for a in analyses]
    if len(set(names)) == len(names):
        return names
    return [f"{name} ({a.performance.source})" for name, a in zip(names, analyses, strict=True)]
