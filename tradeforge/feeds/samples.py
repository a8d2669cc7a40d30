"""The SYNTHETIC sample candles bundled with tradeforge, so a demo runs with no download."""

from __future__ import annotations

from pathlib import Path

from tradeforge.feeds.candles import Candles, read_candles
from tradeforge.feeds.synthetic import SAMPLES
from tradeforge.resilience.errors import DataError

SAMPLE_DIR: Path = Path(__file__).resolve().parent.parent / "samples"
"""The package's `samples/` folder (shipped as package data)."""


def available_samples() -> list[tuple[str, str]]:
    """(symbol with '/', timeframe) of every bundled sample present on disk."""
    return [(s.symbol, s.timeframe) for s in SAMPLES if (SAMPLE_DIR / s.filename).is_file()]


def sample_path(symbol: str, timeframe: str) -> Path:
    """The file of one sample; a miss lists what is available."""
    path = SAMPLE_DIR / f"{symbol.replace('/', '-')}_{timeframe}.csv.gz"
    if not path.is_file():
        available = ", ".join(f"{s} {tf}" for s, tf in available_samples()) or "none"
        raise DataError(
            f"no bundled sample for {symbol} {timeframe} (looked for {path}); available samples: {available}"
        )
    return path


def load_sample(symbol: str, timeframe: str) -> Candles:
    """Candles of one bundled sample, validated like any candle file."""
    return read_candles(sample_path(symbol, timeframe), symbol, timeframe)
