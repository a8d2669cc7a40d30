"""The bot configuration as strict Pydantic models: unknown keys are errors, values are bounded.

Mixin parameters are validated against the mixins' own declarations by the strategy registry
(config cannot know which mixins exist); everything else is validated here.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, model_validator

Mode = Literal["backtest", "paper", "live"]
DataSource = Literal["sample", "csv", "parquet", "store", "replay"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_default=True)


def _utc(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC) if value is not None else None


UtcDatetime = Annotated[dt.datetime, AfterValidator(_utc)]
Timeframe = Annotated[str, Field(pattern=r"^[1-9][0-9]*[mhdw]$", examples=["1m", "15m", "1h", "4h", "1d"])]


class DataConfig(StrictModel):
    """Where candles come from. `path` may use `{symbol}` (BTC-USDT) and `{timeframe}` placeholders."""

    source: DataSource = Field(
        "sample", description="sample | csv | parquet | store | replay (stored candles played back as live)"
    )
    path: str | None = Field(None, description="candle file for csv/parquet (and replay; default: the sample)")
    symbols: list[str] = Field(default_factory=lambda: ["BTC/USDT"], min_length=1, description="one or more")
    timeframe: Timeframe = Field("1h", description="candle length: 1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 1w")
    exchange: str = Field("binance", description="candle-store folder for source: store")
    start: UtcDatetime | None = Field(None, description="first candle used (UTC; --from beats it)")
    end: UtcDatetime | None = Field(None, description="last candle used (UTC; --to beats it)")
    repair: bool = Field(False, description="drop bad candle rows (logged) instead of failing")
    speed: float | Literal["max"] = Field(
        "max", description="replay pace: 60 = an hour of candles per minute, max = as fast as possible"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DataConfig:
        if self.source in ("csv", "parquet") and not self.path:
            raise ValueError(f"data.path is required when data.source is {self.source!r}")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("data.start must be before data.end")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("data.symbols lists a symbol twice")
        if self.speed != "max" and not (isinstance(self.speed, float | int) and self.speed > 0):
            raise ValueError("data.speed must be a positive number or 'max'")
        return self

    def path_for(self, symbol: str) -> Path:
        assert self.path is not None
        return Path(self.path.format(symbol=symbol.replace("/", "-"), timeframe=self.timeframe))


class BrokerConfig(StrictModel):
    """Simulated broker: starting cash, commission and slippage as fractions of notional."""

    cash: float = Field(10_000.0, gt=0, description="starting cash in quote currency")
    commission: float = Field(0.001, ge=0, le=0.1, description="fraction of notional per fill")
    slippage: float = Field(0.0, ge=0, le=0.1, description="fraction of price, against the order")
    max_fill_fraction_of_volume: float | None = Field(
        None, gt=0, le=1, description="partial fills: at most this share of a candle's volume per order per candle"
    )


class MixinChoice(BaseModel):
    """`{name: sma_cross, fast: 10, slow: 30}`: a mixin name plus its parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class StrategyConfig(StrictModel):
    """Either composed from mixins (`entry` ...), or a preset, or a Python class by import path."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    entry: MixinChoice | None = Field(None, description="entry mixin: {name: ..., its parameters}")
    exits: dict[str, dict[str, Any] | None] = Field(default_factory=dict, description="exit mixins by name")
    sizing: MixinChoice = Field(
        default_factory=lambda: MixinChoice(name="percent_equity"), description="sizing mixin: {name: ..., ...}"
    )
    filters: dict[str, dict[str, Any] | None] = Field(default_factory=dict, description="filter mixins by name")
    protections: dict[str, dict[str, Any] | None] = Field(default_factory=dict, description="protection mixins by name")
    direction: Literal["long", "short", "both"] = Field("long", description="sides the strategy may trade")
    preset: str | None = Field(None, description="a registered preset strategy")
    class_path: str | None = Field(None, alias="class", description="'package.module:ClassName'")
    params: dict[str, Any] = Field(default_factory=dict, description="parameters for preset/class")

    @model_validator(mode="after")
    def _one_source(self) -> StrategyConfig:
        chosen = [k for k, v in (("entry", self.entry), ("preset", self.preset), ("class", self.class_path)) if v]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one of strategy.entry (compose from mixins), strategy.preset or strategy.class"
                + (f"; got {', '.join(chosen)}" if chosen else "")
            )
        if self.params and self.entry:
            raise ValueError("strategy.params is for preset/class strategies; put mixin parameters in their block")
        return self


class PersistenceConfig(StrictModel):
    """Where the bot's trades, orders and events are stored."""

    db_url: str | None = Field(
        None, description="SQLAlchemy URL; default sqlite:///<data_dir>/tradeforge.sqlite (postgresql://… works)"
    )
    busy_timeout_ms: int = Field(10_000, ge=0, le=600_000, description="SQLite lock wait before giving up")


class RangeOverride(StrictModel):
    """A search range for one parameter; an unset side keeps the declared optimization range's."""

    low: float | None = Field(None, description="lowest value tried")
    high: float | None = Field(None, description="highest value tried")
    step: float | None = Field(None, gt=0, description="grid step (integers: at least 1)")
    log: bool = Field(False, description="sample on a log scale (no step)")


def _fraction(value: Any) -> Any:
    """`20%` -> 0.2; numbers pass through."""
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            return float(value.strip()[:-1]) / 100
        except ValueError:
            return value
    return value


Fraction = Annotated[float, BeforeValidator(_fraction), Field(ge=0, lt=0.9)]
SpaceEntry = RangeOverride | list[str | bool | int | float] | str | bool | int | float


class OptimizeConfig(StrictModel):
    """Optimization studies (`tradeforge optimize`); command-line options beat these values.
    `space` is keyed by mixin name, then parameter: `{low, high, step}` narrows a range, a list gives
    the choices, a single value fixes the parameter, and `MIXIN: false` leaves a whole mixin alone."""

    objectives: list[str] = Field(
        default_factory=lambda: ["sharpe"],
        min_length=1,
        description="sharpe sortino calmar total_return profit_factor sqn max_drawdown cagr or module:function; "
        "two or more make a Pareto study",
    )
    trials: int = Field(100, ge=1, le=1_000_000, description="finished trials the study should have")
    space: dict[str, dict[str, SpaceEntry] | Literal[False]] = Field(
        default_factory=dict, description="search-space overrides: {mixin: {param: range, list or value}}"
    )
    min_trades: int = Field(1, ge=0, description="reject a trial with fewer closed trades (out of sample)")
    walk_forward: int = Field(0, ge=0, le=50, description="score on K out-of-sample folds (0: the whole period)")
    walk_forward_mode: Literal["anchored", "rolling"] = Field(
        "anchored", description="anchored: train from the start; rolling: train on the previous fold only"
    )
    holdout: Fraction = Field(0.0, description="last fraction of the data never shown to the optimizer (0.2 or 20%)")
    prune: bool = Field(True, description="median pruner over walk-forward folds (single objective)")
    top: int = Field(5, ge=1, le=100, description="best trials evaluated on the hold-out and in sample")
    seed: int | None = Field(None, description="sampler seed (each worker adds its index)")
    study: str | None = Field(None, description="study name (default: the bot name)")
    storage: str | None = Field(
        None, description="Optuna storage URL (default sqlite:///<data_dir>/optuna.sqlite); keep passwords in env"
    )


class BotConfig(StrictModel):
    """A whole bot: what it trades, on which data, with which strategy and broker."""

    name: str = Field(
        "tradeforge-bot", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$", description="bot name"
    )
    mode: Mode = Field("paper", description="backtest | paper | live; `tradeforge backtest` always simulates")
    data_dir: Path = Field(Path("user_data"), description="candle store and databases live here")
    data: DataConfig = Field(default_factory=lambda: DataConfig(), description="candles: see `data`")
    broker: BrokerConfig = Field(default_factory=lambda: BrokerConfig(), description="see `broker`")
    persistence: PersistenceConfig = Field(default_factory=lambda: PersistenceConfig(), description="see `persistence`")
    strategy: StrategyConfig = Field(description="see `strategy` and the mixin tables")
    optimize: OptimizeConfig = Field(default_factory=lambda: OptimizeConfig(), description="see `optimize`")
