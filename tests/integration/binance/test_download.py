"""`download-data` against the fake Binance: only missing ranges, paginated, resumable, gaps reported,
bad input refused before the store is touched."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fakes.binance import FakeBinance, Fault
from fakes.support import HOUR, T0, quick_retries

from tradeforge.feeds.candles import read_candles, to_ns
from tradeforge.feeds.download import download, missing_ranges
from tradeforge.feeds.store import CandleStore
from tradeforge.resilience.errors import ConfigError, Temporary
from tradeforge.resilience.exchange import ExchangeClient

SINCE = dt.datetime(2021, 12, 1, tzinfo=dt.UTC)  # 744 closed 1h candles before the fake's clock (T0)
TRADEFORGE = str(Path(sys.executable).with_name("tradeforge"))


def run(client: ExchangeClient, store: CandleStore, symbols: list[str], **kw: object) -> list:
    kw.setdefault("page_limit", 100)
    return download(
        client, store, "binance", symbols, "1h", SINCE, exchange_timeframes=client.exchange.timeframes, **kw
    )  # type: ignore[arg-type]


def expected_stamps(fake: FakeBinance, symbol: str = "BTCUSDT") -> np.ndarray:
    rows = fake.series[(symbol, "1h")].rows
    return np.array([r[0] for r in rows if to_ns(SINCE) // 1_000_000 <= r[0] < T0], dtype=np.int64) * 1_000_000


def test_download_fetches_every_closed_candle_since_the_date_in_pages(
    fake: FakeBinance, client: ExchangeClient, tmp_path: Path
):
    store = CandleStore(tmp_path)
    [report] = run(client, store, ["BTC/USDT"])
    candles = store.load("binance", "BTC/USDT", "1h")
    assert np.array_equal(candles.timestamp, expected_stamps(fake))  # the candle in progress (T0) is not stored
    assert report.added == 744 and report.pages == 8 and report.gaps == []
    first = next(r for r in fake.series[("BTCUSDT", "1h")].rows if r[0] == to_ns(SINCE) // 1_000_000)
    assert (candles.open[0], candles.high[0], candles.low[0], candles.close[0], candles.volume[0]) == tuple(
        float(v) for v in first[1:6]
    )


def test_a_second_run_only_fetches_what_is_new(fake: FakeBinance, client: ExchangeClient, tmp_path: Path):
    store = CandleStore(tmp_path)
    run(client, store, ["BTC/USDT"])
    calls = len(fake.calls("GET", "/api/v3/klines"))
    [again] = run(client, store, ["BTC/USDT"])
    assert again.added == 0 and len(fake.calls("GET", "/api/v3/klines")) == calls
    fake.advance(3 * HOUR)
    [later] = run(client, store, ["BTC/USDT"])
    assert later.added == 3 and len(fake.calls("GET", "/api/v3/klines")) == calls + 1


def test_an_interrupted_download_resumes_where_it_stopped(fake: FakeBinance, client: ExchangeClient, tmp_path: Path):
    store = CandleStore(tmp_path)
    quick_retries(client, attempts=2)
    fake.inject("GET", "/api/v3/klines", Fault.server_error(503), times=2, skip=3)  # down after 3 pages
    with pytest.raises(Temporary):
        run(client, store, ["BTC/USDT"])
    assert len(store.load("binance", "BTC/USDT", "1h")) == 300  # the three pages fetched are kept
    before = len(fake.calls("GET", "/api/v3/klines"))
    [report] = run(client, store, ["BTC/USDT"])
    assert report.added == 444 and len(fake.calls("GET", "/api/v3/klines")) - before == 5
    assert np.array_equal(store.load("binance", "BTC/USDT", "1h").timestamp, expected_stamps(fake))


def test_transient_errors_during_a_download_are_retried(fake: FakeBinance, client: ExchangeClient, tmp_path: Path):
    quick_retries(client, attempts=3)
    fake.inject("GET", "/api/v3/klines", Fault.rate_limited(retry_after=0), times=2)
    [report] = run(client, CandleStore(tmp_path), ["BTC/USDT"])
    assert report.added == 744


def test_exchange_gaps_are_reported_and_not_refetched_forever(
    fake: FakeBinance, client: ExchangeClient, tmp_path: Path
):
    outage = to_ns(dt.datetime(2021, 12, 10, 4, tzinfo=dt.UTC)) // 1_000_000
    fake.remove_candles("BTC/USDT", "1h", outage, outage + 5 * HOUR)
    store = CandleStore(tmp_path)
    [report] = run(client, store, ["BTC/USDT"])
    assert report.added == 739
    assert [(g.after, g.missing) for g in report.gaps] == [(dt.datetime(2021, 12, 10, 3, tzinfo=dt.UTC), 5)]
    calls = len(fake.calls("GET", "/api/v3/klines"))
    [again] = run(client, store, ["BTC/USDT"])
    assert again.added == 0 and len(fake.calls("GET", "/api/v3/klines")) == calls + 1  # one look into the gap
    assert len(again.gaps) == 1


def test_until_bounds_the_download(client: ExchangeClient, tmp_path: Path):
    store = CandleStore(tmp_path)
    [report] = run(client, store, ["BTC/USDT"], until=dt.datetime(2021, 12, 2, 23, 59, tzinfo=dt.UTC))
    assert report.added == 48 and report.end == dt.datetime(2021, 12, 2, 23, tzinfo=dt.UTC)


def test_unknown_symbol_or_timeframe_is_refused_before_anything_is_stored(client: ExchangeClient, tmp_path: Path):
    store = CandleStore(tmp_path)
    with pytest.raises(ConfigError) as caught:
        run(client, store, ["BTC/USDT", "DOGE/EUR"])
    assert "DOGE/EUR" in str(caught.value)
    with pytest.raises(ConfigError, match="--timeframe"):
        download(client, store, "binance", ["BTC/USDT"], "7m", SINCE, exchange_timeframes=client.exchange.timeframes)
    assert not (tmp_path / "binance").exists()


def test_missing_ranges_cover_before_between_and_after_what_is_stored():
    stored = np.array([3, 4, 7, 8], dtype=np.int64)
    assert missing_ranges(stored, 1, 10, 1) == [(1, 2), (5, 6), (9, 10)]
    assert missing_ranges(np.empty(0, dtype=np.int64), 1, 10, 1) == [(1, 10)]
    assert missing_ranges(stored, 3, 4, 1) == []


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([TRADEFORGE, *args], cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def bot_yaml(fake: FakeBinance, root: Path) -> Path:
    urls = ", ".join(f"{k}: '{v}'" for k, v in fake.urls().items())
    path = root / "bot.yaml"
    path.write_text(
        f"data_dir: {root}/user_data\nstrategy: {{preset: sma_cross}}\n"
        f"exchange: {{urls: {{{urls}}}, options: {{fetchCurrencies: false}}, retries: 2}}\n"
    )
    return path


def test_cli_download_data_fills_the_store_and_exports_csv(fake: FakeBinance, tmp_path: Path):
    config = bot_yaml(fake, tmp_path)
    args = ["download-data", "--config", str(config), "--symbols", "BTC/USDT,ETH/USDT", "--timeframe", "1h"]
    done = cli(*args, "--since", "2021-12-01", "--format", "csv", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "BTC/USDT" in done.stdout and "744" in done.stdout
    csv = tmp_path / "user_data" / "binance" / "ETH-USDT_1h.csv"
    assert len(read_candles(csv, "ETH/USDT", "1h")) == 744
    assert CandleStore(tmp_path / "user_data").exists("binance", "ETH/USDT", "1h")


def test_cli_download_data_bad_input_exits_2_and_names_it(fake: FakeBinance, tmp_path: Path):
    config = bot_yaml(fake, tmp_path)
    base = ["download-data", "--config", str(config), "--since", "2021-12-01"]
    bad_symbol = cli(*base, "--symbols", "BTC/USDT,NOPE/USDT", "--timeframe", "1h", cwd=tmp_path)
    assert bad_symbol.returncode == 2 and "NOPE/USDT" in bad_symbol.stderr
    bad_timeframe = cli(*base, "--symbols", "BTC/USDT", "--timeframe", "7m", cwd=tmp_path)
    assert bad_timeframe.returncode == 2 and "--timeframe" in bad_timeframe.stderr
    assert not (tmp_path / "user_data" / "binance").exists()


def test_a_live_bot_config_backtests_on_the_downloaded_candles(
    fake: FakeBinance, client: ExchangeClient, tmp_path: Path
):
    from tradeforge.config.schema import BotConfig
    from tradeforge.engine.backtest import run_backtest
    from tradeforge.resilience.errors import DataError

    config = BotConfig.model_validate(
        {
            "data_dir": str(tmp_path),
            "data": {"source": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h"},
            "strategy": {"preset": "sma_cross"},
        }
    )
    with pytest.raises(DataError, match="tradeforge download-data"):
        run_backtest(config)
    run(client, CandleStore(tmp_path), ["BTC/USDT"])
    result = run_backtest(config)
    assert result.start == SINCE and len(result.equity_values) == 744
