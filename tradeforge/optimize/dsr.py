"""The deflated Sharpe ratio (Bailey & López de Prado, 2014): how likely the best of N trials has a
true Sharpe above zero, after allowing for the best of N being the maximum of N noisy estimates."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """SR0 = sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e))): the Sharpe the best of N
    unskilled trials reaches by luck (V: variance of the trials' Sharpe ratios, γ: Euler's constant)."""
    if n_trials < 2 or sharpe_variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(sharpe_variance) * (
        (1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n) + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e))
    )


def deflated_sharpe_ratio(returns: np.ndarray, trial_sharpes: Sequence[float]) -> float | None:
    """DSR = Φ( (SR - SR0) sqrt(T - 1) / sqrt(1 - γ3 SR + (γ4 - 1)/4 SR²) ).

    `returns` are the best trial's per-bar returns (T of them; SR, skewness γ3 and kurtosis γ4 — not
    excess — are taken from them, SR not annualised); `trial_sharpes` are every trial's per-bar
    (not annualised) Sharpe ratios, the best one included, giving N and V for SR0. A probability in
    [0, 1]; None when the returns do not vary or are fewer than 3."""
    r = np.asarray(returns, dtype=np.float64)
    if r.size < 3:
        return None
    sd = float(np.std(r, ddof=1))
    if sd <= 1e-12:
        return None
    sr = float(np.mean(r)) / sd
    z = (r - r.mean()) / float(np.std(r))
    skew = float(np.mean(z**3))
    kurt = float(np.mean(z**4))
    sharpes = np.asarray([s for s in trial_sharpes if s is not None and math.isfinite(s)], dtype=np.float64)
    variance = float(np.var(sharpes, ddof=1)) if sharpes.size > 1 else 0.0
    sr0 = expected_max_sharpe(int(sharpes.size), variance)
    denominator = 1 - skew * sr + (kurt - 1) / 4 * sr**2
    if denominator <= 0:
        return None
    return _N.cdf((sr - sr0) * math.sqrt(r.size - 1) / math.sqrt(denominator))
