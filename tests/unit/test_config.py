"""Specification of bot configs: loading (YAML files, overlays, env overrides), strict validation
with dotted paths, secret redaction, and strategy validation by the registry (every mixin kind,
presets, user classes by import path)."""

from __future__ import annotations

import datetime as dt
import json
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, SecretStr, ValidationError

from tradeforge.config.catalog import list_templates
from tradeforge.config.loader import (
    MASK,
    deep_merge,
    env_overrides,
    load_config,
    problems_from_validation,
    read_yaml,
    redacted,
)
from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import BacktestOverrides, run_backtest, validate
from tradeforge.resilience.errors import ConfigError, Problem
from tradeforge.strategies.base import Strategy


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def bot(strategy: dict[str, Any], **sections: Any) -> BotConfig:
    return BotConfig.model_validate({"strategy": strategy, **sections})


def schema_problems(document: dict[str, Any]) -> dict[str, Problem]:
    with pytest.raises(ValidationError) as info:
        BotConfig.model_validate(document)
    return {p.where: p for p in problems_from_validation(info.value)}


def load_problems(*paths: Path, environ: dict[str, str] | None = None) -> dict[str, Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(list(paths), environ or {})
    return {p.where: p for p in info.value.problems}


def validation_problems(config: BotConfig) -> dict[str, Problem]:
    with pytest.raises(ConfigError) as info:
        validate(config)
    found: dict[str, Problem] = {}
    for problem in info.value.problems:
        assert problem.where not in found, f"two problems at {problem.where}: {info.value.problems}"
        found[problem.where] = problem
    return found


# --- read_yaml -------------------------------------------------------------------------------------


def test_read_yaml_returns_the_mapping_and_treats_an_empty_file_as_empty(tmp_path: Path) -> None:
    assert read_yaml(write(tmp_path / "a.yaml", "name: bot\nbroker: {cash: 5}\n")) == {
        "name": "bot",
        "broker": {"cash": 5},
    }
    assert read_yaml(write(tmp_path / "empty.yaml", "# nothing but a comment\n")) == {}


def test_read_yaml_names_file_line_and_column_of_malformed_yaml(tmp_path: Path) -> None:
    path = write(
        tmp_path / "bot.yaml",
        """\
        name: x
        strategy:
          entry: {name: sma_cross
          exits: [1,
        """,
    )
    with pytest.raises(ConfigError) as info:
        read_yaml(path)
    (problem,) = info.value.problems
    assert problem.where == f"{path} line 4 column 8"
    assert problem.message.startswith("malformed YAML: ")


def test_read_yaml_reports_a_missing_or_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path / "nope.yaml")
    assert info.value.problems == [Problem(str(tmp_path / "nope.yaml"), "config file not found")]

    with pytest.raises(ConfigError) as info:
        read_yaml(tmp_path)  # a directory
    assert info.value.problems[0].message.startswith("cannot read config file")


def test_read_yaml_refuses_a_top_level_that_is_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        read_yaml(write(tmp_path / "list.yaml", "- name: x\n"))
    assert "must be a mapping" in info.value.problems[0].message


# --- deep_merge and env_overrides ------------------------------------------------------------------


def test_deep_merge_overlay_wins_mappings_merge_key_by_key_and_lists_are_replaced() -> None:
    base = {
        "name": "a",
        "data": {"symbols": ["BTC/USDT", "ETH/USDT"], "timeframe": "1h"},
        "strategy": {"exits": {"stop_loss": {"pct": 0.02}}},
    }
    overlay = {
        "name": "b",
        "data": {"symbols": ["ETH/USDT"]},
        "strategy": {"exits": {"stop_loss": {"pct": 0.03}, "take_profit": {"pct": 0.1}}},
    }
    merged = deep_merge(base, overlay)
    assert merged == {
        "name": "b",
        "data": {"symbols": ["ETH/USDT"], "timeframe": "1h"},
        "strategy": {"exits": {"stop_loss": {"pct": 0.03}, "take_profit": {"pct": 0.1}}},
    }
    assert base["data"]["symbols"] == ["BTC/USDT", "ETH/USDT"], "the inputs are not modified"
    assert base["strategy"]["exits"]["stop_loss"] == {"pct": 0.02}


def test_deep_merge_replaces_a_scalar_with_a_mapping_and_back() -> None:
    assert deep_merge({"a": 1}, {"a": {"b": 2}}) == {"a": {"b": 2}}
    assert deep_merge({"a": {"b": 2}}, {"a": None}) == {"a": None}


def test_env_overrides_turn_double_underscore_names_into_nested_keys_with_yaml_values() -> None:
    overrides = env_overrides(
        {
            "TRADEFORGE__BROKER__CASH": "5000",
            "TRADEFORGE__BROKER__SLIPPAGE": "0.001",
            "TRADEFORGE__DATA__SYMBOLS": "[BTC/USDT, ETH/USDT]",
            "TRADEFORGE__DATA__REPAIR": "true",
            "TRADEFORGE__STRATEGY__ENTRY__NAME": "ema_cross",
            "TRADEFORGE__NAME": "",
            "TRADEFORGE__": "ignored",
            "HOME": "/root",
            "TRADEFORGE_BROKER__CASH": "1",  # one underscore: not ours
        }
    )
    assert overrides == {
        "broker": {"cash": 5000, "slippage": 0.001},
        "data": {"symbols": ["BTC/USDT", "ETH/USDT"], "repair": True},
        "strategy": {"entry": {"name": "ema_cross"}},
        "name": "",
    }


def test_env_overrides_that_conflict_are_refused_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        env_overrides({"TRADEFORGE__BROKER": "5", "TRADEFORGE__BROKER__CASH": "1"})
    assert info.value.problems[0].where == "TRADEFORGE__BROKER__CASH"


# --- load_config ---------------------------------------------------------------------------------


BASE = """\
    name: base-bot
    data: {symbols: [BTC/USDT, ETH/USDT]}
    broker: {cash: 1000, commission: 0.002}
    strategy:
      entry: {name: sma_cross, fast: 10, slow: 30}
      exits: {stop_loss: {pct: 0.02}}
    """


def test_load_config_merges_overlays_in_order_later_files_win(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    live = write(
        tmp_path / "live.yaml",
        """\
        name: live-bot
        mode: live
        data: {symbols: [ETH/USDT]}
        broker: {cash: 2000}
        strategy:
          exits: {take_profit: {pct: 0.05}}
        """,
    )
    config = load_config([base, live], environ={})
    assert (config.name, config.mode) == ("live-bot", "live")
    assert config.data.symbols == ["ETH/USDT"]
    assert (config.broker.cash, config.broker.commission) == (2000, 0.002)
    assert config.strategy.entry is not None and config.strategy.entry.params() == {"fast": 10, "slow": 30}
    assert config.strategy.exits == {"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.05}}

    reverse = load_config([live, base], environ={})
    assert (reverse.name, reverse.broker.cash) == ("base-bot", 1000)
    assert reverse.data.symbols == ["BTC/USDT", "ETH/USDT"]


def test_load_config_env_overrides_beat_every_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    config = load_config(base, environ={"TRADEFORGE__BROKER__CASH": "5000", "TRADEFORGE__STRATEGY__ENTRY__FAST": "12"})
    assert config.broker.cash == 5000
    assert config.broker.commission == 0.002
    assert config.strategy.entry is not None and config.strategy.entry.params() == {"fast": 12, "slow": 30}

    monkeypatch.setenv("TRADEFORGE__BROKER__CASH", "7000")  # the process environment by default
    assert load_config(str(base)).broker.cash == 7000


def test_load_config_without_files_asks_for_one() -> None:
    with pytest.raises(ConfigError) as info:
        load_config([], environ={})
    assert info.value.problems[0].where == "--config"


def test_load_config_lists_every_problem_and_names_the_files(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    bad = write(
        tmp_path / "bad.yaml",
        """\
        mode: yolo
        broker: {cash: 0, comission: 0.001}
        data: {start: 2023-06-01, end: 2023-01-01}
        strategy: {exits: {stop_loss: {pct: 0.02}}}
        """,
    )
    with pytest.raises(ConfigError) as info:
        load_config([base, bad], environ={"TRADEFORGE__BROKER__SLIPPAGE": "0.5"})
    assert info.value.source == f"{base} + {bad}"
    assert str(bad) in str(info.value)
    found = {p.where: p for p in info.value.problems}
    assert set(found) == {"mode", "broker.cash", "broker.comission", "broker.slippage", "data"}
    assert found["mode"].value == "yolo"
    assert found["broker.cash"] == Problem("broker.cash", "Input should be greater than 0", 0)
    assert found["broker.comission"].message == "unknown key 'comission'; did you mean 'commission'?"
    assert found["broker.comission"].value is None
    assert found["broker.slippage"].value == 0.5
    assert found["data"].message == "data.start must be before data.end"


def test_load_config_refuses_a_strategy_with_both_entry_and_preset(tmp_path: Path) -> None:
    path = write(tmp_path / "bot.yaml", "strategy: {preset: sma_cross, entry: {name: sma_cross}}\n")
    found = load_problems(path)
    assert set(found) == {"strategy"}
    assert found["strategy"].message == (
        "give exactly one of strategy.entry (compose from mixins), strategy.preset or strategy.class; got entry, preset"
    )


@pytest.mark.parametrize(
    ("strategy", "fragment"),
    [
        ("{}", "give exactly one of strategy.entry"),
        ("{preset: sma_cross, class: 'mod:Cls'}", "got preset, class"),
        ("{entry: {name: sma_cross}, params: {fast: 5}}", "strategy.params is for preset/class strategies"),
        ("{entry: {fast: 5}}", "Field required"),
    ],
    ids=["none", "preset_and_class", "params_with_entry", "entry_without_name"],
)
def test_load_config_refuses_an_ambiguous_strategy_source(tmp_path: Path, strategy: str, fragment: str) -> None:
    path = write(tmp_path / "bot.yaml", f"strategy: {strategy}\n")
    problems = load_problems(path)
    assert any(fragment in p.message for p in problems.values()), problems


def test_load_config_requires_a_strategy_and_suggests_the_misspelled_section(tmp_path: Path) -> None:
    found = load_problems(write(tmp_path / "bot.yaml", "stratgy: {preset: sma_cross}\n"))
    assert found["strategy"].message == "Field required"
    assert found["stratgy"].message == "unknown key 'stratgy'; did you mean 'strategy'?"


# --- problems_from_validation ----------------------------------------------------------------------


def test_problems_have_dotted_paths_plain_messages_and_offending_values() -> None:
    found = schema_problems(
        {
            "name": "no spaces allowed",
            "data": {"source": "csv", "symbols": ["A", "A"], "timeframe": "1x"},
            "broker": {"commission": "lots"},
            "strategy": {"preset": "sma_cross", "direction": "up"},
        }
    )
    assert found["name"].value == "no spaces allowed"
    assert found["name"].message.startswith("String should match pattern")
    assert found["data.timeframe"].value == "1x"
    assert found["broker.commission"] == Problem(
        "broker.commission", "Input should be a valid number, unable to parse string as a number", "lots"
    )
    assert found["strategy.direction"].message == "Input should be 'long', 'short' or 'both'"
    assert found["strategy.direction"].value == "up"


def test_problems_from_model_validators_lose_the_value_error_prefix_and_whole_sections_as_values() -> None:
    found = schema_problems({"data": {"source": "csv"}, "strategy": {"preset": "sma_cross"}})
    assert found["data"].message == "data.path is required when data.source is 'csv'"
    assert found["data"].value is None, "a whole section is not a useful offending value"


def test_problems_for_unknown_keys_suggest_the_closest_key_or_list_the_allowed_ones() -> None:
    found = schema_problems(
        {
            "strategy": {"preset": "sma_cross"},
            "borker": {},
            "data": {"sybmols": ["X"]},
            "broker": {"zzz": 1},
        }
    )
    assert found["borker"].message == "unknown key 'borker'; did you mean 'broker'?"
    assert found["data.sybmols"].message == "unknown key 'sybmols'; did you mean 'symbols'?"
    assert (
        found["broker.zzz"].message
        == "unknown key 'zzz'; allowed: cash, commission, slippage, max_fill_fraction_of_volume"
    )
    assert all(p.value is None for p in found.values())


def test_unknown_strategy_key_suggests_the_documented_class_key() -> None:
    # Users write `strategy: {class: ...}`; a typo must point there, not at an internal field name.
    found = schema_problems({"strategy": {"clas": "pkg.mod:MyStrat"}})
    assert "did you mean 'class'?" in found["strategy.clas"].message


def test_problems_mask_values_under_secret_looking_keys() -> None:
    found = schema_problems(
        {
            "strategy": {
                "preset": "sma_cross",
                "exits": {
                    "api_token": "tok-123",
                    "password": 42,
                    "my_api_key": ["k1"],
                    "harmless": 7,
                },
            }
        }
    )
    assert found["strategy.exits.api_token"].value == MASK
    assert found["strategy.exits.password"].value == MASK
    assert found["strategy.exits.my_api_key"].value in (None, MASK)
    assert found["strategy.exits.harmless"].value == 7
    assert "tok-123" not in str(ConfigError(list(found.values())))


def test_problems_take_a_prefix_and_a_root_model_for_nested_validation() -> None:
    class Params(BaseModel):
        model_config = {"extra": "forbid"}
        period: int = 14

    with pytest.raises(ValidationError) as info:
        Params.model_validate({"period": "x", "perod": 3})
    problems = problems_from_validation(info.value, prefix="strategy.exits.atr_stop", root=Params)
    found = {p.where: p for p in problems}
    assert found["strategy.exits.atr_stop.period"].value == "x"
    assert found["strategy.exits.atr_stop.perod"].message == "unknown key 'perod'; did you mean 'period'?"


def test_a_document_that_is_not_a_mapping_is_reported_at_the_top_level() -> None:
    with pytest.raises(ValidationError) as info:
        BotConfig.model_validate(["not", "a", "mapping"])
    (problem,) = problems_from_validation(info.value)
    assert problem.where == "(top level)"


# --- redacted --------------------------------------------------------------------------------------


def test_redacted_masks_secret_fields_by_type() -> None:
    class Channel(BaseModel):
        bot_id: str
        credential: SecretStr
        backup: SecretStr | None = None

    assert redacted(Channel(bot_id="42", credential=SecretStr("s3cr3t"))) == {
        "bot_id": "42",
        "credential": MASK,
        "backup": None,
    }


def test_redacted_masks_values_by_secret_looking_key_name_at_any_depth() -> None:
    document = {
        "name": "bot",
        "exchange": {"api_key": "k", "apiKey": "k2", "api_secret": "s", "uid": "u"},
        "telegram": {"bot_token": "123:abc", "chat_id": 99},
        "email": {"smtp_password": "p", "passwd": "p2", "user": "me"},
        "wallet": {"private_key": "0xabc"},
        "tokens": ["t1", "t2"],
        "unset_password": None,
        "empty_token": "",
    }
    shown = redacted(document)
    assert shown == {
        "name": "bot",
        "exchange": {"api_key": MASK, "apiKey": MASK, "api_secret": MASK, "uid": "u"},
        "telegram": {"bot_token": MASK, "chat_id": 99},
        "email": {"smtp_password": MASK, "passwd": MASK, "user": "me"},
        "wallet": {"private_key": MASK},
        "tokens": [MASK, MASK],
        "unset_password": None,
        "empty_token": "",
    }
    assert document["exchange"]["api_key"] == "k", "the input is not modified"


def test_redacted_shows_where_secrets_live_and_private_endpoints() -> None:
    document = {
        "exchange": {
            "api_key_env": "MY_KEY",
            "api_secret_file": "/run/secrets/binance",
            "urls": {"private": "http://127.0.0.1:9000/api/v3"},
        },
        "telegram": {"token_env": "TG_TOKEN", "token": "123:abc"},
    }
    assert redacted(document) == {
        "exchange": {
            "api_key_env": "MY_KEY",
            "api_secret_file": "/run/secrets/binance",
            "urls": {"private": "http://127.0.0.1:9000/api/v3"},
        },
        "telegram": {"token_env": "TG_TOKEN", "token": MASK},
    }


def test_redacted_masks_everything_under_a_secret_named_mapping() -> None:
    # A list under `tokens` is masked element by element; a mapping under `api_keys` must be too.
    shown = redacted({"api_keys": {"binance": "live-key-1", "kraken": "live-key-2"}})
    assert "live-key-1" not in json.dumps(shown)
    assert "live-key-2" not in json.dumps(shown)


def test_redacted_config_is_json_ready_and_uses_config_key_names() -> None:
    config = bot({"class": "pkg.mod:Cls"}, data_dir="store", data={"start": "2023-01-01"})
    shown = redacted(config)
    assert json.loads(json.dumps(shown)) == shown
    assert shown["data_dir"] == "store"
    assert shown["data"]["start"] == "2023-01-01T00:00:00+00:00"
    assert shown["strategy"]["class"] == "pkg.mod:Cls"


# --- strategy validation: composed from mixins -----------------------------------------------------


@pytest.mark.parametrize("template", [t.name for t in list_templates()])
def test_every_shipped_template_loads_and_validates(template: str) -> None:
    (path,) = [t.path for t in list_templates() if t.name == template]
    resolved = validate(load_config(path, environ={}))
    assert issubclass(resolved.cls, Strategy)


def test_validate_returns_the_composed_class_and_prefixed_parameters() -> None:
    resolved = validate(
        bot(
            {
                "entry": {"name": "sma_cross", "fast": 5, "slow": 20},
                "exits": {"stop_loss": {"pct": 0.03}, "time_exit": {}},
                "sizing": {"name": "fixed_stake", "stake": 500},
                "filters": {"session": {"days": "mon-fri"}},
                "protections": {"cooldown": {"bars": 2}},
                "direction": "both",
            }
        )
    )
    assert resolved.label == "sma_cross+fixed_stake+stop_loss+time_exit+session+cooldown"
    assert resolved.params["sma_cross_fast"] == 5 and resolved.params["sma_cross_slow"] == 20
    assert resolved.params["stop_loss_pct"] == 0.03
    assert resolved.params["time_exit_bars"] == 48, "defaults are filled in"
    assert resolved.params["fixed_stake_stake"] == 500
    assert resolved.params["session_days"] == "mon-fri"
    assert resolved.params["cooldown_bars"] == 2
    assert resolved.params["direction"] == "both"


@pytest.mark.parametrize(
    ("strategy", "where", "message", "value"),
    [
        (
            {"entry": {"name": "sma_cross", "fast": 0}},
            "strategy.entry.fast",
            "Input should be greater than or equal to 1",
            0,
        ),
        (
            {"entry": {"name": "bollinger_reversion", "devs": "wide"}},
            "strategy.entry.devs",
            "Input should be a valid number, unable to parse string as a number",
            "wide",
        ),
        (
            {"entry": {"name": "sma_cross"}, "exits": {"stop_loss": {"pct": 5}}},
            "strategy.exits.stop_loss.pct",
            "Input should be less than or equal to 0.99",
            5,
        ),
        (
            {"entry": {"name": "sma_cross"}, "exits": {"time_exit": {"bars": 0}}},
            "strategy.exits.time_exit.bars",
            "Input should be greater than or equal to 1",
            0,
        ),
        (
            {"entry": {"name": "sma_cross"}, "sizing": {"name": "kelly", "multiplier": 2}},
            "strategy.sizing.multiplier",
            "Input should be less than or equal to 1",
            2,
        ),
        (
            {"entry": {"name": "sma_cross"}, "sizing": {"name": "percent_equity", "pct": 0}},
            "strategy.sizing.pct",
            "Input should be greater than or equal to 0.01",
            0,
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"trend": {"timeframe": "7h"}}},
            "strategy.filters.trend.timeframe",
            "Input should be '1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d' or '1w'",
            "7h",
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"session": {"start_hour": 24}}},
            "strategy.filters.session.start_hour",
            "Input should be less than or equal to 23",
            24,
        ),
        (
            {"entry": {"name": "sma_cross"}, "protections": {"cooldown": {"bars": -1}}},
            "strategy.protections.cooldown.bars",
            "Input should be greater than or equal to 0",
            -1,
        ),
        (
            {"entry": {"name": "sma_cross"}, "protections": {"max_drawdown": {"pct": 1.5}}},
            "strategy.protections.max_drawdown.pct",
            "Input should be less than or equal to 1",
            1.5,
        ),
    ],
    ids=[
        "entry_low",
        "entry_type",
        "exit_high",
        "time_exit_low",
        "sizing_high",
        "sizing_low",
        "filter_choice",
        "filter_high",
        "protection_low",
        "protection_high",
    ],
)
def test_mixin_parameters_out_of_bounds_are_reported_at_their_dotted_path(
    strategy: dict[str, Any], where: str, message: str, value: Any
) -> None:
    assert validation_problems(bot(strategy)) == {where: Problem(where, message, value)}


@pytest.mark.parametrize(
    ("strategy", "where", "fragment"),
    [
        (
            {"entry": {"name": "sma_cross", "fast": 30, "slow": 30}},
            "strategy.entry.fast",
            "must be smaller than slow (30)",
        ),
        (
            {"entry": {"name": "ema_cross", "fast": 50, "slow": 20}},
            "strategy.entry.fast",
            "must be smaller than slow (20)",
        ),
        (
            {"entry": {"name": "macd_trend", "fast": 26, "slow": 12}},
            "strategy.entry.fast",
            "must be smaller than slow (12)",
        ),
        (
            {"entry": {"name": "rsi_reversion", "lower": 70, "upper": 30}},
            "strategy.entry.lower",
            "must be below upper (30.0)",
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"volatility": {"min_pct": 5, "max_pct": 2}}},
            "strategy.filters.volatility.min_pct",
            "must not exceed max_pct (2.0)",
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"session": {"start_hour": 9, "end_hour": 9}}},
            "strategy.filters.session.end_hour",
            "must differ from start_hour",
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"session": {"days": "funday"}}},
            "strategy.filters.session.days",
            "unknown weekday 'funday'",
        ),
    ],
    ids=[
        "sma_fast_eq_slow",
        "ema_fast_gt_slow",
        "macd_fast_gt_slow",
        "rsi_lower_above_upper",
        "volatility_min_above_max",
        "session_empty_window",
        "session_bad_day",
    ],
)
def test_inconsistent_mixin_parameters_are_reported_at_the_parameter_to_change(
    strategy: dict[str, Any], where: str, fragment: str
) -> None:
    problems = validation_problems(bot(strategy))
    assert set(problems) == {where}
    assert fragment in problems[where].message


def test_trend_filter_shorter_than_the_candles_is_refused_before_the_run() -> None:
    # 15m trend on 1h candles cannot be resampled: the run dies with a ValueError, so validation must
    # catch it (validate-config says "valid" today).
    config = bot({"entry": {"name": "sma_cross"}, "filters": {"trend": {"timeframe": "15m"}}})
    problems = validation_problems(config)
    assert set(problems) == {"strategy.filters.trend.timeframe"}
    assert problems["strategy.filters.trend.timeframe"].value == "15m"


@pytest.mark.parametrize(
    ("strategy", "where", "value", "suggestion"),
    [
        ({"entry": {"name": "sma_cros"}}, "strategy.entry.name", "sma_cros", "sma_cross"),
        (
            {"entry": {"name": "sma_cross"}, "exits": {"stop_los": {}}},
            "strategy.exits.stop_los",
            "stop_los",
            "stop_loss",
        ),
        (
            {"entry": {"name": "sma_cross"}, "sizing": {"name": "percent_equty"}},
            "strategy.sizing.name",
            "percent_equty",
            "percent_equity",
        ),
        (
            {"entry": {"name": "sma_cross"}, "filters": {"volatilty": {}}},
            "strategy.filters.volatilty",
            "volatilty",
            "volatility",
        ),
        (
            {"entry": {"name": "sma_cross"}, "protections": {"cooldwn": {}}},
            "strategy.protections.cooldwn",
            "cooldwn",
            "cooldown",
        ),
    ],
    ids=["entry", "exit", "sizing", "filter", "protection"],
)
def test_unknown_mixin_names_are_reported_with_a_suggestion_and_the_known_names(
    strategy: dict[str, Any], where: str, value: str, suggestion: str
) -> None:
    problems = validation_problems(bot(strategy))
    assert set(problems) == {where}
    assert problems[where].value == value
    assert f"did you mean '{suggestion}'?" in problems[where].message
    assert "(known: " in problems[where].message


def test_a_mixin_of_the_wrong_kind_is_an_unknown_name_for_that_section() -> None:
    problems = validation_problems(bot({"entry": {"name": "stop_loss"}, "exits": {"cooldown": {}}}))
    assert problems["strategy.entry.name"].message.startswith("unknown entry mixin")
    assert "sma_cross" in problems["strategy.entry.name"].message
    assert problems["strategy.exits.cooldown"].message.startswith("unknown exit mixin")


def test_unknown_mixin_parameters_are_errors_with_a_suggestion() -> None:
    problems = validation_problems(
        bot(
            {
                "entry": {"name": "sma_cross", "fats": 5},
                "exits": {"stop_loss": {"pcts": 0.1}},
                "sizing": {"name": "percent_equity", "percent": 50},
                "protections": {"cooldown": {"bar": 3}},
            }
        )
    )
    assert problems["strategy.entry.fats"].message == "unknown key 'fats'; did you mean 'fast'?"
    assert problems["strategy.exits.stop_loss.pcts"].message == "unknown key 'pcts'; did you mean 'pct'?"
    assert problems["strategy.sizing.percent"].message.startswith("unknown key 'percent'")
    assert problems["strategy.protections.cooldown.bar"].message == "unknown key 'bar'; did you mean 'bars'?"


def test_validate_lists_every_problem_across_mixin_kinds_and_data_at_once() -> None:
    problems = validation_problems(
        bot(
            {
                "entry": {"name": "sma_cross", "fast": 40, "slow": 20},
                "exits": {"stop_los": {"pct": 0.02}, "take_profit": {"pct": 0}},
                "sizing": {"name": "kelly", "cap_pct": 200},
                "filters": {"trend": {"period": 0}},
                "protections": {"stoploss_guard": {"trades": 0}},
            },
            data={"source": "csv", "path": "nowhere/{symbol}.csv"},
        )
    )
    assert set(problems) == {
        "strategy.entry.fast",
        "strategy.exits.stop_los",
        "strategy.exits.take_profit.pct",
        "strategy.sizing.cap_pct",
        "strategy.filters.trend.period",
        "strategy.protections.stoploss_guard.trades",
        "data.path",
    }
    assert problems["data.path"].value == "nowhere/BTC-USDT.csv"


def test_fixed_fractional_risk_needs_a_stop_exit_to_size_from() -> None:
    risk = {"name": "fixed_fractional_risk"}
    entry = {"name": "sma_cross"}
    problems = validation_problems(bot({"entry": entry, "exits": {"take_profit": {}}, "sizing": risk}))
    assert set(problems) == {"strategy.sizing.name"}
    assert "add stop_loss, trailing_stop or atr_stop" in problems["strategy.sizing.name"].message
    for stop in ("stop_loss", "trailing_stop", "atr_stop"):
        validate(bot({"entry": entry, "exits": {stop: {}}, "sizing": risk}))


def test_a_symbol_without_a_bundled_sample_is_reported_under_data_symbols() -> None:
    problems = validation_problems(bot({"preset": "sma_cross"}, data={"symbols": ["DOGE/USDT"]}))
    assert problems["data.symbols"].value == "DOGE/USDT"
    assert "no bundled sample" in problems["data.symbols"].message


# --- strategy validation: presets ------------------------------------------------------------------


def test_a_preset_validates_with_its_parameters_given_flat() -> None:
    resolved = validate(bot({"preset": "rsi_reversion", "params": {"rsi_reversion_period": 10, "stop_loss_pct": 0.01}}))
    assert resolved.label == "rsi_reversion"
    assert resolved.params["rsi_reversion_period"] == 10 and resolved.params["stop_loss_pct"] == 0.01


def test_an_unknown_preset_is_reported_with_a_suggestion() -> None:
    problems = validation_problems(bot({"preset": "sma_crosss"}))
    assert problems["strategy.preset"].value == "sma_crosss"
    assert "did you mean 'sma_cross'?" in problems["strategy.preset"].message
    assert "multi_timeframe_trend" in problems["strategy.preset"].message


def test_preset_params_are_validated_against_the_presets_mixins() -> None:
    problems = validation_problems(
        bot(
            {
                "preset": "sma_cross",
                "params": {
                    "sma_cross_fats": 5,
                    "sma_cross_fast": 40,
                    "sma_cross_slow": 20,
                    "percent_equity_pct": 0,
                },
            }
        )
    )
    assert set(problems) == {
        "strategy.params.sma_cross_fats",
        "strategy.params.sma_cross_fast",
        "strategy.params.percent_equity_pct",
    }
    assert "did you mean 'sma_cross_fast'?" in problems["strategy.params.sma_cross_fats"].message
    assert problems["strategy.params.sma_cross_fast"] == Problem(
        "strategy.params.sma_cross_fast", "must be smaller than slow (20)", 40
    )
    assert problems["strategy.params.percent_equity_pct"].value == 0


def test_preset_direction_given_under_params_is_not_silently_ignored() -> None:
    # `tradeforge strategies` lists `direction` among every preset's parameters.
    config = bot({"preset": "sma_cross", "params": {"direction": "short"}})
    try:
        resolved = validate(config)
    except ConfigError as exc:
        assert any(p.where == "strategy.params.direction" for p in exc.problems), exc.problems
    else:
        assert resolved.params["direction"] == "short"


def test_preset_direction_under_params_is_validated() -> None:
    problems = validation_problems(bot({"preset": "sma_cross", "params": {"direction": "sideways"}}))
    assert problems["strategy.params.direction"].value == "sideways"


# --- strategy validation: classes by import path ---------------------------------------------------


USER_MODULE = """\
    import backtrader as bt

    from tradeforge.strategies.base import Strategy
    from tradeforge.strategies.mixins.entries import EmaCrossEntry, SmaCrossEntry
    from tradeforge.strategies.mixins.exits import StopLoss, TakeProfit
    from tradeforge.strategies.mixins.sizing import FixedFractionalRisk, PercentEquity


    class MyStrat(SmaCrossEntry, StopLoss, PercentEquity, Strategy):
        \"\"\"SMA crossover with a stop, sized by percent of equity.\"\"\"


    class TwoEntries(SmaCrossEntry, EmaCrossEntry, PercentEquity, Strategy):
        \"\"\"Two entry mixins: ambiguous.\"\"\"


    class NoSizing(SmaCrossEntry, StopLoss, Strategy):
        \"\"\"Enters but cannot size.\"\"\"


    class RiskWithoutStop(SmaCrossEntry, TakeProfit, FixedFractionalRisk, Strategy):
        \"\"\"Risk sizing with nothing to measure the risk from.\"\"\"


    class PlainBacktrader(bt.Strategy):
        pass


    NOT_A_CLASS = 42
    """


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module of user strategies on sys.path, under a fresh name (no stale import cache)."""
    name = f"user_strategies_{uuid.uuid4().hex}"
    write(tmp_path / f"{name}.py", USER_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_a_user_class_built_from_mixins_validates_with_its_flat_params(user_module: str) -> None:
    resolved = validate(
        bot({"class": f"{user_module}:MyStrat", "params": {"sma_cross_fast": 5, "stop_loss_pct": 0.03}})
    )
    assert resolved.cls.__name__ == "MyStrat" and issubclass(resolved.cls, Strategy)
    assert resolved.label == f"{user_module}:MyStrat"
    assert resolved.params == {"sma_cross_fast": 5, "stop_loss_pct": 0.03, "direction": "long"}


def test_a_user_class_runs_a_backtest(user_module: str) -> None:
    config = bot({"class": f"{user_module}:MyStrat", "params": {"stop_loss_pct": 0.01}})
    overrides = BacktestOverrides(start=dt.datetime(2023, 10, 1, tzinfo=dt.UTC), cash=1000.0)
    result = run_backtest(config, overrides)
    assert result.strategy == f"{user_module}:MyStrat"
    assert result.start_value == 1000.0
    assert result.metrics["n_trades"] == len(result.trades) > 0
    assert {t.exit_reason for t in result.trades} <= {"signal", "stop_loss"}
    assert "stop_loss" in {t.exit_reason for t in result.trades}


def test_user_class_params_are_validated_like_preset_params(user_module: str) -> None:
    problems = validation_problems(
        bot(
            {
                "class": f"{user_module}:MyStrat",
                "params": {
                    "stop_loss_pct": 5,
                    "sma_cross_fast": 50,
                    "take_profit_pct": 0.1,
                },
            }
        )
    )
    assert set(problems) == {
        "strategy.params.stop_loss_pct",
        "strategy.params.sma_cross_fast",
        "strategy.params.take_profit_pct",
    }
    assert problems["strategy.params.stop_loss_pct"].value == 5
    assert "MyStrat has no such parameter" in problems["strategy.params.take_profit_pct"].message


def test_a_plain_backtrader_strategy_is_refused_with_a_clear_message(user_module: str) -> None:
    path = f"{user_module}:PlainBacktrader"
    problems = validation_problems(bot({"class": path}))
    assert problems == {
        "strategy.class": Problem(
            "strategy.class",
            "a Backtrader strategy; derive it from tradeforge.strategies.base.Strategy",
            path,
        )
    }


@pytest.mark.parametrize(
    ("attribute", "fragment"),
    [
        (":NOT_A_CLASS", "not a class; derive it from tradeforge.strategies.base.Strategy"),
        (":Missing", "cannot import: module"),
        ("", "use the form 'package.module:ClassName'"),
    ],
    ids=["not_a_class", "missing_attribute", "no_colon"],
)
def test_a_bad_class_path_is_refused_at_strategy_class(user_module: str, attribute: str, fragment: str) -> None:
    problems = validation_problems(bot({"class": f"{user_module}{attribute}"}))
    assert set(problems) == {"strategy.class"}
    assert fragment in problems["strategy.class"].message
    assert problems["strategy.class"].value == f"{user_module}{attribute}"


def test_a_class_path_to_a_missing_module_is_refused() -> None:
    problems = validation_problems(bot({"class": "no_such_package_xyz.strategies:Mine"}))
    assert "cannot import: No module named 'no_such_package_xyz'" in problems["strategy.class"].message


@pytest.mark.parametrize(
    ("cls", "fragment"),
    [("TwoEntries", "entry"), ("NoSizing", "sizing"), ("RiskWithoutStop", "stop")],
    ids=["two_entry_mixins", "no_sizing_mixin", "risk_sizing_without_stop"],
)
def test_a_user_class_that_cannot_trade_is_refused_by_validation(user_module: str, cls: str, fragment: str) -> None:
    # A composed config with these flaws is refused; the same flaws in a user class must be too,
    # instead of crashing in the backtest (TwoEntries, NoSizing) or silently never trading.
    problems = validation_problems(bot({"class": f"{user_module}:{cls}"}))
    assert problems, f"{cls} must not validate"
    assert any(fragment in p.message for p in problems.values()), problems
