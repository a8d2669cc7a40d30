"""Candles in memory as NumPy arrays, read from CSV or Parquet files and validated row by row.

Arrays rather than a DataFrame because that is what the fast Backtrader feed and the analytics
consume; validation is vectorised so a million-row file loads in well under a second.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tradeforge.feeds.timeframes import TIMEFRAMES, timeframe_seconds
from tradeforge.resilience.errors import DataError

COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = (*PRICE_COLUMNS, "volume")

_NS = 1_000_000_000
_NAT = np.iinfo(np.int64).min
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_REPORTED_ROWS = 5
# Median spacing may differ from the declared timeframe by at most this factor; adjacent
# timeframes (6h/8h) differ by 4/3, so this catches every mix-up while tolerating gaps.
_SPACING_TOLERANCE = 1.25


def _logger() -> logging.Logger:
    return logging.getLogger("tradeforge.feeds")


def to_datetime(ns: int) -> datetime:
    """A tz-aware UTC datetime from epoch nanoseconds (microsecond precision, like datetime itself)."""
    return _EPOCH + timedelta(microseconds=int(ns) // 1000)


def to_ns(moment: datetime) -> int:
    """Epoch nanoseconds of a datetime; a naive one is taken as UTC (the convention everywhere here)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def _iso(ns: int) -> str:
    return to_datetime(ns).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True, eq=False)
class Candles:
    """OHLCV candles of one symbol and timeframe as parallel arrays, stamped at candle open (UTC)."""

    symbol: str
    timeframe: str
    timestamp: np.ndarray  # int64 ns since the epoch, UTC, candle OPEN time, strictly increasing
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    source: str = ""  # where the candles came from (a file path), for error messages

    def __post_init__(self) -> None:
        timeframe_seconds(self.timeframe)
        object.__setattr__(self, "timestamp", np.ascontiguousarray(self.timestamp, dtype=np.int64))
        for name in VALUE_COLUMNS:
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
            if len(getattr(self, name)) != len(self.timestamp):
                raise ValueError(
                    f"Candles.{name} has {len(getattr(self, name))} values, timestamp has {len(self.timestamp)}"
                )

    def __len__(self) -> int:
        return len(self.timestamp)

    def __repr__(self) -> str:
        span = f", {_iso(self.timestamp[0])} → {_iso(self.timestamp[-1])}" if len(self) else ""
        return f"Candles({self.symbol} {self.timeframe}, {len(self)} rows{span})"

    @property
    def start(self) -> datetime:
        """Open time of the first candle."""
        return to_datetime(self._edge(0))

    @property
    def end(self) -> datetime:
        """Open time of the last candle."""
        return to_datetime(self._edge(-1))

    def _edge(self, index: int) -> int:
        if not len(self):
            raise DataError(f"no candles for {self.symbol} {self.timeframe}{self._from()}")
        return int(self.timestamp[index])

    def _from(self) -> str:
        return f" in {self.source}" if self.source else ""

    def between(self, start: datetime | None, end: datetime | None) -> Candles:
        """Candles whose open time lies in [start, end]; None leaves that side open."""
        lo = 0 if start is None else int(np.searchsorted(self.timestamp, to_ns(start), side="left"))
        hi = len(self) if end is None else int(np.searchsorted(self.timestamp, to_ns(end), side="right"))
        return self._take(slice(lo, max(lo, hi)))

    def _take(self, index: slice | np.ndarray) -> Candles:
        columns = {n: getattr(self, n)[index] for n in VALUE_COLUMNS}
        return Candles(self.symbol, self.timeframe, self.timestamp[index], **columns, source=self.source)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame indexed by a UTC DatetimeIndex named 'timestamp', for pandas users and Parquet."""
        index = pd.DatetimeIndex(self.timestamp.astype("datetime64[ns]"), name="timestamp").tz_localize("UTC")
        return pd.DataFrame({n: getattr(self, n) for n in VALUE_COLUMNS}, index=index)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, symbol: str, timeframe: str, source: str = "") -> Candles:
        """Validated candles from a DataFrame with a 'timestamp' column or a DatetimeIndex."""
        return _to_candles(df, symbol, timeframe, source or "DataFrame", csv_lines=False, repair=False)

    def resample(self, timeframe: str) -> Candles:
        """Aggregate to a higher timeframe, bins labelled by open time and aligned to the epoch.

        Bins with no candles (gaps) are absent. The last bin is dropped unless the data reach its
        end, so a partly formed candle never shows a backtest prices from its future.
        """
        base, target = timeframe_seconds(self.timeframe), timeframe_seconds(timeframe)
        if target < base or target % base:
            raise DataError(
                f"cannot resample {self.symbol} {self.timeframe} candles{self._from()} to "
                f"{timeframe}: the target must be a whole multiple of {self.timeframe}"
            )
        if target == base or not len(self):
            return replace(self, timeframe=timeframe)
        period = target * _NS
        bins = self.timestamp // period
        starts = np.flatnonzero(np.r_[True, bins[1:] != bins[:-1]])
        if self.timestamp[-1] + base * _NS < (bins[-1] + 1) * period:
            starts, stop = starts[:-1], starts[-1]
        else:
            stop = len(self)
        lasts = np.r_[starts[1:], stop] - 1
        return Candles(
            self.symbol,
            timeframe,
            bins[starts] * period,
            open=self.open[starts],
            high=np.maximum.reduceat(self.high[:stop], starts),
            low=np.minimum.reduceat(self.low[:stop], starts),
            close=self.close[lasts],
            volume=np.add.reduceat(self.volume[:stop], starts),
            source=self.source,
        )


@dataclass(frozen=True)
class Gap:
    """Candles missing between two consecutive ones (`after` and `before` are their open times)."""

    after: datetime
    before: datetime
    missing: int


def find_gaps(c: Candles) -> list[Gap]:
    """Every place where candles are missing (exchange outages; for stocks also nights and weekends)."""
    step = timeframe_seconds(c.timeframe) * _NS
    jumps = np.diff(c.timestamp)
    return [
        Gap(to_datetime(c.timestamp[i]), to_datetime(c.timestamp[i + 1]), int(-(-jumps[i] // step)) - 1)
        for i in np.flatnonzero(jumps > step)
    ]


def read_candles(path: str | Path, symbol: str, timeframe: str, *, repair: bool = False) -> Candles:
    """Read and validate a .csv, .csv.gz or .parquet candle file.

    Bad rows raise DataError naming the file and the first few offending rows. With repair=True
    the fixable problems (order, duplicate timestamps, NaNs, high < low) are dropped and logged.
    """
    path = Path(path)
    timeframe_seconds(timeframe)
    frame, is_csv = _read_file(path)
    candles = _to_candles(frame, symbol, timeframe, str(path), csv_lines=is_csv, repair=repair)
    if not len(candles):
        raise DataError(f"{path}: the file has no candle rows")
    return candles


def _read_file(path: Path) -> tuple[pd.DataFrame, bool]:
    if not path.is_file():
        raise DataError(f"candle file not found: {path}")
    name = path.name.lower()
    try:
        if name.endswith(".parquet"):
            return pd.read_parquet(path), False
        if name.endswith((".csv", ".csv.gz")):
            # Blank lines are kept (as empty rows) so that reported line numbers match the file.
            return pd.read_csv(path, skip_blank_lines=False), True
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty") from None
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read candles: {exc}") from exc
    raise DataError(f"{path}: unsupported file type; expected .csv, .csv.gz or .parquet")


@dataclass(frozen=True)
class _Table:
    """Parsed columns plus what is needed to point at the original rows in error messages."""

    timestamp: np.ndarray  # int64 ns; _NAT where unparsable
    values: dict[str, np.ndarray]  # float64; NaN where empty or unparsable
    raw: pd.DataFrame  # the columns as read, to quote bad values
    row: np.ndarray  # 0-based position of each entry in `raw`

    def take(self, index: np.ndarray) -> _Table:
        return _Table(self.timestamp[index], {n: a[index] for n, a in self.values.items()}, self.raw, self.row[index])


def _to_candles(
    frame: pd.DataFrame, symbol: str, timeframe: str, source: str, *, csv_lines: bool, repair: bool
) -> Candles:
    table = _parse(_select_columns(frame, source))
    if repair:
        table = _repair(table, source)
    _raise_bad_rows(table, source, csv_lines)
    _check_spacing(table.timestamp, timeframe, source)
    return Candles(symbol, timeframe, table.timestamp, **table.values, source=source)


def _select_columns(df: pd.DataFrame, source: str) -> pd.DataFrame:
    found = [str(c) for c in df.columns]
    df = df.set_axis([c.strip().lower() for c in found], axis="columns")
    if "timestamp" not in df.columns and isinstance(df.index, pd.DatetimeIndex):
        df = df.rename_axis("timestamp").reset_index()
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"{source}: missing column(s) {', '.join(missing)}; "
            f"found {', '.join(found) or 'none'} (expected {','.join(COLUMNS)}, any case)"
        )
    doubled = [c for c in COLUMNS if list(df.columns).count(c) > 1]
    if doubled:
        raise DataError(f"{source}: column(s) {', '.join(doubled)} appear more than once (names ignore case)")
    return df[list(COLUMNS)].reset_index(drop=True)


def _parse(df: pd.DataFrame) -> _Table:
    """Parse every column; wholly blank rows (blank lines) are left out but keep their line numbers."""
    table = _Table(
        _parse_timestamps(df["timestamp"]),
        {n: _parse_numbers(df[n]) for n in VALUE_COLUMNS},
        df,
        np.arange(len(df)),
    )
    blank = (table.timestamp == _NAT) & _has_nan(table, every=True)
    return table.take(np.flatnonzero(~blank)) if blank.any() else table


def _parse_timestamps(col: pd.Series) -> np.ndarray:
    """int64 ns from ISO-8601 text (Z or offset), integer epoch milliseconds, or datetimes."""
    if isinstance(col.dtype, pd.DatetimeTZDtype):
        parsed = col.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(col):
        parsed = col.dt.tz_localize("UTC")
    elif pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        parsed = pd.to_datetime(col, unit="ms", utc=True, errors="coerce")
    else:
        parsed = pd.to_datetime(col, utc=True, format="ISO8601", errors="coerce", cache=False)  # distinct stamps
    return pd.DatetimeIndex(parsed).as_unit("ns").asi8.copy()


def _parse_numbers(col: pd.Series) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
        col = pd.to_numeric(col, errors="coerce")
    return col.to_numpy(dtype=np.float64, na_value=np.nan)


def _has_nan(table: _Table, *, every: bool = False) -> np.ndarray:
    """Rows with a NaN in any (or, with every=True, all) of the value columns."""
    found = np.full(len(table.timestamp), every)
    for values in table.values.values():
        found = found & np.isnan(values) if every else found | np.isnan(values)
    return found


def _repair(table: _Table, source: str) -> _Table:
    """Sort by time, keep the last of duplicate timestamps, drop rows with NaNs or high < low."""
    v = table.values
    usable = np.flatnonzero((table.timestamp != _NAT) & ~_has_nan(table) & ~(v["high"] < v["low"]))
    ordered = usable[np.argsort(table.timestamp[usable], kind="stable")]
    ts = table.timestamp[ordered]
    kept = ordered[np.r_[ts[1:] != ts[:-1], True]]
    dropped = len(table.timestamp) - len(kept)
    resorted = bool(np.any(np.diff(ordered) < 0))
    if dropped or resorted:
        _logger().warning(
            "%s: repaired: dropped %d of %d rows (unparsable timestamps, NaNs, high < low, duplicate timestamps)%s",
            source,
            dropped,
            len(table.timestamp),
            "; rows re-sorted by time" if resorted else "",
        )
    if not len(kept):
        raise DataError(f"{source}: no usable rows left after repair")
    return table.take(kept)


def _num(x: float) -> str:
    return repr(float(x))


def _row_checks(t: _Table) -> list[tuple[np.ndarray, Callable[[int], str]]]:
    """(mask of bad rows, message for row i) for every row-level rule a candle file must follow."""
    ts, v = t.timestamp, t.values
    o, h, low, c, vol = (v[n] for n in VALUE_COLUMNS)

    def raw(i: int, name: str) -> Any:
        return t.raw[name].iloc[t.row[i]]

    def unreadable(name: str, what: str) -> Callable[[int], str]:
        return lambda i: f"{name} is empty" if pd.isna(raw(i, name)) else f"{what} {raw(i, name)!r}"

    def not_positive(name: str) -> Callable[[int], str]:
        return lambda i: f"{name} {_num(v[name][i])} is not positive"

    known = ts != _NAT
    both_known = np.r_[False, known[1:] & known[:-1]]
    prev = np.r_[ts[:1], ts[:-1]]
    checks: list[tuple[np.ndarray, Callable[[int], str]]] = [
        (~known, unreadable("timestamp", "unparsable timestamp")),
    ]
    for name in VALUE_COLUMNS:
        checks.append((np.isnan(v[name]), unreadable(name, f"{name} is not a number:")))
    for name in PRICE_COLUMNS:
        checks.append((v[name] <= 0, not_positive(name)))
    checks += [
        (vol < 0, lambda i: f"volume {_num(vol[i])} is negative"),
        (h < low, lambda i: f"high {_num(h[i])} < low {_num(low[i])}"),
        (h < np.maximum(o, c), lambda i: f"high {_num(h[i])} < max(open, close) {_num(max(o[i], c[i]))}"),
        (low > np.minimum(o, c), lambda i: f"low {_num(low[i])} > min(open, close) {_num(min(o[i], c[i]))}"),
        (both_known & (ts == prev), lambda i: f"duplicate timestamp {_iso(ts[i])} (same as the row before)"),
        (
            both_known & (ts < prev),
            lambda i: f"timestamp {_iso(ts[i])} is earlier than the row before ({_iso(prev[i])})",
        ),
    ]
    return checks


def _raise_bad_rows(table: _Table, source: str, csv_lines: bool) -> None:
    """One DataError listing the first few bad rows (each with all its problems) and how many in all."""
    checks = _row_checks(table)
    bad = np.zeros(len(table.timestamp), dtype=bool)
    for mask, _ in checks:
        bad |= mask
    rows = np.flatnonzero(bad)
    if not len(rows):
        return

    def where(i: int) -> str:
        n = int(table.row[i]) + 1
        return f"{source} line {n + 1} (row {n})" if csv_lines else f"{source} row {n}"

    lines = [f"{where(i)}: {'; '.join(say(i) for mask, say in checks if mask[i])}" for i in rows[:_MAX_REPORTED_ROWS]]
    if len(rows) > _MAX_REPORTED_ROWS:
        lines.append(f"... and {len(rows) - _MAX_REPORTED_ROWS} more bad rows in {source}")
    raise DataError("\n".join(lines))


def _describe_seconds(seconds: float) -> str:
    names = [name for name, length in TIMEFRAMES.items() if length == seconds]
    return names[0] if names else f"{seconds:g} seconds"


def _check_spacing(ts: np.ndarray, timeframe: str, source: str) -> None:
    """Catch a file loaded under the wrong timeframe (declared 1h, candles a minute apart)."""
    if len(ts) < 4:  # too few intervals for a median that weekends or gaps cannot dominate
        return
    median = float(np.median(np.diff(ts))) / _NS
    declared = timeframe_seconds(timeframe)
    if not declared / _SPACING_TOLERANCE <= median <= declared * _SPACING_TOLERANCE:
        raise DataError(
            f"{source}: declared timeframe {timeframe} but the median spacing between candles "
            f"is {_describe_seconds(median)}; load it with the timeframe it was recorded in"
        )
