"""The search space of a study: every declared optimization range of the strategy's mixins, with the
config's `optimize.space` overrides applied (narrow a range, give choices, fix a value, leave a mixin
out), and the way back from a trial's parameters to a config that runs them."""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from tradeforge.config.schema import RangeOverride
from tradeforge.resilience.errors import ConfigError, Problem
from tradeforge.strategies.base import mixins_of
from tradeforge.strategies.mixins.kinds import MIXIN_KINDS
from tradeforge.strategies.params import Mixin, Param

_SECTION = {"exit": "exits", "filter": "filters", "protection": "protections"}


class Suggests(Protocol):
    """The part of optuna.Trial the space uses."""

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int: ...
    def suggest_float(
        self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False
    ) -> float: ...
    def suggest_categorical(self, name: str, choices: Any) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One searched parameter, named `mixin.param` in the study."""

    mixin: str
    param: str
    kind: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False
    choices: tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        return f"{self.mixin}.{self.param}"

    def describe(self) -> str:
        if self.kind == "categorical":
            return "|".join(str(c) for c in self.choices)
        step = f" step {self.step:g}" if self.step else ""
        return f"{self.low:g}..{self.high:g}{step}{' log' if self.log else ''}"


@dataclass(frozen=True)
class SearchSpace:
    dimensions: tuple[Dimension, ...]
    fixed: dict[str, Any] = field(default_factory=dict)  # `mixin.param` -> value set by optimize.space
    kinds: dict[str, str] = field(default_factory=dict)  # mixin name -> kind (entry, exit, ...)

    def suggest(self, trial: Suggests) -> dict[str, Any]:
        """A trial's parameters (`mixin.param` -> value), the fixed ones included."""
        chosen: dict[str, Any] = {}
        for d in self.dimensions:
            if d.kind == "int":
                chosen[d.name] = trial.suggest_int(d.name, int(d.low), int(d.high), step=int(d.step or 1), log=d.log)
            elif d.kind == "float":
                chosen[d.name] = trial.suggest_float(d.name, d.low, d.high, step=d.step, log=d.log)
            else:
                chosen[d.name] = trial.suggest_categorical(d.name, list(d.choices))
        return {**self.fixed, **chosen}


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable digest of a parameter set: identical sets are evaluated once per study."""
    text = json.dumps({k: params[k] for k in sorted(params)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def strategy_mixins(strategy_cls: type) -> list[type[Mixin]]:
    return [m for kind in MIXIN_KINDS.values() for m in mixins_of(strategy_cls, kind)]


def build_space(
    strategy_cls: type,
    overrides: Mapping[str, Mapping[str, Any] | Literal[False]],
    params_model: Any,
    where: str = "optimize.space",
) -> SearchSpace:
    """The space for `strategy_cls`; ConfigError listing every problem with its config path.

    `params_model(mixin)` gives the Pydantic model validating one mixin's parameters (the registry's),
    so fixed values and range ends are checked exactly like config values."""
    mixins = {m.name: m for m in strategy_mixins(strategy_cls)}
    problems: list[Problem] = []
    for name in overrides:
        if name not in mixins:
            problems.append(Problem(f"{where}.{name}", f"not a mixin of this strategy (it has: {', '.join(mixins)})"))
    dimensions: list[Dimension] = []
    fixed: dict[str, Any] = {}
    for name, mixin in mixins.items():
        override = overrides.get(name, {})
        if override is False:
            continue
        for param in override:
            if param not in mixin.param_specs:
                known = ", ".join(mixin.param_specs) or "none"
                problems.append(Problem(f"{where}.{name}.{param}", f"{name} has no such parameter (known: {known})"))
        for param, spec in mixin.param_specs.items():
            path = f"{where}.{name}.{param}"
            given = override.get(param)
            if given is None:
                if spec.opt is not None and spec.type in (int, float):
                    dimensions.append(_numeric(name, param, spec, RangeOverride(), path, problems))
                continue
            if isinstance(given, RangeOverride | dict):
                rng = given if isinstance(given, RangeOverride) else RangeOverride.model_validate(given)
                if spec.type not in (int, float):
                    problems.append(Problem(path, f"a {spec.type.__name__} parameter takes a list of choices"))
                    continue
                dimension = _numeric(name, param, spec, rng, path, problems)
                for end in (dimension.low, dimension.high):
                    _check_value(params_model(mixin), param, spec.type(end), path, problems)
                dimensions.append(dimension)
            elif isinstance(given, list):
                if not given:
                    problems.append(Problem(path, "an empty list of choices"))
                    continue
                for choice in given:
                    _check_value(params_model(mixin), param, choice, path, problems)
                dimensions.append(Dimension(name, param, "categorical", choices=tuple(given)))
            else:
                if _check_value(params_model(mixin), param, given, path, problems):
                    fixed[f"{name}.{param}"] = given
    if not problems and not dimensions:
        problems.append(
            Problem(where, "the search space is empty: no parameter with an optimization range is left to search")
        )
    if problems:
        raise ConfigError(problems)
    return SearchSpace(tuple(dimensions), fixed, {name: m.kind for name, m in mixins.items()})


def _numeric(mixin: str, param: str, spec: Param, rng: RangeOverride, path: str, problems: list[Problem]) -> Dimension:
    declared_low, declared_high = spec.opt if spec.opt is not None else (spec.low, spec.high)
    low = rng.low if rng.low is not None else declared_low
    high = rng.high if rng.high is not None else declared_high
    step = rng.step if rng.step is not None else spec.step
    kind: Literal["int", "float"] = "int" if spec.type is int else "float"
    if low is None or high is None:
        problems.append(Problem(path, "no optimization range is declared: give both low and high"))
        return Dimension(mixin, param, kind)
    if high < low:
        problems.append(Problem(f"{path}.high", f"is below low ({low:g})", high))
    if kind == "int":
        if low != math.floor(low) or high != math.floor(high):
            problems.append(Problem(path, "an integer parameter needs whole-number low and high", f"{low}..{high}"))
        step = max(1, round(step)) if step else 1
        if rng.step is not None and rng.step != step:
            problems.append(Problem(f"{path}.step", "an integer parameter needs a whole-number step", rng.step))
    if rng.log and (low <= 0 or rng.step is not None):
        problems.append(Problem(f"{path}.log", "a log scale needs low > 0 and no step", rng.log))
    if rng.log:
        step = None
    return Dimension(mixin, param, kind, float(low), float(high), step, rng.log)


def _check_value(model: type[BaseModel], param: str, value: Any, path: str, problems: list[Problem]) -> bool:
    from pydantic import ValidationError

    try:
        model.model_validate({param: value})
    except ValidationError as exc:
        problems.append(Problem(path, exc.errors(include_url=False)[0]["msg"], value))
        return False
    return True


def apply_params(document: Mapping[str, Any], space: SearchSpace, params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a config document (the YAML mapping) with a trial's parameters written where a user
    would write them: into the mixin blocks of a composed strategy, or `strategy.params` of a preset."""
    doc = copy.deepcopy(dict(document))
    strategy = doc.setdefault("strategy", {})
    composed = strategy.get("entry") is not None
    for key, value in params.items():
        mixin, _, param = key.partition(".")
        if not composed:
            strategy.setdefault("params", {})[f"{mixin}_{param}"] = value
            continue
        kind = space.kinds[mixin]
        if kind in ("entry", "sizing"):
            strategy.setdefault(kind, {"name": mixin})[param] = value
        else:
            section = strategy.setdefault(_SECTION[kind], {})
            if section.get(mixin) is None:
                section[mixin] = {}
            section[mixin][param] = value
    return doc
