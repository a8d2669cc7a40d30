"""Message texts: templates with defaults (overridable per kind in `notifications.templates`),
rendered as Telegram HTML (every value escaped, so `BTC/USDT`, `_` or `<` never break a message),
plain text and HTML e-mail; long texts split on line breaks into Telegram's 4096-character limit."""

from __future__ import annotations

import html
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TELEGRAM_LIMIT = 4096
MAX_PARTS = 5  # beyond this a message is trimmed: an alert is not a log dump

TEMPLATES: dict[str, str] = {
    "bot_started": "▶️ {bot} started at {at} ({mode}, {symbols})",
    "bot_stopped": "⏹ {bot} stopped at {at}: {reason}",
    "bot_recovered": "♻️ {bot} recovered after a restart: {summary}",
    "order_placed": "📝 {side} {amount} {symbol} {type} ({role}{reason_suffix}) order {client_order_id}",
    "order_filled": "✅ filled {side} {amount} {symbol} @ {price} ({role}) order {client_order_id}",
    "order_cancelled": "✖️ cancelled {side} {amount} {symbol} ({role}) order {client_order_id}",
    "order_rejected": "⛔ rejected {side} {amount} {symbol} ({role}) order {client_order_id}: {status}",
    "trade_opened": "🟢 opened {side} {symbol} {size} @ {price}",
    "trade_closed": "🔴 closed {side} {symbol} {size} @ {entry_price} → {exit_price} ({exit_reason}) PnL {pnl}",
    "stop_hit": "🛑 {exit_reason} hit: {side} {symbol} @ {exit_price}, PnL {pnl}",
    "protection_triggered": "🛡 protection {protection} triggered on {symbol}: {detail}",
    "breaker_opened": "⚡ circuit breaker {name} opened: {detail}",
    "breaker_closed": "🔌 circuit breaker {name} closed",
    "error": "❗ error: {message}",
    "daily_summary": "📊 daily summary {day}: PnL {pnl}, {trades} trades closed, equity {equity}",
}
TITLES = {
    "bot_started": "Bot started",
    "bot_stopped": "Bot stopped",
    "bot_recovered": "Bot recovered",
    "order_placed": "Order placed",
    "order_filled": "Order filled",
    "order_cancelled": "Order cancelled",
    "order_rejected": "Order rejected",
    "trade_opened": "Trade opened",
    "trade_closed": "Trade closed",
    "stop_hit": "Stop hit",
    "protection_triggered": "Protection triggered",
    "breaker_opened": "Circuit breaker opened",
    "breaker_closed": "Circuit breaker closed",
    "error": "Error",
    "daily_summary": "Daily summary",
}


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return "?"


@dataclass(frozen=True)
class Rendered:
    """One outgoing message: a subject line, plain text and (Telegram/e-mail) HTML."""

    subject: str
    text: str
    html: str


class Renderer:
    """Fills the templates; `overrides` replace the default text of a kind."""

    def __init__(self, bot: str, overrides: Mapping[str, str] | None = None) -> None:
        self.bot = bot
        self.templates = {**TEMPLATES, **(overrides or {})}

    def line(self, kind: str, data: Mapping[str, Any], *, escape: bool) -> str:
        values = {"bot": self.bot, **{k: _show(v) for k, v in data.items()}}
        values["reason_suffix"] = f", {values['reason']}" if values.get("reason") else ""
        if escape:
            values = {k: html.escape(v, quote=False) for k, v in values.items()}
        template = self.templates.get(kind, "{kind}: {data}")
        try:
            return string.Formatter().vformat(template, (), _Missing(values, kind=kind, data=str(dict(data))))
        except (ValueError, IndexError) as exc:  # a broken user template must not lose the alert
            return f"{kind}: {dict(data)} (template error: {exc})"

    def render(self, items: Sequence[tuple[str, Mapping[str, Any]]]) -> Rendered:
        """One message for one alert or a merged burst of alerts (kind, data)."""
        kinds = {kind for kind, _ in items}
        first = items[0][0]
        title = TITLES.get(first, first)
        if len(items) > 1:
            title = f"{len(items)} × {title.lower()}" if len(kinds) == 1 else f"{len(items)} trading updates"
        subject = f"[{self.bot}] {title}"
        text = "\n".join(self.line(kind, data, escape=False) for kind, data in items)
        body = "\n".join(self.line(kind, data, escape=True) for kind, data in items)
        return Rendered(subject, f"{subject}\n{text}", f"<b>{html.escape(subject, quote=False)}</b>\n{body}")


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) >= 100 else f"{value:.6g}"
    return "" if value is None else str(value)


def split_message(text: str, limit: int = TELEGRAM_LIMIT, max_parts: int = MAX_PARTS) -> list[str]:
    """Parts of at most `limit` characters, cut at line breaks (a longer line is cut, never inside an
    HTML entity); past `max_parts` the rest is replaced by a note saying how many lines were left out."""
    parts: list[str] = []
    current = ""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        while len(line) > limit:
            cut = _safe_cut(line, limit)
            parts, current = _push(parts, current), ""
            parts.append(line[:cut])
            line = line[cut:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            parts.append(current)
            current = line
        else:
            current = candidate
        if len(parts) >= max_parts:
            left = len(lines) - index - 1 + (1 if current else 0)
            note = f"… {left} more lines not shown"
            last = parts[max_parts - 1]
            if len(last) + len(note) + 1 > limit:
                last = last[: _safe_cut(last, limit - len(note) - 1)]
            parts = [*parts[: max_parts - 1], f"{last}\n{note}"]
            return parts
    return _push(parts, current)


def _push(parts: list[str], current: str) -> list[str]:
    return [*parts, current] if current else parts


def _safe_cut(line: str, limit: int) -> int:
    """A cut position ≤ limit that does not split an `&…;` entity or an `<…>` tag."""
    cut = limit
    amp, lt = line.rfind("&", 0, cut), line.rfind("<", 0, cut)
    if amp != -1 and ";" not in line[amp:cut] and cut - amp <= 10:
        cut = amp
    if lt != -1 and ">" not in line[lt:cut]:
        cut = lt
    return max(cut, 1)
