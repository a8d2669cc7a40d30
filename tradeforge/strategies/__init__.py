"""Strategies: a Backtrader base class, pluggable mixins, presets and the registry that composes them."""
