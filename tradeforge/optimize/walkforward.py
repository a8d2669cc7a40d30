"""Time splits for a study: the hold-out period at the end (never shown to the optimizer) and the
walk-forward folds over what is left, each an in-sample (train) window followed by an out-of-sample
(test) window. Windows are half-open [start, end) in UTC nanoseconds, so no bar is in two of them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

Mode = Literal["anchored", "rolling"]


@dataclass(frozen=True)
class Window:
    """Bars whose open time t satisfies start <= t < end (int64 UTC nanoseconds)."""

    start: int
    end: int

    def contains(self, other: Window) -> bool:
        return self.start <= other.start and other.end <= self.end


@dataclass(frozen=True)
class Fold:
    index: int
    train: Window
    test: Window


@dataclass(frozen=True)
class Plan:
    """What the optimizer may see (`search`), how it scores (`folds`, empty: the whole search window),
    and the hold-out window after it (None when no hold-out)."""

    search: Window
    folds: tuple[Fold, ...]
    holdout: Window | None


def plan(timestamps: np.ndarray, folds: int = 0, mode: Mode = "anchored", holdout: float = 0.0) -> Plan:
    """Split bar open times (sorted int64 ns) into the search window, its folds and the hold-out.

    The last `holdout` fraction of bars is the hold-out. With `folds` = K > 0 the search window is cut
    into K + 1 chunks of equal bar count; fold i (1..K) tests on chunk i and trains on chunks 0..i-1
    (anchored) or on chunk i-1 only (rolling). A test window always starts where its train window ends.
    """
    ts = np.asarray(timestamps, dtype=np.int64)
    n = int(ts.size)
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be a fraction in [0, 1), got {holdout}")
    n_hold = round(n * holdout)
    n_search = n - n_hold
    if n_search < 2 * (folds + 1) or (holdout and n_hold < 2):
        raise ValueError(
            f"{n} bars are too few for {folds} walk-forward folds and a {holdout:.0%} hold-out"
            " (each window needs at least 2 bars)"
        )
    end_of_data = int(ts[-1]) + 1

    def edge(i: int) -> int:  # the open time of bar i, or just past the last bar
        return int(ts[i]) if i < n else end_of_data

    search = Window(edge(0), edge(n_search))
    hold = Window(edge(n_search), end_of_data) if n_hold else None
    if folds <= 0:
        return Plan(search, (), hold)
    cuts = [round(n_search * j / (folds + 1)) for j in range(folds + 2)]
    made = []
    for i in range(1, folds + 1):
        train_from = cuts[0] if mode == "anchored" else cuts[i - 1]
        made.append(Fold(i, Window(edge(train_from), edge(cuts[i])), Window(edge(cuts[i]), edge(cuts[i + 1]))))
    return Plan(search, tuple(made), hold)
