"""Brokers: the simulated broker for backtests and paper trading; venue brokers in later modules."""
