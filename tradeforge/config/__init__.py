"""Configuration: strict Pydantic models, YAML loading with overlays, env overrides and secrets."""

from tradeforge.config.loader import load_config
from tradeforge.config.schema import BotConfig

__all__ = ["BotConfig", "load_config"]
