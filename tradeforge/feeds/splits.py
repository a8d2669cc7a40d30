"""Stock splits a running bot went through, kept next to its own candle history.

A bot's stored candles are what it received: those before a split on the old basis, those after on the new
one. The split itself is stored beside them (`<symbol>_<timeframe>.splits.json`), as the open time of the
first candle on the new basis and the ratio, so that a restart re-reading the history applies it at the same
candle in the same way (engine/splits.py). Written before the candles that follow it: a crash in between
leaves a split whose candle is fetched again, never a candle without its split. Such a split (or one noted by
a start whose back-fill was not kept) may be noted again at another candle, Yahoo serving other candles the
next time: it is the same Yahoo split event, so the new note replaces the old one, and it is applied once.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tradeforge.feeds.store import CandleStore
from tradeforge.resilience.errors import DataError


@dataclass(frozen=True, order=True)
class Split:
    """`ratio` new shares per old one (4.0 for 4:1), from the candle opened at `candle_ns` on; `event_ns` is
    Yahoo's date of the split (None in files written before it was kept), which tells a split noted twice."""

    candle_ns: int
    ratio: float
    event_ns: int | None = field(default=None, compare=False)

    def same_event(self, other: Split) -> bool:
        """Both notes of the one Yahoo split (same date, same ratio), whatever candle each was noted at."""
        return self.event_ns is not None and (self.event_ns, self.ratio) == (other.event_ns, other.ratio)


class SplitLog:
    """The splits of one symbol's candle file, oldest first (in memory only without a `path`)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.splits: list[Split] = self._read()

    @classmethod
    def beside(cls, store: CandleStore, folder: str, symbol: str, timeframe: str) -> SplitLog:
        """The splits stored next to a candle file of `store`."""
        candles = store.path_for(folder, symbol, timeframe)
        return cls(candles.with_name(candles.name.removesuffix(".parquet") + ".splits.json"))

    def _read(self) -> list[Split]:
        if self.path is None or not self.path.is_file():
            return []
        try:
            rows = json.loads(self.path.read_text())
            return sorted(
                Split(int(row["candle_ns"]), float(row["ratio"]), _ns_or_none(row.get("event_ns"))) for row in rows
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{self.path}: cannot read the stored splits: {exc}") from exc

    def add(self, split: Split) -> None:
        """Store one more split (atomically: the old file stays whole until the new one replaces it). The same
        Yahoo split noted before at another candle (whose candles were not kept) is replaced, not added."""
        if split in self.splits:
            return
        self.splits = sorted([*(s for s in self.splits if not split.same_event(s)), split])
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                json.dump(
                    [{"candle_ns": s.candle_ns, "ratio": s.ratio, "event_ns": s.event_ns} for s in self.splits], out
                )
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _ns_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def rebase_lines(lines: Any, ratio: float) -> None:
    """Backtrader lines of a feed re-based at a split, once its first candle on the new basis is the current
    one: the candles before it get prices divided by `ratio` and volumes multiplied by it, so that indicators
    read a continuous history instead of a crash. Only those before the current index: with several feeds,
    Backtrader may have loaded a later candle already and rewound (it waits for the others)."""
    for name in ("open", "high", "low", "close", "volume"):
        line = getattr(lines, name)
        view = np.frombuffer(line.array, dtype=np.float64)
        if name == "volume":
            view[: line.idx] *= ratio
        else:
            view[: line.idx] /= ratio
        del view  # the buffer may grow again only once no view holds it
