"""The registry: every mixin and preset by name, validation of their parameters, and composition
of a strategy class from a config's `strategy` section. Plugins join through the
`tradeforge.strategies` entry-point group (a Mixin subclass, or a Strategy subclass as a preset)."""

from __future__ import annotations

import difflib
import functools
import importlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Literal

import backtrader as bt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from tradeforge.config.loader import problems_from_validation
from tradeforge.config.schema import StrategyConfig
from tradeforge.resilience.errors import ConfigError, Problem
from tradeforge.strategies.base import Strategy, mixins_of
from tradeforge.strategies.library.presets import PRESETS
from tradeforge.strategies.mixins.entries import ENTRIES
from tradeforge.strategies.mixins.exits import EXITS
from tradeforge.strategies.mixins.filters import FILTERS
from tradeforge.strategies.mixins.kinds import MIXIN_KINDS, ExitMixin
from tradeforge.strategies.mixins.protections import PROTECTIONS
from tradeforge.strategies.mixins.sizing import SIZINGS
from tradeforge.strategies.params import Kind, Mixin, Param

log = logging.getLogger("tradeforge.strategies")
ENTRY_POINT_GROUP = "tradeforge.strategies"
KIND_ORDER: tuple[Kind, ...] = ("entry", "exit", "sizing", "filter", "protection")
_SECTION = {"exit": "exits", "filter": "filters", "protection": "protections"}


@dataclass(frozen=True)
class ResolvedStrategy:
    """A strategy class plus the Backtrader parameters the config asked for."""

    cls: type[Strategy]
    params: dict[str, Any]
    label: str


class Registry:
    def __init__(self, mixins: Iterable[type[Mixin]] = (), presets: dict[str, type[Strategy]] | None = None):
        self._timeframe_seconds: int | None = None
        self._mixins: dict[str, type[Mixin]] = {}
        self._presets: dict[str, type[Strategy]] = {}
        for mixin in mixins:
            self.add_mixin(mixin)
        for name, cls in (presets or {}).items():
            self.add_preset(name, cls)

    @classmethod
    def default(cls, plugins: bool = True) -> Registry:
        """The built-in mixins and presets, plus installed plugins."""
        registry = cls((*ENTRIES, *EXITS, *SIZINGS, *FILTERS, *PROTECTIONS), PRESETS)
        if plugins:
            for point in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    registry.add_plugin(point.name, point.load())
                except Exception as exc:  # a broken plugin must not take the built-ins down with it
                    log.warning("skipping strategy plugin %s (%s): %s", point.name, point.value, exc)
        return registry

    def add_plugin(self, name: str, obj: Any) -> None:
        if isinstance(obj, type) and issubclass(obj, Strategy):  # first: a composed strategy is a Mixin too
            self.add_preset(name, obj)
        elif isinstance(obj, type) and issubclass(obj, Mixin):
            self.add_mixin(obj)
        else:
            raise TypeError(f"entry point {name!r} is neither a Mixin nor a Strategy subclass: {obj!r}")

    def add_mixin(self, mixin: type[Mixin]) -> None:
        if not mixin.name or mixin.kind not in MIXIN_KINDS:
            raise TypeError(f"{mixin.__name__} needs a `name` and must subclass one of the mixin kinds")
        existing = self._mixins.get(mixin.name)
        if existing is not None and existing is not mixin:
            raise TypeError(f"mixin name {mixin.name!r} is taken by {existing.__module__}.{existing.__name__}")
        self._mixins[mixin.name] = mixin

    def add_preset(self, name: str, cls: type[Strategy]) -> None:
        self._presets[name] = cls

    def mixins(self, kind: Kind | None = None) -> list[type[Mixin]]:
        return [m for m in self._mixins.values() if kind is None or m.kind == kind]

    def presets(self) -> dict[str, type[Strategy]]:
        return dict(self._presets)

    # --- from config -----------------------------------------------------------------------------

    def resolve(self, config: StrategyConfig, timeframe_seconds: int | None = None) -> ResolvedStrategy:
        """The class and parameters a `strategy` section describes; ConfigError lists every problem.

        With the feed's candle length, parameters that must fit the data (e.g. a trend filter's
        higher timeframe) are checked too."""
        problems: list[Problem] = []
        self._timeframe_seconds = timeframe_seconds
        if config.entry is not None:
            resolved = self._compose_from_config(config, problems)
        else:
            resolved = self._load_named(config, problems)
        if problems or resolved is None:
            raise ConfigError(problems)
        return resolved

    def _compose_from_config(self, config: StrategyConfig, problems: list[Problem]) -> ResolvedStrategy | None:
        assert config.entry is not None
        chosen: list[tuple[type[Mixin], dict[str, Any]]] = []
        single = {"entry": config.entry, "sizing": config.sizing}
        for kind, choice in single.items():
            mixin = self._lookup(kind, choice.name, f"strategy.{kind}.name", problems)  # type: ignore[arg-type]
            if mixin:
                values = self._validate(mixin, choice.params(), f"strategy.{kind}", problems)
                chosen.append((mixin, values))
        for kind, section in _SECTION.items():
            for name, params in getattr(config, section).items():
                where = f"strategy.{section}.{name}"
                mixin = self._lookup(kind, name, where, problems)  # type: ignore[arg-type]
                if mixin:
                    chosen.append((mixin, self._validate(mixin, params or {}, where, problems)))
        if problems:
            return None
        classes = [m for m, _ in chosen]
        problems.extend(composition_problems(classes, "strategy.sizing.name"))
        if problems:
            return None
        cls = compose(*classes)  # type: ignore[arg-type]  # mypy: classes are hashable
        params = {m.bt_param(k): v for m, values in chosen for k, v in values.items()}
        params["direction"] = config.direction
        return ResolvedStrategy(cls, params, "+".join(m.name for m in classes))

    def _load_named(self, config: StrategyConfig, problems: list[Problem]) -> ResolvedStrategy | None:
        if config.preset:
            cls = self._presets.get(config.preset)
            if cls is None:
                problems.append(
                    Problem(
                        "strategy.preset",
                        f"unknown preset{_choices(config.preset, self._presets)}",
                        config.preset,
                    )
                )
                return None
            label = config.preset
        else:
            assert config.class_path is not None
            cls = _import_strategy(config.class_path, problems)
            if cls is None:
                return None
            label = config.class_path
            mixins = [m for kind in MIXIN_KINDS.values() for m in mixins_of(cls, kind)]
            problems.extend(composition_problems(mixins, "strategy.class"))
        params = self._validate_class_params(cls, config.params, problems)
        params["direction"] = config.direction
        return ResolvedStrategy(cls, params, label)

    def _validate_class_params(
        self, cls: type[Strategy], given: dict[str, Any], problems: list[Problem]
    ) -> dict[str, Any]:
        known = set(cls.params._getkeys()) - {"events", "direction"}  # type: ignore[attr-defined]
        for key in given:
            if key == "direction":
                problems.append(Problem("strategy.params.direction", "set strategy.direction instead", given[key]))
            elif key not in known:
                problems.append(
                    Problem(
                        f"strategy.params.{key}",
                        f"{cls.__name__} has no such parameter{_choices(key, known)}",
                    )
                )
        params: dict[str, Any] = {}
        for kind in MIXIN_KINDS.values():
            for mixin in mixins_of(cls, kind):
                mine = {p: given[mixin.bt_param(p)] for p in mixin.param_specs if mixin.bt_param(p) in given}
                values = self._validate(mixin, {**_defaults(mixin), **mine}, "strategy.params", problems, prefixed=True)
                params.update({mixin.bt_param(p): v for p, v in values.items() if p in mine})
        params.update({k: v for k, v in given.items() if k in known and k not in params})
        return params

    def _lookup(self, kind: Kind, name: str, where: str, problems: list[Problem]) -> type[Mixin] | None:
        mixin = self._mixins.get(name)
        if mixin is None or mixin.kind != kind:
            options = [m.name for m in self.mixins(kind)]
            problems.append(Problem(where, f"unknown {kind} mixin{_choices(name, options)}", name))
            return None
        return mixin

    def _validate(
        self,
        mixin: type[Mixin],
        values: dict[str, Any],
        where: str,
        problems: list[Problem],
        prefixed: bool = False,
    ) -> dict[str, Any]:
        try:
            model = params_model(mixin).model_validate(values)  # type: ignore[arg-type]  # mypy: classes are hashable
        except ValidationError as exc:
            found = problems_from_validation(exc, prefix=where, root=params_model(mixin))  # type: ignore[arg-type]  # mypy: classes are hashable
            if prefixed:  # class params are flat: report `strategy.params.sma_cross_fast`
                found = [Problem(_prefixed(p.where, where, mixin), p.message, p.value) for p in found]
            problems.extend(found)
            return {}
        checked = model.model_dump()
        clashes = mixin.check_params(checked)
        if self._timeframe_seconds is not None:
            clashes = [*clashes, *mixin.check_for_feed(checked, self._timeframe_seconds)]
        for param, message in clashes:
            name = mixin.bt_param(param) if prefixed else param
            problems.append(Problem(f"{where}.{name}", message, checked.get(param)))
        return checked


def composition_problems(mixins: list[type[Mixin]], where: str) -> list[Problem]:
    """Rules on which mixins may be combined, shared by config compositions and Python classes."""
    problems = []
    by_kind = {kind: [m.name for m in mixins if m.kind == kind] for kind in ("entry", "sizing")}
    for kind, names in by_kind.items():
        if len(names) > 1:
            problems.append(Problem(where, f"combines several {kind} mixins ({', '.join(names)}); use exactly one"))
    if by_kind["entry"] and not by_kind["sizing"]:
        problems.append(Problem(where, "has an entry mixin but no sizing mixin; add one, e.g. PercentEquity"))
    has_stop = any(issubclass(m, ExitMixin) and m.stop_distance is not ExitMixin.stop_distance for m in mixins)
    if "fixed_fractional_risk" in by_kind["sizing"] and not has_stop:
        problems.append(
            Problem(
                where,
                "fixed_fractional_risk sizes from the stop distance: "
                "add stop_loss, trailing_stop or atr_stop as an exit",
            )
        )
    return problems


def _prefixed(where: str, prefix: str, mixin: type[Mixin]) -> str:
    tail = where[len(prefix) + 1 :]
    return f"{prefix}.{mixin.bt_param(tail)}" if tail in mixin.param_specs else where


def _defaults(mixin: type[Mixin]) -> dict[str, Any]:
    return {k: spec.default for k, spec in mixin.param_specs.items()}


@functools.cache
def params_model(mixin: type[Mixin]) -> type[BaseModel]:
    """A strict Pydantic model for one mixin's parameters, built from its Param declarations."""
    fields: dict[str, Any] = {}
    for name, spec in mixin.param_specs.items():
        annotation: Any = Literal[spec.choices] if spec.choices else spec.type
        fields[name] = (annotation, Field(spec.default, ge=spec.low, le=spec.high, description=spec.doc))
    return create_model(
        f"{type(mixin).__name__}_{mixin.name}_params",
        __config__=ConfigDict(extra="forbid", strict=False),
        **fields,
    )


@functools.cache
def compose(*mixins: type[Mixin]) -> type[Strategy]:
    """A Strategy class made of these mixins (cached, so the same config yields the same class)."""
    order = {kind: i for i, kind in enumerate(("entry", "exit", "filter", "protection", "sizing"))}
    bases = tuple(sorted(mixins, key=lambda m: order[m.kind]))
    name = "".join(part.title() for m in bases for part in m.name.split("_")) + "Strategy"
    return type(name, (*bases, Strategy), {"__module__": __name__})


def _import_strategy(path: str, problems: list[Problem]) -> type[Strategy] | None:
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        problems.append(Problem("strategy.class", "use the form 'package.module:ClassName'", path))
        return None
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        problems.append(Problem("strategy.class", f"cannot import: {exc}", path))
        return None
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        kind = "a Backtrader strategy" if isinstance(obj, type) and issubclass(obj, bt.Strategy) else "not a class"
        problems.append(Problem("strategy.class", f"{kind}; derive it from tradeforge.strategies.base.Strategy", path))
        return None
    return obj


def _choices(given: str, options: Iterable[str]) -> str:
    options = sorted(options)
    close = difflib.get_close_matches(given, options, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"{hint} (known: {', '.join(options)})"


def param_table(cls: type[Strategy]) -> list[tuple[str, Param]]:
    """(Backtrader parameter name, declaration) for every declared parameter of a strategy class."""
    rows = [(name, spec) for name, spec in Strategy.strategy_param_specs.items()]
    for kind in MIXIN_KINDS.values():
        for mixin in mixins_of(cls, kind):
            rows.extend((mixin.bt_param(name), spec) for name, spec in mixin.param_specs.items())
    return rows
