"""SYNTHETIC candles: a deterministic random OHLCV generator, and the bundled sample files made with it.

These prices are invented, not market data. They exist so that a fresh install can run a demo
backtest offline, and so tests get reproducible series with realistic features: regimes that
persist for weeks (bull, bear, sideways), fat-tailed returns, volume that rises with big moves.
Real candles for tests live in the shared data folder instead.

Run `python -m tradeforge.feeds.synthetic [DIR]` to regenerate the samples (default:
`tradeforge/samples/`). Output depends only on the arguments and NumPy's random stream, so the CSV
text is byte-identical on every machine (NumPy keeps its Generator streams stable in practice but
does not promise it across versions); the gzip bytes also depend on the zlib build.
"""

from __future__ import annotations

import gzip
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from tradeforge.feeds.candles import Candles, to_ns
from tradeforge.feeds.timeframes import timeframe_seconds

_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_T_DF = 3.0  # Student-t degrees of freedom: heavy tails like real returns
_MAX_SHOCK = 10.0  # standardised shocks are clipped here so a sample never holds a 40-sigma bar
# Regimes: bull, bear, sideways. Drift is in multiples of the annual volatility per year.
_DRIFT = np.array([1.2, -1.5, 0.0])
_VOL_SCALE = np.array([0.85, 1.35, 0.7])
_MEAN_WEEKS = np.array([8.0, 5.0, 6.0])
_DAILY_NOTIONAL = 5e8  # typical traded value per day, in quote currency, sets the volume level


def generate(
    symbol: str,
    timeframe: str,
    start: datetime,
    bars: int,
    *,
    seed: int,
    start_price: float,
    annual_vol: float = 0.6,
    trading_days_only: bool = False,
) -> Candles:
    """Synthetic candles; the same arguments always give identical arrays.

    trading_days_only=True makes stock-like daily data: weekdays only, with small opening gaps.
    """
    if bars < 1 or start_price <= 0 or annual_vol <= 0:
        raise ValueError("generate() needs bars >= 1, start_price > 0 and annual_vol > 0")
    if trading_days_only and timeframe != "1d":
        raise ValueError(f"trading_days_only needs timeframe '1d', not {timeframe!r}")
    bar_seconds = timeframe_seconds(timeframe)
    bars_per_year = 252.0 if trading_days_only else 365 * 86_400 / bar_seconds
    rng = np.random.default_rng(seed)

    regime = _regimes(rng, bars, bars_per_year)
    sigma = annual_vol * _VOL_SCALE[regime] / np.sqrt(bars_per_year)
    shock = np.clip(rng.standard_t(_T_DF, bars) / np.sqrt(_T_DF / (_T_DF - 2)), -_MAX_SHOCK, _MAX_SHOCK)
    log_return = annual_vol * _DRIFT[regime] / bars_per_year - sigma**2 / 2 + sigma * shock
    close = start_price * np.exp(np.cumsum(log_return))
    gap = np.exp(0.1 * sigma * rng.standard_normal(bars)) if trading_days_only else np.ones(bars)
    wick_up, wick_down = np.exp(0.5 * sigma * np.abs(rng.standard_normal((2, bars))))
    noise = rng.standard_normal(bars)

    close = _price(close)
    open_ = _price(np.r_[start_price, close[:-1]] * gap)
    high = np.maximum(_price(np.maximum(open_, close) * wick_up), np.maximum(open_, close))
    low = np.minimum(_price(np.minimum(open_, close) / wick_down), np.minimum(open_, close))
    units = _DAILY_NOTIONAL * (1.0 if trading_days_only else bar_seconds / 86_400) / start_price
    volume = np.round(units * np.exp(0.5 * noise + 0.6 * np.abs(shock) - 0.5), _volume_decimals(trading_days_only))
    return Candles(
        symbol,
        timeframe,
        _timestamps(to_ns(start), bars, bar_seconds, trading_days_only),
        open_,
        high,
        low,
        close,
        volume,
        source="synthetic",
    )


def _regimes(rng: np.random.Generator, bars: int, bars_per_year: float) -> np.ndarray:
    """A hidden Markov chain over bull/bear/sideways that stays in a regime for weeks on average."""
    switch = 52.0 / (_MEAN_WEEKS * bars_per_year)
    draws, hops = rng.random(bars), rng.integers(1, 3, size=bars)
    current = int(rng.integers(3))
    regime = np.empty(bars, dtype=np.intp)
    for i in range(bars):
        if draws[i] < switch[current]:
            current = (current + int(hops[i])) % 3
        regime[i] = current
    return regime


def _price(values: np.ndarray) -> np.ndarray:
    """Prices in cents, never below one cent, so every price stays strictly positive."""
    return np.maximum(np.round(values, 2), 0.01)


def _volume_decimals(trading_days_only: bool) -> int:
    return 0 if trading_days_only else 4  # whole shares for stocks, 4 decimals for crypto


def _timestamps(start_ns: int, bars: int, bar_seconds: int, trading_days_only: bool) -> np.ndarray:
    if not trading_days_only:
        return start_ns + np.arange(bars, dtype=np.int64) * bar_seconds * _NS
    days = start_ns // _DAY_NS + np.arange(bars * 7 // 5 + 7, dtype=np.int64)
    weekdays = days[(days + 3) % 7 < 5]  # 1970-01-01, day 0, was a Thursday (weekday 3)
    return weekdays[:bars] * _DAY_NS


@dataclass(frozen=True)
class Sample:
    """One bundled sample file and the generate() arguments that produce it."""

    symbol: str
    timeframe: str
    start: datetime
    bars: int
    seed: int
    start_price: float
    annual_vol: float
    trading_days_only: bool = False

    @property
    def filename(self) -> str:
        return f"{self.symbol.replace('/', '-')}_{self.timeframe}.csv.gz"

    def generate(self) -> Candles:
        return generate(
            self.symbol,
            self.timeframe,
            self.start,
            self.bars,
            seed=self.seed,
            start_price=self.start_price,
            annual_vol=self.annual_vol,
            trading_days_only=self.trading_days_only,
        )


_2023 = datetime(2023, 1, 1, tzinfo=UTC)
SAMPLES: tuple[Sample, ...] = (
    Sample("BTC/USDT", "1h", _2023, 8_760, seed=101, start_price=16_500.0, annual_vol=0.6),
    Sample("ETH/USDT", "1h", _2023, 8_760, seed=102, start_price=1_200.0, annual_vol=0.75),
    Sample("BTC/USDT", "15m", _2023, 17_280, seed=103, start_price=16_500.0, annual_vol=0.6),
    Sample(
        "ACME",
        "1d",
        datetime(2015, 1, 2, tzinfo=UTC),
        2_000,
        seed=104,
        start_price=50.0,
        annual_vol=0.3,
        trading_days_only=True,
    ),
    Sample(
        "GLOBEX",
        "1d",
        datetime(2015, 1, 2, tzinfo=UTC),
        2_000,
        seed=105,
        start_price=120.0,
        annual_vol=0.3,
        trading_days_only=True,
    ),
)
"""The samples shipped in `tradeforge/samples/`."""


def csv_text(candles: Candles, volume_decimals: int = 4) -> str:
    """Candles in the shared CSV format: `timestamp,open,high,low,close,volume`, ISO-8601 with Z."""
    stamps = np.datetime_as_string(candles.timestamp.view("datetime64[ns]"), unit="s")
    rows = zip(
        stamps.tolist(),
        *(getattr(candles, n).tolist() for n in ("open", "high", "low", "close")),
        candles.volume.tolist(),
        strict=True,
    )
    lines = [f"{t}Z,{o:.2f},{h:.2f},{lo:.2f},{c:.2f},{v:.{volume_decimals}f}" for t, o, h, lo, c, v in rows]
    return "timestamp,open,high,low,close,volume\n" + "\n".join(lines) + "\n"


def write_samples(directory: Path) -> list[Path]:
    """Write every sample as gzip CSV with gzip mtime 0 and no file name, so output is reproducible."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for sample in SAMPLES:
        text = csv_text(sample.generate(), _volume_decimals(sample.trading_days_only))
        path = directory / sample.filename
        with (
            path.open("wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=9) as gz,
        ):
            gz.write(text.encode("ascii"))
        written.append(path)
    return written


def _main(argv: list[str]) -> None:
    from tradeforge.feeds.samples import SAMPLE_DIR  # late import: samples imports this module

    for path in write_samples(Path(argv[0]) if argv else SAMPLE_DIR):
        print(f"{path}  {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    _main(sys.argv[1:])
