"""Error taxonomy, retry policies and circuit breakers shared by brokers, feeds and notifications."""
