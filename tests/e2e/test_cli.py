"""Specification of the `tradeforge` command line, run as a user runs it: the installed console
script in a subprocess, in a scratch directory, checking exit codes, stdout, stderr and files."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import tradeforge
from tradeforge.config.catalog import TEMPLATE_DIR
from tradeforge.strategies.registry import Registry, param_table

SCRIPT = Path(sys.executable).parent / "tradeforge"
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_BTC_1H = SHARED_DATA / "binance_BTC-USDT_1h.csv"

TEMPLATES = ("sma_cross", "rsi_reversion", "donchian_breakout", "multi_timeframe_trend")
ENTRIES = (
    "sma_cross",
    "ema_cross",
    "rsi_reversion",
    "bollinger_reversion",
    "macd_trend",
    "donchian_breakout",
)
EXITS = ("stop_loss", "take_profit", "trailing_stop", "atr_stop", "time_exit")
SIZINGS = ("fixed_stake", "percent_equity", "fixed_fractional_risk", "kelly")
FILTERS = ("trend", "volatility", "session")
PROTECTIONS = ("cooldown", "max_drawdown", "stoploss_guard", "daily_loss_limit")
SUMMARY_LABELS = (
    "trades",
    "total return",
    "CAGR",
    "Sharpe",
    "max drawdown",
    "win rate",
    "profit factor",
    "exposure",
)
TRADE_KEYS = {
    "symbol",
    "side",
    "entry_time",
    "exit_time",
    "size",
    "entry_price",
    "exit_price",
    "pnl",
    "pnl_pct",
    "fees",
    "exit_reason",
}
METRIC_KEYS = {
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "n_trades",
    "win_rate",
    "profit_factor",
    "exposure",
}

SMALL_BOT = """\
name: small-bot
data:
  source: sample
  symbols: [BTC/USDT]
  timeframe: 1h
broker:
  cash: 10000
strategy:
  entry: {name: sma_cross, fast: 10, slow: 30}
  exits:
    stop_loss: {pct: 0.02}
"""


# --- helpers ---------------------------------------------------------------------------------------


def tradeforge_cli(cwd: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run the installed console script in `cwd`; (exit code, stdout, stderr)."""
    assert SCRIPT.is_file(), f"the tradeforge console script is not installed next to {sys.executable}"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("TRADEFORGE__")}
    environ.pop("FORCE_COLOR", None)
    environ.update({"COLUMNS": "250", "NO_COLOR": "1"}, **(env or {}))
    proc = subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=120, check=False
    )
    return proc.returncode, proc.stdout, proc.stderr


def flat(text: str) -> str:
    """Whitespace collapsed, so assertions survive rich's line wrapping."""
    return " ".join(text.split())


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def iso(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    assert moment.tzinfo is not None, f"{value!r} has no timezone"
    return moment


def table_rows(stdout: str) -> list[list[str]]:
    """The body cells of every rich table row printed on stdout."""
    return [row for rows in tables(stdout).values() for row in rows]


def tables(stdout: str) -> dict[str, list[list[str]]]:
    """Body rows of each rich table on stdout, by the table's title ("" for an untitled one)."""
    found: dict[str, list[list[str]]] = {}
    title = ""
    for line in stdout.splitlines():
        text = line.strip()
        if text.startswith("│"):
            found.setdefault(title, []).append([c.strip() for c in text.strip("│").split("│")])
        elif text and text[0] not in "┏┃┡├└━─":
            title = text
    return found


def listed_params(rows: list[list[str]]) -> dict[str, dict[str, list[str]]]:
    """{name: {parameter: row}} from a table whose first column names the mixin or preset."""
    listed: dict[str, dict[str, list[str]]] = {}
    current = ""
    for row in rows:
        if row[0]:
            current = row[0]
            listed.setdefault(current, {})
        if len(row) > 1 and row[1] and row[1] != "-":
            listed[current][row[1]] = row
    return listed


def assert_clean_bad_input(code: int, stdout: str, stderr: str) -> None:
    assert code == 2, f"exit code {code}, expected 2\nstdout:\n{stdout}\nstderr:\n{stderr}"
    assert "Traceback" not in stdout + stderr, stderr
    assert stderr.strip(), "the error must be explained on stderr"


def check_result_file(doc: dict[str, Any]) -> None:
    """Types and invariants every `--json` result file must satisfy."""
    assert doc["tradeforge_version"] == tradeforge.__version__
    assert isinstance(doc["config"], dict) and "strategy" in doc["config"]
    assert isinstance(doc["symbols"], list) and doc["symbols"]
    assert all(isinstance(s, str) for s in doc["symbols"])
    assert isinstance(doc["timeframe"], str)
    start, end = iso(doc["start"]), iso(doc["end"])
    assert start < end
    assert isinstance(doc["start_value"], float) and doc["start_value"] > 0
    assert isinstance(doc["final_value"], float)

    metrics = doc["metrics"]
    assert set(metrics) >= METRIC_KEYS
    for key in METRIC_KEYS - {"n_trades"}:
        assert metrics[key] is None or isinstance(metrics[key], float), (key, metrics[key])
    assert isinstance(metrics["n_trades"], int)
    assert -1.0 <= metrics["max_drawdown"] <= 0.0, "max_drawdown is a negative fraction"
    assert metrics["win_rate"] is None or 0.0 <= metrics["win_rate"] <= 1.0
    assert 0.0 <= metrics["exposure"] <= 1.0
    assert math.isclose(
        metrics["total_return"], doc["final_value"] / doc["start_value"] - 1, rel_tol=1e-9, abs_tol=1e-12
    )

    trades = doc["trades"]
    assert metrics["n_trades"] == len(trades)
    for trade in trades:
        assert set(trade) == TRADE_KEYS
        assert trade["symbol"] in doc["symbols"]
        assert trade["side"] in ("long", "short")
        entry, exit_ = iso(trade["entry_time"]), iso(trade["exit_time"])
        assert start <= entry <= exit_ <= end
        for key in ("size", "entry_price", "exit_price", "pnl", "pnl_pct", "fees"):
            assert isinstance(trade[key], float), (key, trade[key])
        assert trade["size"] > 0 and trade["entry_price"] > 0 and trade["exit_price"] > 0
        assert trade["fees"] >= 0
        assert isinstance(trade["exit_reason"], str) and trade["exit_reason"]

    equity = doc["equity"]
    assert equity, "the equity curve is never empty"
    times = [iso(t) for t, _ in equity]
    assert all(isinstance(v, float) for _, v in equity)
    assert times == sorted(times) and len(set(times)) == len(times)
    assert start <= times[0] and times[-1] <= end
    assert doc["final_value"] == pytest.approx(equity[-1][1], rel=1e-12)


# --- templates and new-config ----------------------------------------------------------------------


def test_templates_lists_every_shipped_template_with_its_one_line_description(tmp_path: Path) -> None:
    code, out, err = tradeforge_cli(tmp_path, "templates")
    assert code == 0, err
    described = {row[0]: row[1] for row in table_rows(out) if row[0]}
    assert set(TEMPLATES) <= set(described)
    for name in TEMPLATES:
        first_line = (TEMPLATE_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
        description = first_line.removeprefix("# description:").strip()
        assert description, f"template {name} has no description line"
        assert described[name] == description


def test_new_config_writes_the_commented_template_verbatim(tmp_path: Path) -> None:
    code, out, err = tradeforge_cli(tmp_path, "new-config", "--template", "sma_cross", "--output", "bot.yaml")
    assert code == 0, err
    written = (tmp_path / "bot.yaml").read_text(encoding="utf-8")
    assert written == (TEMPLATE_DIR / "sma_cross.yaml").read_text(encoding="utf-8")
    assert "# " in written, "the user gets the explanatory comments too"
    assert "validate-config bot.yaml" in flat(out)

    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert (code, out.strip()) == (0, "valid"), err


def test_new_config_refuses_to_overwrite_without_force_and_leaves_the_file_untouched(tmp_path: Path) -> None:
    existing = write(tmp_path / "bot.yaml", "# my precious edits\n")
    code, out, err = tradeforge_cli(tmp_path, "new-config", "--template", "sma_cross", "--output", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    assert "--force" in flat(err) and "bot.yaml" in flat(err)
    assert existing.read_text(encoding="utf-8") == "# my precious edits\n"

    code, _, err = tradeforge_cli(tmp_path, "new-config", "-t", "rsi_reversion", "-o", "bot.yaml", "--force")
    assert code == 0, err
    rsi_template = (TEMPLATE_DIR / "rsi_reversion.yaml").read_text(encoding="utf-8")
    assert existing.read_text(encoding="utf-8") == rsi_template


def test_new_config_with_an_unknown_template_exits_2_naming_the_known_ones(tmp_path: Path) -> None:
    code, out, err = tradeforge_cli(tmp_path, "new-config", "--template", "moonshot", "--output", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    message = flat(err)
    assert "moonshot" in message
    for name in TEMPLATES:
        assert name in message
    assert not (tmp_path / "bot.yaml").exists()


# --- validate-config and show-config ---------------------------------------------------------------


def test_validate_config_lists_every_error_with_dotted_path(tmp_path: Path) -> None:
    write(
        tmp_path / "bot.yaml",
        """\
name: typo-bot
strategy:
  entry: {name: sma_cross, fast: 50, slow: 20}
  exits:
    stop_los: {pct: 0.02}
    stop_loss: {pct: 5}
  sizing: {name: percent_equty}
  filters:
    volatility: {min_pct: 5, max_pct: 2}
  protections:
    cooldown: {bars: -1}
""",
    )
    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    assert "valid" not in out
    lines = [flat(line) for line in err.splitlines()]

    def reported(path: str, *fragments: str) -> None:
        matching = [line for line in lines if f"{path}:" in line]
        assert matching, f"no error reported at {path}:\n{err}"
        assert any(all(f in line for f in fragments) for line in matching), (path, fragments, matching)

    reported("strategy.entry.fast", "must be smaller than slow", "50")
    reported("strategy.exits.stop_los", "did you mean 'stop_loss'", "stop_los")
    reported("strategy.exits.stop_loss.pct", "less than or equal to 0.99", "(got 5)")
    reported("strategy.sizing.name", "did you mean 'percent_equity'", "percent_equty")
    reported("strategy.filters.volatility.min_pct", "must not exceed max_pct")
    reported("strategy.protections.cooldown.bars", "greater than or equal to 0", "(got -1)")


def test_validate_config_lists_every_schema_error_with_suggestions_for_typos(tmp_path: Path) -> None:
    write(
        tmp_path / "bot.yaml",
        """\
name: "has spaces"
mode: yolo
data: {timeframe: 90s, sybmols: [BTC/USDT]}
broker: {cash: -5, commission: 0.5}
strategy:
  entry: {name: sma_cross}
""",
    )
    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    message = flat(err)
    assert "bot.yaml" in message
    for path, value in [
        ("name", "'has spaces'"),
        ("mode", "'yolo'"),
        ("data.timeframe", "'90s'"),
        ("broker.cash", "-5"),
        ("broker.commission", "0.5"),
    ]:
        pattern = rf"(^|\s){re.escape(path)}: .*\(got {re.escape(value)}\)"
        assert re.search(pattern, err, re.MULTILINE), (path, err)
    assert "data.sybmols: unknown key 'sybmols'; did you mean 'symbols'?" in message


def test_validate_config_reports_schema_and_strategy_errors_together(tmp_path: Path) -> None:
    """EVERY error at once: a bad broker section must not hide a bad mixin parameter."""
    write(
        tmp_path / "bot.yaml",
        """\
broker: {cash: -5}
strategy:
  entry: {name: sma_cross}
  exits:
    stop_loss: {pct: 5}
""",
    )
    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    message = flat(err)
    assert "broker.cash:" in message
    assert "strategy.exits.stop_loss.pct:" in message


def test_validate_config_masks_values_under_secret_looking_keys(tmp_path: Path) -> None:
    # The strict schema has no secret fields yet, so an unknown secret-looking key is the way in:
    # neither its value in the file nor one from the environment may be echoed back.
    write(
        tmp_path / "bot.yaml",
        """\
strategy:
  entry: {name: sma_cross}
  exits:
    api_token: zz-file-secret-zz
""",
    )
    code, out, err = tradeforge_cli(
        tmp_path, "validate-config", "bot.yaml", env={"TRADEFORGE__BROKER__PASSWORD": "zz-env-secret-zz"}
    )
    assert_clean_bad_input(code, out, err)
    message = flat(err)
    assert "strategy.exits.api_token:" in message and "(got '***')" in message
    assert "broker.password: unknown key 'password'" in message
    assert "zz-file-secret-zz" not in out + err
    assert "zz-env-secret-zz" not in out + err


def test_env_override_beats_the_file(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(
        tmp_path,
        "show-config",
        "bot.yaml",
        env={
            "TRADEFORGE__BROKER__CASH": "5000",
            "TRADEFORGE__STRATEGY__ENTRY__FAST": "12",
        },
    )
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["broker"]["cash"] == 5000
    assert shown["strategy"]["entry"] == {"name": "sma_cross", "fast": 12, "slow": 30}

    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml", env={"TRADEFORGE__BROKER__CASH": "-1"})
    assert_clean_bad_input(code, out, err)
    assert "broker.cash:" in flat(err) and "(got -1)" in flat(err)


def test_overlays_merge_in_order_later_files_win_and_mappings_merge_key_by_key(tmp_path: Path) -> None:
    write(
        tmp_path / "base.yaml",
        """\
name: base-bot
data: {symbols: [BTC/USDT, ETH/USDT], timeframe: 1h}
broker: {cash: 1000, commission: 0.002}
strategy:
  entry: {name: sma_cross, fast: 10, slow: 30}
  exits: {stop_loss: {pct: 0.02}}
""",
    )
    write(
        tmp_path / "live.yaml",
        """\
name: live-bot
data: {symbols: [ETH/USDT]}
broker: {cash: 2000}
strategy:
  exits: {take_profit: {pct: 0.05}}
""",
    )
    code, out, err = tradeforge_cli(tmp_path, "show-config", "--config", "base.yaml", "--config", "live.yaml")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["name"] == "live-bot"
    assert shown["data"]["symbols"] == ["ETH/USDT"], "lists are replaced, not concatenated"
    assert shown["data"]["timeframe"] == "1h"
    assert shown["broker"] == {"cash": 2000, "commission": 0.002, "slippage": 0.0, "max_fill_fraction_of_volume": None}
    assert shown["strategy"]["entry"] == {"name": "sma_cross", "fast": 10, "slow": 30}
    assert shown["strategy"]["exits"] == {"stop_loss": {"pct": 0.02}, "take_profit": {"pct": 0.05}}

    code, out, err = tradeforge_cli(tmp_path, "validate-config", "-c", "base.yaml", "-c", "live.yaml")
    assert (code, out.strip()) == (0, "valid"), err


def test_show_config_prints_the_merged_config_with_defaults_filled(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", "strategy: {preset: sma_cross}\n")
    code, out, err = tradeforge_cli(tmp_path, "show-config", "bot.yaml")
    assert code == 0, err
    shown = yaml.safe_load(out)
    assert shown["name"] == "tradeforge-bot"
    assert shown["broker"] == {
        "cash": 10000.0,
        "commission": 0.001,
        "slippage": 0.0,
        "max_fill_fraction_of_volume": None,
    }
    assert shown["strategy"]["preset"] == "sma_cross"
    assert "class" in shown["strategy"], "the strategy class is shown under its config key, `class`"


# --- strategies ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strategies_listing(tmp_path_factory: pytest.TempPathFactory) -> str:
    code, out, err = tradeforge_cli(tmp_path_factory.mktemp("strategies"), "strategies")
    assert code == 0, err
    return out


def test_strategies_lists_every_mixin_and_preset_with_defaults_and_optimization_ranges(
    strategies_listing: str,
) -> None:
    found = tables(strategies_listing)
    kinds = {"entry": ENTRIES, "exit": EXITS, "sizing": SIZINGS, "filter": FILTERS, "protection": PROTECTIONS}
    registry = Registry.default()
    for kind, names in kinds.items():
        assert f"{kind} mixins" in found, f"no table of {kind} mixins"
        listed = listed_params(found[f"{kind} mixins"])
        assert set(names) <= set(listed), f"{kind} mixins missing: {set(names) - set(listed)}"
        for mixin in registry.mixins(kind):  # type: ignore[arg-type]
            for param, spec in mixin.param_specs.items():
                row = listed[mixin.name].get(param)
                assert row is not None, f"{mixin.name}.{param} is not listed"
                assert row[2] == repr(spec.default), (mixin.name, param, row)
                assert row[4] == spec.describe_range(), (mixin.name, param, row)

    presets = listed_params(found["preset strategies"])
    assert set(registry.presets()) <= set(presets)
    for preset, cls in registry.presets().items():
        for param, spec in param_table(cls):
            row = presets[preset].get(param)
            assert row is not None, f"preset {preset} does not list {param}"
            assert (row[2], row[3]) == (repr(spec.default), spec.describe_range()), (preset, param, row)

    # spot checks, spelled out
    entries, exits = listed_params(found["entry mixins"]), listed_params(found["exit mixins"])
    assert entries["sma_cross"]["fast"][2:5] == ["10", "1..1000", "5..50 step 1"]
    assert exits["stop_loss"]["pct"][2:5] == ["0.02", "0.0001..0.99", "0.005..0.1"]
    assert listed_params(found["filter mixins"])["trend"]["timeframe"][2] == "'4h'"
    assert presets["donchian_breakout"]["atr_stop_multiplier"][2:4] == ["2.0", "1..5 step 0.25"]


def test_strategies_shows_each_mixins_summary_verbatim(strategies_listing: str) -> None:
    found = tables(strategies_listing)
    for mixin in Registry.default().mixins():
        first_row = next(row for row in found[f"{mixin.kind} mixins"] if row[0] == mixin.name)
        assert first_row[-1] == mixin.summary(), (mixin.name, first_row[-1])
    # a summary with [brackets] must not be eaten as console markup
    assert "lies within [min_pct, max_pct]." in strategies_listing


# --- backtest --------------------------------------------------------------------------------------


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_template_backtests_as_is_and_writes_a_consistent_result_file(tmp_path: Path, template: str) -> None:
    tradeforge_cli(tmp_path, "new-config", "-t", template, "-o", "bot.yaml")
    code, out, err = tradeforge_cli(tmp_path, "backtest", "--config", "bot.yaml", "--json", "out/result.json")
    assert code == 0, err
    for label in SUMMARY_LABELS:
        assert label in out, f"summary lacks {label!r}"
    doc = json.loads((tmp_path / "out" / "result.json").read_text(encoding="utf-8"))
    check_result_file(doc)
    template_doc = yaml.safe_load((TEMPLATE_DIR / f"{template}.yaml").read_text(encoding="utf-8"))
    assert doc["config"]["name"] == template_doc["name"]
    assert doc["start_value"] == float(template_doc["broker"]["cash"])
    assert doc["timeframe"] == template_doc["data"]["timeframe"]
    assert doc["symbols"] == template_doc["data"]["symbols"]
    assert doc["metrics"]["n_trades"] > 0, "the shipped templates trade on the bundled samples"


def test_backtest_cash_from_and_to_override_the_config(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(
        tmp_path,
        "backtest",
        "--config",
        "bot.yaml",
        "--cash",
        "5000",
        "--from",
        "2023-03-01",
        "--to",
        "2023-06-01T12:00:00Z",
        "--json",
        "result.json",
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "result.json").read_text(encoding="utf-8"))
    check_result_file(doc)
    assert doc["start_value"] == 5000.0
    assert doc["equity"][0][1] == pytest.approx(5000.0)
    lo, hi = dt.datetime(2023, 3, 1, tzinfo=dt.UTC), dt.datetime(2023, 6, 1, 12, tzinfo=dt.UTC)
    assert iso(doc["start"]) == lo and iso(doc["end"]) == hi
    assert all(lo <= iso(t) <= hi for t, _ in doc["equity"])
    for trade in doc["trades"]:
        assert lo <= iso(trade["entry_time"]) <= iso(trade["exit_time"]) <= hi
    assert doc["trades"], "three months of 1h candles give the crossover something to do"
    assert "5,000.00" in out


@pytest.mark.skipif(not REAL_BTC_1H.is_file(), reason=f"real market data not present at {REAL_BTC_1H}")
def test_backtest_on_a_real_csv_given_with_data(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, _, err = tradeforge_cli(
        tmp_path,
        "backtest",
        "-c",
        "bot.yaml",
        "--data",
        str(REAL_BTC_1H),
        "--from",
        "2021-01-01",
        "--to",
        "2021-04-01",
        "--json",
        "real.json",
    )
    assert code == 0, err
    doc = json.loads((tmp_path / "real.json").read_text(encoding="utf-8"))
    check_result_file(doc)
    assert iso(doc["start"]) == dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
    # a bare --to date includes that whole day: its last hourly candle opens at 23:00
    assert iso(doc["end"]) == dt.datetime(2021, 4, 1, 23, tzinfo=dt.UTC)
    # real BTC traded around 29k-59k in Q1 2021; the synthetic sample does not
    assert all(20_000 < t["entry_price"] < 70_000 for t in doc["trades"])


def test_backtest_datadir_overrides_where_the_candle_store_lives(tmp_path: Path) -> None:
    from tradeforge.feeds.samples import load_sample
    from tradeforge.feeds.store import CandleStore

    window = load_sample("BTC/USDT", "1h").between(dt.datetime(2023, 10, 1, tzinfo=dt.UTC), None)
    CandleStore(tmp_path / "elsewhere").save("binance", window)
    write(tmp_path / "bot.yaml", SMALL_BOT.replace("source: sample", "source: store") + "data_dir: nowhere\n")

    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    assert "data.path:" in flat(err)

    code, _, err = tradeforge_cli(tmp_path, "backtest", "-c", "bot.yaml", "--datadir", "elsewhere", "--json", "r.json")
    assert code == 0, err
    doc = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))
    assert iso(doc["start"]) == window.start and iso(doc["end"]) == window.end


# --- bad input -------------------------------------------------------------------------------------


BAD_CONFIGS = {  # case: (command, config text, fragments the error must contain)
    "malformed_yaml": (
        "validate-config",
        "name: x\nstrategy:\n  entry: {name: sma_cross\n  exits: [1,\n",
        ["bot.yaml line 4", "malformed YAML"],
    ),
    "unknown_mixin": (
        "validate-config",
        "strategy:\n  entry: {name: sma_cross}\n  filters: {trnd: {}}\n",
        ["strategy.filters.trnd:", "unknown filter mixin", "did you mean 'trend'"],
    ),
    "out_of_bounds": (
        "backtest",
        "strategy:\n  entry: {name: rsi_reversion, period: 1}\n",
        ["strategy.entry.period:", "greater than or equal to 2", "(got 1)"],
    ),
    "fast_not_below_slow": (
        "backtest",
        "strategy:\n  entry: {name: ema_cross, fast: 30, slow: 30}\n",
        ["strategy.entry.fast:", "must be smaller than slow"],
    ),
    "missing_data_file": (
        "backtest",
        "data: {source: csv, path: 'candles/{symbol}.csv'}\nstrategy: {preset: sma_cross}\n",
        ["data.path:", "candles/BTC-USDT.csv"],
    ),
}


@pytest.mark.parametrize("case", BAD_CONFIGS)
def test_bad_config_exits_2_with_a_clear_error_and_no_traceback(tmp_path: Path, case: str) -> None:
    command, text, fragments = BAD_CONFIGS[case]
    write(tmp_path / "bot.yaml", text)
    code, out, err = tradeforge_cli(tmp_path, command, "--config", "bot.yaml")
    assert_clean_bad_input(code, out, err)
    for fragment in fragments:
        assert fragment in flat(err), (fragment, err)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    code, out, err = tradeforge_cli(tmp_path, "validate-config", "nope.yaml")
    assert_clean_bad_input(code, out, err)
    assert "nope.yaml: config file not found" in flat(err)


def test_bad_candles_error_names_the_file_and_the_line(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    rows = ["timestamp,open,high,low,close,volume"]
    start = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    for i in range(60):
        stamp = (start + dt.timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        rows.append(f"{stamp},100,{90 if i == 6 else 110},95,105,1")  # data row 7 = line 8: high < low
    write(tmp_path / "candles.csv", "\n".join(rows) + "\n")
    code, out, err = tradeforge_cli(tmp_path, "backtest", "--config", "bot.yaml", "--data", "candles.csv")
    assert_clean_bad_input(code, out, err)
    message = flat(err)
    assert "candles.csv line 8" in message
    assert "high 90.0 < low 95.0" in message


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["--from", "2023-13-45"], ["--from:", "not a date", "2023-13-45"]),
        (["--from", "2023-06-01", "--to", "2023-05-01"], ["--from:", "must be before --to"]),
        (["--from", "2031-01-01"], ["no candles between"]),
    ],
    ids=["not_a_date", "from_after_to", "outside_the_data"],
)
def test_bad_backtest_dates_exit_2_with_a_clear_error(tmp_path: Path, args: list[str], fragments: list[str]) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(tmp_path, "backtest", "--config", "bot.yaml", *args)
    assert_clean_bad_input(code, out, err)
    for fragment in fragments:
        assert fragment in flat(err), (fragment, err)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["backtest"], "--config"),
        (["backtest", "--config", "bot.yaml", "--frmo", "2023-01-01"], "--frmo"),
        (["backtest", "--config", "bot.yaml", "--cash", "-1"], "--cash"),
        (["new-config", "--output", "x.yaml"], "--template"),
        (["no-such-command"], "no-such-command"),
    ],
    ids=[
        "missing_config_option",
        "unknown_option",
        "negative_cash",
        "missing_template_option",
        "unknown_command",
    ],
)
def test_command_line_usage_errors_exit_2_without_traceback(tmp_path: Path, args: list[str], fragment: str) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(tmp_path, *args)
    assert_clean_bad_input(code, out, err)
    assert fragment in err


def test_zero_starting_cash_is_refused_as_bad_input(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(tmp_path, "backtest", "--config", "bot.yaml", "--cash", "0", "--from", "2023-12-01")
    assert_clean_bad_input(code, out, err)
    assert "cash" in err


def test_debug_shows_the_traceback_of_bad_input(tmp_path: Path) -> None:
    write(tmp_path / "bot.yaml", "strategy:\n  entry: {name: sma_cross\n  x: [\n")
    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml")
    assert_clean_bad_input(code, out, err)

    code, out, err = tradeforge_cli(tmp_path, "validate-config", "bot.yaml", "--debug")
    assert code != 0
    assert "Traceback" in err
    assert "malformed YAML" in err

    write(tmp_path / "bot.yaml", SMALL_BOT)
    code, out, err = tradeforge_cli(tmp_path, "--debug", "backtest", "--config", "bot.yaml", "--from", "nope")
    assert code != 0
    assert "Traceback" in err and "--from" in err
