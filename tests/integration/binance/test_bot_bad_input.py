"""A bot on Binance candles with a symbol or timeframe the exchange does not offer is refused before
it writes anything: no bot row, no event, no lock, no candle store."""

from __future__ import annotations

from pathlib import Path

import pytest
from fakes.binance import FakeBinance
from fakes.bots import bot_config
from sqlalchemy import func, select

from tradeforge.engine.runtime import run_bot
from tradeforge.persistence.database import make_engine
from tradeforge.persistence.migrate import upgrade
from tradeforge.persistence.models import BotInstance, Event
from tradeforge.resilience.errors import ConfigError


def rows(url: str) -> tuple[int, int]:
    with make_engine(url).connect() as connection:
        bots = connection.execute(select(func.count()).select_from(BotInstance)).scalar_one()
        events = connection.execute(select(func.count()).select_from(Event)).scalar_one()
    return bots, events


@pytest.mark.parametrize(
    ("data", "where", "named"),
    [
        ({"symbols": ["BTC/USDT", "NOPE/USDT"]}, "data.symbols", "the exchange does not list NOPE/USDT"),
        ({"symbols": ["BTC/EUR"]}, "data.symbols", "did you mean BTC/USDT?"),
        ({"timeframe": "7m"}, "data.timeframe", "unknown timeframe '7m'"),
    ],
)
def test_what_the_exchange_does_not_offer_is_refused_before_anything_is_written(
    fake: FakeBinance, tmp_path: Path, data: dict[str, object], where: str, named: str
):
    config = bot_config(fake, tmp_path, "bad-input", **data)
    url = f"sqlite:///{config.data_dir}/tradeforge.sqlite"
    upgrade(make_engine(url))
    with pytest.raises(ConfigError) as caught:
        run_bot(config, "bot.yaml", say=lambda text: None)
    assert where in str(caught.value) and named in str(caught.value)
    assert rows(url) == (0, 0)
    assert not (tmp_path / "user_data" / "live").exists()
