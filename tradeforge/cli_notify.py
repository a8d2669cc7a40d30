"""`tradeforge notifications`: the bot's alert outbox — counts, dead letters (`--failed`) and
re-sending them (`--retry`). Registered on the main app in cli.py; errors propagate to `main()`."""

from __future__ import annotations

import datetime as dt
import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tradeforge.config.loader import load_config
from tradeforge.persistence.models import OutboxStatus
from tradeforge.resilience.errors import ConfigError, Problem

out = Console(soft_wrap=True, highlight=False)
LOCK_STALE = dt.timedelta(seconds=30)  # a run lock without a heartbeat this long belongs to a dead process

ConfigOption = Annotated[
    list[Path],
    typer.Option("--config", "-c", help="Config file; repeat to overlay (later files win)."),
]


def notifications(
    configs: ConfigOption,
    failed: Annotated[bool, typer.Option("--failed", help="List dead-lettered alerts.")] = False,
    retry: Annotated[
        bool, typer.Option("--retry", help="Re-send dead-lettered alerts (all, or those given with --id).")
    ] = False,
    ids: Annotated[list[int] | None, typer.Option("--id", help="Outbox row id for --retry; repeat.")] = None,
    wait: Annotated[
        float, typer.Option("--wait", help="With --retry and the bot not running: seconds to try sending now.")
    ] = 30.0,
) -> None:
    """Show the bot's alert outbox: counts, dead letters (--failed), re-send them (--retry)."""
    from tradeforge.engine.alerts import BotAlerts
    from tradeforge.engine.runtime import open_repository
    from tradeforge.notifications.outbox import Outbox

    if ids and not retry:
        raise ConfigError([Problem("--id", "only with --retry")])
    config = load_config(configs)
    repository = open_repository(config, " --config ".join(shlex.quote(str(c)) for c in configs))
    outbox = Outbox(repository.engine, repository.bot_id)
    if failed:
        table = Table("id", "to", "kind", "time", "attempts", "error", title="dead-lettered alerts")
        for row in outbox.rows(OutboxStatus.FAILED):
            table.add_row(
                str(row.id),
                row.destination,
                row.kind,
                f"{row.event_time:%Y-%m-%d %H:%M}",
                str(row.attempts),
                escape(row.last_error or ""),
            )
        out.print(table)
    if retry:
        count = outbox.retry(ids or None)
        out.print(f"{count} dead-lettered alerts back in the queue")
        bot = repository.instance()
        beat = bot.lock_heartbeat
        if bot.lock_owner is not None and beat is not None and dt.datetime.now(dt.UTC) - beat < LOCK_STALE:
            out.print("the bot is running: it sends them within a second or two")
        elif outbox.counts().get("pending", 0):  # retried ones and any left over from the last run
            alerts = BotAlerts.start(config, repository, "cli", out.print)
            if alerts.notifier is not None:
                alerts.notifier.wait_idle(wait)
                alerts.close(timeout=1.0)
    counts = outbox.counts()
    out.print(
        f"outbox: {counts.get('pending', 0)} pending, {counts.get('delivered', 0)} delivered, "
        f"{counts.get('failed', 0)} failed"
    )
