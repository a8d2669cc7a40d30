"""Alert channels: one module per channel (telegram, email), each behind `Channel`."""
