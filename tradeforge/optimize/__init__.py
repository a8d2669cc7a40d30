"""Optimization studies: search spaces from strategy parameters, objectives, walk-forward splits,
Optuna storage and the worker loop. The engine wires the backtest into it (`engine/optimization.py`)."""
