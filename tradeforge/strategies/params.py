"""Parameter declarations: each mixin declares its parameters once; validation, listings and the
optimizer's search space all read the same declaration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Kind = Literal["entry", "exit", "sizing", "filter", "protection", "strategy"]


@dataclass(frozen=True)
class Param:
    """One tunable parameter: default, inclusive validation bounds and optimization range."""

    default: int | float | bool | str | None
    low: float | None = None
    high: float | None = None
    opt: tuple[float, float] | None = None
    step: float | None = None
    choices: tuple[str, ...] | None = None
    doc: str = ""

    @property
    def type(self) -> type:
        if isinstance(self.default, bool):
            return bool
        if self.default is None:
            return float
        return type(self.default)

    def describe_range(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        if self.opt is None:
            return "-"
        low, high = self.opt
        step = f" step {self.step:g}" if self.step else ""
        return f"{low:g}..{high:g}{step}"


class Mixin:
    """Base of every pluggable strategy part. `name` is the config key, unique across all kinds."""

    name: ClassVar[str] = ""
    kind: ClassVar[Kind]
    param_specs: ClassVar[dict[str, Param]] = {}

    @classmethod
    def bt_param(cls, param: str) -> str:
        """Backtrader parameter name: prefixed by the mixin name so two mixins never collide."""
        return f"{cls.name}_{param}"

    @classmethod
    def check_params(cls, values: dict[str, Any]) -> list[tuple[str, str]]:
        """Cross-parameter checks (e.g. fast < slow): a list of (param, message); empty when consistent."""
        return []

    @classmethod
    def check_for_feed(cls, values: dict[str, Any], timeframe_seconds: int) -> list[tuple[str, str]]:
        """Checks that need the feed's candle length (seconds); same shape as check_params."""
        return []

    @classmethod
    def lookback(cls, params: dict[str, Any], feed_seconds: int) -> int:
        """Bars of history the mixin's arrays need before their values are meaningful; a live
        strategy recomputes them over a trailing window sized from this."""
        return 0

    def mixin_params(self, cls: type[Mixin]) -> dict[str, Any]:
        """This strategy instance's values for the parameters `cls` declared (unprefixed names)."""
        params = self.p  # type: ignore[attr-defined]
        return {name: getattr(params, cls.bt_param(name)) for name in cls.param_specs}

    def prepare(self, book: Any, bars: Any) -> None:
        """Precompute per-symbol arrays (stored in `book.arrays`) once the candles are loaded."""

    @classmethod
    def summary(cls) -> str:
        doc = (cls.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""
