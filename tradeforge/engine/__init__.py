"""The engine: the one place that wires config, data, strategy, broker and analytics together."""
