"""Fixtures shared by every test layer."""

from __future__ import annotations

from pathlib import Path

import pytest

# The repo is <work>/main and the real market data lives next to it in <work>/shared/data.
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The folder of real candle files (see its README); tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not present at {SHARED_DATA}")
    return SHARED_DATA
