"""Candles on disk: one Parquet file per source, symbol and timeframe, merged on every save.

Layout: `<data_dir>/<source>/<symbol with / as ->_<timeframe>.parquet`. Writes go to a temporary
file that replaces the old one, so a crash mid-write never leaves a half-written candle file.
"""

from __future__ import annotations

import builtins
import os
import tempfile
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tradeforge.feeds.candles import VALUE_COLUMNS, Candles, read_candles, to_datetime
from tradeforge.resilience.errors import DataError

# The original symbol and timeframe ride along in the Parquet schema metadata, because a file
# name cannot tell "BTC/USDT" from a symbol that really contains a dash.
_SYMBOL_KEY = b"tradeforge.symbol"
_TIMEFRAME_KEY = b"tradeforge.timeframe"


class StoredSeries(NamedTuple):
    """One candle file in the store, as `CandleStore.list()` reports it."""

    source: str
    symbol: str
    timeframe: str
    rows: int
    start: datetime | None
    end: datetime | None


class CandleStore:
    """Reads and writes candle files under one data directory."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir)

    def path_for(self, source: str, symbol: str, timeframe: str) -> Path:
        """Where the candles of one source, symbol and timeframe live."""
        return self.data_dir / source / f"{symbol.replace('/', '-')}_{timeframe}.parquet"

    def exists(self, source: str, symbol: str, timeframe: str) -> bool:
        return self.path_for(source, symbol, timeframe).is_file()

    def load(self, source: str, symbol: str, timeframe: str) -> Candles:
        """The stored candles; a missing file says where it was expected and how to get it."""
        path = self.path_for(source, symbol, timeframe)
        if not path.is_file():
            raise DataError(
                f"no {timeframe} candles for {symbol} from {source}: expected {path}; "
                f"run `tradeforge download-data` to fetch them"
            )
        return read_candles(path, symbol, timeframe)

    def save(self, source: str, candles: Candles) -> Path:
        """Merge candles into the stored file (union by timestamp, the new rows win) atomically."""
        path = self.path_for(source, candles.symbol, candles.timeframe)
        if path.is_file():
            candles = _merge(read_candles(path, candles.symbol, candles.timeframe), candles)
        if not len(candles):
            raise DataError(f"no {candles.timeframe} candles for {candles.symbol} to save to {path}")
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomically(_to_table(candles), path)
        return path

    def list(self) -> builtins.list[StoredSeries]:
        """Every stored candle file with its row count and time span, sorted by path."""
        if not self.data_dir.is_dir():
            return []
        return [_describe(path) for path in sorted(self.data_dir.glob("*/*_*.parquet"))]


def _merge(old: Candles, new: Candles) -> Candles:
    stamps = np.concatenate([old.timestamp, new.timestamp])
    order = np.argsort(stamps, kind="stable")  # stable: of equal stamps the new row comes last
    ordered = stamps[order]
    keep = order[np.r_[ordered[1:] != ordered[:-1], True]]
    values = {n: np.concatenate([getattr(old, n), getattr(new, n)])[keep] for n in VALUE_COLUMNS}
    return Candles(new.symbol, new.timeframe, stamps[keep], **values, source=new.source)


def _to_table(candles: Candles) -> pa.Table:
    columns = {"timestamp": pa.array(candles.timestamp, type=pa.timestamp("ns", tz="UTC"))}
    columns |= {n: pa.array(getattr(candles, n), type=pa.float64()) for n in VALUE_COLUMNS}
    metadata = {_SYMBOL_KEY: candles.symbol.encode(), _TIMEFRAME_KEY: candles.timeframe.encode()}
    return pa.table(columns).replace_schema_metadata(metadata)


def _write_atomically(table: pa.Table, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _describe(path: Path) -> StoredSeries:
    name_symbol, _, name_timeframe = path.stem.rpartition("_")
    try:
        table = pq.read_table(path, columns=["timestamp"])
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read candles: {exc}") from exc
    metadata = table.schema.metadata or {}
    stamps = table.column("timestamp").cast(pa.int64()).to_numpy()
    return StoredSeries(
        source=path.parent.name,
        symbol=metadata.get(_SYMBOL_KEY, name_symbol.replace("-", "/").encode()).decode(),
        timeframe=metadata.get(_TIMEFRAME_KEY, name_timeframe.encode()).decode(),
        rows=len(stamps),
        start=to_datetime(stamps.min()) if len(stamps) else None,
        end=to_datetime(stamps.max()) if len(stamps) else None,
    )


class StagedHistory:
    """A live bot's candle history in one store folder, for feeds that back-fill at start: the pages
    they back-fill are held until `commit()`, so a start that fails half-way (an unknown symbol, an
    unreachable source) leaves the stored history as it was; after it, each page is saved as it comes."""

    def __init__(self, store: CandleStore, folder: str) -> None:
        self.store = store
        self.folder = folder
        self._held: list[Candles] | None = []

    def history(self, symbol: str, timeframe: str) -> Candles:
        """The stored candles of `symbol`, or none yet."""
        if self.store.exists(self.folder, symbol, timeframe):
            return self.store.load(self.folder, symbol, timeframe)
        empty = np.empty(0)
        return Candles(symbol, timeframe, empty.astype(np.int64), empty, empty, empty, empty, empty)

    def keep(self, page: Candles) -> None:
        """A feed's `on_closed`: held before `commit()`, saved after it."""
        if self._held is None:
            self.store.save(self.folder, page)
        else:
            self._held.append(page)

    def commit(self) -> None:
        """Every feed's back-fill succeeded: save what was held, and from now on save as it comes."""
        for page in self._held or []:
            self.store.save(self.folder, page)
        self._held = None
