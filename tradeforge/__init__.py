"""tradeforge: algorithmic trading bots composed from pluggable mixins, running on Backtrader."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tradeforge")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"
