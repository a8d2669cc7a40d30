"""Candle data: reading and validating files, the on-disk store, resampling and bundled samples."""
