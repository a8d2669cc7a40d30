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
DataSource = Literal["sample", "csv", "parquet", "store", "replay", "binance", "yahoo", "ibkr"]


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
        "sample",
        description="sample | csv | parquet | store | replay (stored candles played back as live) | binance "
        "(live candles polled from the exchange, see `exchange`) | yahoo (delayed candles polled from Yahoo "
        "Finance, see `yahoo`) | ibkr (live bars from TWS or IB Gateway, see `ibkr`)",
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


ExchangeName = Literal["binance"]


class ExchangeConfig(StrictModel):
    """The exchange behind `data.source: binance` (live candles) and `mode: live`. Keys never go in a
    config file: they come from the environment variables or secret files named here."""

    name: ExchangeName = Field("binance", description="exchange, through ccxt: binance (spot)")
    sandbox: bool = Field(False, description="use the exchange's testnet (ccxt sandbox mode)")
    urls: dict[str, str] = Field(
        default_factory=dict,
        description="merged into ccxt's urls['api'] ({public: URL, private: URL, ...}): a proxy or own endpoint",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="merged into ccxt's `options`")
    api_key_env: str = Field("TRADEFORGE_BINANCE_API_KEY", description="environment variable holding the API key")
    api_secret_env: str = Field(
        "TRADEFORGE_BINANCE_API_SECRET", description="environment variable holding the API secret"
    )
    api_key_file: Path | None = Field(None, description="file holding the API key (beats the environment variable)")
    api_secret_file: Path | None = Field(
        None, description="file holding the API secret (beats the environment variable)"
    )
    live_confirmed: bool = Field(False, description="must be true for mode: live (real orders, real money)")
    timeout_ms: int = Field(10_000, ge=100, le=120_000, description="HTTP timeout per request (ms)")
    retries: int = Field(5, ge=1, le=50, description="attempts for a read that fails temporarily (network, 429, 5xx)")
    retry_wait_max: float = Field(30.0, gt=0, le=600, description="longest wait between two attempts (s)")
    poll_interval: float = Field(
        5.0, gt=0, le=3600, description="live feed: longest sleep between two polls of the exchange (s)"
    )
    grace: float = Field(
        2.0, ge=0, le=600, description="live feed: a candle counts as closed this long after its close time (s)"
    )
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="consecutive failed calls (network, 5xx, timeouts) that open the circuit"
    )
    breaker_reset: float = Field(
        60.0, gt=0, le=86_400, description="seconds the circuit stays open: no new entries, exits still attempted"
    )
    warmup_candles: int = Field(
        500, ge=1, le=5000, description="live feed: candles back-filled on first start; the bot never trades on them"
    )
    reconcile_tolerance: float = Field(
        1e-8,
        ge=0,
        description="start-up reconciliation: the largest shortfall per asset (account below what the bot's fills "
        "say, in that asset's units) that still lets the bot trade",
    )

    @model_validator(mode="after")
    def _urls_are_urls(self) -> ExchangeConfig:
        bad = [key for key, url in self.urls.items() if not url.startswith(("http://", "https://"))]
        if bad:
            raise ValueError(f"exchange.urls.{bad[0]} must be an http(s) URL")
        return self


class YahooConfig(StrictModel):
    """Yahoo Finance behind `data.source: yahoo`: how prices are adjusted, which exchange calendar the
    symbols follow, and how the paper feed polls. Yahoo needs no keys."""

    adjust: Literal["none", "splits", "all"] = Field(
        "splits",
        description="prices as traded (none), split-adjusted as Yahoo serves them (splits), or also "
        "dividend-adjusted (all, daily and weekly candles only); each has its own candle-store folder",
    )
    prepost: bool = Field(
        False,
        description="intraday candles of the pre- and post-market sessions too (US exchanges); kept in a "
        "candle-store folder of their own",
    )
    calendar: str | None = Field(
        None,
        description="exchange_calendars code (XNYS, XLON, 24/5, 24/7...); default: from the symbol's suffix",
    )
    poll_interval: float = Field(
        60.0, gt=0, le=3600, description="paper feed: wait between two polls while a due candle is not served yet (s)"
    )
    grace: float = Field(
        30.0,
        ge=0,
        le=3600,
        description="paper feed: a candle counts as closed this long after close + Yahoo's delay (s)",
    )
    warmup_candles: int = Field(
        200, ge=1, le=5000, description="paper feed: candles back-filled on first start; the bot never trades on them"
    )
    timeout: float = Field(30.0, gt=0, le=300, description="HTTP timeout per request (s)")
    retries: int = Field(
        5, ge=1, le=50, description="attempts for a request that fails temporarily (network, 429, 5xx)"
    )
    retry_wait_max: float = Field(60.0, gt=0, le=600, description="longest wait between two attempts (s)")
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="requests failing after all their retries that open the circuit (no requests)"
    )
    breaker_reset: float = Field(300.0, gt=0, le=86_400, description="seconds the circuit stays open")


SecType = Literal["STK", "FUT", "CASH"]


class IbkrContractConfig(StrictModel):
    """One IBKR contract, as `data.symbols` names it: enough for IB to find exactly one contract."""

    symbol: str = Field(min_length=1, description="IB's symbol: AAPL, ES, EUR (CASH: the base currency)")
    sec_type: SecType = Field("STK", description="STK (stock, ETF) | FUT (future) | CASH (FX pair on IDEALPRO)")
    exchange: str = Field("SMART", min_length=1, description="SMART, NYSE, CME, IDEALPRO ...")
    currency: str = Field("USD", pattern=r"^[A-Z]{3}$", description="trading currency (CASH: the quote currency)")
    expiry: str | None = Field(
        None, pattern=r"^[0-9]{6}([0-9]{2})?$", description="futures only: contract month YYYYMM or date YYYYMMDD"
    )
    primary_exchange: str | None = Field(None, description="STK with SMART routing: the listing exchange, if needed")

    @model_validator(mode="after")
    def _expiry_for_futures(self) -> IbkrContractConfig:
        if self.sec_type == "FUT" and not self.expiry:
            raise ValueError("a FUT contract needs `expiry` (YYYYMM or YYYYMMDD)")
        if self.sec_type != "FUT" and self.expiry:
            raise ValueError(f"`expiry` is for FUT contracts only, not {self.sec_type}")
        return self


class IbkrConfig(StrictModel):
    """Interactive Brokers through TWS or IB Gateway (ib_async) behind `data.source: ibkr`. IB needs no keys
    here: TWS/Gateway is logged in already; the API accepts connections from `host` with a unique `client_id`."""

    host: str = Field("127.0.0.1", min_length=1, description="where TWS or IB Gateway runs")
    port: int = Field(
        7497,
        ge=1,
        le=65535,
        description="API port: 7497 TWS paper, 7496 TWS live, 4002 Gateway paper, 4001 Gateway live",
    )
    client_id: int = Field(1, ge=0, le=2**31 - 1, description="API client id, unique per connection to TWS/Gateway")
    live_confirmed: bool = Field(
        False, description="must be true for mode: live on IBKR (real orders on the logged-in account)"
    )
    account: str | None = Field(None, description="account code (DU... for paper); default: the login's only account")
    contracts: dict[str, IbkrContractConfig] = Field(
        default_factory=dict,
        description="contracts by the name used in data.symbols; a name not listed is a SMART-routed USD stock",
    )
    what_to_show: Literal["TRADES", "MIDPOINT", "BID", "ASK"] | None = Field(
        None, description="bar source; default TRADES, MIDPOINT for CASH (IB has no trades for FX)"
    )
    use_rth: bool = Field(False, description="regular trading hours only (stocks, futures)")
    warmup_candles: int = Field(
        200, ge=1, le=5000, description="bars back-filled on first start; the bot never trades on them"
    )
    grace: float = Field(
        2.0, ge=0, le=600, description="a bar counts as closed this long after its close when IB sent no newer bar (s)"
    )
    poll_interval: float = Field(1.0, gt=0, le=60, description="feed: how long one poll waits for IB's updates (s)")
    connect_timeout: float = Field(10.0, gt=0, le=300, description="one connection attempt (s)")
    reconnect_wait_max: float = Field(60.0, gt=0, le=3600, description="longest wait between reconnect attempts (s)")
    reconnect_give_up: float = Field(
        1800.0, gt=0, le=86_400, description="stop trying to reconnect after this long (TWS's nightly restart: minutes)"
    )
    pacing_retries: int = Field(
        3, ge=0, le=20, description="historical-data requests retried after an IB pacing violation (error 162/420)"
    )
    pacing_wait: float = Field(
        15.0, ge=0, le=600, description="wait before the first retry after a pacing violation, doubled each time (s)"
    )
    order_timeout: float = Field(
        10.0, gt=0, le=300, description="how long to wait for IB to acknowledge an order or confirm a cancel (s)"
    )
    reconcile_tolerance: float = Field(
        1e-8,
        ge=0,
        description="start-up reconciliation: the largest difference per contract (IB's position against what the "
        "bot's fills say, in the contract's units; for a long only a shortfall counts) that still lets the bot trade",
    )

    def contract_for(self, name: str) -> IbkrContractConfig:
        """The contract `data.symbols` means by `name`."""
        return self.contracts.get(name) or IbkrContractConfig(symbol=name)


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


AlertLevel = Literal["info", "warning", "error", "critical"]
AlertKind = Literal[
    "bot_started",
    "bot_stopped",
    "bot_recovered",
    "order_placed",
    "order_filled",
    "order_cancelled",
    "order_rejected",
    "trade_opened",
    "trade_closed",
    "stop_hit",
    "protection_triggered",
    "breaker_opened",
    "breaker_closed",
    "error",
    "daily_summary",
]
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"


class TelegramConfig(StrictModel):
    """Telegram alerts and control. The bot token is a secret: from `token_env` or `token_file`, never the config."""

    token_env: str = Field(
        "TRADEFORGE_TELEGRAM_TOKEN", pattern=_ENV_NAME, description="environment variable holding the bot token"
    )
    token_file: Path | None = Field(None, description="file holding the bot token (beats token_env)")
    chat_ids: list[int] = Field(
        min_length=1, description="chats that get alerts and may send commands (numeric ids; groups are negative)"
    )
    api_base_url: str | None = Field(
        None,
        pattern=r"^https?://[^\s]+$",
        description="self-hosted Bot API server, e.g. http://127.0.0.1:8081/bot (the token is appended)",
    )
    events: list[AlertKind] | None = Field(None, description="alert kinds sent here; default all")
    min_level: AlertLevel = Field("info", description="info | warning | error | critical")
    commands: bool = Field(True, description="accept /status, /pause … from chat_ids")
    per_chat_interval_s: float = Field(1.0, ge=0, le=60, description="at least this long between messages to a chat")
    timeout_s: float = Field(10.0, gt=0, le=120, description="HTTP timeout per Bot API request")


class EmailConfig(StrictModel):
    """E-mail alerts over SMTP (HTML and plain-text parts). The password comes from env or a file."""

    model_config = ConfigDict(extra="forbid", validate_default=True, populate_by_name=True)

    host: str = Field(min_length=1, description="SMTP server")
    port: int = Field(587, ge=1, le=65535, description="587 for STARTTLS, 465 for SSL")
    security: Literal["starttls", "ssl", "none"] = Field("starttls", description="starttls | ssl | none")
    user: str | None = Field(None, description="SMTP login; none: send without logging in")
    password_env: str = Field(
        "TRADEFORGE_SMTP_PASSWORD", pattern=_ENV_NAME, description="environment variable holding the SMTP password"
    )
    password_file: Path | None = Field(None, description="file holding the SMTP password (beats password_env)")
    from_addr: str = Field(alias="from", pattern=r"^[^@\s]+@[^@\s]+$", description="sender address")
    to: list[Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]] = Field(min_length=1, description="recipients")
    events: list[AlertKind] | None = Field(None, description="alert kinds sent here; default all")
    min_level: AlertLevel = Field("warning", description="info | warning | error | critical")
    timeout_s: float = Field(10.0, gt=0, le=120, description="SMTP timeout")


class DeliveryConfig(StrictModel):
    """How hard alerts are pushed through a failing channel."""

    max_attempts: int = Field(10, ge=1, le=1000, description="dead-letter after this many failed attempts …")
    give_up_after_s: float = Field(
        86_400.0, ge=0, description="… and at least this long after the first (an outage alone never drops alerts)"
    )
    backoff_initial_s: float = Field(1.0, gt=0, description="first retry delay (exponential, with jitter)")
    backoff_max_s: float = Field(300.0, gt=0, description="longest retry delay")
    breaker_failures: int = Field(5, ge=1, description="consecutive failures that open a channel's circuit breaker")
    breaker_reset_s: float = Field(30.0, gt=0, description="open breaker: wait this long, then probe (half-open)")
    batch_window_s: float = Field(2.0, ge=0, description="merge a burst of trading alerts within this window")
    drain_on_stop_s: float = Field(
        5.0, ge=0, le=600, description="on stop, keep delivering this long; the rest goes at the next start"
    )


class NotificationsConfig(StrictModel):
    """Alerts (Telegram, e-mail) and Telegram control. Off unless a channel is configured."""

    telegram: TelegramConfig | None = Field(None, description="see `notifications.telegram`")
    email: EmailConfig | None = Field(None, description="see `notifications.email`")
    daily_summary_at: dt.time | None = Field(None, description="UTC time of day for the daily summary, e.g. 20:00")
    delivery: DeliveryConfig = Field(
        default_factory=lambda: DeliveryConfig(), description="see `notifications.delivery`"
    )
    templates: dict[AlertKind, str] = Field(
        default_factory=dict, description="message text per alert kind, e.g. {trade_closed: 'closed {symbol} {pnl}'}"
    )


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
    exchange: ExchangeConfig = Field(default_factory=lambda: ExchangeConfig(), description="see `exchange`")
    yahoo: YahooConfig = Field(default_factory=lambda: YahooConfig(), description="see `yahoo`")
    ibkr: IbkrConfig = Field(default_factory=lambda: IbkrConfig(), description="see `ibkr`")
    cancel_open_orders_on_exit: bool = Field(
        False,
        description="a graceful stop (SIGINT/SIGTERM) cancels the bot's open orders; resting stops and targets "
        "of open trades are placed again on the first candle after a restart",
    )
    strategy: StrategyConfig = Field(description="see `strategy` and the mixin tables")
    notifications: NotificationsConfig = Field(
        default_factory=lambda: NotificationsConfig(), description="see `notifications`"
    )
    optimize: OptimizeConfig = Field(default_factory=lambda: OptimizeConfig(), description="see `optimize`")
