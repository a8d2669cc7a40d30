"""Specification of the synthetic candle generator and the bundled sample files."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from tradeforge.feeds.candles import Candles, read_candles
from tradeforge.feeds.samples import SAMPLE_DIR, available_samples, load_sample, sample_path
from tradeforge.feeds.synthetic import SAMPLES, generate, write_samples
from tradeforge.resilience.errors import DataError

START = datetime(2023, 1, 1, tzinfo=UTC)
FIELDS = ("timestamp", "open", "high", "low", "close", "volume")


def btc(seed: int = 7, bars: int = 5_000, timeframe: str = "1h") -> Candles:
    return generate("BTC/USDT", timeframe, START, bars, seed=seed, start_price=16_500.0)


def stock(bars: int = 1_000) -> Candles:
    return generate(
        "ACME",
        "1d",
        datetime(2015, 1, 2),
        bars,
        seed=3,
        start_price=50.0,
        annual_vol=0.3,
        trading_days_only=True,
    )


def test_same_arguments_give_identical_arrays() -> None:
    a, b = btc(seed=42), btc(seed=42)
    for name in FIELDS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert not np.array_equal(a.close, btc(seed=43).close)


@pytest.mark.parametrize("make", [btc, stock], ids=["crypto", "stock"])
def test_prices_are_positive_cents_and_ohlc_consistent(make: Callable[[], Candles]) -> None:
    c = make()
    prices = np.stack([c.open, c.high, c.low, c.close])
    assert np.all(prices > 0) and np.all(c.volume >= 0)
    assert np.array_equal(np.round(prices, 2), prices)
    assert np.all(c.high >= np.maximum(c.open, c.close)) and np.all(c.low <= np.minimum(c.open, c.close))


def test_tiny_start_price_never_rounds_to_zero() -> None:
    c = generate("DUST/USDT", "1d", START, 2_000, seed=1, start_price=0.02, annual_vol=1.5)
    assert np.all(np.stack([c.open, c.high, c.low, c.close]) >= 0.01)
    assert np.all(c.high >= np.maximum(c.open, c.close)) and np.all(c.low <= np.minimum(c.open, c.close))


def test_crypto_candles_are_contiguous_and_open_at_the_previous_close() -> None:
    c = btc(timeframe="15m")
    assert c.start == START and np.all(np.diff(c.timestamp) == 900 * 10**9)
    assert c.open[0] == 16_500.0 and np.array_equal(c.open[1:], c.close[:-1])


def test_returns_are_fat_tailed() -> None:
    returns = np.diff(np.log(btc().close))
    excess_kurtosis = np.mean((returns - returns.mean()) ** 4) / returns.var() ** 2 - 3
    assert excess_kurtosis > 1


def test_volume_rises_with_the_size_of_the_move() -> None:
    c = btc()
    assert np.corrcoef(np.abs(np.log(c.close / c.open)), c.volume)[0, 1] > 0.2


def test_trading_days_only_skips_weekends_at_utc_midnight() -> None:
    c = stock()
    days = c.timestamp // (86_400 * 10**9)
    assert np.all(c.timestamp % (86_400 * 10**9) == 0)
    assert set(((days + 3) % 7).tolist()) == {0, 1, 2, 3, 4}  # Monday..Friday
    assert c.start == datetime(2015, 1, 2, tzinfo=UTC) and c.end.weekday() < 5


def test_trading_days_only_needs_daily_candles() -> None:
    with pytest.raises(ValueError, match="trading_days_only needs timeframe '1d'"):
        generate("ACME", "1h", START, 10, seed=1, start_price=50.0, trading_days_only=True)


# --- bundled samples --------------------------------------------------------------------------


def test_the_bundled_samples_are_what_write_samples_produces(tmp_path: Path) -> None:
    written = write_samples(tmp_path)
    assert [p.name for p in written] == [s.filename for s in SAMPLES]
    for path in written:
        # Compared uncompressed: the gzip stream itself may differ with another zlib build.
        assert gzip.decompress((SAMPLE_DIR / path.name).read_bytes()) == gzip.decompress(path.read_bytes())


def test_write_samples_is_byte_identical_on_every_run(tmp_path: Path) -> None:
    first, second = write_samples(tmp_path / "a"), write_samples(tmp_path / "b")
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime field


def test_bundled_samples_stay_small() -> None:
    assert sum((SAMPLE_DIR / s.filename).stat().st_size for s in SAMPLES) < 1_500_000


def test_sample_files_use_the_shared_csv_format() -> None:
    with gzip.open(sample_path("BTC/USDT", "1h"), "rt") as f:
        assert f.readline() == "timestamp,open,high,low,close,volume\n"
        assert f.readline().startswith("2023-01-01T00:00:00Z,16500.00,")


def test_every_sample_loads_as_valid_candles() -> None:
    assert available_samples() == [
        ("BTC/USDT", "1h"),
        ("ETH/USDT", "1h"),
        ("BTC/USDT", "15m"),
        ("ACME", "1d"),
        ("GLOBEX", "1d"),
    ]
    for sample in SAMPLES:
        c = load_sample(sample.symbol, sample.timeframe)
        assert len(c) == sample.bars and c.start == sample.start
        fresh = sample.generate()
        assert np.array_equal(c.close, fresh.close) and np.array_equal(c.volume, fresh.volume)


def test_sample_path_for_an_unknown_sample_lists_the_available_ones() -> None:
    with pytest.raises(DataError, match=r"no bundled sample for DOGE/USDT 1h .*available samples: BTC/USDT"):
        sample_path("DOGE/USDT", "1h")


def test_sample_read_by_path_equals_load_sample() -> None:
    path = sample_path("ETH/USDT", "1h")
    assert np.array_equal(read_candles(path, "ETH/USDT", "1h").high, load_sample("ETH/USDT", "1h").high)
