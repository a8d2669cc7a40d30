"""The splits stored beside a bot's candle file (feeds/splits.py): one Yahoo split is stored once, whatever
candle it was first noted at, and files written before Yahoo's split date was kept still read."""

from __future__ import annotations

import json
from pathlib import Path

from tradeforge.feeds.splits import Split, SplitLog

DAY = 86_400 * 10**9
EVENT = 1_598_832_000 * 10**9  # 31 August 2020, Yahoo's date of AAPL's 4:1 split


def test_the_same_yahoo_split_noted_at_another_candle_replaces_the_first_note(tmp_path: Path) -> None:
    path = tmp_path / "AAPL_1d.splits.json"
    log = SplitLog(path)
    log.add(Split(EVENT + DAY, 4.0, EVENT))  # a start whose candles were not kept: no split-day candle
    log.add(Split(EVENT, 4.0, EVENT))  # the next start, Yahoo serving the split-day candle again
    log.add(Split(EVENT, 4.0, EVENT))
    assert SplitLog(path).splits == log.splits == [Split(EVENT, 4.0, EVENT)]


def test_another_split_is_kept_beside_it(tmp_path: Path) -> None:
    log = SplitLog(tmp_path / "AAPL_1d.splits.json")
    log.add(Split(EVENT, 4.0, EVENT))
    log.add(Split(EVENT + 300 * DAY, 2.0, EVENT + 300 * DAY))
    assert [s.ratio for s in SplitLog(log.path).splits] == [4.0, 2.0]


def test_a_file_without_yahoo_split_dates_still_reads(tmp_path: Path) -> None:
    path = tmp_path / "AAPL_1d.splits.json"
    path.write_text(json.dumps([{"candle_ns": EVENT, "ratio": 4.0}]))
    (split,) = SplitLog(path).splits
    assert (split.candle_ns, split.ratio, split.event_ns) == (EVENT, 4.0, None)
