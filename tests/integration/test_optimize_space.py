"""Search spaces: the strategy's declared optimization ranges, with `optimize.space` overrides, and the
way back from a trial's parameters to a config."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from tradeforge.config.schema import BotConfig, OptimizeConfig
from tradeforge.optimize.space import apply_params, build_space, params_hash
from tradeforge.resilience.errors import ConfigError
from tradeforge.strategies.library.presets import RsiReversion, SmaCross
from tradeforge.strategies.registry import Registry, params_model

COMPOSED: dict[str, Any] = {
    "strategy": {
        "entry": {"name": "sma_cross", "fast": 10, "slow": 30},
        "exits": {"stop_loss": {"pct": 0.02}, "trailing_stop": None},
        "sizing": {"name": "percent_equity", "pct": 95},
        "protections": {"cooldown": {"bars": 3}},
    }
}


def space_of(cls: type, overrides: dict[str, Any]) -> Any:
    checked = OptimizeConfig.model_validate({"space": overrides}).space
    return build_space(cls, checked, params_model)


def test_sma_cross_preset_searches_every_declared_range() -> None:
    space = space_of(SmaCross, {})
    found = {d.name: (d.kind, d.low, d.high, d.step) for d in space.dimensions}
    assert found == {
        "sma_cross.fast": ("int", 5, 50, 1),
        "sma_cross.slow": ("int", 20, 200, 5),
        "percent_equity.pct": ("float", 10, 100, 5),
    }
    assert space.fixed == {}


def test_overrides_narrow_a_range_fix_a_value_give_choices_and_exclude_a_mixin() -> None:
    space = space_of(
        RsiReversion,
        {
            "rsi_reversion": {"period": {"low": 10, "high": 20}, "lower": 25, "upper": [70, 80]},
            "stop_loss": False,
            "take_profit": False,
            "cooldown": False,
            "percent_equity": False,
        },
    )
    found = {d.name: d for d in space.dimensions}
    assert set(found) == {"rsi_reversion.period", "rsi_reversion.upper"}
    assert (found["rsi_reversion.period"].low, found["rsi_reversion.period"].high) == (10, 20)
    assert found["rsi_reversion.upper"].choices == (70, 80)
    assert space.fixed == {"rsi_reversion.lower": 25}
    trial = optuna.create_study().ask()
    params = space.suggest(trial)
    assert 10 <= params["rsi_reversion.period"] <= 20 and params["rsi_reversion.lower"] == 25


def test_inconsistent_range_names_the_config_path() -> None:
    with pytest.raises(ConfigError) as caught:
        space_of(SmaCross, {"sma_cross": {"fast": {"low": 30, "high": 10}}})
    assert [p.where for p in caught.value.problems] == ["optimize.space.sma_cross.fast.high"]
    assert "below low" in str(caught.value)


def test_range_outside_the_parameter_bounds_is_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        space_of(SmaCross, {"sma_cross": {"fast": {"low": 0, "high": 10}}})
    assert caught.value.problems[0].where == "optimize.space.sma_cross.fast"


def test_empty_space_is_an_error() -> None:
    with pytest.raises(ConfigError) as caught:
        space_of(SmaCross, {"sma_cross": False, "percent_equity": False})
    assert "search space is empty" in str(caught.value)


def test_unknown_mixin_and_parameter_are_named() -> None:
    with pytest.raises(ConfigError) as caught:
        space_of(SmaCross, {"stop_loss": {"pct": 0.1}, "sma_cross": {"fats": 3}})
    where = {p.where for p in caught.value.problems}
    assert where == {"optimize.space.stop_loss", "optimize.space.sma_cross.fats"}


def test_trial_parameters_go_back_into_a_composed_config() -> None:
    config = BotConfig.model_validate(COMPOSED)
    resolved = Registry.default().resolve(config.strategy)
    space = build_space(resolved.cls, {}, params_model)
    assert "trailing_stop.pct" in {d.name for d in space.dimensions}
    params = {"sma_cross.fast": 12, "stop_loss.pct": 0.05, "trailing_stop.pct": 0.01, "cooldown.bars": 7}
    doc = apply_params(COMPOSED, space, {**params, "percent_equity.pct": 50.0})
    strategy = BotConfig.model_validate(doc).strategy
    assert strategy.entry is not None and strategy.entry.params() == {"fast": 12, "slow": 30}
    assert strategy.exits == {"stop_loss": {"pct": 0.05}, "trailing_stop": {"pct": 0.01}}
    assert strategy.sizing.params() == {"pct": 50.0}
    assert strategy.protections == {"cooldown": {"bars": 7}}
    assert COMPOSED["strategy"]["exits"]["trailing_stop"] is None  # the original is not modified


def test_trial_parameters_go_into_a_presets_params() -> None:
    space = space_of(SmaCross, {})
    doc = apply_params({"strategy": {"preset": "sma_cross"}}, space, {"sma_cross.fast": 7, "sma_cross.slow": 40})
    assert doc["strategy"]["params"] == {"sma_cross_fast": 7, "sma_cross_slow": 40}
    resolved = Registry.default().resolve(BotConfig.model_validate(doc).strategy)
    assert resolved.params["sma_cross_fast"] == 7


def test_parameter_hash_ignores_order_and_tells_values_apart() -> None:
    assert params_hash({"a.x": 1, "b.y": 2.5}) == params_hash({"b.y": 2.5, "a.x": 1})
    assert params_hash({"a.x": 1}) != params_hash({"a.x": 2})


def test_validate_config_checks_the_space_overrides(tmp_path: Any) -> None:
    from tradeforge.engine.validation import validate_files

    path = tmp_path / "bot.yaml"
    path.write_text(
        "strategy: {preset: sma_cross}\noptimize: {space: {sma_cross: {slow: {low: 90, high: 50}}}}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        validate_files([path])
    assert [p.where for p in caught.value.problems] == ["optimize.space.sma_cross.slow.high"]
