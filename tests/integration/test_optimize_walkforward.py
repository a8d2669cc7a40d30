"""Walk-forward splits and the hold-out never leak future data: every test window starts where its
train window ends, the hold-out comes after everything the optimizer sees, and the candles a trial is
scored on lie inside its windows."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from tradeforge.analytics.metrics import deflated_sharpe_ratio, expected_max_sharpe, probabilistic_sharpe_ratio
from tradeforge.engine.optimization import BacktestEvaluator, StudyRequest, study_document
from tradeforge.optimize.walkforward import Window, plan

HOUR = 3_600 * 10**9


def hours(n: int) -> np.ndarray:
    return np.arange(n, dtype=np.int64) * HOUR


def test_anchored_folds_have_exact_boundaries() -> None:
    p = plan(hours(100), folds=3, mode="anchored", holdout=0.2)
    assert p.search == Window(0, 80 * HOUR)
    assert p.holdout == Window(80 * HOUR, 99 * HOUR + 1)
    assert [(f.train.start, f.train.end, f.test.start, f.test.end) for f in p.folds] == [
        (0, 20 * HOUR, 20 * HOUR, 40 * HOUR),
        (0, 40 * HOUR, 40 * HOUR, 60 * HOUR),
        (0, 60 * HOUR, 60 * HOUR, 80 * HOUR),
    ]


def test_rolling_folds_train_on_the_previous_chunk_only() -> None:
    p = plan(hours(90), folds=2, mode="rolling")
    assert p.holdout is None
    assert [(f.train, f.test) for f in p.folds] == [
        (Window(0, 30 * HOUR), Window(30 * HOUR, 60 * HOUR)),
        (Window(30 * HOUR, 60 * HOUR), Window(60 * HOUR, 89 * HOUR + 1)),
    ]


@pytest.mark.parametrize("mode", ["anchored", "rolling"])
@pytest.mark.parametrize(("n", "folds", "holdout"), [(1000, 5, 0.2), (257, 4, 0.0), (50, 1, 0.3)])
def test_no_window_sees_bars_after_it(mode: str, n: int, folds: int, holdout: float) -> None:
    times = np.cumsum(np.random.default_rng(n).integers(1, 5, n)).astype(np.int64) * HOUR
    p = plan(times, folds=folds, mode=mode, holdout=holdout)  # type: ignore[arg-type]
    for fold in p.folds:
        assert fold.train.end == fold.test.start  # train strictly before test, nothing shared
        assert p.search.contains(fold.train) and p.search.contains(fold.test)
    tests = [f.test for f in p.folds]
    assert all(a.end == b.start for a, b in itertools.pairwise(tests))  # test windows tile forward
    if p.holdout is not None:
        assert p.holdout.start == p.search.end and p.holdout.end > times[-1]
        assert np.count_nonzero(times >= p.holdout.start) == round(n * holdout)


def test_too_little_data_is_refused() -> None:
    with pytest.raises(ValueError, match="too few"):
        plan(hours(7), folds=5)


def test_evaluator_scores_trials_only_on_candles_inside_their_windows(tmp_path: Path) -> None:
    config = tmp_path / "bot.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "sample", "timeframe": "1h", "start": "2023-01-01", "end": "2023-03-01"},
                "strategy": {"preset": "sma_cross"},
                "optimize": {"walk_forward": 3, "holdout": "25%", "space": {"percent_equity": False}},
            }
        )
    )
    evaluator = BacktestEvaluator(study_document(StudyRequest(configs=[config])))
    p = evaluator.plan
    assert p.holdout is not None
    assert int(evaluator.search[0].timestamp[-1]) < p.holdout.start
    for fold, candles in zip(p.folds, evaluator.tests, strict=True):
        ts = candles[0].timestamp
        assert fold.test.start <= ts[0] and ts[-1] < fold.test.end
        assert ts[-1] < p.holdout.start
    assert len(evaluator.tests) == 3


def test_expected_maximum_sharpe_matches_the_maximum_of_normal_draws() -> None:
    draws = np.random.default_rng(3).standard_normal((20_000, 100)).max(axis=1).mean()
    assert expected_max_sharpe(100, 1.0) == pytest.approx(draws, rel=0.02)
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_deflated_sharpe_is_the_probabilistic_sharpe_against_the_luck_of_n_trials() -> None:
    returns = np.random.default_rng(5).normal(0.0005, 0.01, 2_000)
    sr = returns.mean() / returns.std(ddof=1)
    z = (returns - returns.mean()) / returns.std()
    skew, kurt = float(np.mean(z**3)), float(np.mean(z**4))
    psr = 0.5 * (1 + math.erf(sr * math.sqrt(1999) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2) / math.sqrt(2)))
    assert probabilistic_sharpe_ratio(returns) == pytest.approx(psr, rel=1e-3)  # what one trial would score
    trials = [*np.random.default_rng(6).normal(0, 0.03, 200), sr]
    many = deflated_sharpe_ratio(returns, len(trials), float(np.var(trials, ddof=1)))
    assert psr > 0.9
    assert many is not None and many < 0.5  # the best of 200 noisy trials: no longer convincing
    assert deflated_sharpe_ratio(np.zeros(10), 5, 0.01) is None
