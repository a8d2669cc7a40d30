"""Backtest analytics: performance and risk metrics computed from equity curves and closed trades."""
