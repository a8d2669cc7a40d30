"""Everything that can be checked before a run, reported together: schema, strategy, data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from tradeforge.config.loader import merged_document, problems_from_validation
from tradeforge.config.schema import BotConfig, StrategyConfig
from tradeforge.engine.data import data_problems
from tradeforge.feeds.timeframes import TIMEFRAMES
from tradeforge.resilience.errors import ConfigError, Problem
from tradeforge.strategies.registry import Registry, ResolvedStrategy


def validate(
    config: BotConfig,
    registry: Registry | None = None,
    data_override: str | None = None,
    check_data: bool = True,
) -> ResolvedStrategy:
    """The strategy the config describes, after checking its composition, parameters and data."""
    problems = []
    resolved = None
    try:
        resolved = (registry or Registry.default()).resolve(config.strategy, TIMEFRAMES.get(config.data.timeframe))
    except ConfigError as exc:
        problems.extend(exc.problems)
    if check_data:
        problems.extend(data_problems(config, data_override))
    if problems or resolved is None:
        raise ConfigError(problems)
    return resolved


def validate_files(
    paths: Sequence[Path], environ: Mapping[str, str] | None = None, registry: Registry | None = None
) -> BotConfig:
    """Like load + validate, but a schema error elsewhere does not hide the strategy's problems."""
    document = merged_document(paths, environ)
    source = " + ".join(str(p) for p in paths)
    try:
        config = BotConfig.model_validate(document)
    except ValidationError as exc:
        problems = problems_from_validation(exc)
        problems += _strategy_problems(document, registry, {p.where for p in problems})
        raise ConfigError(problems, source=source) from None
    try:
        resolved = validate(config, registry)
        if config.optimize.space:
            from tradeforge.optimize.space import build_space
            from tradeforge.strategies.registry import params_model

            build_space(resolved.cls, config.optimize.space, params_model)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=source) from None
    return config


def _strategy_problems(document: dict, registry: Registry | None, reported: set[str]) -> list[Problem]:
    section = document.get("strategy")
    if not isinstance(section, dict) or any(where.startswith("strategy") for where in reported):
        return []
    try:
        strategy = StrategyConfig.model_validate(section)
    except ValidationError:
        return []
    data = document.get("data")
    timeframe = data.get("timeframe", "1h") if isinstance(data, dict) else "1h"
    try:
        (registry or Registry.default()).resolve(strategy, TIMEFRAMES.get(str(timeframe)))
    except ConfigError as exc:
        return exc.problems
    return []
