"""Specification of the on-disk candle store: layout, atomic merge-on-save, load and listing."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tradeforge.feeds import store as store_module
from tradeforge.feeds.candles import Candles
from tradeforge.feeds.store import CandleStore
from tradeforge.resilience.errors import DataError

HOUR = 3_600 * 10**9
T0 = 1_672_531_200 * 10**9  # 2023-01-01T00:00Z


def candles(hours: list[int], closes: list[float], symbol: str = "BTC/USDT", tf: str = "1h") -> Candles:
    c = np.array(closes, dtype=float)
    return Candles(symbol, tf, [T0 + h * HOUR for h in hours], c, c + 1, c - 1, c, np.ones(len(c)))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_path_for_puts_each_source_in_a_folder_and_replaces_the_symbol_slash(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    assert store.path_for("binance", "BTC/USDT", "1h") == tmp_path / "binance" / "BTC-USDT_1h.parquet"
    assert not store.exists("binance", "BTC/USDT", "1h")


def test_save_then_load_returns_the_same_candles(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    saved = candles([0, 1, 2, 3], [10.0, 11.5, 12.25, 13.0])
    path = store.save("binance", saved)
    assert store.exists("binance", "BTC/USDT", "1h")
    loaded = store.load("binance", "BTC/USDT", "1h")
    for name in ("timestamp", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(loaded, name), getattr(saved, name)), name
    assert loaded.source == str(path)


def test_save_stores_timestamps_as_utc_nanosecond_timestamps(tmp_path: Path) -> None:
    path = CandleStore(tmp_path).save("binance", candles([0, 1], [10.0, 11.0]))
    assert pq.read_schema(path).field("timestamp").type == pa.timestamp("ns", tz="UTC")


def test_save_merges_with_the_stored_file_and_new_rows_win(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save("binance", candles([0, 1, 2, 3], [10.0, 11.0, 12.0, 13.0]))
    store.save("binance", candles([2, 3, 4, 5], [22.0, 23.0, 24.0, 25.0]))
    merged = store.load("binance", "BTC/USDT", "1h")
    assert merged.timestamp.tolist() == [T0 + h * HOUR for h in range(6)]
    assert merged.close.tolist() == [10.0, 11.0, 22.0, 23.0, 24.0, 25.0]


def test_save_can_fill_in_older_history(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save("binance", candles([5, 6], [15.0, 16.0]))
    store.save("binance", candles([0, 1], [10.0, 11.0]))
    assert store.load("binance", "BTC/USDT", "1h").close.tolist() == [10.0, 11.0, 15.0, 16.0]


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    store.save("binance", candles([0, 1], [10.0, 11.0]))
    store.save("binance", candles([1, 2], [12.0, 13.0]))
    assert [p.name for p in (tmp_path / "binance").iterdir()] == ["BTC-USDT_1h.parquet"]


def test_a_failed_save_keeps_the_old_file_and_leaves_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CandleStore(tmp_path)
    store.save("binance", candles([0, 1], [10.0, 11.0]))

    def crash(table: pa.Table, where: str) -> None:
        Path(where).write_bytes(b"half a parq")
        raise OSError("disk full")

    monkeypatch.setattr(store_module.pq, "write_table", crash)
    with pytest.raises(OSError, match="disk full"):
        store.save("binance", candles([2], [12.0]))
    monkeypatch.undo()
    assert [p.name for p in (tmp_path / "binance").iterdir()] == ["BTC-USDT_1h.parquet"]
    assert store.load("binance", "BTC/USDT", "1h").close.tolist() == [10.0, 11.0]


def test_load_of_missing_candles_names_the_expected_path_and_the_download_command(tmp_path: Path) -> None:
    with pytest.raises(DataError) as caught:
        CandleStore(tmp_path).load("binance", "ETH/USDT", "4h")
    message = str(caught.value)
    assert str(tmp_path / "binance" / "ETH-USDT_4h.parquet") in message
    assert "ETH/USDT" in message and "tradeforge download-data" in message


def test_saving_no_candles_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no 1h candles for BTC/USDT to save"):
        CandleStore(tmp_path).save("binance", candles([], []))


def test_list_reports_every_stored_series_with_rows_and_span(tmp_path: Path) -> None:
    store = CandleStore(tmp_path)
    assert store.list() == []
    store.save("binance", candles([0, 1, 2], [10.0, 11.0, 12.0]))
    store.save("binance", candles([0, 24, 48, 72], [1.0, 2.0, 3.0, 4.0], symbol="ETH/BTC", tf="1d"))
    store.save("yahoo", candles([0, 24], [50.0, 51.0], symbol="BRK-B", tf="1d"))  # a dash, not a slash
    assert store.list() == [
        ("binance", "BTC/USDT", "1h", 3, utc(2023, 1, 1), utc(2023, 1, 1, 2)),
        ("binance", "ETH/BTC", "1d", 4, utc(2023, 1, 1), utc(2023, 1, 4)),
        ("yahoo", "BRK-B", "1d", 2, utc(2023, 1, 1), utc(2023, 1, 2)),
    ]
    assert store.list()[0].rows == 3
