"""Specification of candle files: reading, validation, repair, resampling and gaps."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tradeforge.feeds.candles import Candles, Gap, find_gaps, read_candles
from tradeforge.feeds.timeframes import TIMEFRAMES, pandas_freq, timeframe_seconds
from tradeforge.resilience.errors import DataError

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
HEADER = "timestamp,open,high,low,close,volume"
GOOD_ROWS = [
    "2023-01-01T00:00:00Z,100.0,110.0,95.0,105.0,1.5",
    "2023-01-01T01:00:00Z,105.0,108.0,101.0,102.0,2.0",
    "2023-01-01T02:00:00Z,102.0,104.0,99.0,103.0,0.0",
    "2023-01-01T03:00:00Z,103.0,109.0,103.0,108.0,3.25",
    "2023-01-01T04:00:00Z,108.0,112.0,107.0,111.0,1.0",
]


def write_csv(tmp_path: Path, rows: list[str], header: str = HEADER, name: str = "x.csv") -> Path:
    path = tmp_path / name
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def with_row(index: int, row: str) -> list[str]:
    """GOOD_ROWS with row `index` (0-based) replaced."""
    rows = list(GOOD_ROWS)
    rows[index] = row
    return rows


def ns(text: str) -> int:
    return pd.Timestamp(text).as_unit("ns").value


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def hourly(
    closes: list[float],
    start: str = "2023-01-01T00:00:00Z",
    timeframe: str = "1h",
    stamps: list[int] | None = None,
) -> Candles:
    """Candles with open = close, a 0.5 wick either side, one per timeframe from `start`."""
    step = timeframe_seconds(timeframe) * 10**9
    ts = np.array(stamps if stamps is not None else [ns(start) + i * step for i in range(len(closes))])
    c = np.array(closes, dtype=float)
    return Candles("T/USD", timeframe, ts, c, c + 0.5, c - 0.5, c, np.ones(len(c)))


# --- timeframes -------------------------------------------------------------------------------


def test_timeframes_are_ordered_from_shortest_to_longest() -> None:
    assert list(TIMEFRAMES) == [
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "1w",
    ]
    assert list(TIMEFRAMES.values()) == sorted(TIMEFRAMES.values())
    assert timeframe_seconds("4h") == 14_400


def test_unknown_timeframe_error_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"'2d'.*1m, 3m, 5m.*1d, 1w"):
        timeframe_seconds("2d")


@pytest.mark.parametrize(("tf", "freq"), [("1m", "1min"), ("15m", "15min"), ("4h", "4h"), ("1d", "1D"), ("1w", "7D")])
def test_pandas_freq_names_the_same_length(tf: str, freq: str) -> None:
    assert pandas_freq(tf) == freq
    assert pd.Timedelta(freq).total_seconds() == timeframe_seconds(tf)


# --- reading ----------------------------------------------------------------------------------


def test_read_candles_parses_iso_timestamps_into_utc_nanoseconds(tmp_path: Path) -> None:
    rows = with_row(0, "2023-01-01T02:00:00+02:00,100.0,110.0,95.0,105.0,1.5")
    c = read_candles(write_csv(tmp_path, rows), "T/USD", "1h")
    assert len(c) == 5
    assert c.timestamp.dtype == np.int64 and c.close.dtype == np.float64
    assert c.timestamp[0] == ns("2023-01-01T00:00:00Z")
    assert c.start == utc(2023, 1, 1) and c.end == utc(2023, 1, 1, 4)
    assert c.start.tzinfo is UTC
    assert c.high.tolist() == [110.0, 108.0, 104.0, 109.0, 112.0]
    assert (c.symbol, c.timeframe, c.source) == ("T/USD", "1h", str(tmp_path / "x.csv"))


def test_read_candles_accepts_epoch_millisecond_timestamps(tmp_path: Path) -> None:
    rows = [f"{1672531200000 + i * 3_600_000},{r.split(',', 1)[1]}" for i, r in enumerate(GOOD_ROWS)]
    c = read_candles(write_csv(tmp_path, rows), "T/USD", "1h")
    assert c.timestamp[0] == ns("2023-01-01T00:00:00Z")
    assert np.all(np.diff(c.timestamp) == 3_600 * 10**9)


def test_read_candles_column_names_are_case_insensitive_and_extra_columns_ignored(tmp_path: Path) -> None:
    rows = [f"{r},x" for r in GOOD_ROWS]
    c = read_candles(write_csv(tmp_path, rows, header="Timestamp,OPEN,High,Low,Close,Volume,note"), "T", "1h")
    assert c.open[0] == 100.0 and len(c) == 5


def test_read_candles_reads_gzip_csv(tmp_path: Path) -> None:
    path = tmp_path / "x.csv.gz"
    pd.read_csv(write_csv(tmp_path, GOOD_ROWS)).to_csv(path, index=False)
    assert read_candles(path, "T", "1h").close.tolist() == [105.0, 102.0, 103.0, 108.0, 111.0]


def test_parquet_round_trip_keeps_every_value(tmp_path: Path) -> None:
    original = read_candles(write_csv(tmp_path, GOOD_ROWS), "T", "1h")
    original.to_frame().to_parquet(tmp_path / "x.parquet")
    again = read_candles(tmp_path / "x.parquet", "T", "1h")
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(again, name), getattr(original, name))


def test_read_candles_reads_parquet_with_epoch_millisecond_column(tmp_path: Path) -> None:
    frame = pd.read_csv(write_csv(tmp_path, GOOD_ROWS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"]).dt.as_unit("ms").astype("int64")
    frame.to_parquet(tmp_path / "ms.parquet")
    assert read_candles(tmp_path / "ms.parquet", "T", "1h").timestamp[1] == ns("2023-01-01T01:00:00Z")


def test_read_candles_rejects_missing_file_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not found: .*nope\.csv"):
        read_candles(tmp_path / "nope.csv", "T", "1h")


def test_read_candles_rejects_empty_file(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("")
    with pytest.raises(DataError, match=r"x\.csv: the file is empty"):
        read_candles(tmp_path / "x.csv", "T", "1h")


@pytest.mark.parametrize("rows", [[], ["", ""]], ids=["header-only", "blank-lines"])
def test_read_candles_rejects_a_file_without_candle_rows(tmp_path: Path, rows: list[str]) -> None:
    with pytest.raises(DataError, match=r"x\.csv: the file has no candle rows"):
        read_candles(write_csv(tmp_path, rows), "T", "1h")


def test_read_candles_rejects_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "x.parquet").write_bytes(b"this is not parquet")
    with pytest.raises(DataError, match=r"x\.parquet: cannot read candles"):
        read_candles(tmp_path / "x.parquet", "T", "1h")


def test_read_candles_rejects_unsupported_file_type(tmp_path: Path) -> None:
    (tmp_path / "x.json").write_text("[]")
    with pytest.raises(DataError, match=r"unsupported file type"):
        read_candles(tmp_path / "x.json", "T", "1h")


def test_read_candles_rejects_missing_columns_listing_them(tmp_path: Path) -> None:
    path = write_csv(tmp_path, ["2023-01-01T00:00:00Z,1,2"], header="time,open,close")
    with pytest.raises(DataError, match=r"x\.csv: missing column\(s\) timestamp, high, low, volume"):
        read_candles(path, "T", "1h")


@pytest.mark.parametrize(
    ("bad_row", "problem"),
    [
        ("yesterday,100.0,110.0,95.0,105.0,1.0", "unparsable timestamp 'yesterday'"),
        (",100.0,110.0,95.0,105.0,1.0", "timestamp is empty"),
        ("2023-01-01T02:00:00Z,,110.0,95.0,105.0,1.0", "open is empty"),
        ("2023-01-01T02:00:00Z,100.0,110.0,95.0,abc,1.0", "close is not a number: 'abc'"),
        ("2023-01-01T02:00:00Z,100.0,110.0,0.0,105.0,1.0", "low 0.0 is not positive"),
        ("2023-01-01T02:00:00Z,100.0,110.0,95.0,105.0,-2.0", "volume -2.0 is negative"),
        ("2023-01-01T02:00:00Z,100.0,104.0,95.0,105.0,1.0", "high 104.0 < max(open, close) 105.0"),
        ("2023-01-01T02:00:00Z,100.0,110.0,101.0,105.0,1.0", "low 101.0 > min(open, close) 100.0"),
        (
            "2023-01-01T01:00:00Z,100.0,110.0,95.0,105.0,1.0",
            "duplicate timestamp 2023-01-01T01:00:00Z (same as the row before)",
        ),
        (
            "2023-01-01T00:30:00Z,100.0,110.0,95.0,105.0,1.0",
            "timestamp 2023-01-01T00:30:00Z is earlier than the row before (2023-01-01T01:00:00Z)",
        ),
    ],
)
def test_read_candles_rejects_bad_row_naming_file_line_and_problem(tmp_path: Path, bad_row: str, problem: str) -> None:
    path = write_csv(tmp_path, with_row(2, bad_row))
    with pytest.raises(DataError) as caught:
        read_candles(path, "T", "1h")
    assert str(caught.value) == f"{path} line 4 (row 3): {problem}"


def test_read_candles_rejects_high_below_low_naming_file_and_line(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS] + [f"2023-01-01T{h:02d}:00:00Z,10.5,11.0,10.2,10.6,1" for h in range(5, 15)]
    rows.append("2023-01-01T15:00:00Z,10.5,10.0,11.0,10.5,1")
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError) as caught:
        read_candles(path, "T", "1h")
    message = str(caught.value)
    assert message.startswith(f"{path} line 17 (row 16): high 10.0 < low 11.0")
    assert "high 10.0 < max(open, close) 10.5" in message  # every problem of the row, in one line


def test_read_candles_skips_blank_lines_but_counts_them_in_line_numbers(tmp_path: Path) -> None:
    rows = [*GOOD_ROWS[:2], "", GOOD_ROWS[2], "2023-01-01T03:00:00Z,103.0,109.0,103.0,108.0,-1", ""]
    path = write_csv(tmp_path, rows)
    with pytest.raises(DataError, match=r"x\.csv line 6 \(row 5\): volume -1\.0 is negative$"):
        read_candles(path, "T", "1h")
    assert len(read_candles(write_csv(tmp_path, [*GOOD_ROWS, "", ""]), "T", "1h")) == 5


def test_read_candles_reports_first_five_bad_rows_and_counts_the_rest(tmp_path: Path) -> None:
    rows = [f"2023-01-01T{h:02d}:00:00Z,100.0,110.0,95.0,105.0,-1" for h in range(8)]
    with pytest.raises(DataError) as caught:
        read_candles(write_csv(tmp_path, rows), "T", "1h")
    lines = str(caught.value).splitlines()
    assert [line.split(": ")[0].rsplit(" ", 4)[-4:] for line in lines[:5]] == [
        ["line", str(n + 1), "(row", f"{n})"] for n in range(1, 6)
    ]
    assert lines[5] == f"... and 3 more bad rows in {tmp_path / 'x.csv'}"


def test_read_candles_names_parquet_rows_without_line_numbers(tmp_path: Path) -> None:
    frame = pd.read_csv(write_csv(tmp_path, with_row(1, "2023-01-01T01:00:00Z,105.0,100.0,101.0,102.0,2.0")))
    frame.to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataError, match=r"x\.parquet row 2: high 100\.0 < low 101\.0"):
        read_candles(tmp_path / "x.parquet", "T", "1h")


def test_read_candles_rejects_timeframe_contradicted_by_median_spacing(tmp_path: Path) -> None:
    rows = [f"2023-01-01T00:{m:02d}:00Z,100.0,110.0,95.0,105.0,1" for m in range(10)]
    with pytest.raises(DataError, match=r"declared timeframe 1h but the median spacing .* is 1m"):
        read_candles(write_csv(tmp_path, rows), "T", "1h")


def test_read_candles_accepts_timestamps_not_aligned_to_the_timeframe(tmp_path: Path) -> None:
    rows = [f"2023-01-01T{h:02d}:17:00Z,100.0,110.0,95.0,105.0,1" for h in range(6)]
    assert len(read_candles(write_csv(tmp_path, rows), "T", "1h")) == 6


def test_read_candles_repair_sorts_dedupes_and_drops_bad_rows_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rows = [
        GOOD_ROWS[1],
        GOOD_ROWS[0],
        "2023-01-01T01:00:00Z,105.0,108.0,101.0,107.0,9.0",  # duplicate of row 1: the later one wins
        "2023-01-01T02:00:00Z,102.0,,99.0,103.0,0.0",  # NaN
        "2023-01-01T03:00:00Z,103.0,99.0,103.0,103.0,3.25",  # high < low
        GOOD_ROWS[4],
        GOOD_ROWS[3],
    ]
    with caplog.at_level(logging.WARNING, logger="tradeforge.feeds"):
        c = read_candles(write_csv(tmp_path, rows), "T", "1h", repair=True)
    assert c.timestamp.tolist() == [ns(f"2023-01-01T0{h}:00:00Z") for h in (0, 1, 3, 4)]
    assert c.close.tolist() == [105.0, 107.0, 108.0, 111.0]
    assert "dropped 3 of 7 rows" in caplog.text and "re-sorted" in caplog.text


def test_read_candles_repair_still_rejects_what_it_cannot_fix_at_the_original_line(tmp_path: Path) -> None:
    rows = [GOOD_ROWS[1], GOOD_ROWS[0], "2023-01-01T02:00:00Z,102.0,104.0,99.0,103.0,-5.0", *GOOD_ROWS[3:]]
    with pytest.raises(DataError, match=r"x\.csv line 4 \(row 3\): volume -5\.0 is negative"):
        read_candles(write_csv(tmp_path, rows), "T", "1h", repair=True)


def test_read_candles_reads_a_million_rows_in_well_under_two_seconds(tmp_path: Path) -> None:
    n = 1_000_000
    stamps = np.datetime_as_string(np.datetime64("2000-01-01T00:00") + np.arange(n).astype("timedelta64[m]"), unit="s")
    price = np.round(100 + np.random.default_rng(0).random(n), 2)
    pd.DataFrame(
        {
            "timestamp": np.char.add(stamps, "Z"),
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
            "volume": 1.0,
        }
    ).to_csv(tmp_path / "big.csv", index=False)
    started = time.perf_counter()
    c = read_candles(tmp_path / "big.csv", "T", "1m")
    assert time.perf_counter() - started < 2.0
    assert len(c) == n


# --- Candles ----------------------------------------------------------------------------------


def test_empty_candles_have_no_start_or_end() -> None:
    empty = hourly([])
    assert len(empty) == 0
    with pytest.raises(DataError, match="no candles for T/USD 1h"):
        _ = empty.start


def test_between_is_inclusive_and_takes_naive_datetimes_as_utc() -> None:
    c = hourly([1, 2, 3, 4, 5])
    assert c.between(datetime(2023, 1, 1, 1), utc(2023, 1, 1, 3)).close.tolist() == [2, 3, 4]
    assert c.between(None, utc(2023, 1, 1, 0, 30)).close.tolist() == [1]
    assert c.between(utc(2023, 1, 1, 5), None).close.tolist() == []
    assert c.between(utc(2023, 1, 1, 3) - timedelta(hours=1), None).close.tolist() == [3, 4, 5]


def test_to_frame_and_from_frame_round_trip_with_a_utc_index() -> None:
    c = hourly([1, 2, 3])
    frame = c.to_frame()
    assert frame.index.name == "timestamp" and str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    back = Candles.from_frame(frame, "T/USD", "1h")
    assert np.array_equal(back.timestamp, c.timestamp) and np.array_equal(back.high, c.high)


def test_from_frame_validates_like_a_file() -> None:
    frame = hourly([1, 2, 3]).to_frame()
    frame.iloc[1, frame.columns.get_loc("low")] = 99.0
    with pytest.raises(DataError, match=r"prices row 2: high 2\.5 < low 99\.0"):
        Candles.from_frame(frame, "T/USD", "1h", source="prices")


def test_resample_aggregates_ohlcv_in_bins_aligned_to_the_epoch() -> None:
    # 02:00..09:00 hourly -> 4h bins at 00:00 (2 candles), 04:00 (4), 08:00 (2, last, incomplete)
    c = Candles(
        "T",
        "1h",
        [ns(f"2023-01-01T{h:02d}:00:00Z") for h in range(2, 10)],
        open=[1, 2, 3, 4, 5, 6, 7, 8],
        high=[10, 20, 30, 40, 50, 60, 70, 80],
        low=[0.5, 0.4, 0.3, 0.9, 0.8, 0.7, 0.6, 0.1],
        close=[1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5],
        volume=[1, 1, 4, 2, 2, 2, 2, 3],
    )
    r = c.resample("4h")
    assert r.timeframe == "4h"
    assert r.timestamp.tolist() == [ns("2023-01-01T00:00:00Z"), ns("2023-01-01T04:00:00Z")]
    assert r.open.tolist() == [1, 3] and r.high.tolist() == [20, 60]
    assert r.low.tolist() == [0.4, 0.3] and r.close.tolist() == [2.5, 6.5] and r.volume.tolist() == [2, 10]


def test_resample_keeps_the_last_bin_when_the_data_reach_its_end() -> None:
    r = hourly([1, 2, 3, 4, 5, 6, 7, 8]).resample("4h")
    assert r.close.tolist() == [4, 8]
    assert hourly([1, 2, 3, 4, 5, 6, 7]).resample("4h").close.tolist() == [4]


def test_resample_drops_empty_bins_and_labels_days_at_utc_midnight() -> None:
    day = 86_400 * 10**9
    stamps = [ns("2023-01-01T00:00:00Z") + h * 3_600 * 10**9 for h in [*range(24), *range(48, 72)]]
    r = hourly(list(range(1, 49)), stamps=stamps).resample("1d")
    assert r.timestamp.tolist() == [ns("2023-01-01T00:00:00Z"), ns("2023-01-01T00:00:00Z") + 2 * day]
    assert r.close.tolist() == [24, 48]


def test_resample_rejects_a_lower_or_non_multiple_timeframe() -> None:
    with pytest.raises(DataError, match="cannot resample T/USD 1h candles to 15m"):
        hourly([1, 2]).resample("15m")
    with pytest.raises(DataError, match="whole multiple of 4h"):
        hourly([1, 2], timeframe="4h").resample("6h")


def test_find_gaps_reports_each_jump_with_its_missing_bar_count() -> None:
    hour = 3_600 * 10**9
    stamps = [ns("2023-01-01T00:00:00Z") + h * hour for h in (0, 1, 2, 5, 6, 8)]
    assert find_gaps(hourly([1, 2, 3, 4, 5, 6], stamps=stamps)) == [
        Gap(utc(2023, 1, 1, 2), utc(2023, 1, 1, 5), 2),
        Gap(utc(2023, 1, 1, 6), utc(2023, 1, 1, 8), 1),
    ]
    assert find_gaps(hourly([1, 2, 3])) == []


# --- real data --------------------------------------------------------------------------------

REAL_FILES = {
    "binance_BTC-USDT_1h.csv": ("1h", 17_512),
    "binance_ETH-USDT_1h.csv": ("1h", 17_512),
    "binance_BTC-USDT_5m.csv": ("5m", 140_614),
    "binance_BTC-USDT_1m.csv": ("1m", 43_208),
    "yahoo_ORCL_1d.csv": ("1d", 5_036),
    "yahoo_YHOO_1d.csv": ("1d", 4_965),
    "backtrader_2005-2006-day-001_1d.csv": ("1d", 512),
    "backtrader_2006-min-005_5m.csv": ("5m", 2_142),
}


def shared(name: str) -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not present: {SHARED_DATA}")
    return SHARED_DATA / name


def test_every_shared_candle_file_is_covered() -> None:
    assert sorted(p.name for p in shared(".").glob("*.csv")) == sorted(REAL_FILES)


@pytest.mark.parametrize("name", sorted(REAL_FILES))
def test_read_candles_reads_every_real_file_with_the_documented_row_count(name: str) -> None:
    timeframe, rows = REAL_FILES[name]
    assert len(read_candles(shared(name), "X", timeframe)) == rows


def test_find_gaps_finds_the_documented_binance_maintenance_windows() -> None:
    gaps = find_gaps(read_candles(shared("binance_BTC-USDT_1h.csv"), "BTC/USDT", "1h"))
    assert (len(gaps), sum(g.missing for g in gaps)) == (9, 19)
    assert gaps[1] == Gap(utc(2020, 12, 21, 13), utc(2020, 12, 21, 18), 4)


def test_resampled_real_1m_candles_equal_the_real_5m_file_where_they_overlap() -> None:
    one = read_candles(shared("binance_BTC-USDT_1m.csv"), "BTC/USDT", "1m")
    five = read_candles(shared("binance_BTC-USDT_5m.csv"), "BTC/USDT", "5m")
    resampled = one.resample("5m")
    # The 1m file starts at 17:23, mid-bin; the first bin it fully covers is 17:25.
    ours = resampled.between(utc(2025, 6, 1, 17, 25), None)
    theirs = five.between(ours.start, ours.end)
    assert len(ours) == len(theirs) == 8_641
    assert np.array_equal(ours.timestamp, theirs.timestamp)
    for name in ("open", "high", "low", "close"):
        assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
    np.testing.assert_allclose(ours.volume, theirs.volume, rtol=0, atol=1e-6)
    # The 1m file ends with the 17:30 candle: the 17:30 5m bin is incomplete and must be absent.
    assert one.end == utc(2025, 7, 1, 17, 30) and resampled.end == utc(2025, 7, 1, 17, 25)
