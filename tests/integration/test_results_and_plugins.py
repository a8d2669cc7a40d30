"""The result file reports data gaps, and third-party strategies join through entry points."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from tradeforge.config.schema import BotConfig
from tradeforge.engine.backtest import notable_gaps, run_backtest
from tradeforge.feeds.candles import read_candles
from tradeforge.strategies.registry import Registry


def test_result_lists_the_binance_maintenance_gaps(shared_data: Path) -> None:
    candles = read_candles(shared_data / "binance_BTC-USDT_1h.csv", "BTC/USDT", "1h")
    config = BotConfig.model_validate({"strategy": {"preset": "sma_cross"}})
    document = run_backtest(config, candles=[candles]).to_json()
    gaps = document["data_gaps"]
    assert len(gaps) == 9 and sum(g["missing"] for g in gaps) == 19
    assert gaps[0] == {
        "symbol": "BTC/USDT",
        "after": "2020-11-30T05:00:00+00:00",
        "before": "2020-11-30T07:00:00+00:00",
        "missing": 1,
    }


def test_weekends_are_not_gaps_in_daily_stock_data_but_holidays_are(shared_data: Path) -> None:
    gaps = notable_gaps(read_candles(shared_data / "yahoo_ORCL_1d.csv", "ORCL", "1d"))
    assert all(g.after.weekday() < 5 or g.before.weekday() > 0 for g in gaps)
    nine_eleven = [g for g in gaps if g.after.year == 2001 and g.after.month == 9 and g.after.day == 10]
    assert nine_eleven and nine_eleven[0].before.day == 17
    assert 150 < len(gaps) < 200, "about nine exchange holidays a year over twenty years"


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A real (tiny) installed distribution declaring a `tradeforge.strategies` entry point."""
    (tmp_path / "acme_strats.py").write_text(
        textwrap.dedent(
            '''
            from tradeforge.strategies.base import Strategy
            from tradeforge.strategies.mixins.entries import EmaCrossEntry
            from tradeforge.strategies.mixins.exits import StopLoss
            from tradeforge.strategies.mixins.kinds import ExitMixin
            from tradeforge.strategies.mixins.sizing import PercentEquity
            from tradeforge.strategies.params import Param

            class AcmeTrend(EmaCrossEntry, StopLoss, PercentEquity, Strategy):
                """EMA crossover with a stop, shipped by a plugin."""

            class NeverExit(ExitMixin):
                """An exit that never fires."""
                name = "never_exit"
                param_specs = {"patience": Param(5, low=1, high=10, opt=(1, 10), doc="unused")}
            '''
        )
    )
    dist = tmp_path / "acme_strats-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-strats\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[tradeforge.strategies]\nacme_trend = acme_strats:AcmeTrend\nnever_exit = acme_strats:NeverExit\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "acme_trend"
    sys.modules.pop("acme_strats", None)


def test_entry_point_plugins_register_presets_and_mixins(installed_plugin: str) -> None:
    registry = Registry.default()
    assert installed_plugin in registry.presets()
    assert "never_exit" in [m.name for m in registry.mixins("exit")]
    config = BotConfig.model_validate(
        {
            "data": {"source": "sample", "symbols": ["BTC/USDT"], "timeframe": "1h"},
            "strategy": {"preset": installed_plugin, "params": {"ema_cross_fast": 8, "stop_loss_pct": 0.03}},
        }
    )
    result = run_backtest(config, registry=registry)
    assert result.trades and result.strategy == installed_plugin
    composed = BotConfig.model_validate(
        {"strategy": {"entry": {"name": "sma_cross"}, "exits": {"never_exit": {"patience": 3}}}}
    )
    assert registry.resolve(composed.strategy).params["never_exit_patience"] == 3
