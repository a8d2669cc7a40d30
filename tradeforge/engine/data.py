"""Candles for a bot, from wherever its config says they live."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tradeforge.config.schema import BotConfig
from tradeforge.feeds.candles import Candles, read_candles
from tradeforge.feeds.samples import load_sample, sample_path
from tradeforge.feeds.store import CandleStore
from tradeforge.feeds.timeframes import timeframe_seconds
from tradeforge.resilience.errors import ConfigError, DataError, Problem


def data_problems(config: BotConfig, data_override: str | None = None) -> list[Problem]:
    """Cheap checks that the configured candles can be found, without reading them."""
    data = config.data
    try:
        timeframe_seconds(data.timeframe)
    except ValueError as exc:
        return [Problem("data.timeframe", str(exc), data.timeframe)]
    if data.source == "binance" and data_override is None:
        return []  # live candles: symbols and timeframe are checked against the exchange at start
    if data.source == "yahoo" and data_override is None:
        return []  # Yahoo's candles: checked when the feed starts; a backtest says to run download-data
    if data.source == "ibkr" and data_override is None:
        return []  # IB's bars: contracts and timeframe are checked against TWS/Gateway at start
    problems = []
    for symbol in data.symbols:
        try:
            path = _locate(config, symbol, data_override)
        except DataError as exc:
            problems.append(Problem("data.symbols", str(exc), symbol))
            continue
        if not path.exists():
            where = "--data" if data_override else "data.path"
            problems.append(Problem(where, f"no candle file for {symbol}", str(path)))
    return problems


def _locate(config: BotConfig, symbol: str, data_override: str | None) -> Path:
    data = config.data
    if data_override:
        return Path(data_override.format(symbol=symbol.replace("/", "-"), timeframe=data.timeframe))
    if data.source == "sample" or (data.source == "replay" and not data.path):
        return sample_path(symbol, data.timeframe)
    if data.source in ("store", "binance"):  # a backtest of a live bot reads what download-data stored
        return CandleStore(config.data_dir).path_for(data.exchange, symbol, data.timeframe)
    if data.source == "yahoo":  # likewise, from the folder of the configured adjustment
        return CandleStore(config.data_dir).path_for(_yahoo_folder(config), symbol, data.timeframe)
    return data.path_for(symbol)


def load_candles(
    config: BotConfig,
    *,
    data_override: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> list[Candles]:
    """One Candles per configured symbol, cut to [start, end] (CLI beats config), never empty."""
    problems = data_problems(config, data_override)
    if problems:
        raise ConfigError(problems)
    data = config.data
    if data.source == "ibkr" and data_override is None:
        raise ConfigError(
            [Problem("data.source", "ibkr bars are live only: backtest on a candle file with --data FILE", "ibkr")]
        )
    start = start or data.start
    end = end or data.end
    loaded = []
    for symbol in data.symbols:
        if data_override is None and (data.source == "sample" or (data.source == "replay" and not data.path)):
            candles = load_sample(symbol, data.timeframe)
        elif data_override is None and data.source in ("store", "binance"):
            candles = CandleStore(config.data_dir).load(data.exchange, symbol, data.timeframe)
        elif data_override is None and data.source == "yahoo":
            candles = CandleStore(config.data_dir).load(_yahoo_folder(config), symbol, data.timeframe)
        else:
            candles = read_candles(_locate(config, symbol, data_override), symbol, data.timeframe, repair=data.repair)
        window = candles.between(start, end)
        if len(window) == 0:
            raise DataError(
                f"{symbol}: no candles between {start or 'the start'} and {end or 'the end'} "
                f"(the data covers {candles.start.isoformat()} to {candles.end.isoformat()})"
            )
        loaded.append(window)
    return loaded


def _yahoo_folder(config: BotConfig) -> str:
    from tradeforge.feeds.yahoo import store_folder

    return store_folder(config.yahoo.adjust, config.yahoo.prepost)
