"""Exchange-backed services for the CLI and the runtime: the candle download and the live feeds.

The engine is the one place that wires config, the ccxt client and the candle store together.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import pandas as pd

from tradeforge.config.schema import ExchangeConfig
from tradeforge.feeds.download import DownloadReport, Progress, download
from tradeforge.feeds.store import CandleStore
from tradeforge.resilience.exchange import ExchangeClient, load_credentials

Format = Literal["parquet", "csv"]


def store_folder(config: ExchangeConfig) -> str:
    """The candle-store folder for an exchange; testnet candles never mix with real ones."""
    return f"{config.name}-testnet" if config.sandbox else config.name


def exchange_client(
    config: ExchangeConfig, environ: Mapping[str, str] | None = None, *, sleep: Callable[[float], None] | None = None
) -> ExchangeClient:
    """A client with the configured keys when present (public data needs none)."""
    credentials = load_credentials(config, environ)
    if sleep is None:
        return ExchangeClient.from_config(config, credentials)
    return ExchangeClient.from_config(config, credentials, sleep=sleep)


def download_data(
    config: ExchangeConfig,
    data_dir: Path,
    symbols: Sequence[str],
    timeframe: str,
    since: dt.datetime,
    until: dt.datetime | None = None,
    *,
    fmt: Format = "parquet",
    progress: Progress | None = None,
    client: ExchangeClient | None = None,
) -> list[DownloadReport]:
    """Fill `<data_dir>/<exchange>/` with the missing candles; with fmt csv also export each series as CSV."""
    client = client or exchange_client(config)
    store = CandleStore(data_dir)
    folder = store_folder(config)
    reports = download(
        client,
        store,
        folder,
        symbols,
        timeframe,
        since,
        until,
        exchange_timeframes=dict(client.exchange.timeframes),
        progress=progress,
    )
    if fmt == "csv":
        for report in reports:
            if store.exists(folder, report.symbol, timeframe):
                export_csv(store, folder, report.symbol, timeframe)
    return reports


def export_csv(store: CandleStore, folder: str, symbol: str, timeframe: str) -> Path:
    """The stored series as `<symbol>_<timeframe>.csv` beside the Parquet file (for `data.source: csv`)."""
    frame = store.load(folder, symbol, timeframe).to_frame()
    frame.index = pd.DatetimeIndex(frame.index).strftime("%Y-%m-%dT%H:%M:%SZ")
    path = store.path_for(folder, symbol, timeframe).with_suffix(".csv")
    tmp = path.with_suffix(".csv.tmp")
    frame.to_csv(tmp, index_label="timestamp")
    tmp.replace(path)
    return path
