"""How stored values and people's decisions read in messages and the event log: amounts without
exponent noise, and who made an operator decision (reconcile acceptance, a fill recorded by hand)."""

from __future__ import annotations

import getpass
import socket
from decimal import Decimal


def plain(amount: Decimal) -> str:
    """0.00599000 -> 0.00599 (and never 6E-3)."""
    amount = Decimal(amount)  # a column read by the ORM on SQLite may not be one yet
    return format(amount.normalize(), "f") if amount else "0"


def operator() -> str:
    """Who runs this command, for the audit trail: user@host."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no login name and no password entry (some containers)
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
