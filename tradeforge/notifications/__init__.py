"""Alerts that never block trading and are never lost: `Notifier.notify` only enqueues; a thread
with its own asyncio loop writes each alert to the outbox table and delivers it (Telegram, e-mail)
with rate limits, batching, retries, a circuit breaker per channel and a dead-letter state."""
